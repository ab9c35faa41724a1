//! Appending records to the active WAL segment.

use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};
use crate::io::{FileSystem, WritableFile};

use super::encode_segment_header;

/// The open, active WAL segment.
#[derive(Debug)]
pub(crate) struct WalWriter {
    file: Box<dyn WritableFile>,
    path: PathBuf,
    number: u64,
    len_bytes: u64,
}

impl WalWriter {
    /// Creates segment `number` at `path` (through [`FileSystem::create_log`]: with the
    /// real filesystem, appends are copies into a memory map) and writes its header. The
    /// directory entry is made durable before returning, so a synced record in it cannot
    /// vanish.
    pub(crate) fn create(
        fs: &dyn FileSystem,
        dir: &Path,
        path: PathBuf,
        number: u64,
    ) -> Result<Self> {
        let mut file = fs
            .create_log(&path)
            .ctx(|| format!("creating WAL segment {}", path.display()))?;
        let header = encode_segment_header(number);
        file.write_all(&header)
            .ctx(|| format!("writing header of {}", path.display()))?;
        file.sync_data()
            .ctx(|| format!("syncing {}", path.display()))?;
        fs.sync_dir(dir)
            .ctx(|| format!("syncing directory {}", dir.display()))?;
        Ok(WalWriter {
            file,
            path,
            number,
            len_bytes: header.len() as u64,
        })
    }

    pub(crate) fn number(&self) -> u64 {
        self.number
    }

    pub(crate) fn len_bytes(&self) -> u64 {
        self.len_bytes
    }

    /// Writes already-framed records with one `write` call.
    pub(crate) fn append(&mut self, framed: &[u8]) -> Result<()> {
        self.file
            .write_all(framed)
            .ctx(|| format!("appending to WAL segment {}", self.path.display()))?;
        self.len_bytes += framed.len() as u64;
        Ok(())
    }

    pub(crate) fn sync(&mut self) -> Result<()> {
        self.file
            .sync_data()
            .ctx(|| format!("syncing WAL segment {}", self.path.display()))
    }

    /// Ends the segment: cut to the bytes written (giving back reserved space) and synced.
    /// Done before the next segment is created, so that only the newest segment can end
    /// in reserved zeros or a torn record. No appends may follow.
    pub(crate) fn finish(&mut self) -> Result<()> {
        self.file
            .finish()
            .ctx(|| format!("finishing WAL segment {}", self.path.display()))
    }
}
