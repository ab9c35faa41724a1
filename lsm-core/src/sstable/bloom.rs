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
    // A filter of 2^32 bits or more holds every 32-bit `a` as it is.
    let modulo = u32::try_from(nbits).ok().map(FastMod::new);
    (0..k).map(move |_| {
        let bit = modulo.as_ref().map_or(a, |m| m.rem(a)) as usize;
        a = a.wrapping_add(delta);
        bit
    })
}

/// `a mod d` for every 32-bit `a` and `d > 0` by two multiplications instead of a
/// division per probe (Lemire, Kaser, Kurz: "Faster Remainder by Direct Computation",
/// 2019); exact for all such `a` and `d`.
#[derive(Debug, Clone, Copy)]
struct FastMod {
    m: u64,
    d: u32,
}

impl FastMod {
    fn new(d: u32) -> FastMod {
        debug_assert!(d > 0);
        FastMod {
            m: (u64::MAX / u64::from(d.max(1))).wrapping_add(1),
            d,
        }
    }

    #[inline]
    fn rem(&self, a: u32) -> u32 {
        let low = self.m.wrapping_mul(u64::from(a));
        ((u128::from(low) * u128::from(self.d)) >> 64) as u32
    }
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

    /// The multiplication remainder equals `%` (the format's definition) everywhere it
    /// is used: edge divisors and dividends, and random pairs.
    #[test]
    fn fast_modulo_is_exact() {
        let edges = [
            0u32,
            1,
            2,
            7,
            8,
            63,
            64,
            65,
            1 << 31,
            u32::MAX - 1,
            u32::MAX,
        ];
        for &d in edges.iter().filter(|&&d| d > 0) {
            let m = FastMod::new(d);
            for &a in &edges {
                assert_eq!(m.rem(a), a % d, "{a} mod {d}");
            }
        }
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let (a, d) = (x as u32, ((x >> 32) as u32 >> (x % 32)).max(1));
            assert_eq!(FastMod::new(d).rem(a), a % d, "{a} mod {d}");
        }
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
