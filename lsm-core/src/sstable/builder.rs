//! [`TableBuilder`]: streams sorted entries into a new SSTable file.

use std::path::{Path, PathBuf};

use crate::coding::{checksum, put_u64, put_varint};
use crate::error::{IoContext, Result};
use crate::io::{FileSystem, WritableFile};
use crate::types::{encode_internal, trailer, Kind, SeqNo};

use super::block::BlockBuilder;
use super::bloom::{self, bloom_hash};
use super::{encode_header, BlockHandle, Footer, TableProps, SST_VERSION};

/// Settings that shape a table.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TableOptions {
    pub(crate) block_size_bytes: usize,
    pub(crate) restart_interval: usize,
    pub(crate) bloom_bits_per_key: usize,
}

/// Writes one table. Entries must arrive in strictly increasing internal-key order.
#[derive(Debug)]
pub(crate) struct TableBuilder {
    file: Box<dyn WritableFile>,
    path: PathBuf,
    opts: TableOptions,
    offset: u64,
    data: BlockBuilder,
    index: BlockBuilder,
    hashes: Vec<u64>,
    last_user_key: Option<Vec<u8>>,
    props: TableProps,
    key_buf: Vec<u8>,
    scratch: Vec<u8>,
}

impl TableBuilder {
    pub(crate) fn create(fs: &dyn FileSystem, path: &Path, opts: TableOptions) -> Result<Self> {
        let mut file = fs
            .create(path)
            .ctx(|| format!("creating table {}", path.display()))?;
        let header = encode_header();
        file.write_all(&header)
            .ctx(|| format!("writing table {}", path.display()))?;
        Ok(TableBuilder {
            file,
            path: path.to_path_buf(),
            opts,
            offset: header.len() as u64,
            data: BlockBuilder::new(opts.restart_interval),
            index: BlockBuilder::new(1),
            hashes: Vec::new(),
            last_user_key: None,
            props: TableProps {
                min_seq: SeqNo::MAX,
                ..TableProps::default()
            },
            key_buf: Vec::new(),
            scratch: Vec::new(),
        })
    }

    /// Bytes written so far plus the open block.
    pub(crate) fn estimated_len(&self) -> u64 {
        self.offset + self.data.estimated_len() as u64
    }

    pub(crate) fn entries(&self) -> u64 {
        self.props.entries
    }

    pub(crate) fn add(
        &mut self,
        user_key: &[u8],
        seq: SeqNo,
        kind: Kind,
        value: &[u8],
    ) -> Result<()> {
        self.key_buf.clear();
        encode_internal(&mut self.key_buf, user_key, trailer(seq, kind));
        if self.last_user_key.as_deref() != Some(user_key) {
            self.hashes.push(bloom_hash(user_key));
            if self.props.entries == 0 {
                self.props.smallest = user_key.to_vec();
            }
            self.last_user_key = Some(user_key.to_vec());
        }
        self.props.entries += 1;
        if kind == Kind::Tombstone {
            self.props.tombstones += 1;
        }
        self.props.min_seq = self.props.min_seq.min(seq);
        self.props.max_seq = self.props.max_seq.max(seq);
        self.props.raw_key_bytes += user_key.len() as u64;
        self.props.raw_value_bytes += value.len() as u64;
        self.data.add(&self.key_buf, value);
        if self.data.estimated_len() >= self.opts.block_size_bytes {
            self.finish_data_block()?;
        }
        Ok(())
    }

    fn write_block(&mut self, block: &[u8]) -> Result<BlockHandle> {
        let handle = BlockHandle {
            offset: self.offset,
            len: block.len() as u64,
        };
        self.scratch.clear();
        self.scratch.extend_from_slice(block);
        put_u64(&mut self.scratch, checksum(block));
        self.file
            .write_all(&self.scratch)
            .ctx(|| format!("writing table {}", self.path.display()))?;
        self.offset += self.scratch.len() as u64;
        Ok(handle)
    }

    fn finish_data_block(&mut self) -> Result<()> {
        if self.data.is_empty() {
            return Ok(());
        }
        let last_key = self.data.last_key().to_vec();
        let block = self.data.finish();
        let handle = self.write_block(&block)?;
        let mut v = Vec::with_capacity(20);
        put_varint(&mut v, handle.offset);
        put_varint(&mut v, handle.len);
        self.index.add(&last_key, &v);
        self.props.data_blocks += 1;
        Ok(())
    }

    /// Writes index, filter, properties and footer, fsyncs, and returns the file size and
    /// properties. The caller makes the directory entry durable.
    pub(crate) fn finish(mut self) -> Result<(u64, TableProps)> {
        debug_assert!(self.props.entries > 0, "empty tables are never written");
        self.finish_data_block()?;
        self.props.largest = self.last_user_key.take().unwrap_or_default();
        let index = self.index.finish();
        let index = self.write_block(&index)?;
        let filter = bloom::build(&self.hashes, self.opts.bloom_bits_per_key);
        let filter = self.write_block(&filter)?;
        let props = self.props.encode();
        let props_handle = self.write_block(&props)?;
        let footer = Footer {
            index,
            filter,
            props: props_handle,
            version: SST_VERSION,
        }
        .encode();
        self.file
            .write_all(&footer)
            .ctx(|| format!("writing table {}", self.path.display()))?;
        self.offset += footer.len() as u64;
        self.file
            .sync_data()
            .ctx(|| format!("syncing table {}", self.path.display()))?;
        Ok((self.offset, self.props))
    }
}
