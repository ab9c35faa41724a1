//! Versions: immutable sets of live tables by level, and the [`SuperVersion`] that readers
//! pin (memtables + version).
//!
//! Invariants: L0 tables are ordered newest first (by max sequence) and may overlap;
//! tables of L1 and deeper are ordered by key and do not overlap. A version is never
//! changed: edits produce a new one. A table's file is deleted when it has been removed
//! from the live version *and* the last version (or iterator) holding it drops it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::error::Result;
use crate::io::FileSystem;
use crate::manifest::TableMeta;
use crate::memtable::{Lookup, Memtable};
use crate::sstable::bloom::bloom_hash;
use crate::sstable::Table;
use crate::stats::{bump, Counters};
use crate::types::SeqNo;

/// A live table and its manifest record.
#[derive(Debug)]
pub(crate) struct TableHandle {
    pub(crate) meta: TableMeta,
    pub(crate) table: Arc<Table>,
    obsolete: AtomicBool,
    fs: Arc<dyn FileSystem>,
}

impl TableHandle {
    pub(crate) fn new(meta: TableMeta, table: Arc<Table>, fs: Arc<dyn FileSystem>) -> Self {
        TableHandle {
            meta,
            table,
            obsolete: AtomicBool::new(false),
            fs,
        }
    }

    /// Marks the file for deletion once the last holder lets go.
    pub(crate) fn mark_obsolete(&self) {
        self.obsolete.store(true, Ordering::Release);
    }

    pub(crate) fn path(&self) -> PathBuf {
        self.table.path().to_path_buf()
    }

    pub(crate) fn overlaps(&self, smallest: &[u8], largest: &[u8]) -> bool {
        self.meta.smallest.as_slice() <= largest && smallest <= self.meta.largest.as_slice()
    }

    pub(crate) fn contains_key(&self, key: &[u8]) -> bool {
        self.meta.smallest.as_slice() <= key && key <= self.meta.largest.as_slice()
    }
}

impl Drop for TableHandle {
    fn drop(&mut self) {
        if self.obsolete.load(Ordering::Acquire) {
            // Best effort: a file left behind is an orphan that the next open removes.
            let _ = self.fs.remove_file(self.table.path());
        }
    }
}

/// The live tables.
#[derive(Debug, Clone)]
pub(crate) struct Version {
    pub(crate) levels: Vec<Vec<Arc<TableHandle>>>,
}

/// Tables to remove from and add to a version.
#[derive(Debug, Default)]
pub(crate) struct VersionEdit {
    pub(crate) removed: Vec<(usize, u64)>,
    pub(crate) added: Vec<Arc<TableHandle>>,
}

impl Version {
    pub(crate) fn empty(num_levels: usize) -> Self {
        Version {
            levels: vec![Vec::new(); num_levels],
        }
    }

    /// A new version with `edit` applied.
    pub(crate) fn apply(&self, edit: &VersionEdit) -> Version {
        let mut levels = self.levels.clone();
        for &(level, number) in &edit.removed {
            levels[level].retain(|t| t.meta.number != number);
        }
        for t in &edit.added {
            levels[t.meta.level].push(t.clone());
        }
        levels[0].sort_by_key(|t| std::cmp::Reverse(t.meta.max_seq));
        for level in levels.iter_mut().skip(1) {
            level.sort_by(|a, b| a.meta.smallest.cmp(&b.meta.smallest));
        }
        Version { levels }
    }

    pub(crate) fn all_tables(&self) -> impl Iterator<Item = &Arc<TableHandle>> {
        self.levels.iter().flatten()
    }

    pub(crate) fn level_bytes(&self, level: usize) -> u64 {
        self.levels[level].iter().map(|t| t.meta.size_bytes).sum()
    }

    /// Tables of `level` whose key range intersects `[smallest, largest]`.
    pub(crate) fn overlapping(
        &self,
        level: usize,
        smallest: &[u8],
        largest: &[u8],
    ) -> Vec<Arc<TableHandle>> {
        self.levels[level]
            .iter()
            .filter(|t| t.overlaps(smallest, largest))
            .cloned()
            .collect()
    }

    /// Whether any table below `level` may hold `key`.
    pub(crate) fn key_may_exist_below(&self, level: usize, key: &[u8]) -> bool {
        self.levels
            .iter()
            .skip(level + 1)
            .any(|tables| find_in_level(tables, key).is_some())
    }

    /// Looks `key` (whose [`bloom_hash`] is `hash`) up in the tables, newest first.
    pub(crate) fn get(
        &self,
        key: &[u8],
        hash: u64,
        seq: SeqNo,
        counters: &Counters,
    ) -> Result<Option<Lookup>> {
        let probe = |t: &TableHandle| -> Result<Option<Lookup>> {
            if t.meta.min_seq > seq {
                return Ok(None);
            }
            bump(&counters.bloom_checks, 1);
            if !t.table.may_contain(hash) {
                bump(&counters.bloom_negatives, 1);
                return Ok(None);
            }
            bump(&counters.table_probes, 1);
            let found = t.table.get(key, seq)?;
            if found.is_none() {
                bump(&counters.bloom_false_positives, 1);
            }
            Ok(found)
        };
        for t in &self.levels[0] {
            if t.contains_key(key) {
                if let Some(found) = probe(t)? {
                    return Ok(Some(found));
                }
            }
        }
        for tables in self.levels.iter().skip(1) {
            if let Some(t) = find_in_level(tables, key) {
                if let Some(found) = probe(t)? {
                    return Ok(Some(found));
                }
            }
        }
        Ok(None)
    }
}

/// The table of a sorted, non-overlapping level whose range holds `key`.
pub(crate) fn find_in_level<'a>(
    tables: &'a [Arc<TableHandle>],
    key: &[u8],
) -> Option<&'a Arc<TableHandle>> {
    let i = tables.partition_point(|t| t.meta.largest.as_slice() < key);
    tables.get(i).filter(|t| t.meta.smallest.as_slice() <= key)
}

/// What a reader pins: the memtables and the version, consistent with each other.
#[derive(Debug)]
pub(crate) struct SuperVersion {
    pub(crate) active: Arc<Memtable>,
    /// Sealed memtables, newest first.
    pub(crate) sealed: Vec<Arc<Memtable>>,
    pub(crate) version: Arc<Version>,
}

impl SuperVersion {
    pub(crate) fn get(
        &self,
        key: &[u8],
        seq: SeqNo,
        counters: &Counters,
    ) -> Result<Option<bytes::Bytes>> {
        let hash = bloom_hash(key);
        let found = std::iter::once(&self.active)
            .chain(self.sealed.iter())
            .find_map(|m| m.get(key, hash, seq));
        let found = match found {
            Some(f) => Some(f),
            None => self.version.get(key, hash, seq, counters)?,
        };
        Ok(match found {
            Some(Lookup::Value(v)) => Some(v),
            Some(Lookup::Deleted) | None => None,
        })
    }
}
