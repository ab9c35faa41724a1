//! [`FaultFs`]: the engine's filesystem seam over the real filesystem, with two powers.
//!
//! **Fault injection.** The `nth` operation of a kind (write, fsync, rename, directory
//! fsync, file creation) fails with EIO or ENOSPC; with `sticky`, so does every later one
//! of that kind (a disk that stays full).
//!
//! **Power loss.** It tracks what is durable the way a POSIX filesystem promises it: a
//! file's data up to its last `sync_data`, and a directory's entries (creations, renames,
//! removals, links) as of its last `sync_dir`. Real fsyncs are skipped (the model decides
//! what survives), removed or replaced files are kept aside so an unsynced removal can come
//! back, and [`FaultFs::materialize`] writes exactly the durable state into a new
//! directory. A cut (`cut_after_syncs`) turns the power off after the Nth fsync of either
//! kind: every later operation fails, so nothing more becomes durable.
//!
//! Files are append-only through the seam (the engine never rewrites a file), so a
//! file's durable content is a prefix of its real content: tracking a length suffices.

use std::collections::HashMap;
use std::fmt::Debug;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use lsm_core::io::{FileSystem, StdFs, WritableFile};
use lsm_core::Bytes;
use parking_lot::Mutex;

/// Operation kinds that faults can target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Create,
    Write,
    Sync,
    Rename,
    SyncDir,
}

pub const OPS: [Op; 5] = [Op::Create, Op::Write, Op::Sync, Op::Rename, Op::SyncDir];

/// Which operation fails, and how.
#[derive(Debug, Clone, Copy)]
pub struct Fault {
    pub op: Op,
    /// 1-based index among operations of that kind.
    pub nth: u64,
    /// `StorageFull` (ENOSPC) or `Other` (EIO).
    pub kind: io::ErrorKind,
    /// Every later operation of the kind fails as well.
    pub sticky: bool,
}

#[derive(Debug)]
struct FileState {
    /// Where the bytes are now (its name, or a path in the keep-aside directory).
    real: PathBuf,
    len: u64,
    durable_len: u64,
}

#[derive(Debug, Default)]
struct State {
    next_id: u64,
    files: HashMap<u64, FileState>,
    /// The current namespace: path → file.
    names: HashMap<PathBuf, u64>,
    /// Durable entries of each directory: name → file.
    durable: HashMap<PathBuf, HashMap<String, u64>>,
    counts: HashMap<Op, u64>,
    syncs: u64,
    cut_after_syncs: Option<u64>,
    dead: bool,
    fault: Option<Fault>,
    injected: u64,
}

/// See the module documentation.
#[derive(Debug)]
pub struct FaultFs {
    state: Mutex<State>,
    aside: tempfile::TempDir,
}

/// The seam handed to `Db::open_with_fs`.
#[derive(Debug, Clone)]
pub struct Faulty(pub Arc<FaultFs>);

impl FaultFs {
    /// A seam over `dir`, whose present files count as durable.
    pub fn new(dir: &Path) -> Arc<FaultFs> {
        std::fs::create_dir_all(dir).unwrap();
        let fs = FaultFs {
            state: Mutex::new(State::default()),
            aside: tempfile::tempdir().unwrap(),
        };
        {
            let mut s = fs.state.lock();
            let mut entries = HashMap::new();
            for e in std::fs::read_dir(dir).unwrap() {
                let e = e.unwrap();
                if !e.file_type().unwrap().is_file() {
                    continue;
                }
                let name = e.file_name().to_string_lossy().into_owned();
                let len = e.metadata().unwrap().len();
                let id = s.next_id;
                s.next_id += 1;
                s.files.insert(
                    id,
                    FileState {
                        real: e.path(),
                        len,
                        durable_len: len,
                    },
                );
                s.names.insert(e.path(), id);
                entries.insert(name, id);
            }
            s.durable.insert(dir.to_path_buf(), entries);
        }
        Arc::new(fs)
    }

    pub fn set_fault(&self, fault: Option<Fault>) {
        self.state.lock().fault = fault;
    }

    /// Turns the power off right after the `n`th fsync (data or directory) completes.
    pub fn cut_after_syncs(&self, n: u64) {
        self.state.lock().cut_after_syncs = Some(n);
    }

    /// Turns the power off now.
    pub fn cut(&self) {
        self.state.lock().dead = true;
    }

    pub fn is_dead(&self) -> bool {
        self.state.lock().dead
    }

    /// How many operations of each kind ran (including failed ones).
    pub fn count(&self, op: Op) -> u64 {
        self.state.lock().counts.get(&op).copied().unwrap_or(0)
    }

    pub fn syncs(&self) -> u64 {
        self.state.lock().syncs
    }

    /// How many faults were injected.
    pub fn injected(&self) -> u64 {
        self.state.lock().injected
    }

    /// Counts the operation and fails it if the power is off or a fault targets it.
    fn check(&self, op: Op) -> io::Result<()> {
        let mut s = self.state.lock();
        if s.dead {
            return Err(io::Error::other("injected: the power is off"));
        }
        let n = {
            let c = s.counts.entry(op).or_insert(0);
            *c += 1;
            *c
        };
        if let Some(f) = s.fault {
            if f.op == op && (n == f.nth || (f.sticky && n > f.nth)) {
                s.injected += 1;
                let what = if f.kind == io::ErrorKind::StorageFull {
                    "ENOSPC"
                } else {
                    "EIO"
                };
                return Err(io::Error::new(
                    f.kind,
                    format!("injected {what} on {op:?} #{n}"),
                ));
            }
        }
        Ok(())
    }

    fn synced(s: &mut State) {
        s.syncs += 1;
        if s.cut_after_syncs.is_some_and(|n| s.syncs >= n) {
            s.dead = true;
        }
    }

    /// Moves the real file behind `path` aside (keeping its bytes for the durable state)
    /// and forgets the name.
    fn set_aside(&self, s: &mut State, path: &Path) {
        if let Some(id) = s.names.remove(path) {
            let shared = s.names.values().any(|&other| other == id);
            let f = s.files.get_mut(&id).expect("tracked file");
            if f.real == path {
                let kept = self.aside.path().join(format!("file-{id}"));
                if shared {
                    // Another name still links the inode: keep a link of our own.
                    std::fs::hard_link(path, &kept).unwrap();
                    std::fs::remove_file(path).unwrap();
                } else {
                    std::fs::rename(path, &kept).unwrap();
                }
                f.real = kept;
            } else if path.exists() {
                std::fs::remove_file(path).unwrap();
            }
        }
    }

    /// Writes the durable state of `dir` into `dst` (a new directory): each durably named
    /// file with its durably written bytes, nothing else.
    pub fn materialize(&self, dir: &Path, dst: &Path) {
        let s = self.state.lock();
        std::fs::create_dir_all(dst).unwrap();
        if let Some(entries) = s.durable.get(dir) {
            for (name, id) in entries {
                let f = &s.files[id];
                let mut bytes = std::fs::read(&f.real).unwrap();
                bytes.truncate(f.durable_len as usize);
                std::fs::write(dst.join(name), bytes).unwrap();
            }
        }
    }
}

#[derive(Debug)]
struct FaultFile {
    fs: Arc<FaultFs>,
    id: u64,
    inner: Box<dyn WritableFile>,
}

impl WritableFile for FaultFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.fs.check(Op::Write)?;
        self.inner.write_all(buf)?;
        if let Some(f) = self.fs.state.lock().files.get_mut(&self.id) {
            f.len += buf.len() as u64;
        }
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.fs.check(Op::Sync)?;
        let mut s = self.fs.state.lock();
        if let Some(f) = s.files.get_mut(&self.id) {
            f.durable_len = f.len;
        }
        FaultFs::synced(&mut s);
        Ok(())
    }

    /// A sync as far as faults and durability go; the real file is also cut to what was
    /// written (a memory-mapped log gives back its reserved space).
    fn finish(&mut self) -> io::Result<()> {
        self.sync_data()?;
        self.inner.finish()
    }
}

impl Faulty {
    /// Registers the file in the model, then wraps what `create` made (plain or
    /// memory-mapped log).
    fn create_with(
        &self,
        path: &Path,
        create: impl FnOnce() -> io::Result<Box<dyn WritableFile>>,
    ) -> io::Result<Box<dyn WritableFile>> {
        self.0.check(Op::Create)?;
        let id = {
            let mut s = self.0.state.lock();
            self.0.set_aside(&mut s, path);
            let id = s.next_id;
            s.next_id += 1;
            s.files.insert(
                id,
                FileState {
                    real: path.to_path_buf(),
                    len: 0,
                    durable_len: 0,
                },
            );
            s.names.insert(path.to_path_buf(), id);
            id
        };
        let inner = create()?;
        Ok(Box::new(FaultFile {
            fs: self.0.clone(),
            id,
            inner,
        }))
    }
}

impl FileSystem for Faulty {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        StdFs.create_dir_all(path)
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        self.create_with(path, || StdFs.create(path))
    }

    fn create_log(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        self.create_with(path, || StdFs.create_log(path))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        StdFs.read(path)
    }

    fn map(&self, path: &Path) -> io::Result<Bytes> {
        StdFs.map(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.0.check(Op::Rename)?;
        let mut s = self.0.state.lock();
        let Some(id) = s.names.get(from).copied() else {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "rename: no such file",
            ));
        };
        self.0.set_aside(&mut s, to);
        StdFs.rename(from, to)?;
        s.names.remove(from);
        s.names.insert(to.to_path_buf(), id);
        if let Some(f) = s.files.get_mut(&id) {
            if f.real == from {
                f.real = to.to_path_buf();
            }
        }
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut s = self.0.state.lock();
        if s.dead {
            return Err(io::Error::other("injected: the power is off"));
        }
        if !s.names.contains_key(path) {
            return StdFs.remove_file(path);
        }
        self.0.set_aside(&mut s, path);
        Ok(())
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        StdFs.list_dir(path)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.0.check(Op::SyncDir)?;
        let mut s = self.0.state.lock();
        let entries: HashMap<String, u64> = s
            .names
            .iter()
            .filter(|(p, _)| p.parent() == Some(path))
            .filter_map(|(p, id)| {
                p.file_name()
                    .map(|n| (n.to_string_lossy().into_owned(), *id))
            })
            .collect();
        s.durable.insert(path.to_path_buf(), entries);
        FaultFs::synced(&mut s);
        Ok(())
    }

    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.0.state.lock();
        if s.dead {
            return Err(io::Error::other("injected: the power is off"));
        }
        StdFs.hard_link(from, to)?;
        if let Some(id) = s.names.get(from).copied() {
            s.names.insert(to.to_path_buf(), id);
        }
        Ok(())
    }

    fn exists(&self, path: &Path) -> bool {
        StdFs.exists(path)
    }

    fn lock(&self, path: &Path) -> io::Result<Box<dyn Debug + Send + Sync>> {
        StdFs.lock(path)
    }
}
