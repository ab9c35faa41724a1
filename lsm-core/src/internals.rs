//! Thin handles on internal components for the criterion benchmarks
//! (`lsm-core/benches/components.rs`). Not part of the supported API: names and
//! signatures may change with the internals they expose.

use bytes::Bytes;

use crate::types::{encode_internal, trailer, Kind, MAX_SEQNO};

/// A memtable (the arena-backed skip list the engine writes into).
#[derive(Debug)]
pub struct Memtable(crate::memtable::Memtable);

impl Default for Memtable {
    fn default() -> Self {
        Memtable(crate::memtable::Memtable::new(0, 64 << 20))
    }
}

impl Memtable {
    pub fn insert(&self, key: &[u8], seq: u64, value: &[u8]) {
        self.0.insert(key, seq, Kind::Value, value);
    }

    /// Links every entry inserted so far into the skip list's order, as the first range
    /// read or the flush does (inserts only write the entries).
    pub fn link(&self) {
        self.0.link();
    }

    /// Whether `key` has a value visible at the newest sequence.
    pub fn contains(&self, key: &[u8]) -> bool {
        let hash = crate::sstable::bloom::bloom_hash(key);
        self.0.get(key, hash, MAX_SEQNO).is_some()
    }
}

/// Encodes sorted `(user key, value)` pairs as one data block, as the table builder
/// does (internal keys with sequence numbers, prefix compression, restart points).
pub fn encode_block(entries: &[(Vec<u8>, Vec<u8>)], restart_interval: usize) -> Vec<u8> {
    let mut b = crate::sstable::block::BlockBuilder::new(restart_interval);
    let mut ikey = Vec::new();
    for (i, (k, v)) in entries.iter().enumerate() {
        ikey.clear();
        encode_internal(&mut ikey, k, trailer(i as u64 + 1, Kind::Value));
        b.add(&ikey, v);
    }
    b.finish()
}

/// A parsed data block.
#[derive(Debug)]
pub struct Block(crate::sstable::block::Block);

impl Block {
    /// Parses an encoded block; None if it does not decode.
    pub fn parse(bytes: Bytes) -> Option<Block> {
        crate::sstable::block::Block::parse(bytes).ok().map(Block)
    }

    /// Seeks to the first entry at or after `user_key` (newest version); whether one
    /// exists.
    pub fn seek(&self, user_key: &[u8]) -> bool {
        let mut target = Vec::with_capacity(user_key.len() + 8);
        encode_internal(&mut target, user_key, trailer(MAX_SEQNO, Kind::Value));
        let mut it = self.0.iter();
        it.seek(&target).is_ok() && it.valid()
    }
}

/// The hash the bloom filters use.
pub fn bloom_hash(key: &[u8]) -> u64 {
    crate::sstable::bloom::bloom_hash(key)
}

/// Builds a bloom filter block from key hashes.
pub fn bloom_build(hashes: &[u64], bits_per_key: usize) -> Vec<u8> {
    crate::sstable::bloom::build(hashes, bits_per_key)
}

/// Probes an encoded bloom filter block; None if it does not decode.
pub fn bloom_probe(filter: &[u8], hash: u64) -> Option<bool> {
    crate::sstable::bloom::Bloom::decode(filter)
        .ok()
        .map(|b| b.may_contain(hash))
}
