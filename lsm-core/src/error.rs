//! The one error type of `lsm-core`.
//!
//! Every fallible public function returns [`Result<T>`]. Corruption errors always name the
//! file, the byte offset and what was wrong, so an operator can find the damage.

use std::path::PathBuf;
use std::sync::Arc;

/// Shorthand for `std::result::Result<T, lsm_core::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the engine.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system I/O error; `context` says what the engine was doing.
    #[error("I/O error while {context}: {source}")]
    Io {
        /// What the engine was doing, including the path involved.
        context: String,
        /// The underlying error (shared so the error stays `Clone`).
        #[source]
        source: Arc<std::io::Error>,
    },
    /// Bytes read from disk are not what was written: a checksum mismatch, a bad magic
    /// number, a truncated structure or an impossible field.
    #[error("corruption in {file} at offset {offset}: {reason}", file = file.display())]
    Corruption {
        /// The file that holds the damage.
        file: PathBuf,
        /// Byte offset in that file where the damaged unit starts.
        offset: u64,
        /// What was wrong.
        reason: String,
    },
    /// A file was written by a format version this build does not understand.
    #[error("{file}: unsupported format version {found} (this build reads version {supported})", file = file.display())]
    UnsupportedVersion {
        /// The file.
        file: PathBuf,
        /// The version found on disk.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// Another process (or another `Db` in this process) holds the directory's lock file.
    #[error("database at {path} is locked by another process or handle", path = path.display())]
    Locked {
        /// The database directory.
        path: PathBuf,
    },
    /// An argument is outside a documented limit or an option is invalid.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A background job or a WAL write failed earlier; the database refuses further writes
    /// so that it never acknowledges a write it may not keep. Reads keep working. Reopen
    /// the database to recover.
    #[error("database refuses writes after an earlier failure: {0}")]
    Poisoned(String),
    /// The database was closed through another handle.
    #[error("database is closed")]
    Closed,
}

impl Error {
    /// Builds an [`Error::Io`] from an `io::Error` and a description of the operation.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source: Arc::new(source),
        }
    }

    /// Builds an [`Error::Corruption`].
    pub(crate) fn corruption(
        file: impl Into<PathBuf>,
        offset: u64,
        reason: impl Into<String>,
    ) -> Self {
        Error::Corruption {
            file: file.into(),
            offset,
            reason: reason.into(),
        }
    }

    /// True for [`Error::Corruption`] and [`Error::UnsupportedVersion`].
    pub fn is_corruption(&self) -> bool {
        matches!(
            self,
            Error::Corruption { .. } | Error::UnsupportedVersion { .. }
        )
    }
}

/// Adds a context string to `io::Result`s.
pub(crate) trait IoContext<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::io(context(), e))
    }
}
