//! The manifest: the set of live tables, written whole and swapped atomically by
//! [`crate::io::write_atomic`] (temp file, fsync, rename, directory fsync) on every
//! change. Byte layout in `docs/format/manifest.md`.
//!
//! Invariant: the `MANIFEST` file on disk always describes a complete, consistent
//! database: every table it names was fsynced (file and directory entry) before the
//! manifest naming it was written.

use crate::coding::{
    checksum, put_len_prefixed, put_u32, put_u64, put_varint, u32_at, u64_at, DecodeError, Reader,
};
use crate::types::{SeqNo, MAX_KEY_BYTES};

pub(crate) const MANIFEST_MAGIC: [u8; 8] = *b"LSMMANI\x01";
pub(crate) const MANIFEST_VERSION: u32 = 1;
/// magic, version, reserved, body length, body checksum.
pub(crate) const MANIFEST_HEADER_BYTES: usize = 32;
/// File name of the manifest inside the database directory.
pub(crate) const MANIFEST_FILE: &str = "MANIFEST";

/// What the manifest records about one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TableMeta {
    pub(crate) level: usize,
    pub(crate) number: u64,
    pub(crate) size_bytes: u64,
    pub(crate) entries: u64,
    pub(crate) min_seq: SeqNo,
    pub(crate) max_seq: SeqNo,
    pub(crate) smallest: Vec<u8>,
    pub(crate) largest: Vec<u8>,
}

/// The decoded manifest.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct ManifestData {
    /// Next number to give a file (tables and WAL segments share the counter).
    pub(crate) next_file_number: u64,
    /// Highest sequence number contained in the tables.
    pub(crate) last_sequence: SeqNo,
    /// WAL segments with a number `>= log_number` must be replayed; older ones are
    /// obsolete.
    pub(crate) log_number: u64,
    pub(crate) num_levels: u32,
    pub(crate) tables: Vec<TableMeta>,
}

/// Reasons a manifest cannot be decoded; `UnsupportedVersion` is kept apart so the caller
/// can report it with its own error variant.
#[derive(Debug)]
pub(crate) enum ManifestError {
    Corrupt(DecodeError),
    UnsupportedVersion(u32),
}

impl From<DecodeError> for ManifestError {
    fn from(e: DecodeError) -> Self {
        ManifestError::Corrupt(e)
    }
}

impl ManifestData {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut body = Vec::new();
        put_u64(&mut body, self.next_file_number);
        put_u64(&mut body, self.last_sequence);
        put_u64(&mut body, self.log_number);
        put_u32(&mut body, self.num_levels);
        put_u32(&mut body, self.tables.len() as u32);
        for t in &self.tables {
            put_varint(&mut body, t.level as u64);
            put_varint(&mut body, t.number);
            put_varint(&mut body, t.size_bytes);
            put_varint(&mut body, t.entries);
            put_varint(&mut body, t.min_seq);
            put_varint(&mut body, t.max_seq);
            put_len_prefixed(&mut body, &t.smallest);
            put_len_prefixed(&mut body, &t.largest);
        }
        let mut out = Vec::with_capacity(MANIFEST_HEADER_BYTES + body.len());
        out.extend_from_slice(&MANIFEST_MAGIC);
        put_u32(&mut out, MANIFEST_VERSION);
        put_u32(&mut out, 0);
        put_u64(&mut out, body.len() as u64);
        put_u64(&mut out, checksum(&body));
        out.extend_from_slice(&body);
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<ManifestData, ManifestError> {
        if bytes.len() < MANIFEST_HEADER_BYTES {
            return Err(DecodeError::new(
                0,
                format!(
                    "manifest of {} bytes is shorter than its header",
                    bytes.len()
                ),
            )
            .into());
        }
        if bytes[..8] != MANIFEST_MAGIC {
            return Err(DecodeError::new(0, "bad manifest magic").into());
        }
        let version = u32_at(bytes, 8);
        if version != MANIFEST_VERSION {
            return Err(ManifestError::UnsupportedVersion(version));
        }
        if u32_at(bytes, 12) != 0 {
            return Err(DecodeError::new(12, "reserved manifest field is not zero").into());
        }
        let body_len = u64_at(bytes, 16);
        if body_len != (bytes.len() - MANIFEST_HEADER_BYTES) as u64 {
            return Err(DecodeError::new(
                16,
                format!(
                    "body length {body_len} does not match file length {}",
                    bytes.len()
                ),
            )
            .into());
        }
        let body = &bytes[MANIFEST_HEADER_BYTES..];
        let stored = u64_at(bytes, 24);
        let actual = checksum(body);
        if stored != actual {
            return Err(DecodeError::new(
                24,
                format!(
                    "manifest checksum mismatch: stored {stored:#018x}, computed {actual:#018x}"
                ),
            )
            .into());
        }
        let at = |e: DecodeError| DecodeError::new(MANIFEST_HEADER_BYTES + e.offset, e.reason);
        let mut r = Reader::new(body);
        let mut m = ManifestData {
            next_file_number: r.u64("next file number").map_err(at)?,
            last_sequence: r.u64("last sequence").map_err(at)?,
            log_number: r.u64("log number").map_err(at)?,
            num_levels: r.u32("level count").map_err(at)?,
            tables: Vec::new(),
        };
        let count = r.u32("table count").map_err(at)? as usize;
        if m.num_levels == 0 || m.num_levels > 64 {
            return Err(at(DecodeError::new(
                24,
                format!("impossible level count {}", m.num_levels),
            ))
            .into());
        }
        for _ in 0..count.min(r.remaining()) {
            let start = r.position();
            let t = (|| -> Result<TableMeta, DecodeError> {
                Ok(TableMeta {
                    level: r.varint_len(64, "table level")?,
                    number: r.varint("table number")?,
                    size_bytes: r.varint("table size")?,
                    entries: r.varint("table entries")?,
                    min_seq: r.varint("table min sequence")?,
                    max_seq: r.varint("table max sequence")?,
                    smallest: r.len_prefixed(MAX_KEY_BYTES, "smallest key")?.to_vec(),
                    largest: r.len_prefixed(MAX_KEY_BYTES, "largest key")?.to_vec(),
                })
            })()
            .map_err(at)?;
            if t.level >= m.num_levels as usize || t.number >= m.next_file_number {
                return Err(at(DecodeError::new(
                    start,
                    format!("table {} has an impossible level or number", t.number),
                ))
                .into());
            }
            m.tables.push(t);
        }
        if m.tables.len() != count || !r.is_empty() {
            return Err(at(DecodeError::new(
                r.position(),
                "table count does not match the body",
            ))
            .into());
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ManifestData {
        ManifestData {
            next_file_number: 10,
            last_sequence: 1234,
            log_number: 8,
            num_levels: 7,
            tables: vec![
                TableMeta {
                    level: 0,
                    number: 7,
                    size_bytes: 4096,
                    entries: 100,
                    min_seq: 1,
                    max_seq: 100,
                    smallest: b"a".to_vec(),
                    largest: b"m".to_vec(),
                },
                TableMeta {
                    level: 2,
                    number: 3,
                    size_bytes: 9999,
                    entries: 5,
                    min_seq: 0,
                    max_seq: 4,
                    smallest: b"".to_vec(),
                    largest: b"zz".to_vec(),
                },
            ],
        }
    }

    #[test]
    fn round_trip() {
        let m = sample();
        assert_eq!(ManifestData::decode(&m.encode()).unwrap(), m);
    }

    #[test]
    fn every_flip_and_truncation_is_detected() {
        let bytes = sample().encode();
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x08;
            assert!(ManifestData::decode(&bad).is_err(), "flip at {i}");
        }
        for n in 0..bytes.len() {
            assert!(
                ManifestData::decode(&bytes[..n]).is_err(),
                "truncated to {n}"
            );
        }
    }
}
