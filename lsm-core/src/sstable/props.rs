//! The properties block: what a table holds, read at open to fill the manifest check and
//! the level bookkeeping.

use crate::coding::{put_len_prefixed, put_varint, DecodeError, Reader};
use crate::types::{SeqNo, MAX_KEY_BYTES};

/// Summary of a table's contents.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct TableProps {
    pub(crate) entries: u64,
    pub(crate) tombstones: u64,
    pub(crate) data_blocks: u64,
    pub(crate) min_seq: SeqNo,
    pub(crate) max_seq: SeqNo,
    pub(crate) raw_key_bytes: u64,
    pub(crate) raw_value_bytes: u64,
    /// Smallest and largest user keys.
    pub(crate) smallest: Vec<u8>,
    pub(crate) largest: Vec<u8>,
}

impl TableProps {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut b = Vec::new();
        for v in [
            self.entries,
            self.tombstones,
            self.data_blocks,
            self.min_seq,
            self.max_seq,
            self.raw_key_bytes,
            self.raw_value_bytes,
        ] {
            put_varint(&mut b, v);
        }
        put_len_prefixed(&mut b, &self.smallest);
        put_len_prefixed(&mut b, &self.largest);
        b
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<TableProps, DecodeError> {
        let mut r = Reader::new(bytes);
        let p = TableProps {
            entries: r.varint("entries")?,
            tombstones: r.varint("tombstones")?,
            data_blocks: r.varint("data block count")?,
            min_seq: r.varint("min sequence")?,
            max_seq: r.varint("max sequence")?,
            raw_key_bytes: r.varint("raw key bytes")?,
            raw_value_bytes: r.varint("raw value bytes")?,
            smallest: r.len_prefixed(MAX_KEY_BYTES, "smallest key")?.to_vec(),
            largest: r.len_prefixed(MAX_KEY_BYTES, "largest key")?.to_vec(),
        };
        if !r.is_empty() {
            return Err(DecodeError::new(
                r.position(),
                "trailing bytes in properties",
            ));
        }
        if p.entries == 0 || p.data_blocks == 0 || p.min_seq > p.max_seq || p.smallest > p.largest {
            return Err(DecodeError::new(0, "inconsistent table properties"));
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation() {
        let p = TableProps {
            entries: 10,
            tombstones: 2,
            data_blocks: 1,
            min_seq: 3,
            max_seq: 12,
            raw_key_bytes: 100,
            raw_value_bytes: 1000,
            smallest: b"a".to_vec(),
            largest: b"z".to_vec(),
        };
        let bytes = p.encode();
        assert_eq!(TableProps::decode(&bytes).unwrap(), p);
        for n in 0..bytes.len() {
            assert!(TableProps::decode(&bytes[..n]).is_err());
        }
    }
}
