//! Offline inspection of a database directory, for operators' tools: [`verify`] every
//! checksum, [`dump`] one file in readable form, [`dir_stats`] a summary. Each takes the
//! directory lock (a running database makes them fail with [`Error::Locked`]) except
//! [`dump`], which only reads the one file it is given.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::error::{Error, IoContext, Result};
use crate::files::{classify, wal_file_name, FileKind, LOCK_FILE};
use crate::io::{FileSystem, StdFs};
use crate::manifest::{ManifestData, ManifestError, MANIFEST_FILE};
use crate::sstable::{Table, TableIter};
use crate::types::{split_internal, trailer_kind, trailer_seq, Kind};

/// What [`verify`] checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyReport {
    pub tables: u64,
    pub table_entries: u64,
    pub table_bytes: u64,
    pub wal_segments: u64,
    pub wal_batches: u64,
    /// The newest segment ended in a torn record (tolerated, see docs/durability.md).
    pub torn_wal_tail: Option<String>,
}

/// Summary of a directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DirStats {
    /// `(tables, bytes, entries, tombstones)` per level.
    pub levels: Vec<(u64, u64, u64, u64)>,
    pub wal_segments: u64,
    pub wal_bytes: u64,
    pub next_file_number: u64,
    pub last_sequence: u64,
    pub total_bytes: u64,
}

fn read_manifest(dir: &Path) -> Result<ManifestData> {
    let path = dir.join(MANIFEST_FILE);
    let bytes = StdFs
        .read(&path)
        .ctx(|| format!("reading {}", path.display()))?;
    ManifestData::decode(&bytes).map_err(|e| match e {
        ManifestError::Corrupt(d) => Error::corruption(&path, d.offset as u64, d.reason),
        ManifestError::UnsupportedVersion(found) => Error::UnsupportedVersion {
            file: path.clone(),
            found,
            supported: crate::manifest::MANIFEST_VERSION,
        },
    })
}

fn lock(dir: &Path) -> Result<Box<dyn std::fmt::Debug + Send + Sync>> {
    match StdFs.lock(&dir.join(LOCK_FILE)) {
        Ok(l) => Ok(l),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Err(Error::Locked {
            path: dir.to_path_buf(),
        }),
        Err(e) => Err(Error::io(format!("locking {}", dir.display()), e)),
    }
}

fn open_table(path: &Path) -> Result<Arc<Table>> {
    let data = StdFs
        .map(path)
        .ctx(|| format!("mapping {}", path.display()))?;
    Ok(Arc::new(Table::open(path, data)?))
}

/// Reads every entry of a table, verifying every block; returns the entry count.
fn scan_table(
    table: &Arc<Table>,
    mut each: impl FnMut(&[u8], u64, Option<Kind>, &Bytes),
) -> Result<u64> {
    let mut it = TableIter::new(table.clone());
    it.seek_to_first()?;
    let mut n = 0;
    while it.valid() {
        let (key, trailer) = split_internal(it.key()).ok_or_else(|| {
            Error::corruption(table.path(), 0, "internal key shorter than its trailer")
        })?;
        each(
            key,
            trailer_seq(trailer),
            trailer_kind(trailer),
            &it.value(),
        );
        n += 1;
        it.next()?;
    }
    Ok(n)
}

fn wal_segments(dir: &Path, log_number: u64) -> Result<Vec<u64>> {
    let mut v: Vec<u64> = StdFs
        .list_dir(dir)
        .ctx(|| format!("listing {}", dir.display()))?
        .iter()
        .filter_map(|n| match classify(n) {
            FileKind::Wal(n) if n >= log_number => Some(n),
            _ => None,
        })
        .collect();
    v.sort_unstable();
    Ok(v)
}

/// Verifies the manifest, every block of every table it names (and that each table
/// matches its record), and every record of the live WAL segments.
///
/// # Errors
/// The first problem found: [`Error::Corruption`] naming file and offset,
/// [`Error::Locked`] if a database has the directory open, [`Error::Io`].
pub fn verify(dir: &Path) -> Result<VerifyReport> {
    let _lock = lock(dir)?;
    let m = read_manifest(dir)?;
    let mut r = VerifyReport::default();
    for meta in &m.tables {
        let path = dir.join(crate::files::table_file_name(meta.number));
        let table = open_table(&path)?;
        let n = scan_table(&table, |_, _, _, _| {})?;
        let p = table.props();
        if n != p.entries
            || p.entries != meta.entries
            || p.smallest != meta.smallest
            || p.largest != meta.largest
        {
            return Err(Error::corruption(
                &path,
                0,
                "table contents do not match its properties or the manifest",
            ));
        }
        r.tables += 1;
        r.table_entries += n;
        r.table_bytes += meta.size_bytes;
    }
    let mut segments = Vec::new();
    for n in wal_segments(dir, m.log_number)? {
        let path = dir.join(wal_file_name(n));
        let data = Bytes::from(
            StdFs
                .read(&path)
                .ctx(|| format!("reading {}", path.display()))?,
        );
        segments.push((path, n, data));
    }
    let contents = crate::wal::read_segments(&segments)?;
    for ((path, _, _), c) in segments.iter().zip(contents) {
        r.wal_segments += 1;
        r.wal_batches += c.batches.len() as u64;
        if let Some(t) = c.torn_tail {
            r.torn_wal_tail = Some(format!("{}: {t}", path.display()));
        }
    }
    Ok(r)
}

fn printable(b: &[u8], max: usize) -> String {
    let mut s = String::new();
    for &c in b.iter().take(max) {
        if c.is_ascii_graphic() || c == b' ' {
            s.push(c as char);
        } else {
            let _ = write!(s, "\\x{c:02x}");
        }
    }
    if b.len() > max {
        let _ = write!(s, "... ({} bytes)", b.len());
    }
    s
}

/// Writes a readable dump of one file (a `.wal` segment, a `.sst` table or a
/// `MANIFEST`) to `out`. Values are shortened to 64 bytes.
///
/// # Errors
/// [`Error::InvalidArgument`] for a file of another kind; corruption and I/O errors of
/// the file.
pub fn dump(path: &Path, out: &mut dyn std::io::Write) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let io = |e: std::io::Error| Error::io("writing the dump", e);
    match classify(&name) {
        FileKind::Wal(number) => {
            let data = Bytes::from(
                StdFs
                    .read(path)
                    .ctx(|| format!("reading {}", path.display()))?,
            );
            let c = crate::wal::read_segment(path, &data, number)?;
            writeln!(
                out,
                "WAL segment {number}: {} batches, {} valid bytes",
                c.batches.len(),
                c.valid_len
            )
            .map_err(io)?;
            for (seq, batch) in &c.batches {
                writeln!(out, "batch seq {seq}, {} ops", batch.len()).map_err(io)?;
                for op in &batch.ops {
                    match op.kind {
                        Kind::Value => writeln!(
                            out,
                            "  put {} = {}",
                            printable(&op.key, 256),
                            printable(&op.value, 64)
                        ),
                        Kind::Tombstone => writeln!(out, "  del {}", printable(&op.key, 256)),
                    }
                    .map_err(io)?;
                }
            }
            if let Some(t) = c.torn_tail {
                writeln!(out, "torn tail (ignored): {t}").map_err(io)?;
            }
            if c.zero_tail > 0 {
                writeln!(
                    out,
                    "{} bytes of reserved space (zeros) after the last record",
                    c.zero_tail
                )
                .map_err(io)?;
            }
        }
        FileKind::Table(number) => {
            let table = open_table(path)?;
            let p = table.props().clone();
            writeln!(
                out,
                "table {number}: {} entries ({} tombstones), {} data blocks, seq {}..={}, keys {} ..= {}",
                p.entries,
                p.tombstones,
                p.data_blocks,
                p.min_seq,
                p.max_seq,
                printable(&p.smallest, 64),
                printable(&p.largest, 64)
            )
            .map_err(io)?;
            let mut err = None;
            scan_table(&table, |k, seq, kind, v| {
                let line = match kind {
                    Some(Kind::Value) => {
                        writeln!(out, "  {} @{seq} = {}", printable(k, 256), printable(v, 64))
                    }
                    _ => writeln!(out, "  {} @{seq} deleted", printable(k, 256)),
                };
                if let Err(e) = line {
                    err.get_or_insert(e);
                }
            })?;
            if let Some(e) = err {
                return Err(io(e));
            }
        }
        _ if name == MANIFEST_FILE => {
            let dir = path.parent().unwrap_or(Path::new("."));
            let m = read_manifest(dir)?;
            writeln!(
                out,
                "manifest: next file {}, last sequence {}, log number {}, {} levels, {} tables",
                m.next_file_number,
                m.last_sequence,
                m.log_number,
                m.num_levels,
                m.tables.len()
            )
            .map_err(io)?;
            for t in &m.tables {
                writeln!(
                    out,
                    "  L{} {:06}.sst {} bytes, {} entries, seq {}..={}, keys {} ..= {}",
                    t.level,
                    t.number,
                    t.size_bytes,
                    t.entries,
                    t.min_seq,
                    t.max_seq,
                    printable(&t.smallest, 64),
                    printable(&t.largest, 64)
                )
                .map_err(io)?;
            }
        }
        _ => {
            return Err(Error::InvalidArgument(format!(
                "{} is not a WAL segment, table or MANIFEST",
                path.display()
            )))
        }
    }
    Ok(())
}

/// Sizes and counts of a directory, from the manifest and the table properties.
///
/// # Errors
/// As [`verify`], but only table footers and properties are read.
pub fn dir_stats(dir: &Path) -> Result<DirStats> {
    let _lock = lock(dir)?;
    let m = read_manifest(dir)?;
    let mut s = DirStats {
        levels: vec![(0, 0, 0, 0); m.num_levels as usize],
        next_file_number: m.next_file_number,
        last_sequence: m.last_sequence,
        ..DirStats::default()
    };
    for meta in &m.tables {
        let table = open_table(&dir.join(crate::files::table_file_name(meta.number)))?;
        if let Some(l) = s.levels.get_mut(meta.level) {
            l.0 += 1;
            l.1 += meta.size_bytes;
            l.2 += table.props().entries;
            l.3 += table.props().tombstones;
        }
    }
    for n in wal_segments(dir, m.log_number)? {
        let p: PathBuf = dir.join(wal_file_name(n));
        s.wal_segments += 1;
        s.wal_bytes += std::fs::metadata(&p)
            .ctx(|| format!("reading {}", p.display()))?
            .len();
    }
    for e in std::fs::read_dir(dir).ctx(|| format!("listing {}", dir.display()))? {
        let e = e.ctx(|| format!("listing {}", dir.display()))?;
        s.total_bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
    }
    Ok(s)
}
