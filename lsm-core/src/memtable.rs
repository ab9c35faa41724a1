//! The memtable: an arena-backed skip list ([`SkipList`]) of internal keys (user key
//! ascending, sequence descending) to values, with a point index (a hash table from each
//! user key to its newest version, each version pointing to the next older one) for
//! lookups. Inserts do not search the list: it orders them when an iterator first seeks
//! (or the flush reads it); a point lookup needs that order only for a read at an old
//! snapshot of a key with a long chain of newer versions.
//!
//! Invariants: entries are only inserted, never changed or removed; one writer (the
//! commit-group leader, or recovery) inserts at a time, readers run concurrently without
//! locks (except that a seek links, under the list's linker mutex, what is pending). A
//! memtable is tied to the WAL segment that holds its writes; once sealed it
//! receives no more inserts.

use bytes::Bytes;

use crate::skiplist::{Newest, Pos, SkipList};
use crate::sstable::bloom::bloom_hash;
use crate::types::{seek_trailer, trailer, trailer_kind, trailer_seq, Kind, SeqNo};

/// The point index starts with a slot per this many bytes of memtable capacity (so at
/// most half full while the average entry takes 128 bytes or more; it doubles when
/// smaller entries fill it): 8 MiB of slots for a 64 MiB memtable.
const INDEX_BYTES_PER_SLOT: usize = 64;

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
    wal_number: u64,
    /// The memtable before this one was read in order (see [`Memtable::wants_order`]).
    scans_expected: bool,
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
    /// A memtable for the writes of WAL segment `wal_number`, with a point index and
    /// arena chunks sized for `capacity_bytes` (`Options::memtable_size_bytes`).
    pub(crate) fn new(wal_number: u64, capacity_bytes: usize) -> Self {
        Memtable {
            list: SkipList::with_point_index(
                chunk_bytes(capacity_bytes),
                capacity_bytes / INDEX_BYTES_PER_SLOT,
                bloom_hash,
            ),
            wal_number,
            scans_expected: false,
        }
    }

    /// This memtable, marked as expected to be scanned: the one it replaces was (see
    /// [`Memtable::wants_order`]).
    pub(crate) fn expecting_scans(mut self, expected: bool) -> Self {
        self.scans_expected = expected;
        self
    }

    /// Whether keeping the skip list linked as writes arrive is worth its CPU: someone
    /// read this memtable in order, or the one before it. A memtable that is only written
    /// and point-read (and so its successor) is linked once, by its flush; the first
    /// scan after such a stretch links what has accumulated.
    pub(crate) fn wants_order(&self) -> bool {
        self.scans_expected || self.list.was_sought()
    }

    /// The WAL segment holding this memtable's writes.
    pub(crate) fn wal_number(&self) -> u64 {
        self.wal_number
    }

    /// Inserts a copy of `key` and `value` as version `seq`. Only one thread inserts at
    /// a time (the commit leader).
    pub(crate) fn insert(&self, key: &[u8], seq: SeqNo, kind: Kind, value: &[u8]) {
        self.list.insert(key, trailer(seq, kind), value);
    }

    /// Bytes the entries take in the arena (keys, values, towers, headers).
    pub(crate) fn approx_bytes(&self) -> usize {
        self.list.node_bytes()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Entries inserted but not yet linked into the skip list's order.
    pub(crate) fn unlinked(&self) -> usize {
        self.list.unlinked()
    }

    /// Links every entry inserted so far into the skip list's order (which the first
    /// seek after them would otherwise do).
    pub(crate) fn link(&self) {
        self.list.link_pending();
    }

    /// The skip list, for iterators.
    pub(crate) fn list(&self) -> &SkipList {
        &self.list
    }

    /// Bytes of the point index (8 per slot, every table it has had).
    pub(crate) fn index_bytes(&self) -> usize {
        self.list.index_bytes()
    }

    /// The newest version of `key` with sequence `<= seq`, if any.
    /// `hash` is [`bloom_hash`] of `key`.
    ///
    /// The point index answers a key the memtable does not hold, and a key whose newest
    /// version is visible at `seq` (a read at the latest sequence, the common case), from
    /// one slot and one node; a read at an older snapshot walks the key's versions from
    /// the newest, and searches the list (linking what is pending) only past
    /// [`MAX_VERSION_WALK`] of them.
    pub(crate) fn get(&self, key: &[u8], hash: u64, seq: SeqNo) -> Option<Lookup> {
        let pos = match self.list.newest(key, hash) {
            Newest::Absent => return None,
            Newest::Node(newest) => match self.visible_version(newest, seq) {
                Walk::Found(pos) => pos,
                Walk::None => return None,
                Walk::TooLong => self.list.seek(key, seek_trailer(seq))?,
            },
            Newest::Unknown => self.list.seek(key, seek_trailer(seq))?,
        };
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

/// Versions of one key a lookup walks (newest first) before it searches the list.
const MAX_VERSION_WALK: usize = 32;

/// Where a walk of a key's versions ended.
enum Walk {
    /// The newest version visible at the sequence.
    Found(Pos),
    /// No version of the key is visible at the sequence.
    None,
    /// Gave up after [`MAX_VERSION_WALK`] versions.
    TooLong,
}

impl Memtable {
    /// The newest version with sequence `<= seq`, walking the chain of older versions
    /// from `newest` (the key's newest version).
    fn visible_version(&self, newest: Pos, seq: SeqNo) -> Walk {
        let mut pos = newest;
        for _ in 0..MAX_VERSION_WALK {
            let (ikey, _) = self.list.entry(pos);
            let Some((_, t)) = crate::types::split_internal(ikey) else {
                return Walk::None;
            };
            if trailer_seq(t) <= seq {
                return Walk::Found(pos);
            }
            match self.list.older(pos) {
                Some(older) => pos = older,
                None => return Walk::None,
            }
        }
        Walk::TooLong
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

    /// A key with more versions than a lookup walks: reads at every snapshot (the walk,
    /// and past its limit the search of the list, linking what is pending) answer like a
    /// model, before and after the list is linked, with versions of other keys between.
    #[test]
    fn snapshot_reads_of_a_key_with_many_versions() {
        let m = Memtable::new(1, 1 << 20);
        let versions = (MAX_VERSION_WALK * 3) as u64;
        let mut seq = 0;
        for i in 0..versions {
            seq += 1;
            if i % 7 == 3 {
                m.insert(b"hot", seq, Kind::Tombstone, b"");
            } else {
                m.insert(b"hot", seq, Kind::Value, &seq.to_le_bytes());
            }
            seq += 1;
            m.insert(format!("cold{i}").as_bytes(), seq, Kind::Value, b"c");
        }
        let want = |snapshot: SeqNo| {
            // The newest "hot" version at or below `snapshot`: hot writes took odd seqs.
            let s = if snapshot % 2 == 1 {
                snapshot
            } else {
                snapshot - 1
            };
            let s = s.min(2 * versions - 1);
            (s >= 1).then(|| {
                if (s - 1) / 2 % 7 == 3 {
                    Lookup::Deleted
                } else {
                    Lookup::Value(Bytes::copy_from_slice(&s.to_le_bytes()))
                }
            })
        };
        let h = bloom_hash(b"hot");
        for pass in 0..2 {
            for snapshot in 0..=seq + 1 {
                let want = if snapshot == 0 { None } else { want(snapshot) };
                assert_eq!(
                    m.get(b"hot", h, snapshot),
                    want,
                    "pass {pass}, snapshot {snapshot}"
                );
            }
            m.list().link_pending();
        }
    }

    /// Point reads do not make a memtable want its order kept; a seek does, and so does
    /// the expectation handed over at rotation.
    #[test]
    fn wants_order_after_a_seek_or_when_expected() {
        let m = Memtable::new(1, 1 << 20);
        m.insert(b"k", 1, Kind::Value, b"v");
        assert!(!m.wants_order());
        assert!(m.get(b"k", bloom_hash(b"k"), 9).is_some());
        assert!(!m.wants_order());
        assert!(m.list().seek(b"k", u64::MAX).is_some());
        assert!(m.wants_order());
        assert!(Memtable::new(2, 1 << 20)
            .expecting_scans(true)
            .wants_order());
        assert!(!Memtable::new(3, 1 << 20)
            .expecting_scans(false)
            .wants_order());
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

    /// Through a point index that doubles several times: every key's newest version at
    /// the latest sequence, older versions at older snapshots, and nothing for keys never
    /// written.
    #[test]
    fn point_index_grows_and_answers_like_the_list() {
        let m = Memtable::new(1, 4096);
        let first_bytes = m.index_bytes();
        let n = 3_000u64;
        for round in 0..2u64 {
            for i in 0..n {
                let k = format!("key{:06}", (i * 7919) % n);
                let seq = round * n + i + 1;
                m.insert(k.as_bytes(), seq, Kind::Value, &seq.to_le_bytes());
            }
        }
        assert!(m.index_bytes() > first_bytes * 64, "{}", m.index_bytes());
        for i in 0..n {
            let k = format!("key{:06}", (i * 7919) % n);
            let h = bloom_hash(k.as_bytes());
            let newest = n + i + 1;
            assert_eq!(
                m.get(k.as_bytes(), h, MAX_SEQ_FOR_TEST),
                Some(Lookup::Value(Bytes::copy_from_slice(&newest.to_le_bytes())))
            );
            assert_eq!(
                m.get(k.as_bytes(), h, n),
                Some(Lookup::Value(Bytes::copy_from_slice(
                    &(i + 1).to_le_bytes()
                )))
            );
            assert_eq!(m.get(k.as_bytes(), h, i), None);
            let absent = format!("nokey{i}");
            assert_eq!(
                m.get(
                    absent.as_bytes(),
                    bloom_hash(absent.as_bytes()),
                    MAX_SEQ_FOR_TEST
                ),
                None
            );
        }
    }
}

#[cfg(test)]
mod concurrent_tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
