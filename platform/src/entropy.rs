//! The injected source of randomness, so ids and tokens are reproducible in tests.

use std::fmt;
use std::sync::{Mutex, PoisonError};

use rand::rngs::{OsRng, StdRng};
use rand::{RngCore, SeedableRng, TryRngCore};

/// A source of random bytes.
pub trait Entropy: Send + Sync + fmt::Debug {
    /// Fills `buf` with random bytes.
    fn fill(&self, buf: &mut [u8]);
}

/// The operating system's cryptographically secure generator.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemEntropy;

impl Entropy for SystemEntropy {
    fn fill(&self, buf: &mut [u8]) {
        // The OS generator failing means the machine cannot make secrets at all; carrying on
        // with predictable bytes would be worse than stopping.
        #[allow(clippy::expect_used, reason = "no safe way to continue without an RNG")]
        OsRng
            .try_fill_bytes(buf)
            .expect("the operating system's random source failed");
    }
}

/// A deterministic generator for tests. Never use it for anything secret.
#[derive(Debug)]
pub struct SeededEntropy {
    rng: Mutex<StdRng>,
}

impl SeededEntropy {
    /// A generator that yields the same bytes for the same seed.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
        }
    }
}

impl Entropy for SeededEntropy {
    fn fill(&self, buf: &mut [u8]) {
        self.rng
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .fill_bytes(buf);
    }
}
