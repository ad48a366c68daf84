//! Recovery codes: ten single-use codes, shown once, that stand in for the authenticator
//! app when it is lost. Each is 20 characters of Crockford base32 in five groups
//! (`7K3M-Q9TD-…`): the first group finds the stored code, the other four (80 bits) are
//! checked against its argon2id hash, so the database never holds a usable code and a
//! guess costs a password hash. Failures count against the same throttles as passwords.

use zeroize::Zeroizing;

use crate::entropy::Entropy;
use crate::secret::Secret;

/// How many codes an account gets.
pub const CODES: usize = 10;

/// Crockford's base32: no I, L, O or U, so codes read aloud and typed by hand survive.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// One code, as shown to the person: its lookup part and its secret part.
#[derive(Debug)]
pub struct RecoveryCode {
    /// The first group: finds the stored code.
    pub lookup: String,
    /// The other sixteen characters: only their hash is stored.
    pub secret: Secret<String>,
}

impl RecoveryCode {
    /// A new random code.
    pub fn generate(entropy: &dyn Entropy) -> Self {
        let mut bytes = Zeroizing::new([0u8; 20]);
        entropy.fill(bytes.as_mut());
        let chars: Zeroizing<String> = Zeroizing::new(
            bytes
                .iter()
                .map(|b| char::from(ALPHABET[usize::from(b & 31)]))
                .collect(),
        );
        Self {
            lookup: chars[..4].to_owned(),
            secret: Secret::new(chars[4..].to_owned()),
        }
    }

    /// The code as shown: `LLLL-SSSS-SSSS-SSSS-SSSS`.
    pub fn display(&self) -> Secret<String> {
        let secret = self.secret.expose();
        Secret::new(format!(
            "{}-{}-{}-{}-{}",
            self.lookup,
            &secret[..4],
            &secret[4..8],
            &secret[8..12],
            &secret[12..]
        ))
    }

    /// Reads a code as typed: dashes and spaces ignored, lower case accepted, and the
    /// letters people confuse read as Crockford says (O→0, I and L→1).
    pub fn parse(typed: &str) -> Option<Self> {
        let chars: Zeroizing<String> = Zeroizing::new(
            typed
                .chars()
                .filter(|c| !matches!(c, '-' | ' '))
                .map(|c| match c.to_ascii_uppercase() {
                    'O' => '0',
                    'I' | 'L' => '1',
                    other => other,
                })
                .collect(),
        );
        let valid = chars.len() == 20 && chars.bytes().all(|b| ALPHABET.contains(&b));
        valid.then(|| Self {
            lookup: chars[..4].to_owned(),
            secret: Secret::new(chars[4..].to_owned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entropy::SeededEntropy;

    #[test]
    fn a_code_reads_back_however_it_is_typed() {
        let code = RecoveryCode::generate(&SeededEntropy::new(8));
        let shown = code.display();
        assert_eq!(shown.expose().len(), 24);

        for typed in [
            shown.expose().clone(),
            shown.expose().to_lowercase(),
            shown.expose().replace('-', " "),
            shown.expose().replace('-', ""),
        ] {
            let parsed = RecoveryCode::parse(&typed).unwrap();
            assert_eq!(parsed.lookup, code.lookup);
            assert_eq!(parsed.secret.expose(), code.secret.expose());
        }
        assert_eq!(
            RecoveryCode::parse("OIL0-0000-0000-0000-0000")
                .unwrap()
                .lookup,
            "0110"
        );
        for bad in [
            "",
            "ABCD-EFGH",
            "ABCD-EFGH-JKMN-PQRS-TVWXY",
            "ABCD-EFGH-JKMN-PQRS-TVW!",
        ] {
            assert!(RecoveryCode::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn codes_are_different_and_never_print() {
        let entropy = SeededEntropy::new(9);
        let (one, two) = (
            RecoveryCode::generate(&entropy),
            RecoveryCode::generate(&entropy),
        );
        assert_ne!(one.display().expose(), two.display().expose());
        assert!(!format!("{one:?}").contains(one.secret.expose().as_str()));
    }
}
