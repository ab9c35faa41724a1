//! Data and index blocks: prefix-compressed entries with restart points.
//!
//! Layout (see `docs/format/sstable.md`): entries, then the restart array (u32 LE offsets
//! of entries whose key is stored whole), then the restart count (u32 LE). In the file a
//! block is followed by its xxh3 checksum, which is verified before the block is parsed.
//! Invariant: keys within a block are strictly increasing in internal-key order.

use bytes::Bytes;

use crate::coding::{put_u32, put_varint, u32_at, DecodeError, Reader};
use crate::types::cmp_encoded;

/// Builds one block.
#[derive(Debug)]
pub(crate) struct BlockBuilder {
    buf: Vec<u8>,
    restarts: Vec<u32>,
    restart_interval: usize,
    since_restart: usize,
    last_key: Vec<u8>,
    entries: usize,
}

impl BlockBuilder {
    pub(crate) fn new(restart_interval: usize) -> Self {
        BlockBuilder {
            buf: Vec::new(),
            restarts: Vec::new(),
            restart_interval: restart_interval.max(1),
            since_restart: 0,
            last_key: Vec::new(),
            entries: 0,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Bytes the finished block would take.
    pub(crate) fn estimated_len(&self) -> usize {
        self.buf.len() + 4 * (self.restarts.len() + 1)
    }

    pub(crate) fn last_key(&self) -> &[u8] {
        &self.last_key
    }

    /// Adds an entry; `key` must sort after every key added before.
    pub(crate) fn add(&mut self, key: &[u8], value: &[u8]) {
        debug_assert!(self.entries == 0 || cmp_encoded(&self.last_key, key).is_lt());
        let shared = if self.since_restart == self.restart_interval || self.entries == 0 {
            self.restarts.push(self.buf.len() as u32);
            self.since_restart = 0;
            0
        } else {
            self.last_key
                .iter()
                .zip(key)
                .take_while(|(a, b)| a == b)
                .count()
        };
        put_varint(&mut self.buf, shared as u64);
        put_varint(&mut self.buf, (key.len() - shared) as u64);
        put_varint(&mut self.buf, value.len() as u64);
        self.buf.extend_from_slice(&key[shared..]);
        self.buf.extend_from_slice(value);
        self.last_key.clear();
        self.last_key.extend_from_slice(key);
        self.since_restart += 1;
        self.entries += 1;
    }

    /// Appends the restart array and returns the block bytes; the builder is reset.
    pub(crate) fn finish(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.buf);
        for &r in &self.restarts {
            put_u32(&mut out, r);
        }
        put_u32(&mut out, self.restarts.len() as u32);
        self.restarts.clear();
        self.since_restart = 0;
        self.last_key.clear();
        self.entries = 0;
        out
    }
}

/// A parsed block: bytes plus the position of its restart array.
#[derive(Debug, Clone)]
pub(crate) struct Block {
    data: Bytes,
    restarts_at: usize,
    num_restarts: usize,
}

impl Block {
    /// Parses the block trailer. `data` is the block without its checksum.
    pub(crate) fn parse(data: Bytes) -> Result<Block, DecodeError> {
        if data.len() < 4 {
            return Err(DecodeError::new(
                0,
                format!("block of {} bytes is too short", data.len()),
            ));
        }
        let num_restarts = u32_at(&data, data.len() - 4) as usize;
        let max = (data.len() - 4) / 4;
        if num_restarts == 0 || num_restarts > max {
            return Err(DecodeError::new(
                data.len() - 4,
                format!(
                    "restart count {num_restarts} impossible for a block of {} bytes",
                    data.len()
                ),
            ));
        }
        let restarts_at = data.len() - 4 - 4 * num_restarts;
        Ok(Block {
            data,
            restarts_at,
            num_restarts,
        })
    }

    pub(crate) fn num_restarts(&self) -> usize {
        self.num_restarts
    }

    fn restart(&self, i: usize) -> Result<usize, DecodeError> {
        let off = u32_at(&self.data, self.restarts_at + 4 * i) as usize;
        if off >= self.restarts_at {
            return Err(DecodeError::new(
                self.restarts_at + 4 * i,
                format!("restart offset {off} out of range"),
            ));
        }
        Ok(off)
    }

    /// The key of the entry at restart point `i`, read in place: a restart entry shares
    /// no bytes with the key before it, so its key is stored whole.
    fn restart_key(&self, i: usize) -> Result<&[u8], DecodeError> {
        let start = self.restart(i)?;
        let mut r = Reader::new(&self.data[start..self.restarts_at]);
        let at = |e: DecodeError| DecodeError::new(start + e.offset, e.reason);
        let shared = r.varint_len(usize::MAX, "shared key length").map_err(at)?;
        if shared != 0 {
            return Err(DecodeError::new(
                start,
                format!("entry at restart point {i} shares {shared} bytes with the key before"),
            ));
        }
        let unshared = r
            .varint_len(usize::MAX, "unshared key length")
            .map_err(at)?;
        r.varint_len(usize::MAX, "value length").map_err(at)?;
        r.bytes(unshared, "key").map_err(at)
    }

    /// An iterator positioned before the first entry.
    pub(crate) fn iter(&self) -> BlockIter {
        BlockIter {
            block: self.clone(),
            next_offset: 0,
            key: Vec::new(),
            value: (0, 0),
            valid: false,
            restart_index: 0,
        }
    }
}

/// A cursor over a block's entries.
#[derive(Debug)]
pub(crate) struct BlockIter {
    block: Block,
    /// Offset of the entry after the current one.
    next_offset: usize,
    key: Vec<u8>,
    value: (usize, usize),
    valid: bool,
    /// Restart index of the current position's run (for index blocks with interval 1
    /// this is the ordinal of the entry).
    restart_index: usize,
}

impl BlockIter {
    pub(crate) fn valid(&self) -> bool {
        self.valid
    }

    pub(crate) fn key(&self) -> &[u8] {
        &self.key
    }

    pub(crate) fn value(&self) -> Bytes {
        self.block.data.slice(self.value.0..self.value.1)
    }

    pub(crate) fn value_slice(&self) -> &[u8] {
        &self.block.data[self.value.0..self.value.1]
    }

    /// Ordinal of the current entry's restart run.
    pub(crate) fn restart_index(&self) -> usize {
        self.restart_index
    }

    /// Decodes the entry at `next_offset`, or invalidates at the end.
    fn decode_next(&mut self) -> Result<(), DecodeError> {
        let start = self.next_offset;
        if start >= self.block.restarts_at {
            self.valid = false;
            return Ok(());
        }
        let body = &self.block.data[..self.block.restarts_at];
        let mut r = Reader::new(&body[start..]);
        let at = |e: DecodeError| DecodeError::new(start + e.offset, e.reason);
        let shared = r.varint_len(usize::MAX, "shared key length").map_err(at)?;
        let unshared = r
            .varint_len(usize::MAX, "unshared key length")
            .map_err(at)?;
        let value_len = r.varint_len(usize::MAX, "value length").map_err(at)?;
        if shared > self.key.len() {
            return Err(DecodeError::new(
                start,
                format!(
                    "entry shares {shared} bytes with a key of {}",
                    self.key.len()
                ),
            ));
        }
        let suffix = r.bytes(unshared, "key").map_err(at)?;
        let value_start = start + r.position();
        r.bytes(value_len, "value").map_err(at)?;
        self.key.truncate(shared);
        self.key.extend_from_slice(suffix);
        self.value = (value_start, value_start + value_len);
        self.next_offset = start + r.position();
        self.valid = true;
        // Keep the restart ordinal in step with the position.
        while self.restart_index + 1 < self.block.num_restarts
            && self.block.restart(self.restart_index + 1)? <= start
        {
            self.restart_index += 1;
        }
        Ok(())
    }

    fn seek_to_restart(&mut self, i: usize) -> Result<(), DecodeError> {
        self.key.clear();
        self.restart_index = i;
        self.next_offset = self.block.restart(i)?;
        self.decode_next()?;
        Ok(())
    }

    pub(crate) fn seek_to_first(&mut self) -> Result<(), DecodeError> {
        self.seek_to_restart(0)
    }

    pub(crate) fn next(&mut self) -> Result<(), DecodeError> {
        debug_assert!(self.valid);
        self.decode_next()
    }

    /// Positions at the first entry whose key is `>= target` (internal order).
    pub(crate) fn seek(&mut self, target: &[u8]) -> Result<(), DecodeError> {
        // Binary search for the last restart whose key is < target.
        let (mut lo, mut hi) = (0usize, self.block.num_restarts);
        while hi - lo > 1 {
            let mid = (lo + hi) / 2;
            if cmp_encoded(self.block.restart_key(mid)?, target).is_lt() {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        self.seek_to_restart(lo)?;
        while self.valid && cmp_encoded(&self.key, target).is_lt() {
            self.decode_next()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{encode_internal, trailer, Kind};

    fn ikey(k: &str, seq: u64) -> Vec<u8> {
        let mut v = Vec::new();
        encode_internal(&mut v, k.as_bytes(), trailer(seq, Kind::Value));
        v
    }

    fn build(n: usize, interval: usize) -> (Vec<u8>, Vec<Vec<u8>>) {
        let mut b = BlockBuilder::new(interval);
        let mut keys = Vec::new();
        for i in 0..n {
            let k = ikey(&format!("key{i:05}"), 1);
            b.add(&k, format!("v{i}").as_bytes());
            keys.push(k);
        }
        (b.finish(), keys)
    }

    #[test]
    fn round_trip_and_seek() {
        for interval in [1, 3, 16] {
            let (bytes, keys) = build(100, interval);
            let block = Block::parse(Bytes::from(bytes)).unwrap();
            let mut it = block.iter();
            it.seek_to_first().unwrap();
            let mut n = 0;
            while it.valid() {
                assert_eq!(it.key(), &keys[n][..]);
                assert_eq!(it.value_slice(), format!("v{n}").as_bytes());
                n += 1;
                it.next().unwrap();
            }
            assert_eq!(n, 100);
            for (i, k) in keys.iter().enumerate() {
                it.seek(k).unwrap();
                assert_eq!(it.key(), &k[..], "interval {interval} key {i}");
            }
            it.seek(&ikey("key00050x", 1)).unwrap();
            assert_eq!(it.key(), &keys[51][..]);
            it.seek(&ikey("zzz", 1)).unwrap();
            assert!(!it.valid());
        }
    }

    #[test]
    fn ordinal_tracks_restarts_in_index_blocks() {
        let (bytes, keys) = build(10, 1);
        let block = Block::parse(Bytes::from(bytes)).unwrap();
        let mut it = block.iter();
        it.seek(&keys[7]).unwrap();
        assert_eq!(it.restart_index(), 7);
        it.next().unwrap();
        assert_eq!(it.restart_index(), 8);
    }

    /// Seek compares restart keys in place; an entry at a restart point that claims to
    /// share bytes with a key before it is corruption, named with its offset.
    #[test]
    fn restart_entry_sharing_a_prefix_is_an_error() {
        let (mut bytes, keys) = build(40, 4);
        let block = Block::parse(Bytes::from(bytes.clone())).unwrap();
        let at = block.restart(5).unwrap();
        assert_eq!(bytes[at], 0, "restart entries share nothing");
        bytes[at] = 3;
        let block = Block::parse(Bytes::from(bytes)).unwrap();
        let mut found = None;
        for k in &keys {
            if let Err(e) = block.iter().seek(k) {
                found = Some(e);
                break;
            }
        }
        let e = found.expect("no seek read the damaged restart entry");
        assert_eq!(e.offset, at);
        assert!(
            e.reason.contains("restart point 5 shares 3 bytes"),
            "{}",
            e.reason
        );
    }

    #[test]
    fn corrupt_blocks_give_errors_not_panics() {
        let (bytes, keys) = build(40, 4);
        for at in 0..bytes.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut bad = bytes.clone();
                bad[at] ^= flip;
                let Ok(block) = Block::parse(Bytes::from(bad)) else {
                    continue;
                };
                let mut it = block.iter();
                let _ = it.seek(&keys[20]);
                if it.seek_to_first().is_ok() {
                    for _ in 0..100 {
                        if !it.valid() || it.next().is_err() {
                            break;
                        }
                    }
                }
            }
        }
        for n in 0..bytes.len() {
            if let Ok(block) = Block::parse(Bytes::copy_from_slice(&bytes[..n])) {
                let mut it = block.iter();
                let _ = it.seek(&keys[5]);
            }
        }
    }
}
