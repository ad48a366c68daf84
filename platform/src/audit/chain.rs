//! The chain: each event's hash covers the previous hash and the event's canonical bytes.
//!
//! The canonical encoding is fixed and versioned; changing it would break every stored
//! chain, so a new encoding needs a new version tag rather than an edit. Each field is
//! length-prefixed (u32, big-endian), optional fields carry a presence byte, and integers
//! are big-endian: no two different events encode alike.

use sha2::{Digest, Sha256};

use super::event::{AuditEvent, NewEvent};
use crate::ids::{PatientId, TenantId};

/// A SHA-256 hash.
pub type Hash = [u8; 32];

const ENCODING: &[u8] = b"portico.audit.v1";

/// The value before a tenant's first event: a hash of the encoding tag and the tenant id,
/// so one tenant's chain can never be passed off as another's.
pub fn genesis(tenant: TenantId) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update(ENCODING);
    hasher.update(b"genesis");
    hasher.update(tenant.as_uuid().as_bytes());
    hasher.finalize().into()
}

/// The hash of an event with these contents following `prev`.
pub fn link(prev: &Hash, event: &Linked<'_>) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update(prev);
    hasher.update(canonical(event));
    hasher.finalize().into()
}

/// Recomputes a stored event's hash from its contents and its recorded predecessor.
pub fn recompute(event: &AuditEvent) -> Hash {
    link(&event.prev_hash, &Linked::of(event))
}

/// The fields a hash covers, borrowed from a new or a stored event.
#[derive(Debug, Clone, Copy)]
pub struct Linked<'a> {
    /// The tenant.
    pub tenant: TenantId,
    /// The sequence number.
    pub seq: i64,
    /// Microseconds since the Unix epoch.
    pub at_micros: i64,
    /// The event's contents.
    pub event: Contents<'a>,
}

/// The part of an event a service supplies, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct Contents<'a> {
    actor_kind: &'a str,
    actor_id: &'a str,
    action: &'a str,
    resource_type: &'a str,
    resource_id: Option<&'a str>,
    patient: Option<PatientId>,
    outcome: &'a str,
    client: Option<&'a str>,
    purpose: &'a str,
}

impl<'a> Contents<'a> {
    /// The contents of an event.
    pub fn of_new(event: &'a NewEvent) -> Self {
        Self {
            actor_kind: event.actor.kind.code(),
            actor_id: event.actor.id.as_str(),
            action: event.action.code(),
            resource_type: event.resource_type.as_str(),
            resource_id: event.resource_id.as_ref().map(|t| t.as_str()),
            patient: event.patient,
            outcome: event.outcome.code(),
            client: event.client.as_ref().map(|t| t.as_str()),
            purpose: event.purpose.code(),
        }
    }
}

impl<'a> Linked<'a> {
    /// The hashed fields of a stored event.
    pub fn of(event: &'a AuditEvent) -> Self {
        Self {
            tenant: event.tenant,
            seq: event.seq,
            at_micros: event.at.timestamp_micros(),
            event: Contents::of_new(&event.what),
        }
    }
}

fn canonical(linked: &Linked<'_>) -> Vec<u8> {
    let e = &linked.event;
    let mut out = Vec::with_capacity(256);
    field(&mut out, ENCODING);
    field(&mut out, linked.tenant.as_uuid().as_bytes());
    field(&mut out, &linked.seq.to_be_bytes());
    field(&mut out, &linked.at_micros.to_be_bytes());
    field(&mut out, e.actor_kind.as_bytes());
    field(&mut out, e.actor_id.as_bytes());
    field(&mut out, e.action.as_bytes());
    field(&mut out, e.resource_type.as_bytes());
    optional(&mut out, e.resource_id.map(str::as_bytes));
    let patient = e.patient.map(|p| p.as_uuid());
    optional(&mut out, patient.as_ref().map(|p| p.as_bytes().as_slice()));
    field(&mut out, e.outcome.as_bytes());
    optional(&mut out, e.client.map(str::as_bytes));
    field(&mut out, e.purpose.as_bytes());
    out
}

fn field(out: &mut Vec<u8>, bytes: &[u8]) {
    // Every field is far below 4 GiB: tokens are at most 128 bytes.
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

fn optional(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        Some(bytes) => {
            out.push(1);
            field(out, bytes);
        }
        None => out.push(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::event::{Action, Actor, ActorKind, Purpose};

    fn tenant() -> TenantId {
        "01a23cdf-d215-73c9-b312-0ca8e43e8f19".parse().unwrap()
    }

    fn event() -> NewEvent {
        NewEvent::new(
            Actor::new(ActorKind::Staff, "stf-1").unwrap(),
            Action::Read,
            "Observation",
            Purpose::Treatment,
        )
        .unwrap()
    }

    fn linked(event: &NewEvent, seq: i64) -> Linked<'_> {
        Linked {
            tenant: tenant(),
            seq,
            at_micros: 1_700_000_000_000_000,
            event: Contents::of_new(event),
        }
    }

    #[test]
    fn each_tenant_has_its_own_genesis() {
        let other: TenantId = "01a23cdf-d215-73c9-b312-0ca8e43e8f20".parse().unwrap();
        assert_ne!(genesis(tenant()), genesis(other));
    }

    #[test]
    fn any_change_of_content_or_place_changes_the_hash() {
        let base = event();
        let hash = link(&genesis(tenant()), &linked(&base, 1));

        assert_ne!(hash, link(&genesis(tenant()), &linked(&base, 2)));
        assert_ne!(hash, link(&[0; 32], &linked(&base, 1)));
        let changed = [
            base.clone().resource("obs-1").unwrap(),
            base.clone().client("ses-1").unwrap(),
            base.clone().outcome(crate::audit::event::Outcome::Denied),
            NewEvent {
                action: Action::Search,
                ..base.clone()
            },
        ];
        for other in &changed {
            assert_ne!(
                hash,
                link(&genesis(tenant()), &linked(other, 1)),
                "{other:?}"
            );
        }
    }

    #[test]
    fn moving_a_value_between_optional_fields_changes_the_hash() {
        let with_resource = event().resource("x").unwrap();
        let with_client = event().client("x").unwrap();
        assert_ne!(
            link(&[0; 32], &linked(&with_resource, 1)),
            link(&[0; 32], &linked(&with_client, 1))
        );
    }
}
