//! The replication log: the entries of the replicated write log this node holds, on
//! disk (checksummed segment files in `<data_dir>/replog/`) and in memory.
//!
//! An entry is one engine write batch (in [`lsm_core::WriteBatch::to_bytes`] form, whose
//! header carries the sequence number of its first operation) with its log index and
//! the epoch of the leader that created it. Entries are numbered 1, 2, ... without gaps;
//! the epochs along a log never decrease. Every retained entry is also kept in memory,
//! so serving a follower never reads the disk; retention is bounded by the caller
//! ([`ReplLog::release`]), which only drops entries its engine has applied.
//!
//! Format (docs/cluster.md, "Replication log"): each segment file
//! `<first index, 20 digits>.rlog` starts with a 36-byte header — magic `LSMRLOG1`, the
//! [`Point`] just before its first entry (index, epoch, sequence; u64 little-endian
//! each) and the low 32 bits of the header's xxh3 checksum — followed by records
//! `[u32 length][u32 checksum][index u64][epoch u64][batch]`, the checksum again the
//! low 32 bits of xxh3 over the payload. A torn record at the end of the last segment
//! (a crash during a write) is cut off at open; damage anywhere else is an error naming
//! the file and offset. `PROMISED_EPOCH` holds the highest leader epoch this node has
//! dealt with; it never accepts entries from an older one.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;

/// Magic bytes that open every segment.
const MAGIC: &[u8; 8] = b"LSMRLOG1";
/// Size of a segment header.
const HEADER_BYTES: usize = 36;
/// Size of a record header (length and checksum).
const RECORD_HEADER_BYTES: usize = 8;
/// Fixed part of a record payload: index and epoch.
const ENTRY_FIXED_BYTES: usize = 16;
/// Size of an encoded write batch's header (first sequence u64, count u32).
const BATCH_HEADER_BYTES: usize = 12;
/// A new segment is started once the active one reaches this size.
pub const SEGMENT_BYTES: u64 = 8 << 20;
/// Largest record accepted when reading (a batch is at most 1 GiB).
const MAX_RECORD_BYTES: usize = (1 << 30) + 64;
/// File holding the promised epoch.
const PROMISED_FILE: &str = "PROMISED_EPOCH";

/// A position in the log: an entry's index, its epoch, and the engine sequence number
/// after applying it (the count of operations up to and including it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Point {
    pub index: u64,
    pub epoch: u64,
    pub seq: u64,
}

/// One log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub index: u64,
    pub epoch: u64,
    /// A write batch in `WriteBatch::to_bytes` form (at least its 12-byte header).
    pub batch: Bytes,
}

impl Entry {
    /// Builds an entry, checking that `batch` has a batch header.
    ///
    /// # Errors
    /// The batch is shorter than its header.
    pub fn new(index: u64, epoch: u64, batch: Bytes) -> Result<Entry, String> {
        if batch.len() < BATCH_HEADER_BYTES {
            return Err(format!(
                "entry {index}: batch of {} bytes is shorter than its header",
                batch.len()
            ));
        }
        Ok(Entry {
            index,
            epoch,
            batch,
        })
    }

    /// The sequence number of the batch's first operation.
    pub fn first_seq(&self) -> u64 {
        u64::from_le_bytes(self.batch[..8].try_into().expect("checked in Entry::new"))
    }

    /// The number of operations in the batch.
    pub fn ops(&self) -> u64 {
        u64::from(u32::from_le_bytes(
            self.batch[8..12].try_into().expect("checked in Entry::new"),
        ))
    }

    /// The engine sequence number after applying this entry.
    pub fn seq_after(&self) -> u64 {
        (self.first_seq() + self.ops()).saturating_sub(1)
    }

    pub fn point(&self) -> Point {
        Point {
            index: self.index,
            epoch: self.epoch,
            seq: self.seq_after(),
        }
    }

    /// Appends `[index][epoch][batch]` (a record payload, also the wire form).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.index.to_le_bytes());
        out.extend_from_slice(&self.epoch.to_le_bytes());
        out.extend_from_slice(&self.batch);
    }

    /// Size of [`Entry::encode`]'s output.
    pub fn encoded_len(&self) -> usize {
        ENTRY_FIXED_BYTES + self.batch.len()
    }

    /// Parses [`Entry::encode`]'s form; the batch is a zero-copy slice.
    ///
    /// # Errors
    /// The payload is too short.
    pub fn decode(payload: &Bytes) -> Result<Entry, String> {
        if payload.len() < ENTRY_FIXED_BYTES + BATCH_HEADER_BYTES {
            return Err(format!("entry of {} bytes is too short", payload.len()));
        }
        let index = u64::from_le_bytes(payload[..8].try_into().expect("length checked"));
        let epoch = u64::from_le_bytes(payload[8..16].try_into().expect("length checked"));
        Entry::new(index, epoch, payload.slice(ENTRY_FIXED_BYTES..))
    }
}

fn checksum(bytes: &[u8]) -> u32 {
    xxhash_rust::xxh3::xxh3_64(bytes) as u32
}

/// What went wrong with the log on disk.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("replication log: {context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("replication log: corruption in {} at offset {offset}: {reason}", file.display())]
    Corrupt {
        file: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("replication log: {0}")]
    Invalid(String),
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> LogError {
    let context = context.into();
    move |source| LogError::Io { context, source }
}

#[derive(Debug)]
struct Segment {
    path: PathBuf,
    /// The point just before its first entry.
    base: Point,
    /// Bytes written so far (header included).
    len: u64,
}

/// The log this node holds. Not thread-safe by itself: the replication state keeps it
/// behind a mutex.
#[derive(Debug)]
pub struct ReplLog {
    dir: PathBuf,
    sync: bool,
    /// The point before the first retained entry.
    base: Point,
    entries: VecDeque<Entry>,
    /// File offset of each retained entry's record, parallel to `entries`, with the
    /// number of the segment (index into `segments`, shifted by `dropped_segments`).
    offsets: VecDeque<(usize, u64)>,
    segments: Vec<Segment>,
    /// Segments released from the front since open (keeps `offsets` valid).
    dropped_segments: usize,
    active: Option<File>,
    retained_bytes: usize,
    promised_epoch: u64,
    scratch: Vec<u8>,
}

fn segment_name(first_index: u64) -> String {
    format!("{first_index:020}.rlog")
}

fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(format!("syncing directory {}", dir.display())))
}

impl ReplLog {
    /// Opens (or creates) the log in `dir`. `sync`: fsync every append.
    ///
    /// # Errors
    /// I/O failures, or damage other than a torn final record, naming file and offset.
    pub fn open(dir: &Path, sync: bool) -> Result<ReplLog, LogError> {
        std::fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
        let mut names: Vec<(u64, PathBuf)> = Vec::new();
        for item in std::fs::read_dir(dir).map_err(io_err(format!("listing {}", dir.display())))? {
            let item = item.map_err(io_err(format!("listing {}", dir.display())))?;
            let name = item.file_name();
            let name = name.to_string_lossy();
            if let Some(stem) = name.strip_suffix(".rlog") {
                let first = stem.parse::<u64>().map_err(|_| {
                    LogError::Invalid(format!("unexpected file {}", item.path().display()))
                })?;
                names.push((first, item.path()));
            }
        }
        names.sort();
        let promised_epoch = match std::fs::read_to_string(dir.join(PROMISED_FILE)) {
            Ok(s) => s.trim().parse::<u64>().map_err(|_| {
                LogError::Invalid(format!(
                    "{} does not hold a number",
                    dir.join(PROMISED_FILE).display()
                ))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(io_err(format!("reading {PROMISED_FILE}"))(e)),
        };
        let mut log = ReplLog {
            dir: dir.to_owned(),
            sync,
            base: Point::default(),
            entries: VecDeque::new(),
            offsets: VecDeque::new(),
            segments: Vec::new(),
            dropped_segments: 0,
            active: None,
            retained_bytes: 0,
            promised_epoch,
            scratch: Vec::new(),
        };
        let count = names.len();
        for (n, (first, path)) in names.into_iter().enumerate() {
            log.load_segment(&path, first, n + 1 == count)?;
        }
        if let Some(seg) = log.segments.last() {
            let file = OpenOptions::new()
                .append(true)
                .open(&seg.path)
                .map_err(io_err(format!("opening {}", seg.path.display())))?;
            log.active = Some(file);
        }
        Ok(log)
    }

    fn load_segment(&mut self, path: &Path, first: u64, last: bool) -> Result<(), LogError> {
        let mut bytes = Vec::new();
        File::open(path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(io_err(format!("reading {}", path.display())))?;
        let corrupt = |offset: usize, reason: String| LogError::Corrupt {
            file: path.to_owned(),
            offset: offset as u64,
            reason,
        };
        if bytes.len() < HEADER_BYTES || &bytes[..8] != MAGIC {
            if last && self.segments.is_empty() && bytes.len() < HEADER_BYTES {
                // Created, then a crash before its header was durable: nothing in it.
                return self.forget_empty_segment(path);
            }
            return Err(corrupt(0, "not a replication log segment header".into()));
        }
        let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("len"));
        let stored = u32::from_le_bytes(bytes[32..36].try_into().expect("len"));
        if checksum(&bytes[..32]) != stored {
            return Err(corrupt(0, "segment header checksum mismatch".into()));
        }
        let base = Point {
            index: word(8),
            epoch: word(16),
            seq: word(24),
        };
        if base.index + 1 != first {
            return Err(corrupt(
                0,
                format!(
                    "header starts after entry {}, the name says {first}",
                    base.index
                ),
            ));
        }
        if let Some(prev) = self.last_point_if_any() {
            if prev != base {
                return Err(corrupt(
                    0,
                    format!("segment starts after {base:?}, but the log before ends at {prev:?}"),
                ));
            }
        } else {
            self.base = base;
        }
        let seg_no = self.dropped_segments + self.segments.len();
        let bytes = Bytes::from(bytes);
        let mut at = HEADER_BYTES;
        let mut prev = base;
        while at < bytes.len() {
            let torn = |reason: String| -> Result<Option<usize>, LogError> {
                if last {
                    tracing::warn!(
                        file = %path.display(),
                        offset = at,
                        "replication log: cutting off a torn record at the end: {reason}"
                    );
                    Ok(Some(at))
                } else {
                    Err(corrupt(at, reason))
                }
            };
            let cut = if bytes.len() - at < RECORD_HEADER_BYTES {
                torn("record header cut short".into())?
            } else {
                let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("len")) as usize;
                let sum = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("len"));
                let start = at + RECORD_HEADER_BYTES;
                if len > MAX_RECORD_BYTES || bytes.len() - start < len {
                    torn(format!("record of {len} bytes runs past the end"))?
                } else if checksum(&bytes[start..start + len]) != sum {
                    torn("record checksum mismatch".into())?
                } else {
                    let entry = Entry::decode(&bytes.slice(start..start + len))
                        .map_err(|r| corrupt(at, r))?;
                    if entry.index != prev.index + 1
                        || entry.epoch < prev.epoch
                        || entry.first_seq() != prev.seq + 1
                    {
                        return Err(corrupt(
                            at,
                            format!(
                                "entry (index {}, epoch {}, first sequence {}) does not follow {prev:?}",
                                entry.index,
                                entry.epoch,
                                entry.first_seq()
                            ),
                        ));
                    }
                    prev = entry.point();
                    self.retained_bytes += entry.encoded_len();
                    self.offsets.push_back((seg_no, at as u64));
                    self.entries.push_back(entry);
                    at = start + len;
                    None
                }
            };
            if let Some(cut) = cut {
                let f = OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(io_err(format!("opening {}", path.display())))?;
                f.set_len(cut as u64)
                    .and_then(|()| f.sync_all())
                    .map_err(io_err(format!("truncating {}", path.display())))?;
                at = cut;
                break;
            }
        }
        self.segments.push(Segment {
            path: path.to_owned(),
            base,
            len: at as u64,
        });
        Ok(())
    }

    fn forget_empty_segment(&mut self, path: &Path) -> Result<(), LogError> {
        std::fs::remove_file(path).map_err(io_err(format!("removing {}", path.display())))?;
        sync_dir(&self.dir)
    }

    fn last_point_if_any(&self) -> Option<Point> {
        match (self.entries.back(), self.segments.last()) {
            (Some(e), _) => Some(e.point()),
            (None, Some(s)) => Some(s.base),
            (None, None) => None,
        }
    }

    /// The last entry held (the base when none is).
    pub fn last(&self) -> Point {
        self.last_point_if_any().unwrap_or(self.base)
    }

    /// The point before the first retained entry.
    pub fn base(&self) -> Point {
        self.base
    }

    /// Bytes of entries held in memory.
    pub fn retained_bytes(&self) -> usize {
        self.retained_bytes
    }

    /// The point at `index`, if it is the base or a retained entry.
    pub fn point_at(&self, index: u64) -> Option<Point> {
        if index == self.base.index {
            return Some(self.base);
        }
        self.entry(index).map(Entry::point)
    }

    /// The retained entry at `index`.
    pub fn entry(&self, index: u64) -> Option<&Entry> {
        let i = index.checked_sub(self.base.index + 1)?;
        self.entries.get(usize::try_from(i).ok()?)
    }

    /// Retained entries after `after`, up to about `max_bytes` (at least one if any).
    pub fn entries_after(&self, after: u64, max_bytes: usize) -> Vec<Entry> {
        let mut out = Vec::new();
        let Some(start) = after.checked_sub(self.base.index) else {
            return out;
        };
        let mut bytes = 0;
        for e in self.entries.iter().skip(start as usize) {
            if !out.is_empty() && bytes + e.encoded_len() > max_bytes {
                break;
            }
            bytes += e.encoded_len();
            out.push(e.clone());
        }
        out
    }

    /// The highest epoch this node has promised to follow.
    pub fn promised_epoch(&self) -> u64 {
        self.promised_epoch
    }

    /// Records (durably) that this node deals with leaders of `epoch` or newer only.
    ///
    /// # Errors
    /// Writing the file failed.
    pub fn promise(&mut self, epoch: u64) -> Result<(), LogError> {
        if epoch <= self.promised_epoch {
            return Ok(());
        }
        let path = self.dir.join(PROMISED_FILE);
        let tmp = self.dir.join(format!("{PROMISED_FILE}.tmp"));
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(format!("{epoch}\n").as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)
        };
        write().map_err(io_err(format!("writing {}", path.display())))?;
        sync_dir(&self.dir)?;
        self.promised_epoch = epoch;
        Ok(())
    }

    fn new_segment(&mut self, base: Point) -> Result<(), LogError> {
        let path = self.dir.join(segment_name(base.index + 1));
        let mut header = Vec::with_capacity(HEADER_BYTES);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&base.index.to_le_bytes());
        header.extend_from_slice(&base.epoch.to_le_bytes());
        header.extend_from_slice(&base.seq.to_le_bytes());
        header.extend_from_slice(&checksum(&header).to_le_bytes());
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .map_err(io_err(format!("creating {}", path.display())))?;
        file.write_all(&header)
            .and_then(|()| file.sync_all())
            .map_err(io_err(format!("writing {}", path.display())))?;
        sync_dir(&self.dir)?;
        drop(file);
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io_err(format!("opening {}", path.display())))?;
        self.segments.push(Segment {
            path,
            base,
            len: HEADER_BYTES as u64,
        });
        self.active = Some(file);
        Ok(())
    }

    /// Appends `entries`, which must continue the log (next index, epoch not below the
    /// last, first sequence right after the last), in one write (and one fsync in sync
    /// mode).
    ///
    /// # Errors
    /// An entry does not continue the log, or the write failed (then the log may hold
    /// part of them on disk; the caller must stop using it).
    pub fn append(&mut self, entries: &[Entry]) -> Result<(), LogError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut prev = self.last();
        for e in entries {
            if e.index != prev.index + 1 || e.epoch < prev.epoch || e.first_seq() != prev.seq + 1 {
                return Err(LogError::Invalid(format!(
                    "entry (index {}, epoch {}, first sequence {}) does not follow {prev:?}",
                    e.index,
                    e.epoch,
                    e.first_seq()
                )));
            }
            prev = e.point();
        }
        if self.active.is_none() || self.segments.last().is_some_and(|s| s.len >= SEGMENT_BYTES) {
            self.new_segment(self.last())?;
        }
        let seg_no = self.dropped_segments + self.segments.len() - 1;
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        let start_len = self.segments.last().map_or(0, |s| s.len);
        let mut offsets = Vec::with_capacity(entries.len());
        for e in entries {
            offsets.push(start_len + buf.len() as u64);
            let at = buf.len();
            buf.extend_from_slice(&[0u8; RECORD_HEADER_BYTES]);
            e.encode(&mut buf);
            let len = (buf.len() - at - RECORD_HEADER_BYTES) as u32;
            let sum = checksum(&buf[at + RECORD_HEADER_BYTES..]);
            buf[at..at + 4].copy_from_slice(&len.to_le_bytes());
            buf[at + 4..at + 8].copy_from_slice(&sum.to_le_bytes());
        }
        let seg = self.segments.last_mut().expect("a segment is active");
        let file = self.active.as_mut().expect("a segment is active");
        let written =
            file.write_all(&buf)
                .and_then(|()| if self.sync { file.sync_data() } else { Ok(()) });
        written.map_err(io_err(format!("appending to {}", seg.path.display())))?;
        seg.len += buf.len() as u64;
        if buf.capacity() <= 1 << 20 {
            self.scratch = buf;
        }
        for (e, off) in entries.iter().zip(offsets) {
            self.retained_bytes += e.encoded_len();
            self.offsets.push_back((seg_no, off));
            self.entries.push_back(e.clone());
        }
        Ok(())
    }

    /// Drops every entry after `index` (a suffix never acknowledged, found to differ
    /// from the leader's log), on disk and in memory.
    ///
    /// # Errors
    /// `index` is before the base, or the files could not be cut.
    pub fn truncate_after(&mut self, index: u64) -> Result<(), LogError> {
        if index < self.base.index {
            return Err(LogError::Invalid(format!(
                "cannot truncate to entry {index}: the log starts after entry {}",
                self.base.index
            )));
        }
        if index >= self.last().index {
            return Ok(());
        }
        let keep = (index - self.base.index) as usize;
        let (seg_no, offset) = self.offsets[keep];
        let local = seg_no - self.dropped_segments;
        // Later segments go entirely; this one is cut at the first dropped record.
        for seg in self.segments.drain(local + 1..) {
            std::fs::remove_file(&seg.path)
                .map_err(io_err(format!("removing {}", seg.path.display())))?;
        }
        let seg = &mut self.segments[local];
        let file = OpenOptions::new()
            .append(true)
            .open(&seg.path)
            .map_err(io_err(format!("opening {}", seg.path.display())))?;
        file.set_len(offset)
            .and_then(|()| file.sync_all())
            .map_err(io_err(format!("truncating {}", seg.path.display())))?;
        seg.len = offset;
        self.active = Some(file);
        sync_dir(&self.dir)?;
        for e in self.entries.drain(keep..) {
            self.retained_bytes -= e.encoded_len();
        }
        self.offsets.truncate(keep);
        Ok(())
    }

    /// Releases whole segments from the front while more than `max_bytes` are retained,
    /// keeping every entry after `applied` (entries this node has not applied yet) and
    /// the active segment.
    ///
    /// # Errors
    /// Removing a file failed.
    pub fn release(&mut self, applied: u64, max_bytes: usize) -> Result<(), LogError> {
        while self.retained_bytes > max_bytes && self.segments.len() > 1 {
            let next_base = self.segments[1].base;
            if next_base.index > applied {
                break;
            }
            let seg = self.segments.remove(0);
            std::fs::remove_file(&seg.path)
                .map_err(io_err(format!("removing {}", seg.path.display())))?;
            self.dropped_segments += 1;
            let n = (next_base.index - self.base.index) as usize;
            for e in self.entries.drain(..n) {
                self.retained_bytes -= e.encoded_len();
            }
            self.offsets.drain(..n);
            self.base = next_base;
        }
        Ok(())
    }

    /// Drops the whole log and starts an empty one after `base` (a node whose engine
    /// was replaced by a checkpoint at `base`, or a fresh log for an engine at `base`).
    ///
    /// # Errors
    /// Removing or creating files failed.
    pub fn reset(&mut self, base: Point) -> Result<(), LogError> {
        self.active = None;
        for seg in self.segments.drain(..) {
            std::fs::remove_file(&seg.path)
                .map_err(io_err(format!("removing {}", seg.path.display())))?;
        }
        self.dropped_segments = 0;
        self.entries.clear();
        self.offsets.clear();
        self.retained_bytes = 0;
        self.base = base;
        self.new_segment(base)
    }

    /// The answer to a follower whose log ends at `theirs`: whether this log holds the
    /// same entry there, or where the follower must cut its log back to.
    pub fn reconcile(&self, theirs: Point) -> Reconcile {
        let last = self.last();
        if theirs.index < self.base.index {
            return Reconcile::Resync(format!(
                "the entries after {} were released here (this log starts after entry {})",
                theirs.index, self.base.index
            ));
        }
        if theirs.index <= last.index {
            if let Some(p) = self.point_at(theirs.index) {
                if p.epoch == theirs.epoch {
                    return if p.seq == theirs.seq {
                        Reconcile::Match
                    } else {
                        Reconcile::Resync(format!(
                            "entry {} has engine sequence {} here but {} there",
                            p.index, p.seq, theirs.seq
                        ))
                    };
                }
            }
        }
        // The largest epoch not above theirs that this log holds, and its last entry.
        let upto = theirs.index.min(last.index);
        let found = (self.base.index + 1..=upto)
            .rev()
            .filter_map(|i| self.point_at(i))
            .find(|p| p.epoch <= theirs.epoch)
            .or((self.base.epoch <= theirs.epoch).then_some(self.base));
        match found {
            Some(p) if p.index >= self.base.index => Reconcile::Diverged {
                epoch: p.epoch,
                index: p.index,
            },
            _ => Reconcile::Resync(format!(
                "this log starts after entry {} (epoch {}) and shares nothing with one ending at {theirs:?}",
                self.base.index, self.base.epoch
            )),
        }
    }

    /// Where a follower must cut its log back to after the leader answered
    /// `Diverged { epoch, index }`: the last entry of this log at or below `index`
    /// whose epoch is at most `epoch`.
    pub fn cut_point(&self, epoch: u64, index: u64) -> Option<u64> {
        let upto = index.min(self.last().index);
        (self.base.index..=upto)
            .rev()
            .find(|&i| self.point_at(i).is_some_and(|p| p.epoch <= epoch))
    }
}

/// See [`ReplLog::reconcile`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reconcile {
    /// Both logs hold the same entry at the follower's last index.
    Match,
    /// The logs differ after some point: the follower keeps only entries up to `index`
    /// with epochs up to `epoch`, then asks again.
    Diverged { epoch: u64, index: u64 },
    /// The logs share nothing this node still holds: the follower needs a checkpoint.
    Resync(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use lsm_core::WriteBatch;

    fn batch(first_seq: u64, ops: usize) -> Bytes {
        let mut b = WriteBatch::new();
        for i in 0..ops {
            b.put(format!("k{first_seq}-{i}"), b"v");
        }
        Bytes::from(b.to_bytes(first_seq))
    }

    /// Appends `n` entries of `epoch` with 2 operations each.
    fn grow(log: &mut ReplLog, epoch: u64, n: usize) {
        let mut es = Vec::new();
        let mut last = log.last();
        for _ in 0..n {
            let e = Entry::new(last.index + 1, epoch, batch(last.seq + 1, 2)).unwrap();
            last = e.point();
            es.push(e);
        }
        log.append(&es).unwrap();
    }

    #[test]
    fn append_reopen_and_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = ReplLog::open(dir.path(), false).unwrap();
        assert_eq!(log.last(), Point::default());
        grow(&mut log, 3, 10);
        grow(&mut log, 5, 1);
        // A no-op entry: no operations, same sequence.
        let noop = Entry::new(12, 7, Bytes::from(WriteBatch::new().to_bytes(23))).unwrap();
        log.append(std::slice::from_ref(&noop)).unwrap();
        assert_eq!(
            log.last(),
            Point {
                index: 12,
                epoch: 7,
                seq: 22
            }
        );
        // Not continuing the log is refused.
        let bad = Entry::new(14, 7, batch(23, 1)).unwrap();
        assert!(log.append(&[bad]).is_err());
        let bad = Entry::new(13, 6, batch(23, 1)).unwrap();
        assert!(log.append(&[bad]).is_err());
        drop(log);
        let log = ReplLog::open(dir.path(), false).unwrap();
        assert_eq!(log.last().index, 12);
        assert_eq!(log.entry(4).unwrap().first_seq(), 7);
        assert_eq!(log.entries_after(10, 1 << 20).len(), 2);
        drop(log);
        // A torn final record is cut off; the rest survives.
        let seg = dir.path().join(segment_name(1));
        let len = std::fs::metadata(&seg).unwrap().len();
        let f = OpenOptions::new().write(true).open(&seg).unwrap();
        f.set_len(len - 3).unwrap();
        let mut log = ReplLog::open(dir.path(), false).unwrap();
        assert_eq!(log.last().index, 11);
        grow(&mut log, 8, 1);
        drop(log);
        assert_eq!(ReplLog::open(dir.path(), false).unwrap().last().index, 12);
    }

    #[test]
    fn damage_before_the_end_is_an_error_naming_the_place() {
        let flip = |path: &Path| {
            let mut b = std::fs::read(path).unwrap();
            b[HEADER_BYTES + RECORD_HEADER_BYTES + 3] ^= 1;
            std::fs::write(path, &b).unwrap();
        };
        // In the last segment, a damaged record may be the torn end of a crash: the log
        // is cut there (its entries were never acknowledged by this node's append).
        let dir = tempfile::tempdir().unwrap();
        let mut log = ReplLog::open(dir.path(), false).unwrap();
        grow(&mut log, 1, 5);
        drop(log);
        flip(&dir.path().join(segment_name(1)));
        assert_eq!(ReplLog::open(dir.path(), false).unwrap().last().index, 0);
        // In an earlier segment the same damage is an error naming file and offset.
        let dir = tempfile::tempdir().unwrap();
        let mut log = ReplLog::open(dir.path(), false).unwrap();
        grow(&mut log, 1, 5);
        log.new_segment(log.last()).unwrap();
        grow(&mut log, 1, 1);
        drop(log);
        flip(&dir.path().join(segment_name(1)));
        let err = ReplLog::open(dir.path(), false).unwrap_err().to_string();
        assert!(err.contains("00000000000000000001.rlog"), "{err}");
        assert!(err.contains(&format!("offset {HEADER_BYTES}")), "{err}");
    }

    #[test]
    fn truncate_release_and_reset() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = ReplLog::open(dir.path(), false).unwrap();
        grow(&mut log, 1, 4);
        log.new_segment(log.last()).unwrap();
        grow(&mut log, 2, 4);
        log.new_segment(log.last()).unwrap();
        grow(&mut log, 2, 4);
        // Cut back into the second segment: the third goes.
        log.truncate_after(6).unwrap();
        assert_eq!(log.last().index, 6);
        grow(&mut log, 4, 2);
        drop(log);
        let mut log = ReplLog::open(dir.path(), false).unwrap();
        assert_eq!(
            log.last(),
            Point {
                index: 8,
                epoch: 4,
                seq: 16
            }
        );
        assert_eq!(log.entry(7).unwrap().epoch, 4);
        // Release keeps unapplied entries and the active segment.
        log.release(2, 0).unwrap();
        assert_eq!(log.base().index, 0);
        log.release(8, 0).unwrap();
        assert_eq!(log.base().index, 4);
        assert!(log.entry(4).is_none() && log.entry(5).is_some());
        assert!(log.truncate_after(3).is_err());
        // A follower whose log ends before this one starts cannot be checked: resync.
        let behind = log.point_at(4).unwrap();
        assert_eq!(log.reconcile(behind), Reconcile::Match);
        assert!(matches!(
            log.reconcile(Point {
                index: 3,
                epoch: 1,
                seq: 6
            }),
            Reconcile::Resync(_)
        ));
        drop(log);
        let mut log = ReplLog::open(dir.path(), false).unwrap();
        assert_eq!(log.base().index, 4);
        assert_eq!(log.last().index, 8);
        let base = Point {
            index: 100,
            epoch: 9,
            seq: 500,
        };
        log.reset(base).unwrap();
        assert_eq!(log.last(), base);
        let e = Entry::new(101, 9, batch(501, 1)).unwrap();
        log.append(&[e]).unwrap();
        drop(log);
        let log = ReplLog::open(dir.path(), false).unwrap();
        assert_eq!((log.base(), log.last().index), (base, 101));
    }

    #[test]
    fn promise_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = ReplLog::open(dir.path(), true).unwrap();
        log.promise(12).unwrap();
        log.promise(5).unwrap();
        drop(log);
        assert_eq!(
            ReplLog::open(dir.path(), true).unwrap().promised_epoch(),
            12
        );
    }

    /// Builds a log with the given epochs, one entry each with one operation.
    fn log_of(epochs: &[u64]) -> (tempfile::TempDir, ReplLog) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = ReplLog::open(dir.path(), false).unwrap();
        for &e in epochs {
            let last = log.last();
            let entry = Entry::new(last.index + 1, e, batch(last.seq + 1, 1)).unwrap();
            log.append(&[entry]).unwrap();
        }
        (dir, log)
    }

    /// Runs the follower/leader exchange to the end; returns the follower's cut points.
    fn converge(leader: &ReplLog, follower: &mut ReplLog) -> Vec<u64> {
        let mut cuts = Vec::new();
        for _ in 0..10 {
            match leader.reconcile(follower.last()) {
                Reconcile::Match => return cuts,
                Reconcile::Diverged { epoch, index } => {
                    let cut = follower.cut_point(epoch, index).unwrap();
                    follower.truncate_after(cut).unwrap();
                    cuts.push(cut);
                }
                Reconcile::Resync(r) => panic!("resync: {r}"),
            }
        }
        panic!("no convergence");
    }

    #[test]
    fn reconcile_finds_the_last_common_entry() {
        let (_l, leader) = log_of(&[1, 1, 2, 2, 4, 4, 4]);
        // Same log, shorter: match at once.
        let (_f, mut f) = log_of(&[1, 1, 2]);
        assert!(converge(&leader, &mut f).is_empty());
        // Longer in the leader's last epoch: cut back to the leader's end.
        let (_f, mut f) = log_of(&[1, 1, 2, 2, 4, 4, 4, 4]);
        assert_eq!(converge(&leader, &mut f), vec![7]);
        // An uncommitted suffix of epoch 3 the leader never had.
        let (_f, mut f) = log_of(&[1, 1, 2, 3, 3, 3]);
        assert_eq!(converge(&leader, &mut f), vec![3]);
        // Several rounds: epochs 3 then 5 that the leader never had.
        let (_f, mut f) = log_of(&[1, 1, 3, 3, 5, 5, 5, 5, 5]);
        let cuts = converge(&leader, &mut f);
        assert_eq!(*cuts.last().unwrap(), 2);
        assert_eq!(f.last().index, 2);
        // Nothing in common beyond the start.
        let (_f, mut f) = log_of(&[3, 3]);
        assert_eq!(converge(&leader, &mut f), vec![0]);
        // Same index and epoch but another engine sequence: its data differs.
        let (_f, mut f) = log_of(&[1]);
        f.reset(Point {
            index: 0,
            epoch: 0,
            seq: 50,
        })
        .unwrap();
        assert!(matches!(
            leader.reconcile(Point {
                index: 0,
                epoch: 0,
                seq: 50
            }),
            Reconcile::Resync(_)
        ));
    }
}
