//! Helpers shared by the integration tests: small options that make flushes and
//! compactions happen with little data, and [`ControlledFs`], a filesystem seam that can
//! hold table writes back or make them fail.
#![allow(dead_code)]

pub mod fault;

use std::fmt::Debug;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lsm_core::io::{FileSystem, StdFs, WritableFile};
use lsm_core::{Bytes, Options};
use parking_lot::{Condvar, Mutex};

/// Options that flush every few KiB and compact eagerly.
pub fn small_options() -> Options {
    Options {
        memtable_size_bytes: 16 * 1024,
        max_sealed_memtables: 2,
        block_size_bytes: 512,
        l0_compaction_trigger: 2,
        l0_slowdown_trigger: 6,
        l0_stop_trigger: 10,
        l1_target_bytes: 64 * 1024,
        level_size_ratio: 4,
        num_levels: 5,
        target_file_size_bytes: 32 * 1024,
        ..Options::default()
    }
}

/// Polls `cond` every millisecond until it holds; panics after `limit`.
pub fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A filesystem that can hold back or fail the creation of table files.
#[derive(Debug, Default)]
pub struct ControlledFs {
    hold_tables: Mutex<bool>,
    released: Condvar,
    /// Table creations currently blocked by the hold.
    pub blocked: AtomicUsize,
    /// Table creations fail with EIO while set.
    pub fail_tables: AtomicBool,
    /// Every WAL append fails with ENOSPC while set.
    pub fail_wal_writes: AtomicBool,
}

impl ControlledFs {
    pub fn new() -> Arc<Self> {
        Arc::new(ControlledFs::default())
    }

    pub fn hold_tables(&self) {
        *self.hold_tables.lock() = true;
    }

    pub fn release_tables(&self) {
        *self.hold_tables.lock() = false;
        self.released.notify_all();
    }
}

fn is_table(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "sst")
}

#[derive(Debug)]
struct ControlledFile {
    inner: Box<dyn WritableFile>,
    fs: Arc<ControlledFs>,
    wal: bool,
}

impl WritableFile for ControlledFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        if self.wal && self.fs.fail_wal_writes.load(Ordering::SeqCst) {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "injected ENOSPC",
            ));
        }
        self.inner.write_all(buf)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        self.inner.sync_data()
    }
    fn finish(&mut self) -> io::Result<()> {
        self.inner.finish()
    }
}

/// Wrapper giving the seam access to its own `Arc` for the files it creates.
#[derive(Debug, Clone)]
pub struct Controlled(pub Arc<ControlledFs>);

impl Controlled {
    /// Applies the table hold and failure switches, then wraps the file the real
    /// filesystem creates with `create` (plain or memory-mapped log).
    fn create_with(
        &self,
        path: &Path,
        create: impl FnOnce() -> io::Result<Box<dyn WritableFile>>,
    ) -> io::Result<Box<dyn WritableFile>> {
        if is_table(path) {
            let mut held = self.0.hold_tables.lock();
            if *held {
                self.0.blocked.fetch_add(1, Ordering::SeqCst);
                while *held {
                    self.0.released.wait(&mut held);
                }
                self.0.blocked.fetch_sub(1, Ordering::SeqCst);
            }
            drop(held);
            if self.0.fail_tables.load(Ordering::SeqCst) {
                return Err(io::Error::other("injected EIO"));
            }
        }
        let wal = path.extension().is_some_and(|e| e == "wal");
        Ok(Box::new(ControlledFile {
            inner: create()?,
            fs: self.0.clone(),
            wal,
        }))
    }
}

impl FileSystem for Controlled {
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
        StdFs.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        StdFs.remove_file(path)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        StdFs.list_dir(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        StdFs.sync_dir(path)
    }
    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        StdFs.hard_link(from, to)
    }
    fn exists(&self, path: &Path) -> bool {
        StdFs.exists(path)
    }
    fn lock(&self, path: &Path) -> io::Result<Box<dyn Debug + Send + Sync>> {
        StdFs.lock(path)
    }
}

/// Collects an iterator into owned pairs, panicking on errors.
pub fn collect(it: lsm_core::Iter) -> Vec<(Vec<u8>, Vec<u8>)> {
    it.map(|r| {
        let (k, v) = r.expect("iterator error");
        (k.to_vec(), v.to_vec())
    })
    .collect()
}

/// Like [`collect`], but walks with [`lsm_core::Iter::next_ref`], switching to
/// [`Iterator::next`] on every third entry (the two may be mixed).
pub fn collect_ref(mut it: lsm_core::Iter) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    loop {
        if out.len() % 3 == 2 {
            match it.next() {
                Some(r) => {
                    let (k, v) = r.expect("iterator error");
                    out.push((k.to_vec(), v.to_vec()));
                }
                None => return out,
            }
        } else {
            match it.next_ref() {
                Some(r) => {
                    let (k, v) = r.expect("iterator error");
                    out.push((k.to_vec(), v.to_vec()));
                }
                None => return out,
            }
        }
    }
}

/// Bytes of all files in a directory.
pub fn dir_bytes(path: &Path) -> u64 {
    std::fs::read_dir(path)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}
