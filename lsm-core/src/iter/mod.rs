//! Iterators over internal entries, and the public point-in-time [`Iter`].
//!
//! Every source yields encoded internal keys (`user key ++ trailer`) in internal order:
//! [`MemIter`] over a memtable, [`LevelIter`] over a run of non-overlapping tables,
//! [`MergeIter`] over any number of sources. [`Iter`] turns the merged stream into user
//! entries at a snapshot sequence, skipping shadowed versions and tombstones.
//! Invariant: every iterator owns `Arc`s of what it reads, so it is a stable view no
//! matter what flush and compaction do meanwhile.

mod db_iter;
mod level;
mod mem;
mod merge;

pub(crate) use db_iter::prefix_successor;
pub use db_iter::Iter;
pub(crate) use level::LevelIter;
pub(crate) use mem::MemIter;
pub(crate) use merge::MergeIter;

use bytes::Bytes;

use crate::error::Result;

/// A sorted source of internal entries.
pub(crate) trait InternalIter: Send + std::fmt::Debug {
    fn valid(&self) -> bool;
    /// The current encoded internal key; only meaningful when `valid()`.
    fn key(&self) -> &[u8];
    fn value(&self) -> Bytes;
    /// The current value, borrowed (no reference count taken); only meaningful when
    /// `valid()`.
    fn value_slice(&self) -> &[u8];
    fn next(&mut self) -> Result<()>;
    /// Positions at the first entry `>= target`.
    fn seek(&mut self, target: &[u8]) -> Result<()>;
}
