//! Passwords the way NIST SP 800-63B-4 asks: long enough, not common, not about the
//! clinic or the person, no composition rules and no expiry; stored only as argon2id
//! hashes, computed off the async runtime.
//!
//! Hashing parameters are argon2id with 19 MiB of memory, 2 passes and 1 lane — OWASP's
//! baseline for argon2id, about 20–40 ms per hash on one core of a small server — and a
//! 16-byte random salt; the PHC string records them, so raising them later leaves old
//! hashes verifiable (and [`PasswordHasher::needs_rehash`] says when to upgrade one at the
//! next sign-in).

use std::sync::Arc;

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _, phc::PasswordHash};
use argon2::{Algorithm, Argon2, Params, Version};
use unicode_normalization::UnicodeNormalization;
use zeroize::Zeroizing;

use crate::entropy::Entropy;
use crate::secret::Secret;

/// The fewest characters a password may have (MFA is always on, so NIST's 8 applies).
pub const MIN_CHARS: usize = 8;

/// The most characters a password may have: well above NIST's "at least 64".
pub const MAX_CHARS: usize = 256;

/// Why a password is refused. The messages are for the person choosing it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordProblem {
    /// Too short.
    #[error("use at least {MIN_CHARS} characters")]
    TooShort,
    /// Too long.
    #[error("use at most {MAX_CHARS} characters")]
    TooLong,
    /// On the list of common and breached passwords.
    #[error("this password is too common; it appears in lists of breached passwords")]
    Common,
    /// Made of the clinic's name, the person's e-mail address, or the like.
    #[error("don't build your password from {0}")]
    Context(&'static str),
    /// One character over and over, or a run such as 12345678 or abcdefgh.
    #[error("this password is too easy to guess")]
    Repetitive,
}

/// Common and breached passwords, compared after normalization and lowercasing.
pub trait Blocklist: Send + Sync + std::fmt::Debug {
    /// Whether `normalized` (NFKC, lowercase) is on the list.
    fn contains(&self, normalized: &str) -> bool;

    /// How many entries it holds.
    fn len(&self) -> usize;

    /// Whether it holds none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a password must not be built from.
#[derive(Debug, Clone, Default)]
pub struct Context<'a> {
    /// The clinic's name as patients see it.
    pub clinic: Option<&'a str>,
    /// The portal's address label (the tenant slug).
    pub slug: Option<&'a str>,
    /// The person's e-mail address.
    pub email: Option<&'a str>,
}

/// Checks new passwords.
#[derive(Debug, Clone)]
pub struct PasswordPolicy {
    blocklist: Arc<dyn Blocklist>,
}

impl PasswordPolicy {
    /// A policy refusing what `blocklist` holds.
    pub fn new(blocklist: Arc<dyn Blocklist>) -> Self {
        Self { blocklist }
    }

    /// Checks a new password; the first problem found is returned.
    pub fn check(
        &self,
        password: &Secret<String>,
        context: &Context<'_>,
    ) -> Result<(), PasswordProblem> {
        let normalized = normalize(password.expose());
        let chars = normalized.chars().count();
        if chars < MIN_CHARS {
            return Err(PasswordProblem::TooShort);
        }
        if chars > MAX_CHARS {
            return Err(PasswordProblem::TooLong);
        }
        let lower = Zeroizing::new(normalized.to_lowercase());
        if self.blocklist.contains(&lower) {
            return Err(PasswordProblem::Common);
        }
        if repetitive(&lower) {
            return Err(PasswordProblem::Repetitive);
        }
        let words = [
            (context.clinic, "the clinic's name"),
            (context.slug, "the portal's address"),
            (context.email, "your e-mail address"),
        ];
        for (value, what) in words {
            if value.is_some_and(|value| built_from(&lower, value)) {
                return Err(PasswordProblem::Context(what));
            }
        }

        Ok(())
    }
}

/// NIST asks for Unicode normalization before hashing, so the same password typed on two
/// keyboards is the same password.
fn normalize(password: &str) -> Zeroizing<String> {
    Zeroizing::new(password.nfkc().collect())
}

/// One character repeated, or a straight run up or down (`aaaaaaaa`, `12345678`, `zyxwvuts`).
fn repetitive(password: &str) -> bool {
    let chars: Vec<char> = password.chars().collect();
    let same = chars.windows(2).all(|w| w[0] == w[1]);
    let step = |d: i64| {
        chars
            .windows(2)
            .all(|w| i64::from(u32::from(w[1])) - i64::from(u32::from(w[0])) == d)
    };
    same || step(1) || step(-1)
}

/// Whether the password is little more than `value` (or one of its words of four letters
/// or more): its letters, with the word taken out, leave fewer than four.
fn built_from(password: &str, value: &str) -> bool {
    let letters: String = password.chars().filter(|c| c.is_alphabetic()).collect();
    let value = value.to_lowercase();
    let local = value.split('@').next().unwrap_or_default();
    let whole: String = local.chars().filter(|c| c.is_alphabetic()).collect();
    local
        .split(|c: char| !c.is_alphanumeric())
        .map(str::to_owned)
        .chain([whole])
        .filter(|word| word.chars().count() >= 4)
        .any(|word| letters.contains(&word) && letters.replace(&word, "").chars().count() < 4)
}

/// Why hashing or verifying failed (never because the password was wrong: that is
/// `Ok(false)`).
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// The stored hash is not an argon2 PHC string.
    #[error("the stored password hash is malformed")]
    Malformed,
    /// The hashing task could not run.
    #[error("password hashing failed")]
    Failed,
}

/// argon2id hashing and verification, off the async runtime.
#[derive(Debug, Clone)]
pub struct PasswordHasher {
    params: Params,
    /// A hash of a random password, verified against when the account does not exist, so
    /// that an unknown user costs what a wrong password costs.
    decoy: Arc<String>,
}

impl PasswordHasher {
    /// The production parameters (see the module documentation).
    pub fn new(entropy: &dyn Entropy) -> Result<Self, HashError> {
        Self::with_params(Params::DEFAULT, entropy)
    }

    /// Cheaper parameters, for tests only: hashing is then fast but the format and the code
    /// path are the same.
    pub fn for_tests(entropy: &dyn Entropy) -> Result<Self, HashError> {
        let params = Params::new(256, 1, 1, None).map_err(|_| HashError::Failed)?;
        Self::with_params(params, entropy)
    }

    fn with_params(params: Params, entropy: &dyn Entropy) -> Result<Self, HashError> {
        let mut decoy_password = Zeroizing::new([0u8; 32]);
        entropy.fill(decoy_password.as_mut());
        let mut salt = [0u8; 16];
        entropy.fill(&mut salt);
        let decoy = hash_with(&params, decoy_password.as_ref(), &salt)?;

        Ok(Self {
            params,
            decoy: Arc::new(decoy),
        })
    }

    /// Hashes a new password (normalized first) with a fresh salt.
    pub async fn hash(
        &self,
        password: &Secret<String>,
        entropy: &dyn Entropy,
    ) -> Result<String, HashError> {
        let mut salt = [0u8; 16];
        entropy.fill(&mut salt);
        let normalized = normalize(password.expose());
        let params = self.params.clone();
        tokio::task::spawn_blocking(move || hash_with(&params, normalized.as_bytes(), &salt))
            .await
            .map_err(|_| HashError::Failed)?
    }

    /// Whether `password` matches `stored`. With `stored = None` (no such account) it does
    /// the same work against a decoy and answers `false`.
    pub async fn verify(
        &self,
        password: &Secret<String>,
        stored: Option<&str>,
    ) -> Result<bool, HashError> {
        let known = stored.is_some();
        let stored = stored.map_or_else(|| self.decoy.as_str().to_owned(), str::to_owned);
        let normalized = normalize(password.expose());
        let matched = tokio::task::spawn_blocking(move || {
            let hash = PasswordHash::new(&stored).map_err(|_| HashError::Malformed)?;
            let argon2 = Argon2::default();
            Ok::<bool, HashError>(argon2.verify_password(normalized.as_bytes(), &hash).is_ok())
        })
        .await
        .map_err(|_| HashError::Failed)??;

        Ok(known && matched)
    }

    /// Whether a stored hash was made with other parameters than today's, and should be
    /// replaced at the next successful sign-in.
    pub fn needs_rehash(&self, stored: &str) -> bool {
        let Ok(hash) = PasswordHash::new(stored) else {
            return true;
        };
        match Params::try_from(&hash) {
            Ok(params) => {
                hash.algorithm.as_str() != "argon2id"
                    || params.m_cost() != self.params.m_cost()
                    || params.t_cost() != self.params.t_cost()
                    || params.p_cost() != self.params.p_cost()
            }
            Err(_) => true,
        }
    }
}

fn hash_with(params: &Params, password: &[u8], salt: &[u8]) -> Result<String, HashError> {
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    argon2
        .hash_password_with_salt(password, salt)
        .map(|hash| hash.to_string())
        .map_err(|_| HashError::Failed)
}

/// A blocklist held in memory, from text with one password per line.
#[derive(Debug, Default)]
pub struct MemoryBlocklist {
    entries: std::collections::HashSet<String>,
}

impl MemoryBlocklist {
    /// Reads one password per line; blank lines are skipped, entries are normalized and
    /// lowercased as passwords are when checked.
    pub fn from_lines(text: &str) -> Self {
        let entries = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .map(|line| normalize(line).to_lowercase())
            .collect();
        Self { entries }
    }
}

/// The list shipped with Portico: SecLists' 100,000 most common passwords (see
/// `platform/data/README.md` for its source and license).
const COMMON_PASSWORDS: &str = include_str!("../../data/common-passwords-100k.txt");

impl MemoryBlocklist {
    /// The 100,000 most common passwords, shipped with Portico; built once per process.
    pub fn common() -> Arc<Self> {
        static COMMON: std::sync::OnceLock<Arc<MemoryBlocklist>> = std::sync::OnceLock::new();
        COMMON
            .get_or_init(|| Arc::new(Self::from_lines(COMMON_PASSWORDS)))
            .clone()
    }
}

impl Blocklist for MemoryBlocklist {
    fn contains(&self, normalized: &str) -> bool {
        self.entries.contains(normalized)
    }

    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entropy::SeededEntropy;

    fn secret(text: &str) -> Secret<String> {
        Secret::new(text.to_owned())
    }

    fn policy() -> PasswordPolicy {
        PasswordPolicy::new(Arc::new(MemoryBlocklist::from_lines(
            "password\n123456789\nsunshine1\n\n  qwertyuiop  \n",
        )))
    }

    #[test]
    fn length_is_the_only_shape_rule() {
        let p = policy();
        let none = Context::default();
        assert_eq!(
            p.check(&secret("short"), &none),
            Err(PasswordProblem::TooShort)
        );
        assert_eq!(
            p.check(&secret(&"x".repeat(300)), &none),
            Err(PasswordProblem::TooLong)
        );
        // No composition rules: lowercase words alone are fine, and 64 characters are allowed.
        assert_eq!(
            p.check(&secret("correct horse battery staple"), &none),
            Ok(())
        );
        assert_eq!(p.check(&secret(&"ab cd ".repeat(11)[..64]), &none), Ok(()));
        // Characters, not bytes: eight accented letters are eight.
        assert_eq!(p.check(&secret("éàüöñçøå"), &none), Ok(()));
    }

    #[test]
    fn common_and_repetitive_passwords_are_refused_whatever_their_case() {
        let p = policy();
        let none = Context::default();
        for common in ["password", "PassWord", "Sunshine1", "QWERTYUIOP"] {
            assert_eq!(
                p.check(&secret(common), &none),
                Err(PasswordProblem::Common),
                "{common}"
            );
        }
        for easy in ["aaaaaaaa", "12345678", "hgfedcba"] {
            assert_eq!(
                p.check(&secret(easy), &none),
                Err(PasswordProblem::Repetitive),
                "{easy}"
            );
        }
    }

    #[test]
    fn the_clinic_and_the_person_are_not_passwords() {
        let p = policy();
        let context = Context {
            clinic: Some("Sunrise Family Clinic"),
            slug: Some("sunrise"),
            email: Some("maria.lopez@example.org"),
        };
        for (password, what) in [
            ("Sunrise2026!", "the clinic's name"),
            ("sunrisefamilyclinic", "the clinic's name"),
            ("maria.lopez1", "your e-mail address"),
        ] {
            assert_eq!(
                p.check(&secret(password), &context),
                Err(PasswordProblem::Context(what)),
                "{password}"
            );
        }
        assert_eq!(p.check(&secret("tangerine orchestra"), &context), Ok(()));
        // A context word inside a longer passphrase is fine.
        assert_eq!(p.check(&secret("a sunrise over the bay"), &context), Ok(()));
    }

    #[test]
    fn the_shipped_list_holds_the_100000_most_common_passwords() {
        let common = MemoryBlocklist::common();
        // Distinct once lowercased (the source has some in several cases).
        assert!(common.len() > 96_000, "{}", common.len());
        let policy = PasswordPolicy::new(common);
        for password in [
            "password1",
            "iloveyou",
            "qwertyuiop",
            "Football1",
            "baseball",
        ] {
            assert_eq!(
                policy.check(&secret(password), &Context::default()),
                Err(PasswordProblem::Common),
                "{password}"
            );
        }
        assert_eq!(
            policy.check(&secret("tangerine orchestra"), &Context::default()),
            Ok(())
        );
    }

    #[tokio::test]
    async fn hashes_are_argon2id_salted_and_verify_only_the_right_password() {
        let entropy = SeededEntropy::new(3);
        let hasher = PasswordHasher::for_tests(&entropy).unwrap();
        let one = hasher
            .hash(&secret("tangerine orchestra"), &entropy)
            .await
            .unwrap();
        let two = hasher
            .hash(&secret("tangerine orchestra"), &entropy)
            .await
            .unwrap();

        assert!(one.starts_with("$argon2id$v=19$"), "{one}");
        assert_ne!(one, two, "a fresh salt each time");
        assert!(!one.contains("tangerine"));
        assert!(
            hasher
                .verify(&secret("tangerine orchestra"), Some(&one))
                .await
                .unwrap()
        );
        assert!(
            !hasher
                .verify(&secret("tangerine orchestrA"), Some(&one))
                .await
                .unwrap()
        );
        // No account: the decoy is checked, and the answer is no.
        assert!(
            !hasher
                .verify(&secret("tangerine orchestra"), None)
                .await
                .unwrap()
        );
        assert!(matches!(
            hasher.verify(&secret("x"), Some("not a hash")).await,
            Err(HashError::Malformed)
        ));
    }

    #[tokio::test]
    async fn the_same_password_typed_differently_is_the_same_password() {
        let entropy = SeededEntropy::new(4);
        let hasher = PasswordHasher::for_tests(&entropy).unwrap();
        // "é" as one code point, and as "e" plus a combining accent.
        let stored = hasher
            .hash(&secret("caf\u{e9} au lait"), &entropy)
            .await
            .unwrap();
        assert!(
            hasher
                .verify(&secret("cafe\u{301} au lait"), Some(&stored))
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn hashes_made_with_other_parameters_are_upgraded() {
        let entropy = SeededEntropy::new(5);
        let cheap = PasswordHasher::for_tests(&entropy).unwrap();
        let stored = cheap
            .hash(&secret("tangerine orchestra"), &entropy)
            .await
            .unwrap();

        assert!(!cheap.needs_rehash(&stored));
        let production = PasswordHasher::with_params(Params::DEFAULT, &entropy).unwrap();
        assert!(production.needs_rehash(&stored));
        assert!(production.needs_rehash("garbage"));
    }
}
