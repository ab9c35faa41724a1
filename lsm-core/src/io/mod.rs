//! The filesystem seam: every file the engine touches goes through [`FileSystem`].
//!
//! [`StdFs`] is the real implementation (std::fs plus `memmap2` for reading SSTables).
//! Tests wrap it to inject faults or hold operations back. The one durable-replace
//! routine, [`write_atomic`], lives here: write a temporary file, fsync it, rename it over
//! the target, fsync the directory.

mod mapped_log;
mod std_fs;

pub use std_fs::StdFs;

use std::fmt::Debug;
use std::io;
use std::path::Path;

use bytes::Bytes;

/// A file opened for appending.
pub trait WritableFile: Send + Debug {
    /// Writes all of `buf` at the end of the file.
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()>;
    /// Flushes file data (not necessarily metadata other than size) to stable storage.
    fn sync_data(&mut self) -> io::Result<()>;
    /// Ends writing: the file's length becomes exactly the bytes written (space reserved
    /// ahead, as by [`FileSystem::create_log`], is given back) and its data is made
    /// durable as by [`WritableFile::sync_data`]. No writes may follow.
    fn finish(&mut self) -> io::Result<()> {
        self.sync_data()
    }
}

/// The operations the engine needs from a filesystem.
pub trait FileSystem: Send + Sync + Debug {
    /// Creates a directory and its parents.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Creates (or truncates) a file for writing.
    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>>;
    /// Creates (or truncates) a file for many small appends, such as a WAL segment. An
    /// implementation may reserve space ahead (the file then reads as zeros past what was
    /// written until [`WritableFile::finish`]); [`StdFs`] writes it through a memory map,
    /// so an append is a copy into the page cache, not a system call. The default is
    /// [`FileSystem::create`].
    fn create_log(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        self.create(path)
    }
    /// Reads a whole file into memory.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Maps a whole immutable file for reading. The engine never modifies a file it maps.
    fn map(&self, path: &Path) -> io::Result<Bytes>;
    /// Renames `from` to `to`, replacing `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Names of the entries in a directory.
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>>;
    /// Makes the directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// Creates a hard link `to` pointing at `from`.
    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Whether a path exists.
    fn exists(&self, path: &Path) -> bool;
    /// Takes an exclusive advisory lock on `path` (created if missing) for as long as the
    /// returned guard lives. Fails with `WouldBlock` if another holder has it.
    fn lock(&self, path: &Path) -> io::Result<Box<dyn Debug + Send + Sync>>;
}

/// Durably replaces `path` with `contents`: write `path.tmp`, fsync it, rename it over
/// `path`, fsync the directory. After a crash `path` holds either the old or the new
/// contents, never a mix.
pub fn write_atomic(fs: &dyn FileSystem, path: &Path, contents: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = fs.create(&tmp)?;
        f.write_all(contents)?;
        f.sync_data()?;
    }
    fs.rename(&tmp, path)?;
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    fs.sync_dir(dir)
}
