//! The `portico` binary.

use std::process::ExitCode;

fn main() -> ExitCode {
    portico_infra::cli::main()
}
