//! Tenant slugs and domain names, parsed once into types that are valid by construction.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::TenantError;

/// Slugs that would collide with the platform's own host names or paths.
const RESERVED_SLUGS: &[&str] = &[
    "admin",
    "api",
    "app",
    "assets",
    "auth",
    "cdn",
    "console",
    "dashboard",
    "demo-admin",
    "docs",
    "fhir",
    "graphql",
    "help",
    "id",
    "login",
    "mail",
    "metrics",
    "oauth",
    "ops",
    "operator",
    "portal",
    "portico",
    "root",
    "smart",
    "smtp",
    "static",
    "status",
    "support",
    "system",
    "t",
    "www",
];

/// A tenant's short name: a lowercase DNS label, so `<slug>.<base_domain>` is a valid host.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct TenantSlug(String);

impl TenantSlug {
    /// A slug read back from the registry. It was valid when stored; re-checking it here
    /// would lock out a tenant whose slug a later rule (a newly reserved name) refuses.
    pub(crate) fn from_stored(slug: String) -> Self {
        Self(slug)
    }

    /// The slug as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for TenantSlug {
    type Err = TenantError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        check_label(s).map_err(TenantError::InvalidSlug)?;
        if s.len() < 2 {
            return Err(TenantError::InvalidSlug("must be at least 2 characters"));
        }
        if s.contains("--") {
            // RFC 5891 §4.2.3.1: "xn--" and friends are reserved for internationalized labels.
            return Err(TenantError::InvalidSlug(
                "must not contain two hyphens in a row",
            ));
        }
        if RESERVED_SLUGS.contains(&s) {
            return Err(TenantError::InvalidSlug("is reserved for the platform"));
        }

        Ok(Self(s.to_owned()))
    }
}

impl fmt::Display for TenantSlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// A fully qualified host name in lowercase, without a port or a trailing dot.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DomainName(String);

impl DomainName {
    /// `localhost`, the base domain for local use.
    pub fn localhost() -> Self {
        Self("localhost".to_owned())
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first label, if the name is exactly one label below `parent`.
    pub fn label_under(&self, parent: &DomainName) -> Option<&str> {
        let prefix = self.0.strip_suffix(parent.as_str())?.strip_suffix('.')?;
        (!prefix.contains('.')).then_some(prefix)
    }
}

impl FromStr for DomainName {
    type Err = TenantError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let name = s.strip_suffix('.').unwrap_or(s).to_ascii_lowercase();
        if name.is_empty() || name.len() > 253 {
            return Err(TenantError::InvalidDomain("must be 1 to 253 characters"));
        }
        for label in name.split('.') {
            check_label(label).map_err(TenantError::InvalidDomain)?;
        }

        Ok(Self(name))
    }
}

impl TryFrom<String> for DomainName {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse().map_err(|err: TenantError| err.to_string())
    }
}

impl From<DomainName> for String {
    fn from(name: DomainName) -> Self {
        name.0
    }
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// Why a request's `Host` could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed host")]
pub struct HostError;

impl DomainName {
    /// Reads the value of an HTTP `Host` header (RFC 9110 §7.2): a host name with an
    /// optional port. IP literals are not tenant addresses and are refused.
    pub fn from_host_header(value: &str) -> Result<Self, HostError> {
        let host = match value.rsplit_once(':') {
            Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
                host
            }
            Some(_) => return Err(HostError),
            None => value,
        };

        host.parse().map_err(|_| HostError)
    }
}

/// RFC 1123 §2.1 host name label: 1–63 of `a-z`, `0-9` and `-`, not starting or ending with
/// a hyphen. Uppercase is refused here; callers lowercase first where case does not matter.
fn check_label(label: &str) -> Result<(), &'static str> {
    if label.is_empty() || label.len() > 63 {
        return Err("each label must be 1 to 63 characters");
    }
    if !label
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err("only lowercase letters, digits and hyphens are allowed");
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err("must not start or end with a hyphen");
    }

    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lowercase_label_is_a_slug() {
        assert_eq!("sunrise".parse::<TenantSlug>().unwrap().as_str(), "sunrise");
        assert_eq!(
            "clinic-42".parse::<TenantSlug>().unwrap().as_str(),
            "clinic-42"
        );
    }

    #[test]
    fn bad_slugs_are_refused_with_a_reason() {
        for bad in [
            "", "a", "Sunrise", "sun rise", "-sun", "sun-", "xn--abc", "sün", "a.b", "www",
        ] {
            assert!(
                matches!(bad.parse::<TenantSlug>(), Err(TenantError::InvalidSlug(_))),
                "{bad:?} was accepted"
            );
        }
        assert!("x".repeat(64).parse::<TenantSlug>().is_err());
    }

    #[test]
    fn host_headers_lose_their_port_and_case() {
        let host = DomainName::from_host_header("Sunrise.LOCALHOST:8080").unwrap();
        assert_eq!(host.as_str(), "sunrise.localhost");
        assert_eq!(
            DomainName::from_host_header("portal.example.org.")
                .unwrap()
                .as_str(),
            "portal.example.org"
        );
    }

    #[test]
    fn malformed_hosts_are_refused() {
        for bad in [
            "",
            ":8080",
            "a..b",
            "host:port",
            "[::1]:8080",
            "exa mple.org",
            "a/b",
            "ü.example",
        ] {
            assert_eq!(
                DomainName::from_host_header(bad),
                Err(HostError),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn only_a_single_label_under_the_base_is_a_tenant_label() {
        let base: DomainName = "localhost".parse().unwrap();
        let host: DomainName = "sunrise.localhost".parse().unwrap();
        let deeper: DomainName = "a.sunrise.localhost".parse().unwrap();
        let lookalike: DomainName = "sunriselocalhost".parse().unwrap();

        assert_eq!(host.label_under(&base), Some("sunrise"));
        assert_eq!(deeper.label_under(&base), None);
        assert_eq!(lookalike.label_under(&base), None);
        assert_eq!(base.label_under(&base), None);
    }
}
