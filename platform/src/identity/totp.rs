//! Time-based one-time passwords (RFC 6238 over RFC 4226's HOTP): HMAC-SHA-1, 30-second
//! steps, six digits — what every authenticator app speaks. A code is accepted for the
//! current step and one step either side (clock drift), and only once: the caller stores
//! the step a code was accepted for and passes it back, and no code for that step or an
//! earlier one is accepted again.

use std::fmt;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha1::Sha1;
use zeroize::Zeroizing;

use crate::entropy::Entropy;

/// Seconds per step.
pub const STEP_SECS: i64 = 30;
/// Digits per code.
pub const DIGITS: u32 = 6;
/// Bytes of secret: 160 bits, as RFC 4226 recommends for HMAC-SHA-1.
pub const SECRET_LEN: usize = 20;

/// Why a code is refused. None says which digits were wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TotpError {
    /// Not six digits.
    #[error("enter the 6-digit code from your authenticator app")]
    Malformed,
    /// Not the code for now (or a step either side).
    #[error("that code is not right; check your authenticator app's clock and try the next code")]
    Wrong,
    /// The code for a step already used.
    #[error("that code has already been used; wait for the next one")]
    Replayed,
}

/// A TOTP secret. Prints as `***`; wiped on drop.
#[derive(Clone)]
pub struct TotpSecret(Zeroizing<Vec<u8>>);

/// The longest secret an external provider may issue that Portico will take.
const MAX_PROVIDER_SECRET: usize = 64;

impl TotpSecret {
    /// A new random secret.
    pub fn generate(entropy: &dyn Entropy) -> Self {
        let mut bytes = Zeroizing::new(vec![0u8; SECRET_LEN]);
        entropy.fill(bytes.as_mut());
        Self(bytes)
    }

    /// A secret read back from storage, if it has the right length.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        (bytes.len() == SECRET_LEN).then(|| Self(Zeroizing::new(bytes.to_vec())))
    }

    /// A secret given in base32 (as authenticator apps show it), if it decodes to the
    /// right length.
    pub fn from_base32(text: &str) -> Option<Self> {
        Self::from_slice(&decode_base32(text)?)
    }

    /// A secret an external identity provider issued (in base32), whatever its length:
    /// Cognito's is 20 bytes, an emulator's may be shorter. The provider checks the codes;
    /// Portico only shows the secret and, while enrolling, proves it with one code.
    pub fn issued_by_provider(text: &str) -> Option<Self> {
        let bytes = decode_base32(text)?;
        (!bytes.is_empty() && bytes.len() <= MAX_PROVIDER_SECRET).then(|| Self(bytes))
    }

    /// The bytes, to store sealed.
    pub fn expose(&self) -> &[u8] {
        self.0.as_ref()
    }

    /// The secret in base32 without padding, as authenticator apps take it.
    pub fn base32(&self) -> Zeroizing<String> {
        Zeroizing::new(base32(self.expose()))
    }

    /// The `otpauth://` URI for enrolling an authenticator app (shown as a QR code).
    pub fn uri(&self, issuer: &str, account: &str) -> Zeroizing<String> {
        let label = format!("{}:{}", escape(issuer), escape(account));
        Zeroizing::new(format!(
            "otpauth://totp/{label}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
            self.base32().as_str(),
            escape(issuer)
        ))
    }

    /// Checks `code` at `now`; `last_used` is the step of the last code accepted. Returns the
    /// step this code is for, to store as the new `last_used`.
    pub fn verify(
        &self,
        code: &str,
        now: DateTime<Utc>,
        last_used: Option<u64>,
    ) -> Result<u64, TotpError> {
        let code = code.trim().replace(' ', "");
        if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(TotpError::Malformed);
        }
        let given: u32 = code.parse().map_err(|_| TotpError::Malformed)?;
        let current = step_at(now);
        // Compare against all three steps without stopping early.
        let mut matched = None;
        for step in [current.saturating_sub(1), current, current + 1] {
            let equal = hotp(self.expose(), step, DIGITS) == given;
            if equal && matched.is_none() {
                matched = Some(step);
            }
        }
        let step = matched.ok_or(TotpError::Wrong)?;
        if last_used.is_some_and(|last| step <= last) {
            return Err(TotpError::Replayed);
        }

        Ok(step)
    }

    /// The code for `now`, for tests and for the demo's instructions.
    pub fn code_at(&self, now: DateTime<Utc>) -> String {
        format!(
            "{:0width$}",
            hotp(self.expose(), step_at(now), DIGITS),
            width = DIGITS as usize
        )
    }
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret(***)")
    }
}

/// The step `now` falls in.
pub fn step_at(now: DateTime<Utc>) -> u64 {
    u64::try_from(now.timestamp().div_euclid(STEP_SECS)).unwrap_or(0)
}

/// RFC 4226 HOTP: HMAC-SHA-1 of the counter, dynamically truncated to `digits` digits.
fn hotp(secret: &[u8], counter: u64, digits: u32) -> u32 {
    // HMAC takes keys of any length; this cannot fail.
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(secret) else {
        return u32::MAX;
    };
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[19] & 0x0f);
    let binary = (u32::from(digest[offset]) & 0x7f) << 24
        | u32::from(digest[offset + 1]) << 16
        | u32::from(digest[offset + 2]) << 8
        | u32::from(digest[offset + 3]);
    binary % 10u32.pow(digits)
}

/// RFC 4648 base32, upper case, no padding.
/// RFC 4648 base32 without padding, any length; `None` for a character outside the
/// alphabet.
fn decode_base32(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut bytes = Zeroizing::new(Vec::with_capacity(SECRET_LEN));
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.trim().trim_end_matches('=').bytes() {
        let value = ALPHABET.iter().position(|&a| a == c.to_ascii_uppercase())?;
        buffer = ((buffer << 5) | u32::try_from(value).ok()?) & 0xffff;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            bytes.push(u8::try_from((buffer >> bits) & 0xff).ok()?);
        }
    }
    Some(bytes)
}

fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entropy::SeededEntropy;

    const RFC_SECRET: &[u8; 20] = b"12345678901234567890";

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, 0).unwrap()
    }

    #[test]
    fn hotp_matches_rfc_4226_appendix_d() {
        let expected = [
            755224, 287082, 359152, 969429, 338314, 254676, 287922, 162583, 399871, 520489,
        ];
        for (counter, code) in expected.into_iter().enumerate() {
            assert_eq!(
                hotp(RFC_SECRET, counter as u64, 6),
                code,
                "counter {counter}"
            );
        }
    }

    #[test]
    fn totp_matches_rfc_6238_appendix_b_for_sha1() {
        for (time, code) in [
            (59, 94287082),
            (1_111_111_109, 7081804),
            (1_111_111_111, 14050471),
            (1_234_567_890, 89005924),
            (2_000_000_000, 69279037),
            (20_000_000_000, 65353130),
        ] {
            assert_eq!(hotp(RFC_SECRET, step_at(at(time)), 8), code, "T={time}");
        }
    }

    #[test]
    fn a_code_is_accepted_within_one_step_and_only_once() {
        let secret = TotpSecret::from_slice(RFC_SECRET).unwrap();
        let now = at(1_800_000_015);
        let code = secret.code_at(now);

        let step = secret.verify(&code, now, None).unwrap();
        assert_eq!(step, step_at(now));
        // The same code again, even a second later: refused.
        assert_eq!(
            secret.verify(&code, at(1_800_000_016), Some(step)),
            Err(TotpError::Replayed)
        );
        // The previous step's code, presented after a later one was used: refused.
        let previous = secret.code_at(at(1_800_000_015 - 30));
        assert_eq!(
            secret.verify(&previous, now, Some(step)),
            Err(TotpError::Replayed)
        );
        // Drift of one step either way is tolerated; two is not.
        let fresh = TotpSecret::from_slice(&[9; 20]).unwrap();
        assert!(
            fresh
                .verify(&fresh.code_at(at(1_800_000_015 - 30)), now, None)
                .is_ok()
        );
        assert!(
            fresh
                .verify(&fresh.code_at(at(1_800_000_015 + 30)), now, None)
                .is_ok()
        );
        assert_eq!(
            fresh.verify(&fresh.code_at(at(1_800_000_015 - 60)), now, None),
            Err(TotpError::Wrong)
        );
    }

    #[test]
    fn malformed_codes_are_refused_as_such() {
        let secret = TotpSecret::from_slice(RFC_SECRET).unwrap();
        for bad in ["", "12345", "1234567", "12a456", "١٢٣٤٥٦"] {
            assert_eq!(
                secret.verify(bad, at(59), None),
                Err(TotpError::Malformed),
                "{bad:?}"
            );
        }
        // Spaces, as apps show them, are fine.
        let code = secret.code_at(at(59));
        let spaced = format!("{} {}", &code[..3], &code[3..]);
        assert!(secret.verify(&spaced, at(59), None).is_ok());
    }

    #[test]
    fn the_enrolment_uri_is_what_authenticator_apps_read() {
        let secret = TotpSecret::from_slice(RFC_SECRET).unwrap();
        assert_eq!(secret.base32().as_str(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(
            secret
                .uri("Sunrise Family Clinic", "maria@example.org")
                .as_str(),
            "otpauth://totp/Sunrise%20Family%20Clinic:maria%40example.org?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Sunrise%20Family%20Clinic&algorithm=SHA1&digits=6&period=30"
        );
        let back = TotpSecret::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap();
        assert_eq!(back.expose(), RFC_SECRET);
        assert!(TotpSecret::from_base32("GEZD!").is_none());
        assert!(TotpSecret::from_base32("GEZDGNBV").is_none());
        let generated = TotpSecret::generate(&SeededEntropy::new(1));
        assert_eq!(generated.expose().len(), 20);
        assert_eq!(format!("{generated:?}"), "TotpSecret(***)");
    }
}
