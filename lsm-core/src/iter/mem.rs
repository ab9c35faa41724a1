//! [`MemIter`]: an owned iterator over a memtable, reading the skip list in chunks so it
//! holds no borrow of it.

use std::cmp::Reverse;
use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;

use super::InternalIter;
use crate::error::Result;
use crate::memtable::{MemKey, Memtable, UserKey};
use crate::types::{encode_internal, split_internal};

/// Entries copied by the first refill after a seek: a short range read (seek, then a few
/// `next`s, with most entries coming from other sources) copies little.
const FIRST_CHUNK: usize = 8;
/// Each further refill copies twice as many, up to this many: a long scan pays one skip
/// list search per this many entries.
const MAX_CHUNK: usize = 256;

#[derive(Debug)]
pub(crate) struct MemIter {
    mem: Arc<Memtable>,
    buf: Vec<(MemKey, Bytes)>,
    /// Entries the next refill asks for.
    chunk: usize,
    pos: usize,
    key: Vec<u8>,
    exhausted: bool,
}

impl MemIter {
    pub(crate) fn new(mem: Arc<Memtable>) -> Self {
        MemIter {
            mem,
            buf: Vec::new(),
            chunk: FIRST_CHUNK,
            pos: 0,
            key: Vec::new(),
            exhausted: true,
        }
    }

    fn refill(&mut self, from: Bound<&MemKey>) {
        // The buffer is reused: one allocation per iterator, not per chunk.
        self.buf.clear();
        self.mem.fill(from, self.chunk, &mut self.buf);
        self.exhausted = self.buf.len() < self.chunk;
        self.chunk = (self.chunk * 2).min(MAX_CHUNK);
        self.pos = 0;
        self.encode_current();
    }

    fn encode_current(&mut self) {
        self.key.clear();
        if let Some((k, _)) = self.buf.get(self.pos) {
            encode_internal(&mut self.key, &k.key, k.trailer());
        }
    }
}

impl InternalIter for MemIter {
    fn valid(&self) -> bool {
        self.pos < self.buf.len()
    }

    fn key(&self) -> &[u8] {
        &self.key
    }

    fn value(&self) -> Bytes {
        self.buf[self.pos].1.clone()
    }

    fn value_slice(&self) -> &[u8] {
        &self.buf[self.pos].1
    }

    fn next(&mut self) -> Result<()> {
        self.pos += 1;
        if self.pos >= self.buf.len() && !self.exhausted {
            if let Some((last, _)) = self.buf.last().cloned() {
                self.refill(Bound::Excluded(&last));
                return Ok(());
            }
        }
        self.encode_current();
        Ok(())
    }

    fn seek(&mut self, target: &[u8]) -> Result<()> {
        let (k, t) = split_internal(target).unwrap_or((target, u64::MAX));
        let probe = MemKey {
            key: UserKey::from_slice(k),
            rev_trailer: Reverse(t),
        };
        self.chunk = FIRST_CHUNK;
        self.refill(Bound::Included(&probe));
        Ok(())
    }
}
