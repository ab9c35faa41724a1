//! [`Table`]: a verified, read-only view of one SSTable over a byte slice (an mmap in the
//! engine, a `Vec` in tests and fuzzers), with point lookups and an owned iterator.
//!
//! Invariants: header, footer, index, filter and properties are verified at open; each
//! data block's checksum is verified the first time it is read (a bit per block records
//! it, the file being immutable). Every decode error becomes `Error::Corruption` naming
//! the file and the absolute offset.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use crate::coding::{checksum, u32_at, u64_at, DecodeError, Reader};
use crate::error::{Error, Result};
use crate::memtable::Lookup;
use crate::types::{encode_internal, seek_trailer, split_internal, trailer_kind, Kind, SeqNo};

use super::block::{Block, BlockIter};
use super::bloom::Bloom;
use super::{
    BlockHandle, Footer, TableProps, BLOCK_TRAILER_BYTES, SST_FOOTER_BYTES, SST_HEADER_BYTES,
    SST_HEADER_MAGIC, SST_VERSION,
};

/// An open table.
#[derive(Debug)]
pub(crate) struct Table {
    path: PathBuf,
    data: Bytes,
    index: Block,
    filter: BlockHandle,
    props: TableProps,
    /// One bit per data block: checksum already verified.
    verified: Vec<AtomicU64>,
}

impl Table {
    /// Verifies the fixed parts of the table in `data` (the whole file).
    pub(crate) fn open(path: &Path, data: Bytes) -> Result<Table> {
        let corrupt = |offset: u64, reason: String| Error::corruption(path, offset, reason);
        let len = data.len();
        if len < SST_HEADER_BYTES + SST_FOOTER_BYTES {
            return Err(corrupt(
                0,
                format!("file of {len} bytes is too short for a table"),
            ));
        }
        if data[..8] != SST_HEADER_MAGIC {
            return Err(corrupt(0, "bad table magic".into()));
        }
        let header_version = u32_at(&data, 8);
        if header_version != SST_VERSION {
            return Err(Error::UnsupportedVersion {
                file: path.to_path_buf(),
                found: header_version,
                supported: SST_VERSION,
            });
        }
        if u32_at(&data, 12) != 0 {
            return Err(corrupt(12, "reserved header field is not zero".into()));
        }
        let footer_at = len - SST_FOOTER_BYTES;
        let footer = Footer::decode(&data[footer_at..])
            .map_err(|(off, reason)| corrupt((footer_at + off) as u64, reason))?;
        if footer.version != SST_VERSION {
            return Err(Error::UnsupportedVersion {
                file: path.to_path_buf(),
                found: footer.version,
                supported: SST_VERSION,
            });
        }
        let body_end = footer_at as u64;
        let check = |h: BlockHandle, what: &str| -> Result<Bytes> {
            read_block(path, &data, h, body_end, what)
        };
        let index_bytes = check(footer.index, "index block")?;
        let index = Block::parse(index_bytes).map_err(|e| {
            corrupt(
                footer.index.offset + e.offset as u64,
                format!("index block: {}", e.reason),
            )
        })?;
        let filter_bytes = check(footer.filter, "filter block")?;
        Bloom::decode(&filter_bytes)
            .map_err(|e| corrupt(footer.filter.offset + e.offset as u64, e.reason))?;
        let props_bytes = check(footer.props, "properties block")?;
        let props = TableProps::decode(&props_bytes)
            .map_err(|e| corrupt(footer.props.offset + e.offset as u64, e.reason))?;
        if props.data_blocks != index.num_restarts() as u64 {
            return Err(corrupt(
                footer.index.offset,
                format!(
                    "index has {} entries, properties say {} data blocks",
                    index.num_restarts(),
                    props.data_blocks
                ),
            ));
        }
        // One index entry per restart point, as the writer makes it: data blocks are
        // then numbered by restart index, which the verified-block bits rely on.
        let mut entries = 0usize;
        let mut it = index.iter();
        let mut step = it.seek_to_first();
        while step.is_ok() && it.valid() && entries <= index.num_restarts() {
            entries += 1;
            step = it.next();
        }
        step.map_err(|e| {
            corrupt(
                footer.index.offset + e.offset as u64,
                format!("index block: {}", e.reason),
            )
        })?;
        if entries != index.num_restarts() {
            return Err(corrupt(
                footer.index.offset,
                format!(
                    "index block has {entries} entries but {} restart points",
                    index.num_restarts()
                ),
            ));
        }
        let words = (props.data_blocks as usize).div_ceil(64);
        Ok(Table {
            path: path.to_path_buf(),
            data,
            index,
            filter: footer.filter,
            props,
            verified: (0..words).map(|_| AtomicU64::new(0)).collect(),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn props(&self) -> &TableProps {
        &self.props
    }

    fn corrupt(&self, offset: u64, reason: impl Into<String>) -> Error {
        Error::corruption(&self.path, offset, reason)
    }

    /// The bloom filter's verdict for a key hash.
    pub(crate) fn may_contain(&self, hash: u64) -> bool {
        let start = self.filter.offset as usize;
        let bytes = &self.data[start..start + self.filter.len as usize];
        Bloom::decode(bytes)
            .map(|b| b.may_contain(hash))
            .unwrap_or(true)
    }

    fn index_error(&self, e: DecodeError) -> Error {
        // Index offsets are relative to the index block; the index handle is not kept, so
        // report against the footer-verified block start recovered from the slice.
        let DecodeError { offset, reason } = e;
        self.corrupt(
            self.index_offset() + offset as u64,
            format!("index block: {reason}"),
        )
    }

    fn index_offset(&self) -> u64 {
        let footer_at = self.data.len() - SST_FOOTER_BYTES;
        u64_at(&self.data, footer_at)
    }

    /// Decodes the handle stored in an index entry.
    fn handle_of(&self, it: &BlockIter) -> Result<BlockHandle> {
        let mut r = Reader::new(it.value_slice());
        let h = (|| -> Result<BlockHandle, DecodeError> {
            Ok(BlockHandle {
                offset: r.varint("block offset")?,
                len: r.varint("block length")?,
            })
        })()
        .map_err(|e| self.index_error(e))?;
        Ok(h)
    }

    /// Loads data block `ordinal` whose handle is `h`, verifying its checksum once.
    fn data_block(&self, ordinal: usize, h: BlockHandle) -> Result<Block> {
        let (word, bit) = (ordinal / 64, 1u64 << (ordinal % 64));
        let body_end = (self.data.len() - SST_FOOTER_BYTES) as u64;
        let verified = self
            .verified
            .get(word)
            .is_some_and(|w| w.load(Ordering::Relaxed) & bit != 0);
        let bytes = if verified {
            // Verified before under this ordinal; the handle is still range-checked,
            // so no index entry can make a slice reach outside the file.
            match h.offset.checked_add(h.len) {
                Some(end) if h.offset >= SST_HEADER_BYTES as u64 && end <= body_end => {
                    self.data.slice(h.offset as usize..end as usize)
                }
                _ => {
                    return Err(self.corrupt(
                        h.offset,
                        format!(
                            "data block handle ({}, {}) outside the table body",
                            h.offset, h.len
                        ),
                    ))
                }
            }
        } else {
            let b = read_block(&self.path, &self.data, h, body_end, "data block")?;
            if let Some(w) = self.verified.get(word) {
                w.fetch_or(bit, Ordering::Relaxed);
            }
            b
        };
        Block::parse(bytes).map_err(|e| {
            self.corrupt(
                h.offset + e.offset as u64,
                format!("data block: {}", e.reason),
            )
        })
    }

    /// The newest version of `key` visible at `seq` in this table. The caller has
    /// already consulted the bloom filter and the key range.
    pub(crate) fn get(&self, key: &[u8], seq: SeqNo) -> Result<Option<Lookup>> {
        let mut target = Vec::with_capacity(key.len() + 8);
        encode_internal(&mut target, key, seek_trailer(seq));
        let mut idx = self.index.iter();
        idx.seek(&target).map_err(|e| self.index_error(e))?;
        if !idx.valid() {
            return Ok(None);
        }
        let ordinal = idx.restart_index();
        let h = self.handle_of(&idx)?;
        let block = self.data_block(ordinal, h)?;
        let mut it = block.iter();
        it.seek(&target).map_err(|e| {
            self.corrupt(
                h.offset + e.offset as u64,
                format!("data block: {}", e.reason),
            )
        })?;
        if !it.valid() {
            return Ok(None);
        }
        let Some((k, t)) = split_internal(it.key()) else {
            return Err(self.corrupt(h.offset, "internal key shorter than its trailer"));
        };
        if k != key {
            return Ok(None);
        }
        match trailer_kind(t) {
            Some(Kind::Value) => Ok(Some(Lookup::Value(it.value()))),
            Some(Kind::Tombstone) => Ok(Some(Lookup::Deleted)),
            None => Err(self.corrupt(h.offset, format!("unknown entry kind in trailer {t:#x}"))),
        }
    }
}

/// Returns the verified bytes of block `h` (without its checksum).
fn read_block(
    path: &Path,
    data: &Bytes,
    h: BlockHandle,
    body_end: u64,
    what: &str,
) -> Result<Bytes> {
    let end = h
        .offset
        .checked_add(h.len)
        .and_then(|e| e.checked_add(BLOCK_TRAILER_BYTES as u64));
    match end {
        Some(end) if h.offset >= SST_HEADER_BYTES as u64 && end <= body_end => {}
        _ => {
            return Err(Error::corruption(
                path,
                h.offset,
                format!(
                    "{what} handle (offset {}, length {}) lies outside the table body",
                    h.offset, h.len
                ),
            ))
        }
    }
    let (start, end) = (h.offset as usize, (h.offset + h.len) as usize);
    let stored = u64_at(data, end);
    let actual = checksum(&data[start..end]);
    if stored != actual {
        return Err(Error::corruption(
            path,
            h.offset,
            format!("{what} checksum mismatch: stored {stored:#018x}, computed {actual:#018x}"),
        ));
    }
    Ok(data.slice(start..end))
}

/// An owned iterator over a table's internal entries.
#[derive(Debug)]
pub(crate) struct TableIter {
    table: std::sync::Arc<Table>,
    index: BlockIter,
    block: Option<BlockIter>,
    block_offset: u64,
}

impl TableIter {
    pub(crate) fn new(table: std::sync::Arc<Table>) -> Self {
        let index = table.index.iter();
        TableIter {
            table,
            index,
            block: None,
            block_offset: 0,
        }
    }

    pub(crate) fn valid(&self) -> bool {
        self.block.as_ref().is_some_and(BlockIter::valid)
    }

    /// The current encoded internal key.
    pub(crate) fn key(&self) -> &[u8] {
        self.block.as_ref().map_or(&[], |b| b.key())
    }

    pub(crate) fn value_slice(&self) -> &[u8] {
        self.block.as_ref().map_or(&[], BlockIter::value_slice)
    }

    pub(crate) fn value(&self) -> Bytes {
        self.block
            .as_ref()
            .map(BlockIter::value)
            .unwrap_or_default()
    }

    fn data_err(&self, e: DecodeError) -> Error {
        let DecodeError { offset, reason } = e;
        self.table.corrupt(
            self.block_offset + offset as u64,
            format!("data block: {reason}"),
        )
    }

    /// Opens the data block the index currently points at.
    fn load_block(&mut self) -> Result<()> {
        if !self.index.valid() {
            self.block = None;
            return Ok(());
        }
        let h = self.table.handle_of(&self.index)?;
        let block = self.table.data_block(self.index.restart_index(), h)?;
        self.block_offset = h.offset;
        self.block = Some(block.iter());
        Ok(())
    }

    /// Moves past exhausted blocks.
    fn skip_empty_blocks(&mut self) -> Result<()> {
        while self.block.as_ref().is_some_and(|b| !b.valid()) {
            self.index.next().map_err(|e| self.table.index_error(e))?;
            self.load_block()?;
            if let Some(b) = self.block.as_mut() {
                let r = b.seek_to_first();
                r.map_err(|e| self.data_err(e))?;
            }
        }
        Ok(())
    }

    pub(crate) fn seek_to_first(&mut self) -> Result<()> {
        self.index
            .seek_to_first()
            .map_err(|e| self.table.index_error(e))?;
        self.load_block()?;
        if let Some(b) = self.block.as_mut() {
            let r = b.seek_to_first();
            r.map_err(|e| self.data_err(e))?;
        }
        self.skip_empty_blocks()
    }

    /// Positions at the first entry `>= target` (an encoded internal key).
    pub(crate) fn seek(&mut self, target: &[u8]) -> Result<()> {
        self.index
            .seek(target)
            .map_err(|e| self.table.index_error(e))?;
        self.load_block()?;
        if let Some(b) = self.block.as_mut() {
            let r = b.seek(target);
            r.map_err(|e| self.data_err(e))?;
        }
        self.skip_empty_blocks()
    }

    pub(crate) fn next(&mut self) -> Result<()> {
        if let Some(b) = self.block.as_mut() {
            let r = b.next();
            r.map_err(|e| self.data_err(e))?;
        }
        self.skip_empty_blocks()
    }
}

#[cfg(test)]
mod tests {
    use super::super::builder::TableOptions;
    use super::super::TableBuilder;
    use super::*;
    use crate::io::{FileSystem, StdFs};
    use std::sync::Arc;

    fn build(dir: &Path, n: usize) -> (PathBuf, Vec<u8>) {
        let path = dir.join("000001.sst");
        let opts = TableOptions {
            block_size_bytes: 256,
            restart_interval: 4,
            bloom_bits_per_key: 10,
        };
        let mut b = TableBuilder::create(&StdFs, &path, opts).unwrap();
        for i in 0..n {
            let key = format!("key{i:05}");
            if i % 7 == 0 {
                b.add(key.as_bytes(), 100 + i as u64, Kind::Tombstone, b"")
                    .unwrap();
            }
            b.add(
                key.as_bytes(),
                1 + i as u64 % 90,
                Kind::Value,
                format!("value{i}").as_bytes(),
            )
            .unwrap();
        }
        b.finish().unwrap();
        let bytes = StdFs.read(&path).unwrap();
        (path, bytes)
    }

    #[test]
    fn round_trip_get_and_iterate() {
        let dir = tempfile::tempdir().unwrap();
        let (path, bytes) = build(dir.path(), 500);
        let t = Arc::new(Table::open(&path, Bytes::from(bytes)).unwrap());
        assert_eq!(t.props().smallest, b"key00000");
        assert_eq!(t.props().largest, b"key00499");
        assert!(t.props().data_blocks > 10);
        for i in 0..500 {
            let key = format!("key{i:05}");
            let got = t.get(key.as_bytes(), SeqNo::MAX >> 8).unwrap();
            if i % 7 == 0 {
                assert_eq!(got, Some(Lookup::Deleted), "{key}");
                // below the tombstone the value shows
                let older = t.get(key.as_bytes(), 99).unwrap();
                assert_eq!(older, Some(Lookup::Value(Bytes::from(format!("value{i}")))));
            } else {
                assert_eq!(got, Some(Lookup::Value(Bytes::from(format!("value{i}")))));
            }
            assert!(t.may_contain(super::super::bloom::bloom_hash(key.as_bytes())));
        }
        assert_eq!(t.get(b"key00500", 1 << 40).unwrap(), None);
        assert_eq!(t.get(b"a", 1 << 40).unwrap(), None);
        let mut it = TableIter::new(t.clone());
        it.seek_to_first().unwrap();
        let mut n = 0;
        while it.valid() {
            n += 1;
            it.next().unwrap();
        }
        assert_eq!(n as u64, t.props().entries);
        let mut target = Vec::new();
        encode_internal(&mut target, b"key00250", seek_trailer(1 << 40));
        it.seek(&target).unwrap();
        assert_eq!(split_internal(it.key()).unwrap().0, b"key00250");
    }

    /// Flips one byte at sampled offsets: opening, every get and a full scan either fail
    /// with a corruption error or return exactly the original data.
    #[test]
    fn flipped_bytes_are_detected() {
        let dir = tempfile::tempdir().unwrap();
        let (path, bytes) = build(dir.path(), 200);
        let good = Arc::new(Table::open(&path, Bytes::from(bytes.clone())).unwrap());
        let scan = |t: &Arc<Table>| -> Result<Vec<(Vec<u8>, Bytes)>> {
            let mut it = TableIter::new(t.clone());
            it.seek_to_first()?;
            let mut out = Vec::new();
            while it.valid() {
                out.push((it.key().to_vec(), it.value()));
                it.next()?;
            }
            Ok(out)
        };
        let expected = scan(&good).unwrap();
        for at in (0..bytes.len()).step_by(3) {
            let mut bad = bytes.clone();
            bad[at] ^= 0x10;
            let t = match Table::open(&path, Bytes::from(bad)) {
                Ok(t) => Arc::new(t),
                Err(e) => {
                    assert!(e.is_corruption(), "{e}");
                    continue;
                }
            };
            match scan(&t) {
                Ok(got) => assert_eq!(got, expected, "flip at {at} changed the data"),
                Err(e) => assert!(e.is_corruption(), "{e}"),
            }
        }
        for len in (0..bytes.len()).step_by(17) {
            let err = Table::open(&path, Bytes::copy_from_slice(&bytes[..len])).unwrap_err();
            assert!(err.is_corruption(), "{err}");
        }
    }
}
