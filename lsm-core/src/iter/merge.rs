//! [`MergeIter`]: merges sorted sources into one sorted stream. Sources are listed newest
//! first; internal keys are unique (distinct sequence numbers), so ties cannot occur
//! between correct sources, and if they do the newer source wins.

use bytes::Bytes;

use super::InternalIter;
use crate::error::Result;
use crate::types::cmp_encoded;

#[derive(Debug)]
pub(crate) struct MergeIter {
    children: Vec<Box<dyn InternalIter>>,
    current: Option<usize>,
}

impl MergeIter {
    pub(crate) fn new(children: Vec<Box<dyn InternalIter>>) -> Self {
        MergeIter {
            children,
            current: None,
        }
    }

    /// Picks the child with the smallest key. Sources are few (memtables, L0 tables and
    /// one per deeper level), so a linear scan beats a heap's bookkeeping.
    fn pick(&mut self) {
        let mut best: Option<usize> = None;
        for (i, c) in self.children.iter().enumerate() {
            if !c.valid() {
                continue;
            }
            best = match best {
                Some(b) if cmp_encoded(self.children[b].key(), c.key()).is_le() => Some(b),
                _ => Some(i),
            };
        }
        self.current = best;
    }
}

impl InternalIter for MergeIter {
    fn valid(&self) -> bool {
        self.current.is_some()
    }

    fn key(&self) -> &[u8] {
        self.current.map_or(&[], |i| self.children[i].key())
    }

    fn value(&self) -> Bytes {
        self.current
            .map(|i| self.children[i].value())
            .unwrap_or_default()
    }

    fn next(&mut self) -> Result<()> {
        if let Some(i) = self.current {
            self.children[i].next()?;
        }
        self.pick();
        Ok(())
    }

    fn seek(&mut self, target: &[u8]) -> Result<()> {
        for c in &mut self.children {
            c.seek(target)?;
        }
        self.pick();
        Ok(())
    }
}
