//! Engine configuration: one plain struct with documented defaults and units, validated
//! by [`Options::validate`] when the database opens.

use crate::error::{Error, Result};

/// When a write counts as durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// The WAL record reached the operating system (one `write(2)` per commit group)
    /// before the write returns: survives a process crash (`kill -9`), not a power loss.
    #[default]
    Process,
    /// The WAL is also `fdatasync`ed before the write returns. Concurrent writers share one
    /// fsync (group commit). Survives power loss.
    Sync,
}

/// Options for [`crate::Db::open`]. Construct with `Options::default()` and adjust fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Durability of each acknowledged write. Default: [`Durability::Process`].
    pub durability: Durability,
    /// Size at which the active memtable is sealed and queued for flushing, in bytes.
    /// Default 64 MiB. Minimum 4 KiB.
    pub memtable_size_bytes: usize,
    /// Sealed memtables that may wait for flushing before writers stall. Default 2.
    /// Memory held by memtables is at most `(1 + max_sealed_memtables) *
    /// memtable_size_bytes` plus one write batch.
    pub max_sealed_memtables: usize,
    /// Target size of an SSTable data block before it is closed, in bytes. Default 4096.
    pub block_size_bytes: usize,
    /// Entries between restart points inside a data block. Default 16.
    pub block_restart_interval: usize,
    /// Bloom filter bits per key; 0 disables filters. Default 10 (about 1% false positives).
    pub bloom_bits_per_key: usize,
    /// Number of L0 files that triggers an L0 → L1 compaction. Default 4.
    pub l0_compaction_trigger: usize,
    /// Number of L0 files at which each write is delayed by 1 ms (a counted stall). Default 12.
    pub l0_slowdown_trigger: usize,
    /// Number of L0 files at which writers wait for compaction. Default 20.
    pub l0_stop_trigger: usize,
    /// Target total size of level 1, in bytes. Default 256 MiB.
    pub l1_target_bytes: u64,
    /// Each level below L1 may hold this many times the bytes of the level above. Default 10.
    pub level_size_ratio: u64,
    /// Number of levels, L0 included. Default 7.
    pub num_levels: usize,
    /// Compaction output files are cut at about this size, in bytes. Default 64 MiB.
    pub target_file_size_bytes: u64,
    /// Run flush and compaction on background threads. Default true. When false, sealed
    /// memtables are flushed inline by the writer that seals them and compaction runs
    /// only through [`crate::Db::compact`]; meant for tests and tools.
    pub background_threads: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            durability: Durability::Process,
            memtable_size_bytes: 64 << 20,
            max_sealed_memtables: 2,
            block_size_bytes: 4096,
            block_restart_interval: 16,
            bloom_bits_per_key: 10,
            l0_compaction_trigger: 4,
            l0_slowdown_trigger: 12,
            l0_stop_trigger: 20,
            l1_target_bytes: 256 << 20,
            level_size_ratio: 10,
            num_levels: 7,
            target_file_size_bytes: 64 << 20,
            background_threads: true,
        }
    }
}

impl Options {
    /// Checks every field against its documented range.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the first field out of range.
    pub fn validate(&self) -> Result<()> {
        let bad =
            |field: &str, why: &str| Err(Error::InvalidArgument(format!("Options::{field} {why}")));
        if self.memtable_size_bytes < 4096 {
            return bad("memtable_size_bytes", "must be at least 4096");
        }
        if self.max_sealed_memtables == 0 || self.max_sealed_memtables > 64 {
            return bad("max_sealed_memtables", "must be in 1..=64");
        }
        if !(256..=(1 << 20)).contains(&self.block_size_bytes) {
            return bad("block_size_bytes", "must be in 256..=1048576");
        }
        if !(1..=1024).contains(&self.block_restart_interval) {
            return bad("block_restart_interval", "must be in 1..=1024");
        }
        if self.bloom_bits_per_key > 64 {
            return bad("bloom_bits_per_key", "must be at most 64");
        }
        if self.l0_compaction_trigger < 1 {
            return bad("l0_compaction_trigger", "must be at least 1");
        }
        if self.l0_slowdown_trigger < self.l0_compaction_trigger {
            return bad(
                "l0_slowdown_trigger",
                "must be at least l0_compaction_trigger",
            );
        }
        if self.l0_stop_trigger < self.l0_slowdown_trigger {
            return bad("l0_stop_trigger", "must be at least l0_slowdown_trigger");
        }
        if self.l1_target_bytes < 4096 {
            return bad("l1_target_bytes", "must be at least 4096");
        }
        if !(2..=100).contains(&self.level_size_ratio) {
            return bad("level_size_ratio", "must be in 2..=100");
        }
        if !(2..=12).contains(&self.num_levels) {
            return bad("num_levels", "must be in 2..=12");
        }
        if self.target_file_size_bytes < 4096 {
            return bad("target_file_size_bytes", "must be at least 4096");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_fields_are_named() {
        Options::default().validate().unwrap();
        let o = Options {
            l0_stop_trigger: 1,
            ..Options::default()
        };
        let e = o.validate().unwrap_err().to_string();
        assert!(e.contains("l0_stop_trigger"), "{e}");
    }
}
