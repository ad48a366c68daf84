//! The archive port: write-once storage outside the database for checkpoints and event
//! segments. A local directory by default; S3 with Object Lock in AWS mode (both in
//! `infra`).
//!
//! Objects are named `audit/<tenant id>/checkpoints/<seq>.json` and
//! `audit/<tenant id>/segments/<first seq>-<last seq>.ndjson`, with sequence numbers
//! zero-padded to 20 digits so names sort in chain order.

use std::fmt;

use async_trait::async_trait;

use crate::ids::TenantId;

/// Why the archive refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The archive cannot be reached; worth retrying later.
    #[error("the audit archive is unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// An object of that name exists with other contents; archives never overwrite.
    #[error("the archive already holds a different {0}")]
    Exists(String),
    /// Anything else the archive reported (a missing bucket, a refused permission).
    #[error("audit archive error: {0}")]
    Other(String),
}

/// Write-once storage for the audit trail's checkpoints and segments.
#[async_trait]
pub trait ArchiveSink: Send + Sync + fmt::Debug {
    /// Where objects go, for logs and `audit verify` output (a path, `s3://bucket/prefix`).
    fn describe(&self) -> String;

    /// Stores `body` under `name`. Storing the same bytes again is a success; storing
    /// different bytes under an existing name is [`ArchiveError::Exists`].
    async fn put(&self, name: &str, body: &[u8]) -> Result<(), ArchiveError>;

    /// Reads an object, or `None` if there is none of that name.
    async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, ArchiveError>;

    /// The names of all objects starting with `prefix`, sorted.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, ArchiveError>;
}

/// Where a tenant's checkpoints are kept.
pub fn checkpoints_prefix(tenant: TenantId) -> String {
    format!("audit/{tenant}/checkpoints/")
}

/// Where a tenant's event segments are kept.
pub fn segments_prefix(tenant: TenantId) -> String {
    format!("audit/{tenant}/segments/")
}

/// The name of the checkpoint at `seq`.
pub fn checkpoint_name(tenant: TenantId, seq: i64) -> String {
    format!("{}{seq:020}.json", checkpoints_prefix(tenant))
}

/// The name of the segment holding events `first..=last`.
pub fn segment_name(tenant: TenantId, first: i64, last: i64) -> String {
    format!("{}{first:020}-{last:020}.ndjson", segments_prefix(tenant))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_in_chain_order() {
        let tenant: TenantId = "01a23cdf-d215-73c9-b312-0ca8e43e8f19".parse().unwrap();
        let mut names = vec![
            checkpoint_name(tenant, 100),
            checkpoint_name(tenant, 9),
            checkpoint_name(tenant, 10),
        ];
        names.sort();
        assert_eq!(
            names,
            vec![
                checkpoint_name(tenant, 9),
                checkpoint_name(tenant, 10),
                checkpoint_name(tenant, 100)
            ]
        );
        assert!(checkpoint_name(tenant, 9).starts_with(&checkpoints_prefix(tenant)));
    }
}
