//! [`MemIter`]: an owned iterator over a memtable. It holds the memtable's `Arc` and a
//! position in its skip list: nodes never move while the memtable lives, so keys and
//! values are lent straight from its arena, with nothing copied per entry.

use std::sync::Arc;

use bytes::Bytes;

use super::InternalIter;
use crate::error::Result;
use crate::memtable::Memtable;
use crate::skiplist::Pos;
use crate::types::split_internal;

#[derive(Debug)]
pub(crate) struct MemIter {
    mem: Arc<Memtable>,
    pos: Option<Pos>,
}

impl MemIter {
    /// An unpositioned iterator (not valid until a seek).
    pub(crate) fn new(mem: Arc<Memtable>) -> Self {
        MemIter { mem, pos: None }
    }

    /// The current entry; empty when not valid.
    fn entry(&self) -> (&[u8], &[u8]) {
        match self.pos {
            Some(pos) => self.mem.list().entry(pos),
            None => (&[], &[]),
        }
    }
}

impl InternalIter for MemIter {
    fn valid(&self) -> bool {
        self.pos.is_some()
    }

    fn key(&self) -> &[u8] {
        self.entry().0
    }

    fn value(&self) -> Bytes {
        Bytes::copy_from_slice(self.entry().1)
    }

    fn value_slice(&self) -> &[u8] {
        self.entry().1
    }

    fn next(&mut self) -> Result<()> {
        if let Some(pos) = self.pos {
            self.pos = self.mem.list().after(pos);
        }
        Ok(())
    }

    fn seek(&mut self, target: &[u8]) -> Result<()> {
        self.pos = match split_internal(target) {
            Some((k, t)) => self.mem.list().seek(k, t),
            // Shorter than a trailer: before every internal key with this prefix.
            None => self.mem.list().seek(target, u64::MAX),
        };
        Ok(())
    }
}
