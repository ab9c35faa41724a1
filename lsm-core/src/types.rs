//! Internal keys: a user key plus a trailer of `(sequence << 8) | kind`.
//!
//! Invariants: internal keys sort by user key ascending, then by trailer descending, so
//! the newest version of a key comes first. Sequence numbers are assigned by the write
//! path, strictly increasing, starting at 1; a snapshot is simply a sequence number.

use std::cmp::Ordering;

/// Sequence number of a write; every put or delete gets its own.
pub type SeqNo = u64;

/// Largest sequence number the engine will assign (56 bits, the trailer keeps 8 for kind).
pub(crate) const MAX_SEQNO: SeqNo = (1 << 56) - 1;

/// Longest key accepted, in bytes (64 KiB).
pub const MAX_KEY_BYTES: usize = 64 * 1024;
/// Largest value accepted, in bytes (256 MiB).
pub const MAX_VALUE_BYTES: usize = 256 * 1024 * 1024;

/// Whether an entry holds a value or marks a deletion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub(crate) enum Kind {
    Tombstone = 0,
    Value = 1,
}

impl Kind {
    pub(crate) fn from_u8(b: u8) -> Option<Kind> {
        match b {
            0 => Some(Kind::Tombstone),
            1 => Some(Kind::Value),
            _ => None,
        }
    }
}

/// Packs a sequence number and kind into the 8-byte trailer.
pub(crate) fn trailer(seq: SeqNo, kind: Kind) -> u64 {
    debug_assert!(seq <= MAX_SEQNO);
    (seq << 8) | kind as u64
}

/// The largest trailer with sequence `seq`: seeking to `(key, seek_trailer(s))` lands on
/// the newest version of `key` visible at snapshot `s`.
pub(crate) fn seek_trailer(seq: SeqNo) -> u64 {
    (seq << 8) | 0xff
}

pub(crate) fn trailer_seq(t: u64) -> SeqNo {
    t >> 8
}

pub(crate) fn trailer_kind(t: u64) -> Option<Kind> {
    Kind::from_u8((t & 0xff) as u8)
}

/// Compares two `(user key, trailer)` pairs in internal-key order.
pub(crate) fn cmp_internal(a_key: &[u8], a_trailer: u64, b_key: &[u8], b_trailer: u64) -> Ordering {
    cmp_user(a_key, b_key).then(b_trailer.cmp(&a_trailer))
}

/// Byte order of user keys, decided by one integer comparison of the first 8 bytes when
/// both have 8 and those differ (the common case in merges and block seeks), else by
/// `memcmp`.
#[inline]
pub(crate) fn cmp_user(a: &[u8], b: &[u8]) -> Ordering {
    if let (Some(pa), Some(pb)) = (a.get(..8), b.get(..8)) {
        let (x, y) = (
            crate::coding::u64_be_at(pa, 0),
            crate::coding::u64_be_at(pb, 0),
        );
        if x != y {
            return x.cmp(&y);
        }
    }
    a.cmp(b)
}

/// Internal keys as stored in SSTable blocks: `user_key ++ trailer (u64 LE)`.
pub(crate) fn split_internal(ikey: &[u8]) -> Option<(&[u8], u64)> {
    if ikey.len() < 8 {
        return None;
    }
    let (k, t) = ikey.split_at(ikey.len() - 8);
    Some((k, crate::coding::u64_at(t, 0)))
}

/// Compares two encoded internal keys. Keys shorter than 8 bytes (never written by the
/// engine) sort by raw bytes so corrupt input cannot cause a panic.
pub(crate) fn cmp_encoded(a: &[u8], b: &[u8]) -> Ordering {
    match (split_internal(a), split_internal(b)) {
        (Some((ak, at)), Some((bk, bt))) => cmp_internal(ak, at, bk, bt),
        _ => a.cmp(b),
    }
}

pub(crate) fn encode_internal(buf: &mut Vec<u8>, key: &[u8], trailer: u64) {
    buf.extend_from_slice(key);
    buf.extend_from_slice(&trailer.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The integer fast path orders exactly as byte comparison does.
    #[test]
    fn user_key_order_is_byte_order() {
        let keys: Vec<Vec<u8>> = vec![
            vec![],
            vec![0],
            vec![0; 8],
            vec![0; 9],
            b"abcdefgh".to_vec(),
            b"abcdefgh\x00".to_vec(),
            b"abcdefgi".to_vec(),
            b"abcdefg".to_vec(),
            vec![0xff; 8],
            vec![0xff; 12],
            vec![1, 2, 3, 4, 5, 6, 7, 8, 0xff],
            vec![1, 2, 3, 4, 5, 6, 7, 9],
        ];
        for a in &keys {
            for b in &keys {
                assert_eq!(cmp_user(a, b), a.cmp(b), "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn newest_version_sorts_first() {
        let mut a = Vec::new();
        encode_internal(&mut a, b"k", trailer(5, Kind::Value));
        let mut b = Vec::new();
        encode_internal(&mut b, b"k", trailer(9, Kind::Tombstone));
        assert_eq!(cmp_encoded(&b, &a), Ordering::Less);
        let mut c = Vec::new();
        encode_internal(&mut c, b"ka", trailer(1, Kind::Value));
        assert_eq!(cmp_encoded(&a, &c), Ordering::Less);
        // the seek key for snapshot 5 sorts before the version with seq 5
        let mut s = Vec::new();
        encode_internal(&mut s, b"k", seek_trailer(5));
        assert_eq!(cmp_encoded(&s, &a), Ordering::Less);
        assert_eq!(cmp_encoded(&b, &s), Ordering::Less);
    }
}
