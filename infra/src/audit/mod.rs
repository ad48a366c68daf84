//! Archive adapters for the audit trail's write-once storage
//! ([`ArchiveSink`](portico_platform::audit::archive::ArchiveSink)): a local directory by
//! default, S3 with Object Lock in AWS mode.
//!
//! Both keep the port's promise the same way: a name, once written, keeps its bytes. The
//! local archive links a finished file into place only where none exists; the S3 archive
//! writes only if no object of that name exists, under a retention in COMPLIANCE mode that
//! nobody — not even the account's root user — can shorten.
//!
//! Names are the port's (`audit/<tenant id>/checkpoints/<seq>.json`, …): `/`-separated
//! components, none of them empty or starting with `.`. Anything else is refused before
//! it reaches a path or a key, so a name can never climb out of the archive.

pub mod local;
pub mod s3;
pub mod schedule;

pub use local::LocalArchive;
pub use s3::S3Archive;

use portico_platform::audit::archive::ArchiveError;

/// Refuses names that are not plain relative paths: empty, absolute, with an empty
/// component (`a//b`, `a/`), or with a component starting with `.` (`..`, `.`, and the
/// local archive's own temporary files).
fn check_name(name: &str) -> Result<(), ArchiveError> {
    let plain = !name.is_empty()
        && name
            .split('/')
            .all(|part| !part.is_empty() && !part.starts_with('.') && !part.contains('\0'));
    if plain {
        Ok(())
    } else {
        Err(ArchiveError::Other(format!(
            "refused the archive object name {name:?}: names are relative paths with no \
             empty components and none starting with '.'"
        )))
    }
}

/// The whole components of a listing prefix (`audit/t/checkpoints/` of
/// `audit/t/checkpoints/000`), checked like a name; what follows the last `/` only
/// filters, so it needs no check.
fn prefix_folder(prefix: &str) -> Result<&str, ArchiveError> {
    match prefix.rfind('/') {
        Some(end) => {
            check_name(&prefix[..end])?;
            Ok(&prefix[..=end])
        }
        None => Ok(""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_relative_names_are_accepted() {
        for name in [
            "a",
            "audit/01a23cdf-d215-73c9-b312-0ca8e43e8f19/checkpoints/00000000000000000001.json",
            "x/y.ndjson",
        ] {
            assert!(check_name(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn names_that_could_leave_the_archive_are_refused() {
        for name in [
            "",
            "/etc/passwd",
            "../x",
            "a/../b",
            "a/./b",
            "a//b",
            "a/",
            ".hidden",
            "a/.tmp",
            "a\0b",
        ] {
            let err = check_name(name).unwrap_err();
            assert!(matches!(err, ArchiveError::Other(_)), "{name:?}: {err:?}");
        }
    }

    #[test]
    fn a_prefix_leads_to_its_last_whole_component() {
        assert_eq!(prefix_folder("").unwrap(), "");
        assert_eq!(prefix_folder("aud").unwrap(), "");
        assert_eq!(prefix_folder("audit/t/").unwrap(), "audit/t/");
        assert_eq!(prefix_folder("audit/t/check").unwrap(), "audit/t/");
        for prefix in ["/", "/etc/", "../", "a//", "a/../b/"] {
            assert!(prefix_folder(prefix).is_err(), "{prefix}");
        }
    }
}
