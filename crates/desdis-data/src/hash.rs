//! A small stable 64-bit hash (FNV-1a) for cache keys and fingerprints.
//!
//! `std`'s default hasher may change between Rust releases, which would silently invalidate or,
//! worse, alias cache files; FNV-1a is fixed by definition.

/// Incremental FNV-1a (64-bit) hasher.
#[derive(Debug, Clone, Copy)]
pub struct StableHasher(u64);

impl Default for StableHasher {
    fn default() -> Self {
        StableHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl StableHasher {
    /// A fresh hasher.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes.
    pub fn bytes(&mut self, data: &[u8]) -> &mut Self {
        for &b in data {
            self.0 ^= b as u64;
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self
    }

    /// Feeds a u64 (little-endian), so that field boundaries cannot alias.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }

    /// Feeds a string with its length prefix.
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.u64(s.len() as u64).bytes(s.as_bytes())
    }

    /// The hash so far.
    pub fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vector_and_sensitivity() {
        // FNV-1a 64 of "a" is a published test vector.
        assert_eq!(StableHasher::new().bytes(b"a").finish(), 0xaf63_dc4c_8601_ec8c);
        assert_ne!(
            StableHasher::new().str("ab").str("c").finish(),
            StableHasher::new().str("a").str("bc").finish()
        );
    }
}
