//! Log output: compact text on a terminal, JSON lines otherwise; level from `PORTICO_LOG`.
//!
//! Logs go to standard error, so a command's own output on standard output (such as
//! `portico tenant list --json`) stays clean. What may and may not be logged is in
//! docs/LOGGING.md.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// The variable that sets the level, in `tracing` filter syntax.
const LEVEL_VAR: &str = "PORTICO_LOG";

/// Installs the global subscriber. Call once, after the configuration is loaded.
pub fn init(format: LogFormat) {
    // Our own crates at the chosen level; dependencies one step quieter by default so a
    // driver's debug output cannot carry statement text or request detail.
    let filter = EnvFilter::try_from_env(LEVEL_VAR)
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn,hyper=warn,h2=warn"));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };

    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init();
    } else {
        builder.compact().init();
    }
}
