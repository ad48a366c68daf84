//! Checkpoints and segments: what leaves the database so that the database alone cannot
//! rewrite history.
//!
//! A checkpoint is a tenant's chain head — sequence number and hash — with an HMAC made by
//! the key service under a platform key whose material Portico never holds. It is written
//! to the archive first and recorded in the database only once archived, so an archive
//! outage leaves nothing half-done: the next run tries again, and the events themselves
//! are untouched. Segments copy events older than a configured age, up to the newest
//! checkpoint, to the archive as NDJSON; the events stay in the database too (nothing is
//! deleted before six years).

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use sea_orm::{ActiveValue::Set, ColumnTrait, QueryFilter, QueryOrder};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::AuditError;
use super::archive::{self, ArchiveSink};
use super::chain::Hash;
use super::entity::{checkpoints, segments};
use super::event::{AuditEvent, hex_bytes};
use super::trail::{AuditTrail, micros, to_hash};
use crate::crypto::keys::{KeyRef, KeyService};
use crate::crypto::platform_keys::{PlatformKeyError, PlatformKeys};
use crate::ids::TenantId;

/// The `platform_keys` purpose, and key-service name, of the checkpoint signing key.
pub const SIGNING_KEY: &str = "audit-checkpoints";

/// Most events in one archived segment.
pub const SEGMENT_EVENTS: u64 = 10_000;

/// A signed chain head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The tenant.
    pub tenant: TenantId,
    /// The sequence number of the newest event covered.
    pub seq: i64,
    /// That event's hash.
    #[serde(with = "hex_bytes")]
    pub hash: Hash,
    /// When it was signed.
    pub at: DateTime<Utc>,
    /// The signing key, as the key service names it.
    pub key: String,
    /// HMAC-SHA-256 of [`Checkpoint::signed_message`].
    #[serde(with = "hex_bytes")]
    pub mac: [u8; 32],
}

impl Checkpoint {
    /// The bytes the MAC covers: a version tag, the tenant, the sequence number, the hash
    /// and the time.
    pub fn signed_message(&self) -> Vec<u8> {
        signed_message(self.tenant, self.seq, &self.hash, self.at)
    }
}

fn signed_message(tenant: TenantId, seq: i64, hash: &Hash, at: DateTime<Utc>) -> Vec<u8> {
    let mut message = b"portico.audit.checkpoint.v1".to_vec();
    message.extend_from_slice(tenant.as_uuid().as_bytes());
    message.extend_from_slice(&seq.to_be_bytes());
    message.extend_from_slice(hash);
    message.extend_from_slice(&at.timestamp_micros().to_be_bytes());
    message
}

/// What one run did for one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RunOutcome {
    /// The checkpoint made, if the chain had grown.
    pub checkpoint: Option<i64>,
    /// Segments archived, as `(first, last)` sequence numbers.
    pub segments: Vec<(i64, i64)>,
}

/// Signs chain heads and archives them, with old events.
#[derive(Debug, Clone)]
pub struct Checkpointer {
    trail: AuditTrail,
    keys: Arc<dyn KeyService>,
    platform_keys: PlatformKeys,
    sink: Arc<dyn ArchiveSink>,
    segment_after: Option<Duration>,
}

impl Checkpointer {
    /// Checkpoints `trail` with `keys` into `sink`; events older than `segment_after` are
    /// also copied to the archive as segments (none are if it is `None`).
    pub fn new(
        trail: AuditTrail,
        keys: Arc<dyn KeyService>,
        sink: Arc<dyn ArchiveSink>,
        segment_after: Option<Duration>,
    ) -> Self {
        Self {
            platform_keys: PlatformKeys::new(
                trail.db().clone(),
                keys.clone(),
                trail.clock().clone(),
            ),
            trail,
            keys,
            sink,
            segment_after,
        }
    }

    /// The archive written to.
    pub fn sink(&self) -> &Arc<dyn ArchiveSink> {
        &self.sink
    }

    /// The key service that signs.
    pub fn keys(&self) -> &Arc<dyn KeyService> {
        &self.keys
    }

    /// The trail.
    pub fn trail(&self) -> &AuditTrail {
        &self.trail
    }

    /// The signing key, created in the key service on first use.
    pub async fn signing_key(&self) -> Result<KeyRef, AuditError> {
        self.platform_keys
            .mac_key(SIGNING_KEY)
            .await
            .map_err(|err| match err {
                PlatformKeyError::KeyService(err) => AuditError::KeyService(err),
                PlatformKeyError::Database(err) => AuditError::Database(err),
            })
    }

    /// Checkpoints and segments one tenant.
    pub async fn run(&self, tenant: TenantId) -> Result<RunOutcome, AuditError> {
        let checkpoint = self.checkpoint(tenant).await?;
        let segments = self.archive_segments(tenant).await?;

        Ok(RunOutcome {
            checkpoint: checkpoint.map(|c| c.seq),
            segments,
        })
    }

    /// Signs the tenant's chain head if it has moved since the last checkpoint, writes it
    /// to the archive, then records it.
    pub async fn checkpoint(&self, tenant: TenantId) -> Result<Option<Checkpoint>, AuditError> {
        let (seq, hash) = self.trail.head(tenant).await?;
        let last = self.last_checkpoint(tenant).await?;
        if seq == 0 || last.as_ref().is_some_and(|last| last.seq >= seq) {
            return Ok(None);
        }
        let key = self.signing_key().await?;
        let at = micros(self.trail.clock().now());
        let mac = self
            .keys
            .generate_mac(&key, &signed_message(tenant, seq, &hash, at))
            .await?;
        let mac = to_hash(&mac).ok_or(AuditError::KeyService(
            crate::crypto::keys::KeyError::Invalid("a MAC of the wrong length"),
        ))?;
        let checkpoint = Checkpoint {
            tenant,
            seq,
            hash,
            at,
            key: key.0,
            mac,
        };
        let body =
            serde_json::to_vec_pretty(&checkpoint).map_err(|_| AuditError::Corrupt { seq })?;
        self.sink
            .put(&archive::checkpoint_name(tenant, seq), &body)
            .await?;

        let tx = self.trail.db().begin(tenant).await?;
        tx.insert(checkpoints::ActiveModel {
            seq: Set(seq),
            hash: Set(hash.to_vec()),
            at: Set(at),
            key_ref: Set(checkpoint.key.clone()),
            mac: Set(mac.to_vec()),
            ..Default::default()
        })
        .await?;
        tx.commit().await?;
        tracing::info!(tenant.id = %tenant, audit.seq = seq, "audit checkpoint archived");

        Ok(Some(checkpoint))
    }

    /// The newest checkpoint recorded in the database.
    pub async fn last_checkpoint(
        &self,
        tenant: TenantId,
    ) -> Result<Option<Checkpoint>, AuditError> {
        let tx = self.trail.db().begin(tenant).await?;
        let row = tx
            .find::<checkpoints::Entity>()
            .order_by_desc(checkpoints::Column::Seq)
            .one(tx.conn())
            .await?;
        tx.commit().await?;

        row.map(from_row).transpose()
    }

    /// Every checkpoint recorded in the database, oldest first.
    pub async fn recorded_checkpoints(
        &self,
        tenant: TenantId,
    ) -> Result<Vec<Checkpoint>, AuditError> {
        let tx = self.trail.db().begin(tenant).await?;
        let rows = tx
            .find::<checkpoints::Entity>()
            .order_by_asc(checkpoints::Column::Seq)
            .all(tx.conn())
            .await?;
        tx.commit().await?;

        rows.into_iter().map(from_row).collect()
    }

    /// Copies events older than the configured age, and covered by a checkpoint, to the
    /// archive in segments of at most [`SEGMENT_EVENTS`].
    pub async fn archive_segments(&self, tenant: TenantId) -> Result<Vec<(i64, i64)>, AuditError> {
        let Some(age) = self.segment_after else {
            return Ok(Vec::new());
        };
        let Some(covered) = self.last_checkpoint(tenant).await? else {
            return Ok(Vec::new());
        };
        let cutoff = self.trail.clock().now() - age;
        let mut done = Vec::new();
        loop {
            let next = self.last_segment_end(tenant).await? + 1;
            let events = self
                .trail
                .events(tenant, next, SEGMENT_EVENTS)
                .await?
                .into_iter()
                .take_while(|event| event.seq <= covered.seq && event.at < cutoff)
                .collect::<Vec<_>>();
            let (Some(first), Some(last)) = (events.first(), events.last()) else {
                return Ok(done);
            };
            let (first, last) = (first.seq, last.seq);
            let body = segment_body(&events)?;
            let name = archive::segment_name(tenant, first, last);
            self.sink.put(&name, &body).await?;

            let tx = self.trail.db().begin(tenant).await?;
            tx.insert(segments::ActiveModel {
                first_seq: Set(first),
                last_seq: Set(last),
                name: Set(name),
                digest: Set(Sha256::digest(&body).to_vec()),
                at: Set(micros(self.trail.clock().now())),
                ..Default::default()
            })
            .await?;
            tx.commit().await?;
            tracing::info!(tenant.id = %tenant, audit.first = first, audit.last = last, "audit segment archived");
            done.push((first, last));
        }
    }

    async fn last_segment_end(&self, tenant: TenantId) -> Result<i64, AuditError> {
        let tx = self.trail.db().begin(tenant).await?;
        let row = tx
            .find::<segments::Entity>()
            .filter(segments::Column::LastSeq.gt(0))
            .order_by_desc(segments::Column::LastSeq)
            .one(tx.conn())
            .await?;
        tx.commit().await?;

        Ok(row.map_or(0, |row| row.last_seq))
    }
}

/// Events as NDJSON, one per line.
pub fn segment_body(events: &[AuditEvent]) -> Result<Vec<u8>, AuditError> {
    let mut body = Vec::new();
    for event in events {
        serde_json::to_writer(&mut body, event)
            .map_err(|_| AuditError::Corrupt { seq: event.seq })?;
        body.push(b'\n');
    }
    Ok(body)
}

fn from_row(row: checkpoints::Model) -> Result<Checkpoint, AuditError> {
    let seq = row.seq;
    Ok(Checkpoint {
        tenant: TenantId::from_uuid(row.tenant_id),
        seq,
        hash: to_hash(&row.hash).ok_or(AuditError::Corrupt { seq })?,
        at: row.at,
        key: row.key_ref,
        mac: to_hash(&row.mac).ok_or(AuditError::Corrupt { seq })?,
    })
}
