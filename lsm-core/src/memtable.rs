//! The memtable: an arena-backed skip list ([`SkipList`]) of internal keys (user key
//! ascending, sequence descending) to values, and a key filter in front of it.
//!
//! Invariants: entries are only inserted, never changed or removed; one writer (the
//! commit-group leader, or recovery) inserts at a time, readers run concurrently without
//! locks. A memtable is tied to the WAL segment that holds its writes; once sealed it
//! receives no more inserts.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use crate::skiplist::SkipList;
use crate::sstable::bloom::bloom_hash;
use crate::types::{seek_trailer, trailer, trailer_kind, Kind, SeqNo};

/// The smallest entry the key filter is sized for, in bytes: a memtable of
/// `capacity_bytes` gets filter bits for `capacity_bytes / FILTER_ENTRY_BYTES` entries.
const FILTER_ENTRY_BYTES: usize = 96;

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
    /// A filter for a memtable of `capacity_bytes`. More entries than it is sized for
    /// only raise the false-positive rate.
    fn new(capacity_bytes: usize) -> Self {
        let entries = (capacity_bytes / FILTER_ENTRY_BYTES).max(64);
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

/// Memtables holding more node bytes than this are freed on a thread of their own.
const RECLAIM_IN_BACKGROUND_BYTES: usize = 1 << 20;

/// Arena chunk size for a memtable of `capacity_bytes`: a sixteenth of it, 64 KiB to
/// 4 MiB (small memtables in tests waste little, large ones allocate rarely).
fn chunk_bytes(capacity_bytes: usize) -> usize {
    (capacity_bytes / 16).clamp(64 << 10, 4 << 20)
}

/// What a lookup found for a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// The newest visible version is a value.
    Value(Bytes),
    /// The newest visible version is a tombstone.
    Deleted,
}

/// One memtable.
pub(crate) struct Memtable {
    list: SkipList,
    filter: KeyFilter,
    wal_number: u64,
}

impl std::fmt::Debug for Memtable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memtable")
            .field("entries", &self.list.len())
            .field("approx_bytes", &self.approx_bytes())
            .field("wal_number", &self.wal_number)
            .finish()
    }
}

/// The last reference to a memtable can drop anywhere: in a reader whose iterator pinned
/// it while it was flushed, for instance. Unmapping a full memtable's arena takes
/// milliseconds, so a large one is handed to a short-lived thread instead of stalling
/// that reader (if the thread cannot be started, it is freed here).
impl Drop for Memtable {
    fn drop(&mut self) {
        if self.list.node_bytes() <= RECLAIM_IN_BACKGROUND_BYTES {
            return;
        }
        let list = std::mem::replace(&mut self.list, SkipList::new(0));
        let _ = std::thread::Builder::new()
            .name("lsm-reclaim".into())
            .spawn(move || drop(list));
    }
}

impl Memtable {
    /// A memtable for the writes of WAL segment `wal_number`, with a key filter and
    /// arena chunks sized for `capacity_bytes` (`Options::memtable_size_bytes`).
    pub(crate) fn new(wal_number: u64, capacity_bytes: usize) -> Self {
        Memtable {
            list: SkipList::new(chunk_bytes(capacity_bytes)),
            filter: KeyFilter::new(capacity_bytes),
            wal_number,
        }
    }

    /// The WAL segment holding this memtable's writes.
    pub(crate) fn wal_number(&self) -> u64 {
        self.wal_number
    }

    /// Inserts a copy of `key` and `value` as version `seq`. Only one thread inserts at
    /// a time (the commit leader).
    pub(crate) fn insert(&self, key: &[u8], seq: SeqNo, kind: Kind, value: &[u8]) {
        self.filter.add(bloom_hash(key));
        self.list.insert(key, trailer(seq, kind), value);
    }

    /// Bytes the entries take in the arena (keys, values, towers, headers).
    pub(crate) fn approx_bytes(&self) -> usize {
        self.list.node_bytes()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The skip list, for iterators.
    pub(crate) fn list(&self) -> &SkipList {
        &self.list
    }

    /// The newest version of `key` with sequence `<= seq`, if any.
    /// `hash` is [`bloom_hash`] of `key`.
    pub(crate) fn get(&self, key: &[u8], hash: u64, seq: SeqNo) -> Option<Lookup> {
        if !self.filter.may_contain(hash) {
            return None;
        }
        let pos = self.list.seek(key, seek_trailer(seq))?;
        let (ikey, value) = self.list.entry(pos);
        let (k, t) = crate::types::split_internal(ikey)?;
        if k != key {
            return None;
        }
        match trailer_kind(t) {
            Some(Kind::Value) => Some(Lookup::Value(Bytes::copy_from_slice(value))),
            _ => Some(Lookup::Deleted),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_sees_newest_visible_version() {
        let m = Memtable::new(1, 1 << 20);
        m.insert(b"k", 1, Kind::Value, b"v1");
        m.insert(b"k", 3, Kind::Tombstone, b"");
        m.insert(b"k", 5, Kind::Value, b"v5");
        m.insert(b"ka", 2, Kind::Value, b"x");
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

    /// Values of every size (empty, small, over a quarter arena chunk) round-trip, and
    /// what `get` returns outlives the memtable; the arena accounts for every byte.
    #[test]
    fn values_of_every_size_round_trip_and_outlive_the_memtable() {
        let m = Memtable::new(1, 1 << 20);
        let mut want = Vec::new();
        for i in 0..200u64 {
            let len = [0, 1, 100, 5000, 16 << 10, 40_000][i as usize % 6];
            let v: Vec<u8> = (0..len).map(|j| (j as u64 ^ i) as u8).collect();
            let k = format!("key{i:06}").into_bytes();
            m.insert(&k, i + 1, Kind::Value, &v);
            want.push((k, v));
        }
        let total: usize = want.iter().map(|(k, v)| k.len() + v.len()).sum();
        assert!(m.approx_bytes() >= total, "{} < {total}", m.approx_bytes());
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
        let n = capacity / (FILTER_ENTRY_BYTES + 116);
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
        m.insert(b"here", 1, Kind::Value, b"v");
        assert!(m.get(b"here", bloom_hash(b"here"), 5).is_some());
        assert!(m.get(b"gone", bloom_hash(b"gone"), 5).is_none());
    }
}

#[cfg(test)]
mod concurrent_tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    /// While one writer adds versions of a few keys (publishing each sequence after the
    /// insert, as the commit path does), readers at a snapshot get, for every key, the
    /// same version a walk of the skip list finds.
    #[test]
    fn snapshot_gets_agree_with_a_walk_while_writing() {
        let m = Arc::new(Memtable::new(1, 1 << 20));
        let visible = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let keys: Vec<Vec<u8>> = (0..50)
            .map(|i| format!("w1-k{i:02}").into_bytes())
            .collect();
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (m, visible, done, keys) =
                    (m.clone(), visible.clone(), done.clone(), keys.clone());
                std::thread::spawn(move || {
                    let mut checked = 0u64;
                    while !done.load(Ordering::Acquire) {
                        let snap = visible.load(Ordering::Acquire);
                        for k in &keys {
                            let got = m.get(k, bloom_hash(k), snap);
                            let list = m.list();
                            let mut want = None;
                            let mut pos = list.first();
                            while let Some(p) = pos {
                                let (ikey, v) = list.entry(p);
                                let (uk, t) = crate::types::split_internal(ikey).unwrap();
                                if uk == &k[..] && crate::types::trailer_seq(t) <= snap {
                                    want = Some(match trailer_kind(t) {
                                        Some(Kind::Value) => {
                                            Lookup::Value(Bytes::copy_from_slice(v))
                                        }
                                        _ => Lookup::Deleted,
                                    });
                                    break;
                                }
                                pos = list.after(p);
                            }
                            assert_eq!(got, want, "{k:?} at {snap}");
                            checked += 1;
                        }
                    }
                    checked
                })
            })
            .collect();
        let rounds = if cfg!(miri) { 100 } else { 300_000 };
        for seq in 1..=rounds {
            let k = &keys[(seq as usize * 7) % keys.len()];
            let kind = if seq % 13 == 0 {
                Kind::Tombstone
            } else {
                Kind::Value
            };
            m.insert(k, seq, kind, format!("{seq:08}").as_bytes());
            visible.store(seq, Ordering::Release);
        }
        done.store(true, Ordering::Release);
        let checked: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
        assert!(checked > 0);
    }
}
