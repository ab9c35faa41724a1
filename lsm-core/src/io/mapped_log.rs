//! [`MappedLog`]: an append-only file written through a shared memory map, for the WAL.
//!
//! An append is a `memcpy` into the page cache, with no system call: once it returns, the
//! bytes belong to the kernel and survive a crash of the process, exactly like bytes
//! handed to `write(2)` (they still need `sync_data` to survive a power loss). Space is
//! reserved a window at a time with `fallocate` (or by writing zeros where the filesystem
//! cannot reserve), and only reserved space is ever mapped: a full disk fails the
//! reservation with a clear `ENOSPC` instead of faulting (`SIGBUS`) on a store into the
//! map. Windows start at [`FIRST_WINDOW_BYTES`] and double up to [`MAX_WINDOW_BYTES`], so
//! the space reserved ahead is never more than what was written or 4 MiB.
//!
//! Until [`MappedLog::finish`], the file is longer than what was written: the reserved
//! tail reads as zeros. The WAL reader treats an all-zero tail at a record boundary of
//! the newest segment as its end, and the engine finishes (truncates and syncs) a segment
//! before it creates the next one, so only the newest segment can carry a zero tail.

use std::fs::File;
use std::io;

use memmap2::{MmapMut, MmapOptions};

use super::WritableFile;

/// The first window's size. Every window starts at a multiple of it, which is a multiple
/// of every page size in use.
pub(crate) const FIRST_WINDOW_BYTES: u64 = 64 << 10;
/// The largest window.
pub(crate) const MAX_WINDOW_BYTES: u64 = 4 << 20;

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct MappedLog {
    file: File,
    /// The mapped window `[window_start, window_start + map.len())`, once one is.
    map: Option<MmapMut>,
    window_start: u64,
    /// Size of the next window.
    next_window_bytes: u64,
    /// Bytes appended so far: the logical length of the file.
    len: u64,
    finished: bool,
}

impl MappedLog {
    /// Takes over `file`, which must be empty and opened for reading and writing.
    pub(crate) fn new(file: File) -> Self {
        MappedLog {
            file,
            map: None,
            window_start: 0,
            next_window_bytes: FIRST_WINDOW_BYTES,
            len: 0,
            finished: false,
        }
    }

    /// Reserves and maps the window that starts at `self.len` (a window boundary).
    fn next_window(&mut self) -> io::Result<()> {
        debug_assert_eq!(self.len % FIRST_WINDOW_BYTES, 0);
        self.map = None;
        let size = self.next_window_bytes;
        reserve(&self.file, self.len, size)?;
        // SAFETY: the mapped range lies inside the file (just reserved, so stores into it
        // cannot fault for lack of space). The engine is this file's only writer: it
        // created the file, holds the data directory's lock, never opens a WAL segment
        // for writing twice and never truncates it while mapped (`finish` unmaps first).
        // Readers (recovery, the offline tools) read the file with `read`, not this map.
        #[allow(unsafe_code)]
        let map = unsafe {
            MmapOptions::new()
                .offset(self.len)
                .len(size as usize)
                .map_mut(&self.file)?
        };
        self.map = Some(map);
        self.window_start = self.len;
        self.next_window_bytes = (size * 2).min(MAX_WINDOW_BYTES);
        Ok(())
    }
}

/// Makes `[offset, offset + len)` of `file` allocated on disk (and part of the file).
fn reserve(file: &File, offset: u64, len: u64) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{fallocate, FallocateFlags};
        match fallocate(file, FallocateFlags::empty(), offset, len) {
            Ok(()) => return Ok(()),
            // Filesystems without fallocate: write the zeros instead.
            Err(e) if e == rustix::io::Errno::OPNOTSUPP => {}
            Err(e) => return Err(e.into()),
        }
    }
    zero_fill(file, offset, len)
}

/// Reserves by writing zeros: allocates the blocks on any filesystem.
fn zero_fill(file: &File, offset: u64, len: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let zeros = vec![0u8; 64 << 10];
    let mut at = offset;
    while at < offset + len {
        let n = (offset + len - at).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

impl WritableFile for MappedLog {
    fn write_all(&mut self, mut buf: &[u8]) -> io::Result<()> {
        if self.finished {
            return Err(io::Error::other("append to a finished log file"));
        }
        while !buf.is_empty() {
            let in_window = (self.len - self.window_start) as usize;
            let map = match self.map.as_mut() {
                Some(m) if in_window < m.len() => m,
                _ => {
                    self.next_window()?;
                    self.map
                        .as_mut()
                        .ok_or_else(|| io::Error::other("no WAL map"))?
                }
            };
            let at = (self.len - self.window_start) as usize;
            let n = buf.len().min(map.len() - at);
            map[at..at + n].copy_from_slice(&buf[..n]);
            self.len += n as u64;
            buf = &buf[n..];
        }
        Ok(())
    }

    /// `fdatasync` of the file: writes back the pages dirtied through the map as well.
    fn sync_data(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn finish(&mut self) -> io::Result<()> {
        self.finished = true;
        self.map = None;
        self.file.set_len(self.len)?;
        self.file.sync_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(path: &std::path::Path) -> MappedLog {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .unwrap();
        MappedLog::new(f)
    }

    /// Appends of every size, across window boundaries, read back with `read` while the
    /// file is still mapped (zero tail) and after `finish` (exact length).
    #[test]
    fn appends_across_windows_read_back_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.wal");
        let mut log = open(&path);
        let mut expected = Vec::new();
        let mut n = 0u32;
        while (expected.len() as u64) < 3 * MAX_WINDOW_BYTES + 12345 {
            let chunk: Vec<u8> = (0..(n * 7919) % 70_000)
                .map(|i| (i as u8) ^ (n as u8) | 1)
                .collect();
            log.write_all(&chunk).unwrap();
            expected.extend_from_slice(&chunk);
            n += 1;
        }
        let live = std::fs::read(&path).unwrap();
        // Windows of 64 KiB, 128 KiB, ... 4 MiB, 4 MiB, ...: whole windows are reserved,
        // never more than 4 MiB ahead.
        let (reserved, written) = (live.len() as u64, expected.len() as u64);
        assert!(reserved >= written && reserved - written < MAX_WINDOW_BYTES);
        let doubling = MAX_WINDOW_BYTES * 2 - FIRST_WINDOW_BYTES;
        assert_eq!((reserved - doubling) % MAX_WINDOW_BYTES, 0);
        assert_eq!(&live[..expected.len()], &expected[..]);
        assert!(live[expected.len()..].iter().all(|&b| b == 0));
        log.sync_data().unwrap();
        log.finish().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), expected);
        assert!(log.write_all(b"late").is_err(), "no appends after finish");
    }

    #[test]
    fn zero_fill_reserves_like_fallocate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("z");
        let f = std::fs::File::create(&path).unwrap();
        zero_fill(&f, 0, 100_000).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 100_000);
    }
}
