//! [`LevelIter`]: iterates a sorted run of non-overlapping tables (one L1+ level, or a
//! single L0 table), opening one table at a time.

use std::sync::Arc;

use bytes::Bytes;

use super::InternalIter;
use crate::error::Result;
use crate::sstable::TableIter;
use crate::types::split_internal;
use crate::version::TableHandle;

#[derive(Debug)]
pub(crate) struct LevelIter {
    tables: Vec<Arc<TableHandle>>,
    index: usize,
    current: Option<TableIter>,
}

impl LevelIter {
    pub(crate) fn new(tables: Vec<Arc<TableHandle>>) -> Self {
        LevelIter {
            tables,
            index: 0,
            current: None,
        }
    }

    /// Opens table `i` at its first entry, moving on past empty ones.
    fn open_from(&mut self, mut i: usize) -> Result<()> {
        loop {
            let Some(t) = self.tables.get(i) else {
                self.current = None;
                self.index = i;
                return Ok(());
            };
            let mut it = TableIter::new(t.table.clone());
            it.seek_to_first()?;
            if it.valid() {
                self.current = Some(it);
                self.index = i;
                return Ok(());
            }
            i += 1;
        }
    }
}

impl InternalIter for LevelIter {
    fn valid(&self) -> bool {
        self.current.as_ref().is_some_and(TableIter::valid)
    }

    fn key(&self) -> &[u8] {
        self.current.as_ref().map_or(&[], |c| c.key())
    }

    fn value(&self) -> Bytes {
        self.current
            .as_ref()
            .map(TableIter::value)
            .unwrap_or_default()
    }

    fn value_slice(&self) -> &[u8] {
        self.current.as_ref().map_or(&[], TableIter::value_slice)
    }

    fn next(&mut self) -> Result<()> {
        if let Some(c) = self.current.as_mut() {
            c.next()?;
            if !c.valid() {
                return self.open_from(self.index + 1);
            }
        }
        Ok(())
    }

    fn seek(&mut self, target: &[u8]) -> Result<()> {
        let user_key = split_internal(target).map_or(target, |(k, _)| k);
        let i = self
            .tables
            .partition_point(|t| t.meta.largest.as_slice() < user_key);
        let Some(t) = self.tables.get(i) else {
            self.current = None;
            self.index = i;
            return Ok(());
        };
        let mut it = TableIter::new(t.table.clone());
        it.seek(target)?;
        if it.valid() {
            self.current = Some(it);
            self.index = i;
            Ok(())
        } else {
            self.open_from(i + 1)
        }
    }
}
