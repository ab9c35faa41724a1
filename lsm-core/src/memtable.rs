//! The memtable: a concurrent skip list of internal keys (user key ascending, sequence
//! descending) to values.
//!
//! Invariants: entries are only inserted, never changed or removed; one writer (the
//! commit-group leader) inserts at a time, readers run concurrently without locks. A
//! memtable is tied to the WAL segment that holds its writes; once sealed it receives no
//! more inserts.
//!
//! Values are copied into chunks the memtable owns ([`ValueArena`]), so an entry costs
//! one allocation (its skip-list node), not three (value, shared header, node), and
//! dropping a flushed memtable frees a few chunks rather than a value per entry.

use std::cmp::Reverse;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use bytes::{Bytes, BytesMut};
use crossbeam_epoch as epoch;
use crossbeam_skiplist::SkipList;
use parking_lot::Mutex;

use crate::sstable::bloom::bloom_hash;
use crate::types::{seek_trailer, trailer, trailer_kind, Kind, SeqNo};

/// Per-entry bookkeeping counted against the memtable budget, in bytes (skip-list node,
/// towers and `Bytes` headers, approximately).
const ENTRY_OVERHEAD_BYTES: usize = 96;

/// Filter bits per entry, for as many entries as the memtable's budget can hold.
const FILTER_BITS_PER_ENTRY: usize = 10;
/// Bits set and tested per key, all in one 512-bit line.
const FILTER_PROBES: u32 = 6;

/// A blocked bloom filter over a memtable's user keys: a lookup of a key the memtable
/// does not hold usually ends after reading one cache line, instead of a skip-list search
/// (a cache miss per level). One writer sets bits (the inserting commit leader, so a
/// plain load and store suffice); readers test them. A reader sees the bits of every
/// entry its sequence number covers: they are set before the sequence is published.
struct KeyFilter {
    words: Box<[AtomicU64]>,
    lines: u64,
}

impl KeyFilter {
    /// A filter for a memtable of `capacity_bytes` (each entry counts at least
    /// `ENTRY_OVERHEAD_BYTES` against it). More entries only raise the false-positive
    /// rate.
    fn new(capacity_bytes: usize) -> Self {
        let entries = (capacity_bytes / ENTRY_OVERHEAD_BYTES).max(64);
        let lines = (entries * FILTER_BITS_PER_ENTRY).div_ceil(512);
        KeyFilter {
            words: (0..lines * 8).map(|_| AtomicU64::new(0)).collect(),
            lines: lines as u64,
        }
    }

    /// The first word of the key's line, and its bit positions in the line.
    fn probes(&self, hash: u64) -> (usize, impl Iterator<Item = usize>) {
        let line = ((u128::from(hash) * u128::from(self.lines)) >> 64) as usize;
        let bits = hash.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let positions = (0..FILTER_PROBES).map(move |i| ((bits >> (i * 9)) & 511) as usize);
        (line * 8, positions)
    }

    fn add(&self, hash: u64) {
        let (base, positions) = self.probes(hash);
        for p in positions {
            let word = &self.words[base + p / 64];
            let bit = 1u64 << (p % 64);
            let w = word.load(Ordering::Relaxed);
            if w & bit == 0 {
                word.store(w | bit, Ordering::Relaxed);
            }
        }
    }

    fn may_contain(&self, hash: u64) -> bool {
        let (base, mut positions) = self.probes(hash);
        positions.all(|p| self.words[base + p / 64].load(Ordering::Relaxed) & (1 << (p % 64)) != 0)
    }
}

/// Memtables with more entries than this are freed on a thread of their own.
const RECLAIM_IN_BACKGROUND_ENTRIES: usize = 10_000;

/// Size of a value chunk.
const VALUE_CHUNK_BYTES: usize = 256 << 10;
/// Values longer than this get an allocation of their own instead of chunk space.
const MAX_CHUNKED_VALUE_BYTES: usize = 16 << 10;

/// Value storage of one memtable: small values are copied into shared chunks and handed
/// out as `Bytes` slices of them (a reference count on the chunk, no allocation). A value
/// read from the memtable keeps its chunk alive as long as the caller holds it.
#[derive(Debug, Default)]
struct ValueArena {
    chunk: BytesMut,
}

impl ValueArena {
    fn copy(&mut self, value: &[u8]) -> Bytes {
        if value.is_empty() {
            return Bytes::new();
        }
        if value.len() > MAX_CHUNKED_VALUE_BYTES {
            return Bytes::copy_from_slice(value);
        }
        if self.chunk.capacity() - self.chunk.len() < value.len() {
            self.chunk = BytesMut::with_capacity(VALUE_CHUNK_BYTES);
        }
        self.chunk.extend_from_slice(value);
        self.chunk.split().freeze()
    }
}

/// User keys up to this many bytes live inside the skip-list node itself.
pub(crate) const INLINE_KEY_BYTES: usize = 30;

/// A user key as the memtable stores it: short keys inline, so that comparing against
/// a node during a search touches only that node's memory (one cache miss per visited
/// node instead of two), and building a lookup probe allocates nothing.
#[derive(Clone)]
pub(crate) enum UserKey {
    Inline {
        len: u8,
        bytes: [u8; INLINE_KEY_BYTES],
    },
    Heap(Bytes),
}

impl UserKey {
    pub(crate) fn from_slice(key: &[u8]) -> Self {
        if key.len() <= INLINE_KEY_BYTES {
            let mut bytes = [0u8; INLINE_KEY_BYTES];
            bytes[..key.len()].copy_from_slice(key);
            UserKey::Inline {
                len: key.len() as u8,
                bytes,
            }
        } else {
            UserKey::Heap(Bytes::copy_from_slice(key))
        }
    }

    pub(crate) fn from_bytes(key: Bytes) -> Self {
        if key.len() <= INLINE_KEY_BYTES {
            UserKey::from_slice(&key)
        } else {
            UserKey::Heap(key)
        }
    }
}

impl std::ops::Deref for UserKey {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            UserKey::Inline { len, bytes } => &bytes[..usize::from(*len)],
            UserKey::Heap(b) => b,
        }
    }
}

impl PartialEq for UserKey {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for UserKey {}

impl PartialOrd for UserKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl UserKey {
    /// The first 8 bytes, zero-padded, as a big-endian number. Where two keys' prefixes
    /// differ, they order as their keys do: a zero pad can only differ from a real byte
    /// after the shorter key ended, i.e. when the shorter key is a prefix of the longer.
    #[inline]
    fn prefix(&self) -> u64 {
        match self {
            UserKey::Inline { bytes, .. } => {
                let mut p = [0u8; 8];
                p.copy_from_slice(&bytes[..8]);
                u64::from_be_bytes(p)
            }
            UserKey::Heap(b) => {
                let mut p = [0u8; 8];
                let n = b.len().min(8);
                p[..n].copy_from_slice(&b[..n]);
                u64::from_be_bytes(p)
            }
        }
    }
}

impl Ord for UserKey {
    /// Byte order, decided by one integer comparison when the first 8 bytes differ (the
    /// common case during a skip-list search) instead of a `memcmp` call.
    #[inline]
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let (a, b) = (self.prefix(), other.prefix());
        if a != b {
            return a.cmp(&b);
        }
        (**self).cmp(&**other)
    }
}

impl std::fmt::Debug for UserKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", &**self)
    }
}

/// Skip-list key: `(user key, Reverse(trailer))`, so derived ordering is internal order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct MemKey {
    pub(crate) key: UserKey,
    pub(crate) rev_trailer: Reverse<u64>,
}

impl MemKey {
    pub(crate) fn trailer(&self) -> u64 {
        self.rev_trailer.0
    }
}

/// What a lookup found for a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// The newest visible version is a value.
    Value(Bytes),
    /// The newest visible version is a tombstone.
    Deleted,
}

/// One memtable: a lock-free skip list (crossbeam's base `SkipList`, used with an
/// epoch guard per operation, so lookups and scans take no per-entry reference count as
/// `SkipMap`'s entries do).
pub(crate) struct Memtable {
    map: SkipList<MemKey, Bytes>,
    filter: KeyFilter,
    /// Taken only by the one inserting writer: never contended.
    values: Mutex<ValueArena>,
    approx_bytes: AtomicUsize,
    wal_number: u64,
}

impl std::fmt::Debug for Memtable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memtable")
            .field("entries", &self.map.len())
            .field("approx_bytes", &self.approx_bytes())
            .field("wal_number", &self.wal_number)
            .finish()
    }
}

/// The last reference to a memtable can drop anywhere: in a reader whose iterator pinned
/// it while it was flushed, for instance. Freeing a full memtable (a skip-list node per
/// entry) takes tens of milliseconds, so a large one is handed to a short-lived thread
/// instead of stalling that reader (if the thread cannot be started, it is freed here).
impl Drop for Memtable {
    fn drop(&mut self) {
        if self.map.len() <= RECLAIM_IN_BACKGROUND_ENTRIES {
            return;
        }
        let map = std::mem::replace(
            &mut self.map,
            SkipList::new(epoch::default_collector().clone()),
        );
        let _ = std::thread::Builder::new()
            .name("lsm-reclaim".into())
            .spawn(move || drop(map));
    }
}

impl Memtable {
    /// A memtable for the writes of WAL segment `wal_number`, with a key filter sized
    /// for `capacity_bytes` (`Options::memtable_size_bytes`).
    pub(crate) fn new(wal_number: u64, capacity_bytes: usize) -> Self {
        Memtable {
            map: SkipList::new(epoch::default_collector().clone()),
            filter: KeyFilter::new(capacity_bytes),
            values: Mutex::new(ValueArena::default()),
            approx_bytes: AtomicUsize::new(0),
            wal_number,
        }
    }

    /// The WAL segment holding this memtable's writes.
    pub(crate) fn wal_number(&self) -> u64 {
        self.wal_number
    }

    pub(crate) fn insert(&self, key: Bytes, seq: SeqNo, kind: Kind, value: &[u8]) {
        self.insert_key(UserKey::from_bytes(key), seq, kind, value);
    }

    /// Inserts a copy of `value` (into the memtable's own chunks).
    pub(crate) fn insert_key(&self, key: UserKey, seq: SeqNo, kind: Kind, value: &[u8]) {
        let size = key.len() + value.len() + ENTRY_OVERHEAD_BYTES;
        self.filter.add(bloom_hash(&key));
        let value = self.values.lock().copy(value);
        let guard = &epoch::pin();
        self.map
            .insert(
                MemKey {
                    key,
                    rev_trailer: Reverse(trailer(seq, kind)),
                },
                value,
                guard,
            )
            .release(guard);
        self.approx_bytes.fetch_add(size, Ordering::Relaxed);
    }

    pub(crate) fn approx_bytes(&self) -> usize {
        self.approx_bytes.load(Ordering::Relaxed)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The newest version of `key` with sequence `<= seq`, if any.
    /// `hash` is [`bloom_hash`] of `key`.
    pub(crate) fn get(&self, key: &[u8], hash: u64, seq: SeqNo) -> Option<Lookup> {
        if !self.filter.may_contain(hash) {
            return None;
        }
        let probe = MemKey {
            key: UserKey::from_slice(key),
            rev_trailer: Reverse(seek_trailer(seq)),
        };
        let guard = &epoch::pin();
        let entry = self.map.lower_bound(Bound::Included(&probe), guard)?;
        if &*entry.key().key != key {
            return None;
        }
        match trailer_kind(entry.key().trailer()) {
            Some(Kind::Value) => Some(Lookup::Value(entry.value().clone())),
            _ => Some(Lookup::Deleted),
        }
    }

    /// Copies up to `max` entries at or after `from` into `out`, in internal order.
    pub(crate) fn fill(&self, from: Bound<&MemKey>, max: usize, out: &mut Vec<(MemKey, Bytes)>) {
        let guard = &epoch::pin();
        for e in self.map.range((from, Bound::Unbounded), guard).take(max) {
            out.push((e.key().clone(), e.value().clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_and_heap_keys_order_as_bytes() {
        let keys: Vec<Vec<u8>> = vec![
            vec![],
            vec![0],
            vec![1; 30],
            vec![1; 31],
            vec![1; 29],
            vec![2],
            vec![1; 100],
        ];
        for a in &keys {
            for b in &keys {
                let (ka, kb) = (UserKey::from_slice(a), UserKey::from_slice(b));
                assert_eq!(ka.cmp(&kb), a.cmp(b), "{a:?} vs {b:?}");
                assert_eq!(&*ka, &a[..]);
            }
        }
        // Zero bytes, prefixes of each other, differences inside and past the first 8
        // bytes, inline against heap: the integer fast path must agree with byte order.
        let mut tricky: Vec<Vec<u8>> = vec![Vec::new()];
        for len in 1..=3 {
            let mut next = Vec::new();
            for k in tricky.iter().filter(|k| k.len() == len - 1) {
                for b in [0u8, 1, 255] {
                    let mut k = k.clone();
                    k.push(b);
                    next.push(k);
                }
            }
            tricky.extend(next);
        }
        for base in [vec![0u8; 7], vec![1; 8], vec![255; 8], vec![1; 40]] {
            for tail in [&[][..], &[0], &[0, 0], &[1], &[255, 0]] {
                let mut k = base.clone();
                k.extend_from_slice(tail);
                tricky.push(k);
            }
        }
        for a in &tricky {
            for b in &tricky {
                let forms = |k: &[u8]| {
                    [
                        UserKey::from_slice(k),
                        UserKey::Heap(Bytes::copy_from_slice(k)),
                    ]
                };
                for ka in forms(a) {
                    for kb in forms(b) {
                        assert_eq!(ka.cmp(&kb), a.cmp(b), "{a:?} vs {b:?}");
                    }
                }
            }
        }
        assert!(matches!(
            UserKey::from_slice(&[7; 30]),
            UserKey::Inline { .. }
        ));
        assert!(matches!(UserKey::from_slice(&[7; 31]), UserKey::Heap(_)));
    }

    #[test]
    fn get_sees_newest_visible_version() {
        let m = Memtable::new(1, 1 << 20);
        m.insert(Bytes::from_static(b"k"), 1, Kind::Value, b"v1");
        m.insert(Bytes::from_static(b"k"), 3, Kind::Tombstone, b"");
        m.insert(Bytes::from_static(b"k"), 5, Kind::Value, b"v5");
        m.insert(Bytes::from_static(b"ka"), 2, Kind::Value, b"x");
        assert_eq!(m.get(b"k", bloom_hash(b"k"), 0), None);
        assert_eq!(
            m.get(b"k", bloom_hash(b"k"), 2),
            Some(Lookup::Value(Bytes::from_static(b"v1")))
        );
        assert_eq!(m.get(b"k", bloom_hash(b"k"), 4), Some(Lookup::Deleted));
        assert_eq!(
            m.get(b"k", bloom_hash(b"k"), 9),
            Some(Lookup::Value(Bytes::from_static(b"v5")))
        );
        assert_eq!(m.get(b"j", bloom_hash(b"j"), 9), None);
        assert_eq!(m.get(b"kb", bloom_hash(b"kb"), 9), None);
    }

    /// Values of every size round-trip through the chunks (small ones share chunks, big
    /// ones are their own), across chunk boundaries, and outlive the memtable.
    #[test]
    fn values_are_copied_into_chunks_and_outlive_the_memtable() {
        let m = Memtable::new(1, 1 << 20);
        let mut want = Vec::new();
        let mut total = 0;
        let mut i = 0u64;
        while total < 3 * VALUE_CHUNK_BYTES {
            let len = [0, 1, 100, 5000, MAX_CHUNKED_VALUE_BYTES, 40_000][i as usize % 6];
            let v: Vec<u8> = (0..len).map(|j| (j as u64 ^ i) as u8).collect();
            let k = Bytes::from(format!("key{i:06}").into_bytes());
            m.insert(k.clone(), i + 1, Kind::Value, &v);
            total += len;
            want.push((k, v));
            i += 1;
        }
        let got: Vec<Bytes> = want
            .iter()
            .map(|(k, _)| match m.get(k, bloom_hash(k), MAX_SEQ_FOR_TEST) {
                Some(Lookup::Value(v)) => v,
                other => panic!("{k:?}: {other:?}"),
            })
            .collect();
        drop(m);
        for ((k, v), g) in want.iter().zip(got) {
            assert_eq!(&g[..], &v[..], "{k:?}");
        }
    }

    const MAX_SEQ_FOR_TEST: SeqNo = crate::types::MAX_SEQNO;

    /// The key filter never denies a key that was added, and at its design load (as many
    /// 100-byte entries as the budget holds) admits few that were not.
    #[test]
    fn key_filter_has_no_false_negatives_and_few_false_positives() {
        let capacity = 4 << 20;
        let f = KeyFilter::new(capacity);
        let n = capacity / (ENTRY_OVERHEAD_BYTES + 116);
        for i in 0..n {
            f.add(bloom_hash(format!("present{i}").as_bytes()));
        }
        for i in 0..n {
            assert!(f.may_contain(bloom_hash(format!("present{i}").as_bytes())));
        }
        let fp = (0..100_000)
            .filter(|i| f.may_contain(bloom_hash(format!("absent{i}").as_bytes())))
            .count();
        assert!(fp < 2_000, "{fp} false positives in 100000");
        // A memtable answers absent keys without a search, and present ones as before.
        let m = Memtable::new(1, capacity);
        m.insert(Bytes::from_static(b"here"), 1, Kind::Value, b"v");
        assert!(m.get(b"here", bloom_hash(b"here"), 5).is_some());
        assert!(m.get(b"gone", bloom_hash(b"gone"), 5).is_none());
    }
}
