//! Verification: re-walks a tenant's chain from its genesis and checks it against its head,
//! its checkpoints (in the database and in the archive) and its archived segments.
//!
//! Whoever can write to the database can recompute SHA-256; what they cannot do is make a
//! checkpoint MAC without the key service, or change what the archive holds. So a rewrite
//! of history is caught where it meets a checkpoint or a segment, and anything cruder
//! where a link no longer matches.

use std::collections::BTreeMap;
use std::fmt;

use sha2::{Digest, Sha256};

use super::AuditError;
use super::archive::{self, ArchiveSink};
use super::chain::{self, Hash};
use super::checkpoint::{Checkpoint, Checkpointer};
use super::entity::segments;
use super::event::AuditEvent;
use crate::crypto::keys::KeyRef;
use crate::ids::TenantId;

/// How many events are read at a time.
const PAGE: u64 = 1_000;

/// One broken link, at the sequence number where it shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Break {
    /// A stored event does not read back.
    Unreadable {
        /// Where.
        seq: i64,
    },
    /// The event with this sequence number is missing.
    Missing {
        /// The number expected next.
        seq: i64,
    },
    /// The event's contents no longer match its hash (edited or reordered).
    Altered {
        /// Where.
        seq: i64,
    },
    /// The event does not follow its predecessor (inserted, or its predecessor replaced).
    Relinked {
        /// Where.
        seq: i64,
    },
    /// The head row disagrees with the chain's last event (events cut off or appended
    /// behind the trail's back).
    Head {
        /// The chain's last sequence number.
        seq: i64,
    },
    /// A checkpoint covers more events than the chain holds (the chain was truncated).
    Truncated {
        /// The checkpoint's sequence number.
        seq: i64,
    },
    /// A checkpoint's MAC does not verify (forged or replaced).
    BadSignature {
        /// The checkpoint's sequence number.
        seq: i64,
    },
    /// The chain's hash at a checkpoint differs from the signed one (history rewritten).
    Rewritten {
        /// The checkpoint's sequence number.
        seq: i64,
    },
    /// A checkpoint is in the archive but not the database, or the two copies differ.
    CheckpointDiffers {
        /// The checkpoint's sequence number.
        seq: i64,
    },
    /// An archived segment disagrees with the chain or with its own recorded digest.
    Segment {
        /// The first sequence number where it disagrees.
        seq: i64,
    },
}

impl Break {
    /// The sequence number the break shows at.
    pub fn seq(&self) -> i64 {
        match *self {
            Self::Unreadable { seq }
            | Self::Missing { seq }
            | Self::Altered { seq }
            | Self::Relinked { seq }
            | Self::Head { seq }
            | Self::Truncated { seq }
            | Self::BadSignature { seq }
            | Self::Rewritten { seq }
            | Self::CheckpointDiffers { seq }
            | Self::Segment { seq } => seq,
        }
    }
}

impl fmt::Display for Break {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreadable { seq } => write!(f, "event {seq} is unreadable"),
            Self::Missing { seq } => write!(f, "event {seq} is missing"),
            Self::Altered { seq } => write!(f, "event {seq} does not match its hash (altered)"),
            Self::Relinked { seq } => {
                write!(
                    f,
                    "event {seq} does not follow event {} (inserted or replaced)",
                    seq - 1
                )
            }
            Self::Head { seq } => write!(
                f,
                "the chain head does not match the last event ({seq}): events were cut off or added outside the trail"
            ),
            Self::Truncated { seq } => {
                write!(
                    f,
                    "checkpoint {seq} covers events the chain no longer holds (truncated)"
                )
            }
            Self::BadSignature { seq } => write!(f, "checkpoint {seq} has an invalid signature"),
            Self::Rewritten { seq } => {
                write!(
                    f,
                    "the chain at event {seq} differs from its signed checkpoint (rewritten)"
                )
            }
            Self::CheckpointDiffers { seq } => write!(
                f,
                "checkpoint {seq} differs between the database and the archive, or is missing from one"
            ),
            Self::Segment { seq } => {
                write!(
                    f,
                    "the archived segment disagrees with the chain at event {seq}"
                )
            }
        }
    }
}

/// What verifying one tenant found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The tenant.
    pub tenant: TenantId,
    /// Events walked.
    pub events: i64,
    /// Checkpoints checked (database and archive copies counted once).
    pub checkpoints: usize,
    /// Archived segments checked.
    pub segments: usize,
    /// Events after the newest valid checkpoint: not yet signed.
    pub unsigned: i64,
    /// Every break found, in sequence order; the first is the first broken link.
    pub breaks: Vec<Break>,
}

impl Report {
    /// Whether the chain is intact.
    pub fn ok(&self) -> bool {
        self.breaks.is_empty()
    }
}

/// Checks chains.
#[derive(Debug, Clone)]
pub struct Verifier {
    checkpointer: Checkpointer,
}

impl Verifier {
    /// A verifier using the checkpointer's trail, key service and archive.
    pub fn new(checkpointer: Checkpointer) -> Self {
        Self { checkpointer }
    }

    /// Verifies one tenant's chain, checkpoints and segments.
    pub async fn verify(&self, tenant: TenantId) -> Result<Report, AuditError> {
        let trail = self.checkpointer.trail();
        let sink = self.checkpointer.sink().clone();
        let mut breaks = Vec::new();

        // Checkpoints: both copies, each signature.
        let recorded = self.checkpointer.recorded_checkpoints(tenant).await?;
        let archived = archived_checkpoints(sink.as_ref(), tenant).await?;
        let mut by_seq: BTreeMap<i64, (Option<Checkpoint>, Option<Checkpoint>)> = BTreeMap::new();
        for checkpoint in recorded {
            let seq = checkpoint.seq;
            by_seq.entry(seq).or_default().0 = Some(checkpoint);
        }
        for checkpoint in archived {
            match checkpoint {
                Ok(checkpoint) => {
                    let seq = checkpoint.seq;
                    by_seq.entry(seq).or_default().1 = Some(checkpoint);
                }
                Err(seq) => breaks.push(Break::BadSignature { seq }),
            }
        }
        // The signed hash to expect at each checkpointed sequence number.
        let mut signed: BTreeMap<i64, Hash> = BTreeMap::new();
        for (&seq, (db, archive)) in &by_seq {
            if db != archive {
                breaks.push(Break::CheckpointDiffers { seq });
            }
            let mut trusted = None;
            for copy in [archive, db].into_iter().flatten() {
                if self.signature_ok(copy).await? {
                    trusted.get_or_insert(copy.hash);
                } else {
                    breaks.push(Break::BadSignature { seq });
                }
            }
            if let Some(hash) = trusted {
                signed.insert(seq, hash);
            }
        }

        // Segments: each must chain internally and match its recorded digest.
        let (archived_hashes, segment_count) = self
            .segment_hashes(tenant, sink.as_ref(), &mut breaks)
            .await?;

        // The chain itself.
        let mut expected = 1;
        let mut prev = chain::genesis(tenant);
        'walk: loop {
            let page = match trail.events(tenant, expected, PAGE).await {
                Ok(page) => page,
                Err(AuditError::Corrupt { seq }) => {
                    breaks.push(Break::Unreadable { seq });
                    break;
                }
                Err(err) => return Err(err),
            };
            if page.is_empty() {
                break;
            }
            for event in &page {
                if let Some(found) = check_link(event, expected, &prev) {
                    breaks.push(found);
                    break 'walk;
                }
                if signed
                    .get(&event.seq)
                    .is_some_and(|hash| *hash != event.hash)
                {
                    breaks.push(Break::Rewritten { seq: event.seq });
                }
                if archived_hashes
                    .get(&event.seq)
                    .is_some_and(|hash| *hash != event.hash)
                {
                    breaks.push(Break::Segment { seq: event.seq });
                }
                prev = event.hash;
                expected += 1;
            }
        }
        let last = expected - 1;
        let chain_intact = !breaks.iter().any(|b| {
            matches!(
                b,
                Break::Unreadable { .. }
                    | Break::Missing { .. }
                    | Break::Altered { .. }
                    | Break::Relinked { .. }
            )
        });
        if chain_intact {
            let head = trail.head(tenant).await?;
            if head != (last, prev) {
                breaks.push(Break::Head { seq: last });
            }
            for &seq in signed.keys().filter(|&&seq| seq > last) {
                breaks.push(Break::Truncated { seq });
            }
            if let Some((&seq, _)) = archived_hashes.range(last + 1..).next() {
                breaks.push(Break::Segment { seq });
            }
        }
        breaks.sort_by_key(Break::seq);
        breaks.dedup();
        let newest_signed = signed.keys().next_back().copied().unwrap_or(0);

        Ok(Report {
            tenant,
            events: last,
            checkpoints: by_seq.len(),
            segments: segment_count,
            unsigned: (last - newest_signed).max(0),
            breaks,
        })
    }

    async fn signature_ok(&self, checkpoint: &Checkpoint) -> Result<bool, AuditError> {
        Ok(self
            .checkpointer
            .keys()
            .verify_mac(
                &KeyRef(checkpoint.key.clone()),
                &checkpoint.signed_message(),
                &checkpoint.mac,
            )
            .await?)
    }

    /// Reads every archived segment, checks it chains and matches its recorded digest,
    /// and returns the hash it holds for each sequence number.
    async fn segment_hashes(
        &self,
        tenant: TenantId,
        sink: &dyn ArchiveSink,
        breaks: &mut Vec<Break>,
    ) -> Result<(BTreeMap<i64, Hash>, usize), AuditError> {
        let trail = self.checkpointer.trail();
        let tx = trail.db().begin(tenant).await?;
        let recorded: BTreeMap<String, segments::Model> = tx
            .find::<segments::Entity>()
            .all(tx.conn())
            .await?
            .into_iter()
            .map(|row| (row.name.clone(), row))
            .collect();
        tx.commit().await?;

        let mut hashes = BTreeMap::new();
        let names = sink.list(&archive::segments_prefix(tenant)).await?;
        let count = names.len();
        for name in names {
            let Some(body) = sink.get(&name).await? else {
                continue;
            };
            let row = recorded.get(&name);
            let events: Vec<Result<AuditEvent, ()>> = body
                .split(|&b| b == b'\n')
                .filter(|line| !line.is_empty())
                .map(|line| serde_json::from_slice::<AuditEvent>(line).map_err(|_| ()))
                .collect();
            let first = row.map_or(0, |row| row.first_seq);
            if row.is_some_and(|row| row.digest != Sha256::digest(&body).to_vec()) {
                breaks.push(Break::Segment { seq: first });
            }
            let mut prev: Option<Hash> = None;
            for (i, event) in events.into_iter().enumerate() {
                let seq = first + i64::try_from(i).unwrap_or(i64::MAX);
                let Ok(event) = event else {
                    breaks.push(Break::Segment { seq });
                    break;
                };
                let linked = prev.is_none_or(|prev| prev == event.prev_hash);
                if event.tenant != tenant || !linked || chain::recompute(&event) != event.hash {
                    breaks.push(Break::Segment { seq: event.seq });
                    break;
                }
                prev = Some(event.hash);
                hashes.insert(event.seq, event.hash);
            }
        }
        for (name, row) in &recorded {
            if !hashes.contains_key(&row.first_seq) && !name.is_empty() {
                // Recorded as archived, but not found there.
                breaks.push(Break::Segment { seq: row.first_seq });
            }
        }

        Ok((hashes, count))
    }
}

/// Reads the archive's checkpoints; an object that does not parse is reported by the
/// sequence number in its name.
async fn archived_checkpoints(
    sink: &dyn ArchiveSink,
    tenant: TenantId,
) -> Result<Vec<Result<Checkpoint, i64>>, AuditError> {
    let prefix = archive::checkpoints_prefix(tenant);
    let mut out = Vec::new();
    for name in sink.list(&prefix).await? {
        let seq = name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(".json"))
            .and_then(|digits| digits.parse::<i64>().ok())
            .unwrap_or(0);
        let parsed = sink
            .get(&name)
            .await?
            .and_then(|body| serde_json::from_slice::<Checkpoint>(&body).ok())
            .filter(|checkpoint| checkpoint.tenant == tenant && checkpoint.seq == seq);
        out.push(parsed.ok_or(seq));
    }
    Ok(out)
}

/// Checks one event against its expected place in the chain.
fn check_link(event: &AuditEvent, expected: i64, prev: &Hash) -> Option<Break> {
    if event.seq != expected {
        return Some(Break::Missing { seq: expected });
    }
    if chain::recompute(event) != event.hash {
        return Some(Break::Altered { seq: event.seq });
    }
    if event.prev_hash != *prev {
        return Some(Break::Relinked { seq: event.seq });
    }
    None
}
