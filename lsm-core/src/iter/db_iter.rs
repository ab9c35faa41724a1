//! [`Iter`]: the public iterator of [`crate::Db::range`] and friends.

use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;

use super::{InternalIter, LevelIter, MemIter, MergeIter};
use crate::error::{Error, Result};
use crate::types::{
    encode_internal, seek_trailer, split_internal, trailer_kind, trailer_seq, Kind, SeqNo,
    MAX_SEQNO,
};
use crate::version::SuperVersion;

/// A point-in-time iterator over user entries in key order, yielding `(key, value)` pairs
/// as [`Bytes`] (they deref to `[u8]`). Writes made after the iterator was created are
/// not seen. An I/O or corruption error is yielded once, then the iterator ends.
///
/// [`Iter::next_ref`] is the same walk without copies: it lends the key and value until
/// the next call, for callers that only look at each entry (a scan that sums, encodes or
/// filters) and so need not pay for an owned key per entry.
#[derive(Debug)]
pub struct Iter {
    merged: MergeIter,
    seq: SeqNo,
    upper: Bound<Vec<u8>>,
    /// The user key of the last entry returned or skipped (valid when `has_last`); older
    /// versions of it are skipped. The buffer is reused from entry to entry.
    last_key: Vec<u8>,
    has_last: bool,
    advance: bool,
    pending_error: Option<Error>,
    done: bool,
    // Held so that the memtables and tables stay alive while iterating.
    _pin: Arc<SuperVersion>,
}

impl Iter {
    pub(crate) fn new(
        sv: Arc<SuperVersion>,
        seq: SeqNo,
        lower: Bound<Vec<u8>>,
        upper: Bound<Vec<u8>>,
    ) -> Iter {
        let mut children: Vec<Box<dyn InternalIter>> = Vec::new();
        children.push(Box::new(MemIter::new(sv.active.clone())));
        for m in &sv.sealed {
            children.push(Box::new(MemIter::new(m.clone())));
        }
        for t in &sv.version.levels[0] {
            children.push(Box::new(LevelIter::new(vec![t.clone()])));
        }
        for level in sv.version.levels.iter().skip(1) {
            if !level.is_empty() {
                children.push(Box::new(LevelIter::new(level.clone())));
            }
        }
        let mut it = Iter {
            merged: MergeIter::new(children),
            seq: seq.min(MAX_SEQNO),
            upper,
            last_key: Vec::new(),
            has_last: false,
            advance: false,
            pending_error: None,
            done: false,
            _pin: sv,
        };
        let mut target = Vec::new();
        let start: &[u8] = match &lower {
            Bound::Included(k) | Bound::Excluded(k) => k,
            Bound::Unbounded => &[],
        };
        encode_internal(&mut target, start, seek_trailer(MAX_SEQNO));
        if let Bound::Excluded(k) = lower {
            it.last_key = k;
            it.has_last = true;
        }
        if let Err(e) = it.merged.seek(&target) {
            it.pending_error = Some(e);
        }
        it
    }

    /// An iterator that yields `e` and ends.
    pub(crate) fn with_error(mut self, e: Error) -> Iter {
        self.pending_error = Some(e);
        self
    }

    fn past_upper(&self, key: &[u8]) -> bool {
        match &self.upper {
            Bound::Included(u) => key > u.as_slice(),
            Bound::Excluded(u) => key >= u.as_slice(),
            Bound::Unbounded => false,
        }
    }

    /// Moves to the next visible entry: `true` with its user key in `last_key` and the
    /// merged iterator on it, `false` at the end.
    fn step(&mut self) -> Result<bool> {
        if self.advance {
            self.advance = false;
            self.merged.next()?;
        }
        loop {
            if !self.merged.valid() {
                return Ok(false);
            }
            let ikey = self.merged.key();
            let Some((key, trailer)) = split_internal(ikey) else {
                return Err(Error::corruption(
                    "<iterator>",
                    0,
                    "internal key shorter than its trailer",
                ));
            };
            if self.past_upper(key) {
                return Ok(false);
            }
            let skip = trailer_seq(trailer) > self.seq || (self.has_last && self.last_key == key);
            if skip {
                self.merged.next()?;
                continue;
            }
            self.last_key.clear();
            self.last_key.extend_from_slice(key);
            self.has_last = true;
            if trailer_kind(trailer) != Some(Kind::Value) {
                self.merged.next()?;
                continue;
            }
            self.advance = true;
            return Ok(true);
        }
    }

    /// Positions on the next entry: `None` once ended, `Some(Err)` once on an error.
    fn advance_entry(&mut self) -> Option<Result<()>> {
        if self.done {
            return None;
        }
        if let Some(e) = self.pending_error.take() {
            self.done = true;
            return Some(Err(e));
        }
        match self.step() {
            Ok(true) => Some(Ok(())),
            Ok(false) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }

    /// The next entry, lent until the next call: like [`Iterator::next`] but without
    /// copying the key or taking a reference on the value (values read from a table are
    /// slices of its memory map). Mixing the two kinds of calls is fine; each moves one
    /// entry on.
    ///
    /// ```
    /// # fn main() -> lsm_core::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let db = lsm_core::Db::open(dir.path(), lsm_core::Options::default())?;
    /// db.put("a", "1")?;
    /// db.put("b", "22")?;
    /// let mut it = db.iter();
    /// let mut bytes = 0;
    /// while let Some(entry) = it.next_ref() {
    ///     let (key, value) = entry?;
    ///     bytes += key.len() + value.len();
    /// }
    /// assert_eq!(bytes, 5);
    /// # Ok(())
    /// # }
    /// ```
    pub fn next_ref(&mut self) -> Option<Result<(&[u8], &[u8])>> {
        Some(match self.advance_entry()? {
            Ok(()) => Ok((&self.last_key, self.merged.value_slice())),
            Err(e) => Err(e),
        })
    }
}

impl Iterator for Iter {
    type Item = Result<(Bytes, Bytes)>;

    fn next(&mut self) -> Option<Self::Item> {
        Some(match self.advance_entry()? {
            Ok(()) => Ok((Bytes::copy_from_slice(&self.last_key), self.merged.value())),
            Err(e) => Err(e),
        })
    }
}

/// The smallest key greater than every key starting with `prefix`, if any.
pub(crate) fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut p = prefix.to_vec();
    while let Some(last) = p.pop() {
        if last != 0xff {
            p.push(last + 1);
            return Some(p);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::prefix_successor;

    #[test]
    fn prefix_successors() {
        assert_eq!(prefix_successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_successor(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_successor(b"\xff\xff"), None);
        assert_eq!(prefix_successor(b""), None);
    }
}
