//! [`Db`]: the engine. Owns the write path (group commit into the WAL and the memtable),
//! memtable rotation, the background flush and compaction threads, version installs,
//! recovery at open, checkpoints and shutdown. `docs/architecture.md` walks each path.
//!
//! Locks, always taken in this order, none held across user code:
//! `manifest` (installs a new version, writes MANIFEST) → `wal` (appends, rotation,
//! checkpoint) → `sv_install` (serialises replacing the current [`SuperVersion`], an
//! `ArcSwap`). The `commit` queue lock is never held while any of these is taken; commit
//! leadership (`leader_active`) serialises the write path and rotation. Readers take no
//! lock: they load the current super version from the `ArcSwap` (a guard for a get, an
//! `Arc` for snapshots and iterators) and never wait for flush, compaction or I/O.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::admission::{admit, Admission, WriteState};
use crate::batch::{OneOp, WriteBatch};
use crate::compaction::exec::{write_tables, OutputSpec};
use crate::compaction::picker::{self, CompactionTask};
use crate::error::{Error, IoContext, Result};
use crate::files::{classify, table_file_name, wal_file_name, FileKind, LOCK_FILE};
use crate::io::{write_atomic, FileSystem, StdFs};
use crate::iter::{prefix_successor, InternalIter, Iter, LevelIter, MemIter, MergeIter};
use crate::manifest::{ManifestData, ManifestError, TableMeta, MANIFEST_FILE};
use crate::memtable::Memtable;
use crate::options::{Durability, Options};
use crate::sstable::{Table, TableOptions};
use crate::stats::{bump, read, Counters, LevelStats, Stats};
use crate::types::{encode_internal, seek_trailer, Kind, SeqNo, MAX_SEQNO};
use crate::version::{SuperVersion, TableHandle, Version, VersionEdit};
use crate::wal::{frame_record, read_segments, WalWriter};

/// How long background threads and stalled writers sleep between re-checks when no
/// notification arrives (a safety net; state changes always notify).
const WAIT_SLICE: Duration = Duration::from_millis(50);

/// Unlinked entries in the active memtable at which the flush thread links them, if the
/// memtable is being scanned ([`Memtable::wants_order`]; inserts leave ordering to the
/// first seek, see `skiplist.rs`): a scan then links at most about this many (~8 ms on a
/// 64 MiB memtable), not a whole memtable's worth (~90 ms).
const LINK_BACKLOG_ENTRIES: usize = 8192;

/// An open database. Cheap to clone; all clones share one engine. `Send + Sync`.
///
/// ```
/// # fn main() -> lsm_core::Result<()> {
/// let dir = tempfile::tempdir().unwrap();
/// let db = lsm_core::Db::open(dir.path(), lsm_core::Options::default())?;
/// db.put(b"hello", b"world")?;
/// assert_eq!(db.get(b"hello")?.as_deref(), Some(&b"world"[..]));
/// db.close()?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Db {
    handle: Arc<Handle>,
}

/// Shared by the clones of a [`Db`]; dropping the last one shuts the engine down.
#[derive(Debug)]
struct Handle {
    inner: Arc<Inner>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        let _ = self.inner.shutdown();
    }
}

#[derive(Debug)]
struct Slot {
    result: Mutex<Option<Result<()>>>,
}

#[derive(Debug)]
struct Pending {
    batch: WriteBatch,
    /// Where a waiting writer finds its result; `None` for the leader's own batch.
    slot: Option<Arc<Slot>>,
}

#[derive(Debug)]
struct CommitQueue {
    pending: Vec<Pending>,
    /// An empty vector with capacity, swapped in for `pending` by each leader, so that
    /// queueing a write does not allocate.
    spare: Vec<Pending>,
    /// The leader's buffer for encoding WAL records, kept between groups.
    scratch: Vec<u8>,
    leader_active: bool,
    /// Last sequence assigned; owned by the commit leader.
    last_seq: SeqNo,
    closed: bool,
}

#[derive(Debug)]
struct WalState {
    writer: WalWriter,
    /// Segment files that exist on disk.
    segments: std::collections::BTreeSet<u64>,
}

#[derive(Debug)]
struct ManifestState {
    log_number: u64,
}

#[derive(Debug, Default)]
struct BgState {
    stop: bool,
}

pub(crate) struct Inner {
    dir: PathBuf,
    opts: Options,
    fs: Arc<dyn FileSystem>,
    table_opts: TableOptions,
    /// The memtables and table version reads start from. Replaced whole, only through
    /// [`Inner::install_sv`].
    sv: ArcSwap<SuperVersion>,
    /// Serialises replacements of `sv` (each derives the next from the current one).
    sv_install: Mutex<()>,
    commit: Mutex<CommitQueue>,
    commit_cv: Condvar,
    wal: Mutex<WalState>,
    manifest: Mutex<ManifestState>,
    next_file: AtomicU64,
    visible_seq: AtomicU64,
    bg: Mutex<BgState>,
    bg_cv: Condvar,
    flush_lock: Mutex<()>,
    compaction_lock: Mutex<()>,
    compact_pointers: Mutex<Vec<Option<Vec<u8>>>>,
    poison: Mutex<Option<String>>,
    closed: AtomicBool,
    /// Set by a commit that left the active memtable with [`LINK_BACKLOG_ENTRIES`]
    /// unlinked entries; the flush thread clears it and links them.
    link_requested: AtomicBool,
    counters: Arc<Counters>,
    lock_file: Mutex<Option<Box<dyn Debug + Send + Sync>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// The smallest encoded internal key: positions an iterator at the first entry.
fn first_key() -> Vec<u8> {
    let mut k = Vec::new();
    encode_internal(&mut k, &[], seek_trailer(MAX_SEQNO));
    k
}

fn owned_bound<K: AsRef<[u8]>>(b: Bound<&K>) -> Bound<Vec<u8>> {
    match b {
        Bound::Included(k) => Bound::Included(k.as_ref().to_vec()),
        Bound::Excluded(k) => Bound::Excluded(k.as_ref().to_vec()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

impl Db {
    /// Opens the database in directory `path`, creating it if needed, or recovering it:
    /// manifest, then tables, then WAL replay (the replayed writes are flushed to a table
    /// before `open` returns). Orphan files of an interrupted flush or compaction are
    /// removed.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for invalid options, [`Error::Locked`] when another
    /// process or handle has the directory open, [`Error::Corruption`] or
    /// [`Error::UnsupportedVersion`] for damaged files, [`Error::Io`] otherwise.
    pub fn open(path: impl AsRef<Path>, opts: Options) -> Result<Db> {
        Db::open_with_fs(path, opts, Arc::new(StdFs))
    }

    /// [`Db::open`] over a custom [`FileSystem`] (fault injection, slow disks in tests).
    ///
    /// # Errors
    /// As [`Db::open`].
    pub fn open_with_fs(
        path: impl AsRef<Path>,
        opts: Options,
        fs: Arc<dyn FileSystem>,
    ) -> Result<Db> {
        let inner = Inner::open(path.as_ref(), opts, fs)?;
        let inner = Arc::new(inner);
        if inner.opts.background_threads {
            let mut threads = inner.threads.lock();
            for (name, job) in [
                ("lsm-flush", Inner::flush_thread as fn(&Arc<Inner>)),
                ("lsm-compact", Inner::compaction_thread as fn(&Arc<Inner>)),
            ] {
                let worker = inner.clone();
                let t = std::thread::Builder::new()
                    .name(name.into())
                    .spawn(move || job(&worker))
                    .map_err(|e| Error::io("spawning a background thread", e))?;
                threads.push(t);
            }
        }
        Ok(Db {
            handle: Arc::new(Handle { inner }),
        })
    }

    fn inner(&self) -> &Arc<Inner> {
        &self.handle.inner
    }

    /// Stores `value` under `key`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a key over [`crate::MAX_KEY_BYTES`] or a value over
    /// [`crate::MAX_VALUE_BYTES`]; [`Error::Poisoned`] after a background failure;
    /// [`Error::Closed`]; [`Error::Io`] when the WAL write fails.
    pub fn put(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<()> {
        self.inner().write_one(OneOp {
            kind: Kind::Value,
            key: key.as_ref(),
            value: value.as_ref(),
        })
    }

    /// Deletes `key` (writes a tombstone).
    ///
    /// # Errors
    /// As [`Db::put`].
    pub fn delete(&self, key: impl AsRef<[u8]>) -> Result<()> {
        self.inner().write_one(OneOp {
            kind: Kind::Tombstone,
            key: key.as_ref(),
            value: &[],
        })
    }

    /// Applies a batch atomically: after it returns every operation is visible; after a
    /// crash either all of them or none survive.
    ///
    /// # Errors
    /// As [`Db::put`]; also when the batch exceeds [`crate::MAX_BATCH_BYTES`].
    pub fn write(&self, batch: WriteBatch) -> Result<()> {
        self.inner().write(batch)
    }

    /// The newest value of `key`, or `None` if absent or deleted.
    ///
    /// # Errors
    /// [`Error::Corruption`] if a table block is damaged; [`Error::Closed`].
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>> {
        let inner = self.inner();
        inner.check_open()?;
        let seq = inner.visible_seq.load(Ordering::Acquire);
        // A guard, not a clone: no shared reference count is touched.
        inner.sv.load().get(key.as_ref(), seq, &inner.counters)
    }

    /// A point-in-time iterator over the keys in `range`, in key order.
    pub fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> Iter {
        self.snapshot().range_owned(
            owned_bound(range.start_bound()),
            owned_bound(range.end_bound()),
        )
    }

    /// A point-in-time iterator over every key.
    pub fn iter(&self) -> Iter {
        self.snapshot().iter()
    }

    /// A point-in-time iterator over the keys starting with `prefix`.
    pub fn prefix(&self, prefix: impl AsRef<[u8]>) -> Iter {
        self.snapshot().prefix(prefix)
    }

    /// The sequence number of the last committed operation: every operation of every
    /// batch takes the next one, starting at 1, so it counts the operations ever
    /// committed. After a crash it is that of the last batch recovered. Replication
    /// uses it as the position of a node's engine in the replicated log.
    pub fn last_sequence(&self) -> u64 {
        self.inner().visible_seq.load(Ordering::Acquire)
    }

    /// A consistent read-only view of the database as of now. A snapshot pins the
    /// memtables and tables it reads (memory and disk space), so hold it briefly.
    pub fn snapshot(&self) -> Snapshot {
        let inner = self.inner();
        let seq = inner.visible_seq.load(Ordering::Acquire);
        let sv = inner.current_sv();
        Snapshot {
            sv,
            seq,
            counters: inner.counters.clone(),
            closed: inner.closed.load(Ordering::Acquire),
        }
    }

    /// Writes the memtable (and any sealed ones) to SSTables; returns when they are
    /// durable in the manifest.
    ///
    /// # Errors
    /// [`Error::Poisoned`] if a background flush failed, [`Error::Io`], [`Error::Closed`].
    pub fn flush(&self) -> Result<()> {
        self.inner().flush()
    }

    /// Flushes, then compacts every table into one level, dropping every overwritten
    /// value and tombstone. Returns when done.
    ///
    /// # Errors
    /// As [`Db::flush`]; [`Error::Corruption`] if an input table is damaged.
    pub fn compact(&self) -> Result<()> {
        self.inner().compact_all()
    }

    /// Makes every write acknowledged so far survive power loss (fsyncs the WAL).
    ///
    /// # Errors
    /// [`Error::Io`] when the fsync fails (the database is then poisoned), [`Error::Closed`].
    pub fn sync(&self) -> Result<()> {
        let inner = self.inner();
        inner.check_open()?;
        let mut wal = inner.wal.lock();
        wal.writer
            .sync()
            .inspect_err(|e| inner.set_poison(format!("WAL fsync failed: {e}")))?;
        bump(&inner.counters.wal_syncs, 1);
        Ok(())
    }

    /// Writes a consistent copy of the database into `target` (which must not exist or be
    /// empty): hard links of the tables, a copy of the live WAL up to the last commit, and
    /// a manifest. The copy opens with [`Db::open`]. Returns the sequence number of the
    /// last operation the copy holds (its [`Db::last_sequence`] once opened).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `target` is not empty; [`Error::Io`]; [`Error::Closed`].
    pub fn checkpoint(&self, target: impl AsRef<Path>) -> Result<u64> {
        self.inner().checkpoint(target.as_ref())
    }

    /// Counters and sizes for operators.
    pub fn stats(&self) -> Stats {
        self.inner().stats()
    }

    /// The options the database was opened with.
    pub fn options(&self) -> &Options {
        &self.inner().opts
    }

    /// The database directory.
    pub fn path(&self) -> &Path {
        &self.inner().dir
    }

    /// Orderly shutdown for every handle: stops background work, waits for the write in
    /// progress, fsyncs the WAL and releases the directory lock. Other clones get
    /// [`Error::Closed`] afterwards. Dropping the last handle does the same, best effort.
    ///
    /// # Errors
    /// [`Error::Io`] when the final WAL fsync fails.
    pub fn close(self) -> Result<()> {
        self.inner().shutdown()
    }
}

/// A consistent, read-only view of the database at one sequence number. Writes made
/// after it was taken are invisible to it. See [`Db::snapshot`].
#[derive(Debug, Clone)]
pub struct Snapshot {
    sv: Arc<SuperVersion>,
    seq: SeqNo,
    counters: Arc<Counters>,
    closed: bool,
}

impl Snapshot {
    /// The value of `key` as of the snapshot.
    ///
    /// # Errors
    /// [`Error::Corruption`] if a table block is damaged.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>> {
        if self.closed {
            return Err(Error::Closed);
        }
        self.sv.get(key.as_ref(), self.seq, &self.counters)
    }

    /// The keys in `range` as of the snapshot.
    pub fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> Iter {
        self.range_owned(
            owned_bound(range.start_bound()),
            owned_bound(range.end_bound()),
        )
    }

    fn range_owned(&self, lower: Bound<Vec<u8>>, upper: Bound<Vec<u8>>) -> Iter {
        let it = Iter::new(self.sv.clone(), self.seq, lower, upper);
        if self.closed {
            it.with_error(Error::Closed)
        } else {
            it
        }
    }

    /// Every key as of the snapshot.
    pub fn iter(&self) -> Iter {
        self.range_owned(Bound::Unbounded, Bound::Unbounded)
    }

    /// The keys starting with `prefix` as of the snapshot.
    pub fn prefix(&self, prefix: impl AsRef<[u8]>) -> Iter {
        let p = prefix.as_ref().to_vec();
        let upper = prefix_successor(&p).map_or(Bound::Unbounded, Bound::Excluded);
        self.range_owned(Bound::Included(p), upper)
    }

    /// The sequence number the snapshot reads at.
    pub fn sequence(&self) -> u64 {
        self.seq
    }
}

impl Inner {
    fn open(dir: &Path, opts: Options, fs: Arc<dyn FileSystem>) -> Result<Inner> {
        opts.validate()?;
        fs.create_dir_all(dir)
            .ctx(|| format!("creating database directory {}", dir.display()))?;
        let lock = match fs.lock(&dir.join(LOCK_FILE)) {
            Ok(l) => l,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                return Err(Error::Locked {
                    path: dir.to_path_buf(),
                })
            }
            Err(e) => {
                return Err(Error::io(
                    format!("locking {}", dir.join(LOCK_FILE).display()),
                    e,
                ))
            }
        };
        let table_opts = TableOptions {
            block_size_bytes: opts.block_size_bytes,
            restart_interval: opts.block_restart_interval,
            bloom_bits_per_key: opts.bloom_bits_per_key,
        };
        let mut names = fs
            .list_dir(dir)
            .ctx(|| format!("listing {}", dir.display()))?;
        let manifest_path = dir.join(MANIFEST_FILE);
        let data = if fs.exists(&manifest_path) {
            let bytes = fs
                .read(&manifest_path)
                .ctx(|| format!("reading {}", manifest_path.display()))?;
            ManifestData::decode(&bytes).map_err(|e| match e {
                ManifestError::Corrupt(d) => {
                    Error::corruption(&manifest_path, d.offset as u64, d.reason)
                }
                ManifestError::UnsupportedVersion(found) => Error::UnsupportedVersion {
                    file: manifest_path.clone(),
                    found,
                    supported: crate::manifest::MANIFEST_VERSION,
                },
            })?
        } else {
            if let Some(name) = names
                .iter()
                .find(|n| matches!(classify(n), FileKind::Wal(_) | FileKind::Table(_)))
            {
                return Err(Error::corruption(
                    &manifest_path,
                    0,
                    format!("MANIFEST is missing but the directory holds data file {name}"),
                ));
            }
            // A new database: its MANIFEST comes first, so that a crash or an I/O
            // failure before the first open completes leaves a directory that opens.
            let fresh = ManifestData {
                next_file_number: 1,
                last_sequence: 0,
                log_number: 0,
                num_levels: opts.num_levels as u32,
                tables: Vec::new(),
            };
            write_atomic(fs.as_ref(), &manifest_path, &fresh.encode())
                .ctx(|| format!("writing {}", manifest_path.display()))?;
            names = fs
                .list_dir(dir)
                .ctx(|| format!("listing {}", dir.display()))?;
            fresh
        };

        // Tables named by the manifest.
        let mut edit = VersionEdit::default();
        for meta in &data.tables {
            if meta.level >= opts.num_levels {
                return Err(Error::InvalidArgument(format!(
                    "the database has tables at level {} but Options::num_levels is {}",
                    meta.level, opts.num_levels
                )));
            }
            edit.added.push(open_table_checked(&fs, dir, meta)?);
        }
        let mut version = Version::empty(opts.num_levels).apply(&edit);

        // Orphans and obsolete files; the WAL segments to replay.
        let live: std::collections::HashSet<u64> = data.tables.iter().map(|t| t.number).collect();
        let mut max_number = 0u64;
        let mut replay = Vec::new();
        for name in &names {
            let kind = classify(name);
            let stale = match kind {
                FileKind::Table(n) => {
                    max_number = max_number.max(n);
                    !live.contains(&n)
                }
                FileKind::Wal(n) => {
                    max_number = max_number.max(n);
                    if n >= data.log_number {
                        replay.push(n);
                    }
                    n < data.log_number
                }
                FileKind::Temp => true,
                FileKind::Other => false,
            };
            if stale {
                let p = dir.join(name);
                match fs.remove_file(&p) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(e).ctx(|| format!("removing obsolete file {}", p.display()));
                    }
                    _ => {}
                }
            }
        }
        replay.sort_unstable();
        let next_file = AtomicU64::new(data.next_file_number.max(max_number + 1));
        let counters = Arc::new(Counters::default());

        // Replay the WAL into one memtable and flush it, so old segments can go.
        let recovered = Arc::new(Memtable::new(0, opts.memtable_size_bytes));
        let mut last_seq = data.last_sequence;
        let mut segments = Vec::with_capacity(replay.len());
        for &n in &replay {
            let path = dir.join(wal_file_name(n));
            let bytes = Bytes::from(
                fs.read(&path)
                    .ctx(|| format!("reading {}", path.display()))?,
            );
            segments.push((path, n, bytes));
        }
        let contents = read_segments(&segments)?;
        for ((path, _, _), contents) in segments.iter().zip(contents) {
            for (first_seq, batch) in contents.batches {
                for (j, op) in batch.ops.into_iter().enumerate() {
                    let seq = first_seq + j as u64;
                    if seq > MAX_SEQNO {
                        return Err(Error::corruption(
                            path,
                            0,
                            format!("sequence {seq} out of range"),
                        ));
                    }
                    recovered.insert(&op.key, seq, op.kind, &op.value);
                    last_seq = last_seq.max(seq);
                }
            }
        }
        if !recovered.is_empty() {
            let alloc = || next_file.fetch_add(1, Ordering::SeqCst);
            let never = |_: &[u8]| false;
            let spec = OutputSpec {
                fs: &fs,
                dir,
                table_opts,
                level: 0,
                target_file_size_bytes: u64::MAX,
                next_number: &alloc,
                drop_tombstone: &never,
                cancelled: &|| false,
            };
            let mut it = MemIter::new(recovered);
            it.seek(&first_key())?;
            let tables = write_tables(&spec, &mut it)?;
            for t in &tables {
                bump(&counters.flushes, 1);
                bump(&counters.flush_bytes_written, t.meta.size_bytes);
            }
            version = version.apply(&VersionEdit {
                removed: Vec::new(),
                added: tables,
            });
        }
        for t in version.all_tables() {
            last_seq = last_seq.max(t.meta.max_seq);
        }

        let wal_number = next_file.fetch_add(1, Ordering::SeqCst);
        let writer = WalWriter::create(
            fs.as_ref(),
            dir,
            dir.join(wal_file_name(wal_number)),
            wal_number,
        )?;
        let manifest = ManifestData {
            next_file_number: next_file.load(Ordering::SeqCst),
            last_sequence: last_seq,
            log_number: wal_number,
            num_levels: opts.num_levels as u32,
            tables: version.all_tables().map(|t| t.meta.clone()).collect(),
        };
        write_atomic(fs.as_ref(), &manifest_path, &manifest.encode())
            .ctx(|| format!("writing {}", manifest_path.display()))?;
        for n in replay {
            let p = dir.join(wal_file_name(n));
            fs.remove_file(&p)
                .ctx(|| format!("removing replayed WAL {}", p.display()))?;
        }

        let sv = SuperVersion {
            active: Arc::new(Memtable::new(wal_number, opts.memtable_size_bytes)),
            sealed: Vec::new(),
            version: Arc::new(version),
        };
        Ok(Inner {
            dir: dir.to_path_buf(),
            table_opts,
            sv: ArcSwap::from_pointee(sv),
            sv_install: Mutex::new(()),
            commit: Mutex::new(CommitQueue {
                pending: Vec::new(),
                spare: Vec::new(),
                scratch: Vec::new(),
                leader_active: false,
                last_seq,
                closed: false,
            }),
            commit_cv: Condvar::new(),
            wal: Mutex::new(WalState {
                writer,
                segments: [wal_number].into_iter().collect(),
            }),
            manifest: Mutex::new(ManifestState {
                log_number: wal_number,
            }),
            next_file,
            visible_seq: AtomicU64::new(last_seq),
            bg: Mutex::new(BgState::default()),
            bg_cv: Condvar::new(),
            flush_lock: Mutex::new(()),
            compaction_lock: Mutex::new(()),
            compact_pointers: Mutex::new(vec![None; opts.num_levels]),
            poison: Mutex::new(None),
            closed: AtomicBool::new(false),
            link_requested: AtomicBool::new(false),
            counters,
            lock_file: Mutex::new(Some(lock)),
            threads: Mutex::new(Vec::new()),
            opts,
            fs,
        })
    }

    fn current_sv(&self) -> Arc<SuperVersion> {
        self.sv.load_full()
    }

    /// Replaces the super version with one derived from the current one.
    fn install_sv(&self, next: impl FnOnce(&SuperVersion) -> SuperVersion) {
        let _installing = self.sv_install.lock();
        let current = self.sv.load_full();
        self.sv.store(Arc::new(next(&current)));
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        Ok(())
    }

    fn check_writable(&self) -> Result<()> {
        self.check_open()?;
        if let Some(reason) = self.poison.lock().as_ref() {
            return Err(Error::Poisoned(reason.clone()));
        }
        Ok(())
    }

    fn set_poison(&self, reason: String) {
        let mut p = self.poison.lock();
        if p.is_none() {
            *p = Some(reason);
        }
        drop(p);
        self.notify_bg();
    }

    fn is_poisoned(&self) -> bool {
        self.poison.lock().is_some()
    }

    fn notify_bg(&self) {
        let _g = self.bg.lock();
        self.bg_cv.notify_all();
    }

    fn new_file_number(&self) -> u64 {
        self.next_file.fetch_add(1, Ordering::SeqCst)
    }

    // ---------------------------------------------------------------- write path

    fn write(&self, batch: WriteBatch) -> Result<()> {
        self.check_writable()?;
        batch.validate()?;
        if batch.is_empty() {
            return Ok(());
        }
        let mut q = self.commit.lock();
        if q.closed {
            return Err(Error::Closed);
        }
        if q.leader_active {
            // Wait for a leader to commit this batch, or to become the next leader.
            let slot = Arc::new(Slot {
                result: Mutex::new(None),
            });
            q.pending.push(Pending {
                batch,
                slot: Some(slot.clone()),
            });
            loop {
                if let Some(r) = slot.result.lock().take() {
                    return r;
                }
                if q.closed {
                    q.pending
                        .retain(|p| p.slot.as_ref().is_none_or(|s| !Arc::ptr_eq(s, &slot)));
                    return Err(Error::Closed);
                }
                if !q.leader_active {
                    break;
                }
                self.commit_cv.wait(&mut q);
            }
        } else {
            // No leader: lead at once. Without contention a write allocates no slot.
            q.pending.push(Pending { batch, slot: None });
        }
        self.lead(q, None)
    }

    /// A put or delete: committed straight from the caller's slices when no leader is
    /// active (the common, uncontended case: no allocation but the memtable's), else
    /// queued as a batch.
    fn write_one(&self, op: OneOp<'_>) -> Result<()> {
        self.check_writable()?;
        op.validate()?;
        let q = self.commit.lock();
        if q.closed {
            return Err(Error::Closed);
        }
        if q.leader_active {
            drop(q);
            return self.write(op.to_batch());
        }
        self.lead(q, Some(op))
    }

    /// Leads the next commit group: everything queued so far (the caller's own batch
    /// included, or its borrowed `own` operation); every member gets the group's result.
    fn lead(&self, mut q: MutexGuard<'_, CommitQueue>, own: Option<OneOp<'_>>) -> Result<()> {
        q.leader_active = true;
        let spare = std::mem::take(&mut q.spare);
        let mut group = std::mem::replace(&mut q.pending, spare);
        let mut buf = std::mem::take(&mut q.scratch);
        let mut seq = q.last_seq;
        drop(q);
        let result = self.commit_group(&group, own, &mut seq, &mut buf);
        let mut q = self.commit.lock();
        q.last_seq = seq;
        for slot in group.iter().filter_map(|p| p.slot.as_ref()) {
            *slot.result.lock() = Some(result.clone());
        }
        // Keep the allocations for the next leader, unless a huge group grew them.
        group.clear();
        if group.capacity() <= 4096 {
            q.spare = group;
        }
        if buf.capacity() <= 1 << 20 {
            q.scratch = buf;
        }
        q.leader_active = false;
        self.commit_cv.notify_all();
        drop(q);
        result
    }

    /// Runs as commit leader: makes room, appends one WAL write for the group, inserts
    /// into the memtable and publishes the new sequence.
    fn commit_group(
        &self,
        group: &[Pending],
        own: Option<OneOp<'_>>,
        seq: &mut SeqNo,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        self.make_room()?;
        let total = group.iter().map(|p| p.batch.len()).sum::<usize>() + usize::from(own.is_some());
        if *seq + total as u64 > MAX_SEQNO {
            return Err(Error::InvalidArgument("sequence numbers exhausted".into()));
        }
        buf.clear();
        buf.reserve(
            group
                .iter()
                .map(|p| p.batch.encoded_len() + 16)
                .sum::<usize>()
                + own.map_or(0, |o| o.encoded_len() + 16),
        );
        let mut next = *seq + 1;
        let mut user_bytes = 0u64;
        for p in group {
            frame_record(buf, |b| p.batch.encode_wal(next, b));
            next += p.batch.len() as u64;
            user_bytes += p
                .batch
                .ops
                .iter()
                .map(|o| (o.key.len() + o.value.len()) as u64)
                .sum::<u64>();
        }
        if let Some(o) = own {
            frame_record(buf, |b| o.encode_wal(next, b));
            next += 1;
            user_bytes += (o.key.len() + o.value.len()) as u64;
        }
        let sv = self.current_sv();
        {
            let mut wal = self.wal.lock();
            wal.writer
                .append(buf)
                .inspect_err(|e| self.set_poison(format!("WAL write failed: {e}")))?;
            if self.opts.durability == Durability::Sync {
                wal.writer
                    .sync()
                    .inspect_err(|e| self.set_poison(format!("WAL fsync failed: {e}")))?;
                bump(&self.counters.wal_syncs, 1);
            }
        }
        bump(&self.counters.wal_bytes_written, buf.len() as u64);
        bump(&self.counters.commit_groups, 1);
        bump(&self.counters.user_bytes_written, user_bytes);
        // Inserts only write nodes (the skip list links them when a reader first needs
        // the order, or at flush, sorted), so their order does not matter.
        let mut s = *seq;
        for p in group {
            for op in &p.batch.ops {
                s += 1;
                sv.active.insert(&op.key, s, op.kind, &op.value);
            }
        }
        if let Some(o) = own {
            s += 1;
            sv.active.insert(o.key, s, o.kind, o.value);
        }
        debug_assert_eq!(s, next - 1);
        self.visible_seq.store(s, Ordering::Release);
        if sv.active.unlinked() >= LINK_BACKLOG_ENTRIES
            && sv.active.wants_order()
            && !self.link_requested.swap(true, Ordering::AcqRel)
        {
            self.notify_bg();
        }
        *seq = s;
        Ok(())
    }

    /// Executes [`admit`]'s decisions until the group may proceed: waits (counted) while
    /// L0 or the sealed-memtable queue is full, rotates a full memtable. Called only by
    /// the commit leader.
    fn make_room(&self) -> Result<()> {
        let mut already_slowed = false;
        loop {
            self.check_writable()?;
            let sv = self.current_sv();
            let state = WriteState {
                l0_files: sv.version.levels[0].len(),
                active_bytes: sv.active.approx_bytes(),
                sealed_memtables: sv.sealed.len(),
                already_slowed,
            };
            match admit(&state, &self.opts) {
                Admission::Proceed => return Ok(()),
                Admission::Slowdown => {
                    let start = Instant::now();
                    std::thread::sleep(Duration::from_millis(1));
                    bump(&self.counters.write_slowdowns, 1);
                    bump(
                        &self.counters.write_stall_micros,
                        start.elapsed().as_micros() as u64,
                    );
                    already_slowed = true;
                }
                Admission::WaitForCompaction => {
                    self.stall(|s| s.version.levels[0].len() >= self.opts.l0_stop_trigger);
                }
                Admission::WaitForFlush => {
                    self.stall(|s| s.sealed.len() >= self.opts.max_sealed_memtables);
                }
                Admission::FlushInline => {
                    self.flush_oldest()?;
                }
                Admission::Rotate => {
                    self.rotate()?;
                    if !self.opts.background_threads {
                        while self.flush_oldest()? {}
                    }
                    return Ok(());
                }
            }
        }
    }

    /// Blocks the writer until `blocked` is false for the current super version, the
    /// database is poisoned or closing. Counted in the stall statistics.
    fn stall(&self, blocked: impl Fn(&SuperVersion) -> bool) {
        let start = Instant::now();
        bump(&self.counters.write_stalls, 1);
        let mut bg = self.bg.lock();
        while !bg.stop && !self.is_poisoned() && blocked(&self.current_sv()) {
            self.bg_cv.wait_for(&mut bg, WAIT_SLICE);
        }
        drop(bg);
        bump(
            &self.counters.write_stall_micros,
            start.elapsed().as_micros() as u64,
        );
    }

    /// Seals the active memtable and starts a fresh one on a new WAL segment.
    fn rotate(&self) -> Result<()> {
        let number = self.new_file_number();
        let path = self.dir.join(wal_file_name(number));
        {
            let mut wal = self.wal.lock();
            // The sealed segment is finished (cut to its length and synced) before the
            // next exists: recovery accepts an early end only in a segment with no
            // records after it, and `Db::sync` need only sync the active one. Any I/O
            // failure on the write path poisons: after it, what the disk holds is
            // uncertain, and only a reopen (recovery) re-establishes it.
            wal.writer
                .finish()
                .inspect_err(|e| self.set_poison(format!("WAL fsync failed: {e}")))?;
            let writer = WalWriter::create(self.fs.as_ref(), &self.dir, path, number)
                .inspect_err(|e| self.set_poison(format!("WAL rotation failed: {e}")))?;
            wal.writer = writer;
            wal.segments.insert(number);
            self.install_sv(|sv| {
                let mut sealed = Vec::with_capacity(sv.sealed.len() + 1);
                sealed.push(sv.active.clone());
                sealed.extend(sv.sealed.iter().cloned());
                SuperVersion {
                    active: Arc::new(
                        Memtable::new(number, self.opts.memtable_size_bytes)
                            .expecting_scans(sv.active.wants_order()),
                    ),
                    sealed,
                    version: sv.version.clone(),
                }
            });
        }
        self.notify_bg();
        Ok(())
    }

    /// Runs `f` as commit leader, with no write in flight.
    fn exclusive<T>(&self, f: impl FnOnce() -> T) -> Result<T> {
        let mut q = self.commit.lock();
        while q.leader_active {
            self.commit_cv.wait(&mut q);
        }
        if q.closed {
            return Err(Error::Closed);
        }
        q.leader_active = true;
        drop(q);
        let out = f();
        let mut q = self.commit.lock();
        q.leader_active = false;
        self.commit_cv.notify_all();
        Ok(out)
    }

    // ---------------------------------------------------------------- flush

    fn flush(&self) -> Result<()> {
        self.check_writable()?;
        let sealed = self.exclusive(|| -> Result<Vec<Arc<Memtable>>> {
            if !self.current_sv().active.is_empty() {
                self.rotate()?;
            }
            Ok(self.current_sv().sealed.clone())
        })??;
        if !self.opts.background_threads {
            while self.flush_oldest()? {}
            return Ok(());
        }
        // Wait for the background thread to flush every memtable sealed so far.
        let mut bg = self.bg.lock();
        loop {
            self.check_writable()?;
            let sv = self.current_sv();
            if !sealed
                .iter()
                .any(|m| sv.sealed.iter().any(|s| Arc::ptr_eq(s, m)))
            {
                return Ok(());
            }
            self.bg_cv.wait_for(&mut bg, WAIT_SLICE);
        }
    }

    /// Flushes the oldest sealed memtable. Returns false when there was none.
    fn flush_oldest(&self) -> Result<bool> {
        let _one_at_a_time = self.flush_lock.lock();
        let Some(mem) = self.current_sv().sealed.last().cloned() else {
            return Ok(false);
        };
        let alloc = || self.new_file_number();
        let never = |_: &[u8]| false;
        let spec = OutputSpec {
            fs: &self.fs,
            dir: &self.dir,
            table_opts: self.table_opts,
            level: 0,
            target_file_size_bytes: u64::MAX,
            next_number: &alloc,
            drop_tombstone: &never,
            cancelled: &|| false,
        };
        let mut it = MemIter::new(mem.clone());
        it.seek(&first_key())?;
        let tables = write_tables(&spec, &mut it)?;
        let written: u64 = tables.iter().map(|t| t.meta.size_bytes).sum();

        let mut m = self.manifest.lock();
        let cur = self.current_sv();
        let version = Arc::new(cur.version.apply(&VersionEdit {
            removed: Vec::new(),
            added: tables,
        }));
        let log_number = cur
            .sealed
            .iter()
            .filter(|s| !Arc::ptr_eq(s, &mem))
            .map(|s| s.wal_number())
            .chain([cur.active.wal_number()])
            .min()
            .unwrap_or(0);
        self.write_manifest(&version, log_number)?;
        m.log_number = log_number;
        self.install_sv(|sv| SuperVersion {
            active: sv.active.clone(),
            sealed: sv
                .sealed
                .iter()
                .filter(|s| !Arc::ptr_eq(s, &mem))
                .cloned()
                .collect(),
            version,
        });
        self.delete_obsolete_wals(&m);
        drop(m);
        bump(&self.counters.flushes, 1);
        bump(&self.counters.flush_bytes_written, written);
        self.notify_bg();
        Ok(true)
    }

    /// Writes MANIFEST for `version`. Caller holds the manifest lock.
    fn write_manifest(&self, version: &Version, log_number: u64) -> Result<()> {
        let data = ManifestData {
            next_file_number: self.next_file.load(Ordering::SeqCst),
            last_sequence: self.visible_seq.load(Ordering::Acquire),
            log_number,
            num_levels: self.opts.num_levels as u32,
            tables: version.all_tables().map(|t| t.meta.clone()).collect(),
        };
        let path = self.dir.join(MANIFEST_FILE);
        write_atomic(self.fs.as_ref(), &path, &data.encode())
            .ctx(|| format!("writing {}", path.display()))
    }

    /// Deletes WAL segments older than the manifest's log number. Called with the
    /// manifest lock held, so it never runs while a checkpoint (which holds that lock
    /// throughout) is copying segments.
    fn delete_obsolete_wals(&self, m: &ManifestState) {
        let mut wal = self.wal.lock();
        let old: Vec<u64> = wal.segments.range(..m.log_number).copied().collect();
        for n in old {
            // A segment that cannot be removed now is removed as obsolete at next open.
            if self
                .fs
                .remove_file(&self.dir.join(wal_file_name(n)))
                .is_ok()
            {
                wal.segments.remove(&n);
            }
        }
    }

    /// Flushes sealed memtables, oldest first; between flushes, links the active
    /// memtable's entries when a commit asks (`link_requested`).
    fn flush_thread(self: &Arc<Self>) {
        loop {
            {
                let mut bg = self.bg.lock();
                while !bg.stop
                    && !self.is_poisoned()
                    && self.current_sv().sealed.is_empty()
                    && !self.link_requested.load(Ordering::Acquire)
                {
                    self.bg_cv.wait_for(&mut bg, WAIT_SLICE);
                }
                if bg.stop || self.is_poisoned() {
                    return;
                }
            }
            let sv = self.current_sv();
            if sv.sealed.is_empty() {
                // Cleared first: a commit that crosses the backlog again meanwhile asks anew.
                self.link_requested.store(false, Ordering::Release);
                sv.active.link();
                continue;
            }
            drop(sv);
            if let Err(e) = self.flush_oldest() {
                self.set_poison(format!("background flush failed: {e}"));
                return;
            }
        }
    }

    // ---------------------------------------------------------------- compaction

    fn compaction_thread(self: &Arc<Self>) {
        loop {
            {
                let mut bg = self.bg.lock();
                loop {
                    if bg.stop || self.is_poisoned() {
                        return;
                    }
                    if self.pick_compaction().is_some() {
                        break;
                    }
                    self.bg_cv.wait_for(&mut bg, WAIT_SLICE);
                }
            }
            let _one_at_a_time = self.compaction_lock.lock();
            let Some(task) = self.pick_compaction() else {
                continue;
            };
            match self.run_compaction(&task) {
                Ok(()) => {}
                // Closing: the job was dropped, its inputs stay live.
                Err(Error::Closed) if self.closed.load(Ordering::Acquire) => return,
                Err(e) => {
                    self.set_poison(format!("background compaction failed: {e}"));
                    return;
                }
            }
        }
    }

    fn pick_compaction(&self) -> Option<CompactionTask> {
        let version = self.current_sv().version.clone();
        let pointers = self.compact_pointers.lock().clone();
        picker::pick(&version, &self.opts, &pointers)
    }

    fn compact_all(&self) -> Result<()> {
        self.flush()?;
        let _one_at_a_time = self.compaction_lock.lock();
        self.check_writable()?;
        let version = self.current_sv().version.clone();
        match picker::full(&version) {
            Some(task) => self.run_compaction(&task),
            None => Ok(()),
        }
    }

    /// Executes a task and installs its result. Caller holds `compaction_lock`.
    fn run_compaction(&self, task: &CompactionTask) -> Result<()> {
        let version = self.current_sv().version.clone();
        let removed: Vec<(usize, u64)> = task
            .inputs
            .iter()
            .map(|t| (t.meta.level, t.meta.number))
            .collect();
        let read_bytes: u64 = task.inputs.iter().map(|t| t.meta.size_bytes).sum();
        let added = if task.trivial_move {
            let t = &task.inputs[0];
            let meta = TableMeta {
                level: task.output_level,
                ..t.meta.clone()
            };
            vec![Arc::new(TableHandle::new(
                meta,
                t.table.clone(),
                self.fs.clone(),
            ))]
        } else {
            let children: Vec<Box<dyn InternalIter>> = task
                .inputs
                .iter()
                .map(|t| Box::new(LevelIter::new(vec![t.clone()])) as Box<dyn InternalIter>)
                .collect();
            let mut merged = MergeIter::new(children);
            merged.seek(&first_key())?;
            let alloc = || self.new_file_number();
            let drop_tombstone = |key: &[u8]| !version.key_may_exist_below(task.output_level, key);
            let spec = OutputSpec {
                fs: &self.fs,
                dir: &self.dir,
                table_opts: self.table_opts,
                level: task.output_level,
                target_file_size_bytes: self.opts.target_file_size_bytes,
                next_number: &alloc,
                drop_tombstone: &drop_tombstone,
                cancelled: &|| self.closed.load(Ordering::Acquire),
            };
            write_tables(&spec, &mut merged)?
        };
        let written: u64 = added.iter().map(|t| t.meta.size_bytes).sum();
        {
            let m = self.manifest.lock();
            let cur = self.current_sv();
            let new_version = Arc::new(cur.version.apply(&VersionEdit { removed, added }));
            self.write_manifest(&new_version, m.log_number)?;
            self.install_sv(|sv| SuperVersion {
                active: sv.active.clone(),
                sealed: sv.sealed.clone(),
                version: new_version,
            });
        }
        if !task.trivial_move {
            for t in &task.inputs {
                t.mark_obsolete();
            }
            bump(&self.counters.compactions, 1);
            bump(&self.counters.compaction_bytes_read, read_bytes);
            bump(&self.counters.compaction_bytes_written, written);
        } else {
            bump(&self.counters.trivial_moves, 1);
        }
        let source_largest = task
            .inputs
            .iter()
            .filter(|t| t.meta.level == task.source_level)
            .map(|t| t.meta.largest.clone())
            .max();
        if let Some(p) = self.compact_pointers.lock().get_mut(task.source_level) {
            *p = source_largest;
        }
        self.notify_bg();
        Ok(())
    }

    // ---------------------------------------------------------------- checkpoint

    fn checkpoint(&self, target: &Path) -> Result<u64> {
        self.check_open()?;
        if self.fs.exists(target) {
            let entries = self
                .fs
                .list_dir(target)
                .ctx(|| format!("listing {}", target.display()))?;
            if !entries.is_empty() {
                return Err(Error::InvalidArgument(format!(
                    "checkpoint target {} is not empty",
                    target.display()
                )));
            }
        }
        self.fs
            .create_dir_all(target)
            .ctx(|| format!("creating {}", target.display()))?;
        // Holding the manifest lock keeps flushes and compactions from installing a
        // version or deleting WAL segments while the copy is made.
        let _manifest = self.manifest.lock();
        self.checkpoint_locked(target)
    }

    fn checkpoint_locked(&self, target: &Path) -> Result<u64> {
        // Freeze a consistent cut: the version, the live WAL segments and the active
        // segment's length, all while no commit can append.
        let (sv, segments, seq) = {
            let wal = self.wal.lock();
            let sv = self.current_sv();
            let seq = self.visible_seq.load(Ordering::Acquire);
            let mut segments: Vec<(u64, Option<u64>)> =
                sv.sealed.iter().map(|s| (s.wal_number(), None)).collect();
            segments.push((wal.writer.number(), Some(wal.writer.len_bytes())));
            (sv, segments, seq)
        };
        for t in sv.version.all_tables() {
            let name = table_file_name(t.meta.number);
            let (from, to) = (t.path(), target.join(&name));
            if self.fs.hard_link(&from, &to).is_err() {
                let bytes = self
                    .fs
                    .read(&from)
                    .ctx(|| format!("reading {}", from.display()))?;
                copy_durably(self.fs.as_ref(), &to, &bytes)?;
            }
        }
        for &(n, len) in &segments {
            let from = self.dir.join(wal_file_name(n));
            let mut bytes = self
                .fs
                .read(&from)
                .ctx(|| format!("reading {}", from.display()))?;
            if let Some(len) = len {
                bytes.truncate(len as usize);
            }
            copy_durably(self.fs.as_ref(), &target.join(wal_file_name(n)), &bytes)?;
        }
        let data = ManifestData {
            next_file_number: self.next_file.load(Ordering::SeqCst),
            last_sequence: seq,
            log_number: segments.iter().map(|s| s.0).min().unwrap_or(0),
            num_levels: self.opts.num_levels as u32,
            tables: sv.version.all_tables().map(|t| t.meta.clone()).collect(),
        };
        let path = target.join(MANIFEST_FILE);
        write_atomic(self.fs.as_ref(), &path, &data.encode())
            .ctx(|| format!("writing {}", path.display()))?;
        Ok(seq)
    }

    // ---------------------------------------------------------------- stats, shutdown

    fn stats(&self) -> Stats {
        let sv = self.current_sv();
        let c = &self.counters;
        Stats {
            memtable_bytes: sv.active.approx_bytes() as u64,
            sealed_memtables: sv.sealed.len() as u64,
            sealed_memtable_bytes: sv.sealed.iter().map(|m| m.approx_bytes() as u64).sum(),
            memtable_index_bytes: std::iter::once(&sv.active)
                .chain(&sv.sealed)
                .map(|m| m.index_bytes() as u64)
                .sum(),
            memtable_unlinked_entries: sv.active.unlinked() as u64,
            table_entries: sv
                .version
                .all_tables()
                .map(|t| t.table.props().entries)
                .sum(),
            table_tombstones: sv
                .version
                .all_tables()
                .map(|t| t.table.props().tombstones)
                .sum(),
            levels: sv
                .version
                .levels
                .iter()
                .map(|l| LevelStats {
                    files: l.len() as u64,
                    bytes: l.iter().map(|t| t.meta.size_bytes).sum(),
                })
                .collect(),
            flushes: read(&c.flushes),
            flush_bytes_written: read(&c.flush_bytes_written),
            compactions: read(&c.compactions),
            trivial_moves: read(&c.trivial_moves),
            compaction_bytes_read: read(&c.compaction_bytes_read),
            compaction_bytes_written: read(&c.compaction_bytes_written),
            bloom_checks: read(&c.bloom_checks),
            bloom_negatives: read(&c.bloom_negatives),
            bloom_false_positives: read(&c.bloom_false_positives),
            table_probes: read(&c.table_probes),
            write_stalls: read(&c.write_stalls),
            write_slowdowns: read(&c.write_slowdowns),
            write_stall_micros: read(&c.write_stall_micros),
            wal_bytes_written: read(&c.wal_bytes_written),
            wal_syncs: read(&c.wal_syncs),
            commit_groups: read(&c.commit_groups),
            user_bytes_written: read(&c.user_bytes_written),
            last_sequence: self.visible_seq.load(Ordering::Acquire),
        }
    }

    fn shutdown(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        // Refuse new writes, wake stalled writers (they see `stop` and return Closed),
        // then wait for the commit group in flight to finish.
        self.commit.lock().closed = true;
        {
            let mut bg = self.bg.lock();
            bg.stop = true;
            self.bg_cv.notify_all();
        }
        {
            let mut q = self.commit.lock();
            self.commit_cv.notify_all();
            while q.leader_active {
                self.commit_cv.wait(&mut q);
            }
        }
        let threads = std::mem::take(&mut *self.threads.lock());
        for t in threads {
            let _ = t.join();
        }
        // A manual compaction (`Db::compact`, in a caller's thread) sees `closed` within
        // a few thousand entries and drops its outputs; none installs after this.
        drop(self.compaction_lock.lock());
        // Cut the active segment to its length (giving back reserved space) and sync it.
        let synced = self.wal.lock().writer.finish();
        self.lock_file.lock().take();
        synced
    }
}

/// Verifies a table named by the manifest against its record.
fn open_table_checked(
    fs: &Arc<dyn FileSystem>,
    dir: &Path,
    meta: &TableMeta,
) -> Result<Arc<TableHandle>> {
    let path = dir.join(table_file_name(meta.number));
    let data = fs
        .map(&path)
        .ctx(|| format!("mapping table {}", path.display()))?;
    if data.len() as u64 != meta.size_bytes {
        return Err(Error::corruption(
            &path,
            0,
            format!(
                "table is {} bytes, the manifest says {}",
                data.len(),
                meta.size_bytes
            ),
        ));
    }
    let table = Table::open(&path, data)?;
    let p = table.props();
    if p.smallest != meta.smallest
        || p.largest != meta.largest
        || p.entries != meta.entries
        || p.max_seq != meta.max_seq
    {
        return Err(Error::corruption(
            &path,
            0,
            "table properties do not match the manifest",
        ));
    }
    Ok(Arc::new(TableHandle::new(
        meta.clone(),
        Arc::new(table),
        fs.clone(),
    )))
}

/// Writes a new file with `bytes` and fsyncs it.
fn copy_durably(fs: &dyn FileSystem, to: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = fs.create(to).ctx(|| format!("creating {}", to.display()))?;
    f.write_all(bytes)
        .ctx(|| format!("writing {}", to.display()))?;
    f.sync_data().ctx(|| format!("syncing {}", to.display()))
}

#[allow(dead_code)]
fn assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<Db>();
    is::<Snapshot>();
    fn send<T: Send>() {}
    send::<Iter>();
}
