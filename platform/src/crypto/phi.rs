//! PHI as a type: printing it never shows it.

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

/// Protected health information in memory. `Debug` and `Display` print `***`, so a PHI
/// value that reaches a log line or an error message by mistake says nothing. Wiped on
/// drop.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Phi(String);

impl Phi {
    /// Wraps PHI.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The PHI itself, for the code that must show or store it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The PHI as bytes, for sealing.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Phi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Phi(***)")
    }
}

impl fmt::Display for Phi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phi_never_prints() {
        let phi = Phi::new("Jane Q. Patient, DOB 1970-01-01");

        assert_eq!(format!("{phi}"), "***");
        assert_eq!(format!("{phi:?}"), "Phi(***)");
        assert_eq!(phi.expose(), "Jane Q. Patient, DOB 1970-01-01");
    }
}
