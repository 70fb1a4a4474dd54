//! 128-bit fingerprints of values, kept instead of the strings themselves where a run must
//! remember millions of them (`reconcile`'s per-hour ids, `collect`'s memories of objects and
//! audit ids).

use std::hash::{DefaultHasher, Hasher};

/// The two seeds of a fingerprint's halves.
const SEEDS: [u64; 2] = [0x6b73_2d61_7564_6974, 0x7265_636f_6e63_696c];

/// A fingerprint of `parts`, each length-prefixed so that no two part lists share their bytes:
/// two std hashers (SipHash) seeded differently, one 64-bit half each. With a million
/// fingerprints the chance that two different values share one is about 2^-88. Only compared
/// within one run of one binary, so the hasher need not be stable across Rust releases.
pub fn key_of(parts: &[&[u8]]) -> u128 {
    let half = |seed: u64| {
        let mut hasher = DefaultHasher::new();
        hasher.write_u64(seed);
        for part in parts {
            hasher.write_usize(part.len());
            hasher.write(part);
        }
        hasher.finish()
    };
    (u128::from(half(SEEDS[0])) << 64) | u128::from(half(SEEDS[1]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_tell_values_apart() {
        assert_eq!(key_of(&[b"a", b"b"]), key_of(&[b"a", b"b"]));
        assert_ne!(key_of(&[b"a", b"b"]), key_of(&[b"ab", b""]));
        assert_ne!(key_of(&[b"a", b"b"]), key_of(&[b"b", b"a"]));
    }
}
