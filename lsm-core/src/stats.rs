//! Counters the engine keeps for operators, and the [`Stats`] snapshot returned by
//! [`crate::Db::stats`].

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters, updated with relaxed atomics on the hot paths.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) flushes: AtomicU64,
    pub(crate) flush_bytes_written: AtomicU64,
    pub(crate) compactions: AtomicU64,
    pub(crate) trivial_moves: AtomicU64,
    pub(crate) compaction_bytes_read: AtomicU64,
    pub(crate) compaction_bytes_written: AtomicU64,
    pub(crate) bloom_checks: AtomicU64,
    pub(crate) bloom_negatives: AtomicU64,
    pub(crate) bloom_false_positives: AtomicU64,
    pub(crate) table_probes: AtomicU64,
    pub(crate) write_stalls: AtomicU64,
    pub(crate) write_slowdowns: AtomicU64,
    pub(crate) write_stall_micros: AtomicU64,
    pub(crate) wal_bytes_written: AtomicU64,
    pub(crate) wal_syncs: AtomicU64,
    pub(crate) commit_groups: AtomicU64,
    pub(crate) user_bytes_written: AtomicU64,
}

pub(crate) fn bump(c: &AtomicU64, by: u64) {
    c.fetch_add(by, Ordering::Relaxed);
}

pub(crate) fn read(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// Size of one level.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LevelStats {
    /// Number of tables.
    pub files: u64,
    /// Total bytes of those tables.
    pub bytes: u64,
}

/// A point-in-time copy of the engine's counters. Counters are cumulative since open.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Approximate bytes in the active memtable.
    pub memtable_bytes: u64,
    /// Sealed memtables waiting to be flushed.
    pub sealed_memtables: u64,
    /// Approximate bytes in sealed memtables.
    pub sealed_memtable_bytes: u64,
    /// Bytes of the point indexes (hash tables for lookups) of the active and sealed
    /// memtables, besides their entries' bytes.
    pub memtable_index_bytes: u64,
    /// Entries of the active memtable not yet linked into its skip list's order (writes
    /// leave that to the first scan; the flush thread links them in the background from
    /// 8192 on).
    pub memtable_unlinked_entries: u64,
    /// Entries (values and tombstones, all versions) in live tables.
    pub table_entries: u64,
    /// Tombstones in live tables.
    pub table_tombstones: u64,
    /// Tables and bytes per level, L0 first.
    pub levels: Vec<LevelStats>,
    /// Memtables written to L0.
    pub flushes: u64,
    /// Bytes of tables written by flushes.
    pub flush_bytes_written: u64,
    /// Compactions that rewrote data.
    pub compactions: u64,
    /// Compactions that moved a table down a level without rewriting it.
    pub trivial_moves: u64,
    /// Bytes of tables read by compactions.
    pub compaction_bytes_read: u64,
    /// Bytes of tables written by compactions.
    pub compaction_bytes_written: u64,
    /// Bloom filter consultations by point reads.
    pub bloom_checks: u64,
    /// Consultations that excluded the table (no block read).
    pub bloom_negatives: u64,
    /// Consultations that said "maybe" for a key the table did not hold.
    pub bloom_false_positives: u64,
    /// Point reads that searched a table's index and a data block.
    pub table_probes: u64,
    /// Times a writer waited because flushing or L0 compaction fell behind.
    pub write_stalls: u64,
    /// Times a writer was delayed 1 ms because L0 is filling up.
    pub write_slowdowns: u64,
    /// Total time writers spent stalled or delayed, in microseconds.
    pub write_stall_micros: u64,
    /// Bytes appended to the WAL.
    pub wal_bytes_written: u64,
    /// WAL fsyncs (sync durability: one per commit group).
    pub wal_syncs: u64,
    /// Commit groups (WAL writes); fewer than writes when group commit batches them.
    pub commit_groups: u64,
    /// Bytes of keys and values accepted from users.
    pub user_bytes_written: u64,
    /// Highest sequence number assigned.
    pub last_sequence: u64,
}
