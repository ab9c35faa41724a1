//! Writing sorted internal entries into new tables: shared by flush (one memtable into
//! one L0 table) and compaction (merged inputs into tables of the output level, cut at
//! the target file size).
//!
//! Invariants: for each user key only the newest entry is written (readers pin their own
//! versions, so no older version is needed by anyone); a tombstone is dropped only when
//! the caller says no deeper table may hold the key. Outputs are fsynced, and their
//! directory entries too, before they are returned.

use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, IoContext, Result};
use crate::io::FileSystem;
use crate::iter::InternalIter;
use crate::manifest::TableMeta;
use crate::sstable::{Table, TableBuilder, TableOptions};
use crate::types::{split_internal, trailer_kind, trailer_seq, Kind};
use crate::version::TableHandle;

/// Where and how to write output tables.
pub(crate) struct OutputSpec<'a> {
    pub(crate) fs: &'a Arc<dyn FileSystem>,
    pub(crate) dir: &'a Path,
    pub(crate) table_opts: TableOptions,
    pub(crate) level: usize,
    /// Cut a new file once the current one reaches this size.
    pub(crate) target_file_size_bytes: u64,
    /// Gives the next file number.
    pub(crate) next_number: &'a dyn Fn() -> u64,
    /// Whether a tombstone for this user key may be dropped.
    pub(crate) drop_tombstone: &'a dyn Fn(&[u8]) -> bool,
    /// Asked every [`CANCEL_CHECK_ENTRIES`] input entries: when it says yes, the outputs
    /// written so far are removed and [`Error::Closed`] returned (a compaction running
    /// when the database closes is dropped, not finished; its inputs stay live).
    pub(crate) cancelled: &'a dyn Fn() -> bool,
}

/// Input entries between two checks of [`OutputSpec::cancelled`].
pub(crate) const CANCEL_CHECK_ENTRIES: u64 = 1024;

/// Name of table `number` inside the database directory.
pub(crate) fn table_file_name(number: u64) -> String {
    format!("{number:06}.sst")
}

/// Drains `input` into new tables and returns them, opened.
pub(crate) fn write_tables(
    spec: &OutputSpec<'_>,
    input: &mut dyn InternalIter,
) -> Result<Vec<Arc<TableHandle>>> {
    let mut outputs: Vec<(u64, u64, crate::sstable::TableProps)> = Vec::new();
    let mut current: Option<(u64, TableBuilder)> = None;
    let mut last_key: Option<Vec<u8>> = None;
    let mut seen = 0u64;
    while input.valid() {
        if seen.is_multiple_of(CANCEL_CHECK_ENTRIES) && (spec.cancelled)() {
            let numbers = outputs.iter().map(|o| o.0).chain(current.map(|c| c.0));
            remove_tables(spec, numbers.collect());
            return Err(Error::Closed);
        }
        seen += 1;
        let ikey = input.key();
        let Some((key, trailer)) = split_internal(ikey) else {
            return Err(Error::corruption(
                spec.dir,
                0,
                "internal key shorter than its trailer",
            ));
        };
        if last_key.as_deref() == Some(key) {
            input.next()?;
            continue;
        }
        last_key = Some(key.to_vec());
        let kind = trailer_kind(trailer).ok_or_else(|| {
            Error::corruption(
                spec.dir,
                0,
                format!("unknown entry kind in trailer {trailer:#x}"),
            )
        })?;
        if kind == Kind::Tombstone && (spec.drop_tombstone)(key) {
            input.next()?;
            continue;
        }
        if current.is_none() {
            let number = (spec.next_number)();
            let path = spec.dir.join(table_file_name(number));
            current = Some((
                number,
                TableBuilder::create(spec.fs.as_ref(), &path, spec.table_opts)?,
            ));
        }
        if let Some((_, b)) = current.as_mut() {
            b.add(key, trailer_seq(trailer), kind, input.value_slice())?;
            if b.estimated_len() >= spec.target_file_size_bytes {
                if let Some((number, b)) = current.take() {
                    let (size, props) = b.finish()?;
                    outputs.push((number, size, props));
                }
            }
        }
        input.next()?;
    }
    if let Some((number, b)) = current.take() {
        if b.entries() > 0 {
            let (size, props) = b.finish()?;
            outputs.push((number, size, props));
        }
    }
    if !outputs.is_empty() {
        spec.fs
            .sync_dir(spec.dir)
            .ctx(|| format!("syncing directory {}", spec.dir.display()))?;
    }
    outputs
        .into_iter()
        .map(|(number, size, props)| {
            open_table(spec.fs, spec.dir, number, size, spec.level, &props)
        })
        .collect()
}

/// Removes the files of tables no version references (outputs of a cancelled job), best
/// effort: what remains is removed as an orphan at the next open.
pub(crate) fn remove_tables(spec: &OutputSpec<'_>, numbers: Vec<u64>) {
    for number in numbers {
        let _ = spec.fs.remove_file(&spec.dir.join(table_file_name(number)));
    }
}

/// Maps and verifies a freshly written table and wraps it in a handle.
fn open_table(
    fs: &Arc<dyn FileSystem>,
    dir: &Path,
    number: u64,
    size_bytes: u64,
    level: usize,
    props: &crate::sstable::TableProps,
) -> Result<Arc<TableHandle>> {
    let path = dir.join(table_file_name(number));
    let data = fs
        .map(&path)
        .ctx(|| format!("mapping table {}", path.display()))?;
    let table = Table::open(&path, data)?;
    let meta = TableMeta {
        level,
        number,
        size_bytes,
        entries: props.entries,
        min_seq: props.min_seq,
        max_seq: props.max_seq,
        smallest: props.smallest.clone(),
        largest: props.largest.clone(),
    };
    Ok(Arc::new(TableHandle::new(
        meta,
        Arc::new(table),
        fs.clone(),
    )))
}
