//! `lsm-core`: an embeddable LSM-tree key-value storage engine.
//!
//! Writes go to a write-ahead log and a concurrent memtable; full memtables are flushed by
//! a background thread into immutable SSTables (read through `mmap`, each with a sparse
//! block index and a bloom filter), which a background thread compacts level by level.
//! Readers never wait for flush or compaction: they pin a reference-counted view.
//!
//! ```
//! # fn main() -> lsm_core::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! use lsm_core::{Db, Options, WriteBatch};
//!
//! let db = Db::open(dir.path(), Options::default())?;
//! db.put(b"apple", b"red")?;
//! let mut batch = WriteBatch::new();
//! batch.put(b"banana", b"yellow");
//! batch.delete(b"apple");
//! db.write(batch)?; // atomic
//! assert_eq!(db.get(b"apple")?, None);
//! for item in db.range(&b"a"[..]..&b"c"[..]) {
//!     let (key, value) = item?;
//!     assert_eq!((&key[..], &value[..]), (&b"banana"[..], &b"yellow"[..]));
//! }
//! db.close()?;
//! # Ok(()) }
//! ```
//!
//! Limits: keys up to [`MAX_KEY_BYTES`], values up to [`MAX_VALUE_BYTES`], batches up to
//! [`MAX_BATCH_BYTES`]. Durability is chosen with [`Options::durability`]; see
//! `docs/durability.md`.

mod admission;
mod batch;
mod coding;
mod compaction;
mod db;
mod error;
mod files;
#[doc(hidden)]
pub mod fuzzing;
pub mod inspect;
#[doc(hidden)]
pub mod internals;
pub mod io;
mod iter;
mod manifest;
mod memtable;
mod options;
mod skiplist;
mod sstable;
mod stats;
mod types;
mod version;
mod wal;

pub use batch::{WriteBatch, MAX_BATCH_BYTES};
pub use bytes::Bytes;
pub use db::{Db, Snapshot};
pub use error::{Error, Result};
pub use iter::Iter;
pub use options::{Durability, Options};
pub use stats::{LevelStats, Stats};
pub use types::{MAX_KEY_BYTES, MAX_VALUE_BYTES};

/// The README's examples are compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
