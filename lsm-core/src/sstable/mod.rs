//! Sorted string tables: immutable files of sorted internal keys. Byte layout in
//! `docs/format/sstable.md`:
//!
//! ```text
//! header (16) | data block + checksum ... | index block + checksum |
//! filter block + checksum | properties block + checksum | footer (72)
//! ```
//!
//! Invariants: a table is written once by [`TableBuilder`], fsynced, and only then
//! referenced by the manifest; it is never modified after. Every block's xxh3 checksum is
//! verified before the block is decoded.

pub(crate) mod block;
pub(crate) mod bloom;
mod builder;
mod props;
mod reader;

pub(crate) use builder::{TableBuilder, TableOptions};
pub(crate) use props::TableProps;
pub(crate) use reader::{Table, TableIter};

use crate::coding::{checksum, put_u32, put_u64, u32_at, u64_at};

/// Magic bytes at the start of every SSTable.
pub(crate) const SST_HEADER_MAGIC: [u8; 8] = *b"LSMSST\0\x01";
/// Magic number at the very end of every SSTable.
pub(crate) const SST_FOOTER_MAGIC: u64 = 0x4c53_4d53_5354_4654; // "LSMSSTFT"
/// Format version written by this build.
pub(crate) const SST_VERSION: u32 = 1;
pub(crate) const SST_HEADER_BYTES: usize = 16;
pub(crate) const SST_FOOTER_BYTES: usize = 72;
/// Every block is followed by its checksum.
pub(crate) const BLOCK_TRAILER_BYTES: usize = 8;

pub(crate) fn encode_header() -> [u8; SST_HEADER_BYTES] {
    let mut out = [0u8; SST_HEADER_BYTES];
    out[..8].copy_from_slice(&SST_HEADER_MAGIC);
    out[8..12].copy_from_slice(&SST_VERSION.to_le_bytes());
    out
}

/// Position of a block in the file (excluding its checksum).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct BlockHandle {
    pub(crate) offset: u64,
    pub(crate) len: u64,
}

/// The fixed-size footer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Footer {
    pub(crate) index: BlockHandle,
    pub(crate) filter: BlockHandle,
    pub(crate) props: BlockHandle,
    pub(crate) version: u32,
}

impl Footer {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(SST_FOOTER_BYTES);
        for h in [self.index, self.filter, self.props] {
            put_u64(&mut buf, h.offset);
            put_u64(&mut buf, h.len);
        }
        put_u32(&mut buf, self.version);
        put_u32(&mut buf, 0);
        let c = checksum(&buf);
        put_u64(&mut buf, c);
        put_u64(&mut buf, SST_FOOTER_MAGIC);
        debug_assert_eq!(buf.len(), SST_FOOTER_BYTES);
        buf
    }

    /// Decodes the footer bytes; errors name the offset within the footer.
    pub(crate) fn decode(b: &[u8]) -> Result<Footer, (usize, String)> {
        debug_assert_eq!(b.len(), SST_FOOTER_BYTES);
        let magic = u64_at(b, 64);
        if magic != SST_FOOTER_MAGIC {
            return Err((64, format!("bad footer magic {magic:#018x}")));
        }
        let stored = u64_at(b, 56);
        let actual = checksum(&b[..56]);
        if stored != actual {
            return Err((
                0,
                format!("footer checksum mismatch: stored {stored:#018x}, computed {actual:#018x}"),
            ));
        }
        if u32_at(b, 52) != 0 {
            return Err((52, "reserved footer field is not zero".into()));
        }
        let h = |i: usize| BlockHandle {
            offset: u64_at(b, i * 16),
            len: u64_at(b, i * 16 + 8),
        };
        Ok(Footer {
            index: h(0),
            filter: h(1),
            props: h(2),
            version: u32_at(b, 48),
        })
    }
}

#[cfg(test)]
pub(crate) fn builder_options_for_tests() -> TableOptions {
    TableOptions {
        block_size_bytes: 4096,
        restart_interval: 16,
        bloom_bits_per_key: 10,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn footer_round_trip_and_every_flip_detected() {
        let f = Footer {
            index: BlockHandle {
                offset: 100,
                len: 20,
            },
            filter: BlockHandle {
                offset: 128,
                len: 9,
            },
            props: BlockHandle {
                offset: 145,
                len: 60,
            },
            version: SST_VERSION,
        };
        let bytes = f.encode();
        assert_eq!(Footer::decode(&bytes).unwrap(), f);
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x04;
            assert!(Footer::decode(&bad).is_err(), "flip at {i}");
        }
    }
}
