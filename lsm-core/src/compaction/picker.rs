//! Choosing what to compact. Every function here is pure: the same version, options and
//! compaction pointers give the same task, so tests (and a simulator) can drive it.
//!
//! Policy: L0 is scored by file count against `l0_compaction_trigger`; level `n >= 1` by
//! its bytes against `l1_target_bytes * level_size_ratio^(n-1)`. The highest score `>= 1`
//! is compacted: all of L0 (with the overlapping L1 tables) into L1, or one table of
//! level `n` (round-robin by key through a per-level pointer) with the overlapping tables
//! of level `n+1`. A single input with nothing to merge under it is moved, not rewritten.

use std::sync::Arc;

use crate::options::Options;
use crate::version::{TableHandle, Version};

/// A compaction to run.
#[derive(Debug, Clone)]
pub(crate) struct CompactionTask {
    /// Every input table (each knows its level).
    pub(crate) inputs: Vec<Arc<TableHandle>>,
    /// Level the outputs go to.
    pub(crate) output_level: usize,
    /// Move the single input to `output_level` without rewriting it.
    pub(crate) trivial_move: bool,
    /// Level the task was scored for (for the round-robin pointer).
    pub(crate) source_level: usize,
}

/// Target size of `level` (>= 1), in bytes.
pub(crate) fn level_target_bytes(opts: &Options, level: usize) -> u64 {
    let mut t = opts.l1_target_bytes;
    for _ in 1..level {
        t = t.saturating_mul(opts.level_size_ratio);
    }
    t
}

/// Compaction scores per level (the last level is never a source).
pub(crate) fn scores(version: &Version, opts: &Options) -> Vec<f64> {
    let last = version.levels.len() - 1;
    (0..last)
        .map(|level| {
            if level == 0 {
                version.levels[0].len() as f64 / opts.l0_compaction_trigger as f64
            } else {
                version.level_bytes(level) as f64 / level_target_bytes(opts, level) as f64
            }
        })
        .collect()
}

/// The next background compaction, if any level is over its target.
/// `pointers[n]` is the largest key of the last table compacted out of level `n`.
pub(crate) fn pick(
    version: &Version,
    opts: &Options,
    pointers: &[Option<Vec<u8>>],
) -> Option<CompactionTask> {
    let s = scores(version, opts);
    let (level, &score) = s
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(&a.0)))?;
    if score < 1.0 {
        return None;
    }
    let sources: Vec<Arc<TableHandle>> = if level == 0 {
        version.levels[0].clone()
    } else {
        let tables = &version.levels[level];
        let after = pointers.get(level).cloned().flatten();
        let chosen = after
            .and_then(|p| tables.iter().find(|t| t.meta.smallest > p))
            .or_else(|| tables.first())?;
        vec![chosen.clone()]
    };
    Some(task_for(version, sources, level, level + 1))
}

fn task_for(
    version: &Version,
    sources: Vec<Arc<TableHandle>>,
    source_level: usize,
    output_level: usize,
) -> CompactionTask {
    let smallest = sources
        .iter()
        .map(|t| t.meta.smallest.as_slice())
        .min()
        .unwrap_or_default();
    let largest = sources
        .iter()
        .map(|t| t.meta.largest.as_slice())
        .max()
        .unwrap_or_default();
    let below = version.overlapping(output_level, smallest, largest);
    let trivial_move = below.is_empty() && sources.len() == 1;
    let mut inputs = sources;
    inputs.extend(below);
    CompactionTask {
        inputs,
        output_level,
        trivial_move,
        source_level,
    }
}

/// A full compaction: every table into one level (the deepest that holds data, at least
/// L1), so no tombstone or shadowed version survives.
pub(crate) fn full(version: &Version) -> Option<CompactionTask> {
    let inputs: Vec<Arc<TableHandle>> = version.all_tables().cloned().collect();
    if inputs.is_empty() {
        return None;
    }
    let output_level = version
        .levels
        .iter()
        .rposition(|l| !l.is_empty())
        .unwrap_or(1)
        .max(1);
    Some(CompactionTask {
        inputs,
        output_level,
        trivial_move: false,
        source_level: output_level,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::TableMeta;
    use crate::sstable::Table;

    /// Version-level tests need tables with real metadata; the table contents do not
    /// matter to the picker, so every handle shares one tiny table.
    fn handle(
        level: usize,
        number: u64,
        smallest: &str,
        largest: &str,
        size: u64,
    ) -> Arc<TableHandle> {
        use crate::io::{FileSystem, StdFs};
        use crate::sstable::TableBuilder;
        thread_local!(static DIR: tempfile::TempDir = tempfile::tempdir().unwrap());
        let path = DIR.with(|d| d.path().join(format!("{number}.sst")));
        let opts = crate::sstable::builder_options_for_tests();
        let mut b = TableBuilder::create(&StdFs, &path, opts).unwrap();
        b.add(smallest.as_bytes(), 1, crate::types::Kind::Value, b"v")
            .unwrap();
        b.finish().unwrap();
        let table = Table::open(&path, bytes::Bytes::from(StdFs.read(&path).unwrap())).unwrap();
        let meta = TableMeta {
            level,
            number,
            size_bytes: size,
            entries: 1,
            min_seq: number,
            max_seq: number,
            smallest: smallest.into(),
            largest: largest.into(),
        };
        Arc::new(TableHandle::new(meta, Arc::new(table), Arc::new(StdFs)))
    }

    fn version(tables: Vec<Arc<TableHandle>>) -> Version {
        let edit = crate::version::VersionEdit {
            removed: vec![],
            added: tables,
        };
        Version::empty(4).apply(&edit)
    }

    fn opts() -> Options {
        Options {
            l0_compaction_trigger: 2,
            l1_target_bytes: 1000,
            level_size_ratio: 10,
            num_levels: 4,
            ..Options::default()
        }
    }

    #[test]
    fn nothing_to_do_below_targets() {
        let v = version(vec![
            handle(0, 1, "a", "c", 10),
            handle(1, 2, "a", "z", 500),
        ]);
        assert!(pick(&v, &opts(), &[]).is_none());
    }

    #[test]
    fn l0_trigger_takes_all_of_l0_and_overlapping_l1() {
        let v = version(vec![
            handle(0, 5, "b", "d", 10),
            handle(0, 6, "c", "f", 10),
            handle(1, 2, "a", "b", 100),
            handle(1, 3, "e", "g", 100),
            handle(1, 4, "x", "z", 100),
        ]);
        let t = pick(&v, &opts(), &[]).unwrap();
        assert_eq!(t.output_level, 1);
        let mut numbers: Vec<u64> = t.inputs.iter().map(|t| t.meta.number).collect();
        numbers.sort_unstable();
        assert_eq!(numbers, vec![2, 3, 5, 6]);
        assert!(!t.trivial_move);
    }

    #[test]
    fn oversized_level_round_robins_and_moves_trivially() {
        let v = version(vec![
            handle(1, 1, "a", "c", 600),
            handle(1, 2, "d", "f", 600),
            handle(2, 3, "e", "e", 10),
        ]);
        let t = pick(&v, &opts(), &[]).unwrap();
        assert_eq!(t.inputs[0].meta.number, 1);
        assert!(t.trivial_move);
        let pointers = vec![None, Some(b"c".to_vec())];
        let t = pick(&v, &opts(), &pointers).unwrap();
        assert_eq!(t.inputs.len(), 2);
        assert!(!t.trivial_move);
        assert_eq!(t.output_level, 2);
    }

    #[test]
    fn full_compaction_targets_the_deepest_level() {
        let v = version(vec![handle(0, 1, "a", "c", 10), handle(2, 2, "a", "z", 10)]);
        let t = full(&v).unwrap();
        assert_eq!(t.output_level, 2);
        assert_eq!(t.inputs.len(), 2);
        assert!(full(&version(vec![])).is_none());
    }
}
