//! The per-table bloom filter over user keys.
//!
//! Layout: the bit array, then one byte holding the number of probes `k`. Probes use
//! double hashing of the key's xxh3-64 hash. An empty filter (no bits) answers "maybe"
//! to everything. Invariant: a key added is always reported as possibly present.

use crate::coding::DecodeError;

/// Largest number of probes accepted when decoding.
const MAX_PROBES: u8 = 30;

/// The hash the filter is built from.
pub(crate) fn bloom_hash(key: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key)
}

/// Builds the filter bytes for a set of key hashes.
pub(crate) fn build(hashes: &[u64], bits_per_key: usize) -> Vec<u8> {
    if bits_per_key == 0 || hashes.is_empty() {
        return vec![0];
    }
    // k = bits_per_key * ln 2, rounded, clamped.
    let k = ((bits_per_key as f64 * 0.69).round() as u8).clamp(1, MAX_PROBES);
    let nbits = (hashes.len() * bits_per_key).max(64);
    let nbytes = nbits.div_ceil(8);
    let nbits = nbytes * 8;
    let mut out = vec![0u8; nbytes + 1];
    for &h in hashes {
        for bit in probes(h, k, nbits) {
            out[bit / 8] |= 1 << (bit % 8);
        }
    }
    out[nbytes] = k;
    out
}

fn probes(h: u64, k: u8, nbits: usize) -> impl Iterator<Item = usize> {
    let mut a = h as u32;
    let delta = ((h >> 32) as u32) | 1;
    (0..k).map(move |_| {
        let bit = a as usize % nbits;
        a = a.wrapping_add(delta);
        bit
    })
}

/// A decoded filter, borrowing the table bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bloom<'a> {
    bits: &'a [u8],
    k: u8,
}

impl<'a> Bloom<'a> {
    pub(crate) fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let Some((&k, bits)) = bytes.split_last() else {
            return Err(DecodeError::new(0, "empty bloom filter block"));
        };
        if k > MAX_PROBES || (k == 0) != bits.is_empty() {
            return Err(DecodeError::new(
                bytes.len() - 1,
                format!("bad bloom probe count {k}"),
            ));
        }
        Ok(Bloom { bits, k })
    }

    /// False only if the key was certainly not added.
    pub(crate) fn may_contain(&self, hash: u64) -> bool {
        if self.bits.is_empty() {
            return true;
        }
        let nbits = self.bits.len() * 8;
        probes(hash, self.k, nbits).all(|bit| self.bits[bit / 8] & (1 << (bit % 8)) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_false_negatives_and_few_false_positives() {
        let hashes: Vec<u64> = (0..10_000u32)
            .map(|i| bloom_hash(&i.to_le_bytes()))
            .collect();
        let bytes = build(&hashes, 10);
        let bloom = Bloom::decode(&bytes).unwrap();
        assert!(hashes.iter().all(|&h| bloom.may_contain(h)));
        let fp = (10_000..110_000u32)
            .filter(|i| bloom.may_contain(bloom_hash(&i.to_le_bytes())))
            .count();
        assert!(fp < 2_000, "false positive rate {}%", fp as f64 / 1000.0);
    }

    #[test]
    fn disabled_filter_says_maybe_and_bad_probe_counts_are_rejected() {
        let bytes = build(&[1, 2, 3], 0);
        assert!(Bloom::decode(&bytes).unwrap().may_contain(99));
        let mut bytes = build(&[1, 2, 3], 10);
        *bytes.last_mut().unwrap() = 200;
        assert!(Bloom::decode(&bytes).is_err());
        assert!(Bloom::decode(&[]).is_err());
    }
}
