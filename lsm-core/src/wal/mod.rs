//! The write-ahead log: numbered segment files `NNNNNN.wal`, each a header followed by
//! checksummed records, one record per [`crate::WriteBatch`]. Byte layout in
//! `docs/format/wal.md`.
//!
//! Invariants: records are only appended; a segment is never rewritten. A segment is
//! deleted only after every batch in it is in an SSTable recorded by the manifest
//! (the manifest's `log_number` is above the segment's number).

mod reader;
mod writer;

pub(crate) use reader::{read_segment, read_segments};
pub(crate) use writer::WalWriter;

use crate::coding::{checksum, put_u32, put_u64, u32_at, u64_at};

/// Magic bytes at the start of every WAL segment.
pub(crate) const WAL_MAGIC: [u8; 8] = *b"LSMWAL\0\x01";
/// Format version of WAL segments written by this build.
pub(crate) const WAL_VERSION: u32 = 1;
/// Segment header: magic, version, reserved, segment number, checksum.
pub(crate) const SEGMENT_HEADER_BYTES: usize = 32;
/// Record header: payload length, payload checksum, header checksum.
pub(crate) const RECORD_HEADER_BYTES: usize = 16;

pub(crate) fn encode_segment_header(number: u64) -> [u8; SEGMENT_HEADER_BYTES] {
    let mut buf = Vec::with_capacity(SEGMENT_HEADER_BYTES);
    buf.extend_from_slice(&WAL_MAGIC);
    put_u32(&mut buf, WAL_VERSION);
    put_u32(&mut buf, 0);
    put_u64(&mut buf, number);
    let c = checksum(&buf);
    put_u64(&mut buf, c);
    let mut out = [0u8; SEGMENT_HEADER_BYTES];
    out.copy_from_slice(&buf);
    out
}

/// Appends one record (header + payload) framing `payload`.
#[cfg(test)]
pub(crate) fn encode_record(buf: &mut Vec<u8>, payload: &[u8]) {
    frame_record(buf, |b| b.extend_from_slice(payload));
}

/// Appends one record whose payload is written by `write_payload`, then fills in the
/// header, so the payload is encoded straight into the output buffer.
pub(crate) fn frame_record(buf: &mut Vec<u8>, write_payload: impl FnOnce(&mut Vec<u8>)) {
    let start = buf.len();
    buf.extend_from_slice(&[0u8; RECORD_HEADER_BYTES]);
    write_payload(buf);
    let payload_len = (buf.len() - start - RECORD_HEADER_BYTES) as u32;
    let payload_checksum = checksum(&buf[start + RECORD_HEADER_BYTES..]);
    buf[start..start + 4].copy_from_slice(&payload_len.to_le_bytes());
    buf[start + 4..start + 12].copy_from_slice(&payload_checksum.to_le_bytes());
    let hc = checksum(&buf[start..start + 12]) as u32;
    buf[start + 12..start + 16].copy_from_slice(&hc.to_le_bytes());
}

/// A parsed, verified record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordHeader {
    pub(crate) payload_len: u32,
    pub(crate) payload_checksum: u64,
}

/// Parses the 16 header bytes; `None` when the header checksum does not match.
pub(crate) fn decode_record_header(h: &[u8]) -> Option<RecordHeader> {
    let stored = u32_at(h, 12);
    if checksum(&h[..12]) as u32 != stored {
        return None;
    }
    Some(RecordHeader {
        payload_len: u32_at(h, 0),
        payload_checksum: u64_at(h, 4),
    })
}
