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
pub(crate) const WAL_VERSION: u32 = 2;
/// The first format version, still read (segments written by earlier builds).
pub(crate) const WAL_VERSION_1: u32 = 1;
/// Segment header: magic, version, reserved, segment number, checksum.
pub(crate) const SEGMENT_HEADER_BYTES: usize = 32;
/// Version-2 record header: payload length (u32), payload checksum (u32), header
/// checksum (u16).
pub(crate) const RECORD_HEADER_BYTES: usize = 10;
/// Version-1 record header: payload length (u32), payload checksum (u64), header
/// checksum (u32).
pub(crate) const RECORD_HEADER_BYTES_V1: usize = 16;

/// The header of a new segment `number` in the current format.
pub(crate) fn encode_segment_header(number: u64) -> [u8; SEGMENT_HEADER_BYTES] {
    encode_segment_header_version(number, WAL_VERSION)
}

fn encode_segment_header_version(number: u64, version: u32) -> [u8; SEGMENT_HEADER_BYTES] {
    let mut buf = Vec::with_capacity(SEGMENT_HEADER_BYTES);
    buf.extend_from_slice(&WAL_MAGIC);
    put_u32(&mut buf, version);
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

/// Version-1 framing, for tests that read segments written by earlier builds.
#[cfg(test)]
pub(crate) mod v1 {
    use super::*;

    pub(crate) fn encode_segment_header(number: u64) -> [u8; SEGMENT_HEADER_BYTES] {
        encode_segment_header_version(number, WAL_VERSION_1)
    }

    pub(crate) fn encode_record(buf: &mut Vec<u8>, payload: &[u8]) {
        let start = buf.len();
        put_u32(buf, payload.len() as u32);
        put_u64(buf, checksum(payload));
        let hc = checksum(&buf[start..start + 12]) as u32;
        put_u32(buf, hc);
        buf.extend_from_slice(payload);
    }
}

/// Appends one version-2 record whose payload is written by `write_payload`, then fills
/// in the header, so the payload is encoded straight into the output buffer.
pub(crate) fn frame_record(buf: &mut Vec<u8>, write_payload: impl FnOnce(&mut Vec<u8>)) {
    let start = buf.len();
    buf.extend_from_slice(&[0u8; RECORD_HEADER_BYTES]);
    write_payload(buf);
    let payload_len = (buf.len() - start - RECORD_HEADER_BYTES) as u32;
    let payload_checksum = checksum(&buf[start + RECORD_HEADER_BYTES..]) as u32;
    buf[start..start + 4].copy_from_slice(&payload_len.to_le_bytes());
    buf[start + 4..start + 8].copy_from_slice(&payload_checksum.to_le_bytes());
    let hc = checksum(&buf[start..start + 8]) as u16;
    buf[start + 8..start + 10].copy_from_slice(&hc.to_le_bytes());
}

/// A parsed, verified record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordHeader {
    pub(crate) payload_len: u32,
    /// The stored payload checksum: all 64 bits of xxh3 (version 1) or the low 32.
    pub(crate) payload_checksum: u64,
    /// Bits of the xxh3-64 checksum the header keeps.
    checksum_mask: u64,
}

impl RecordHeader {
    /// The payload's checksum as the header stores it.
    pub(crate) fn checksum_of(&self, payload: &[u8]) -> u64 {
        checksum(payload) & self.checksum_mask
    }
}

/// Length of a record header in segment format `version` (1 or 2).
pub(crate) fn record_header_len(version: u32) -> usize {
    if version == WAL_VERSION_1 {
        RECORD_HEADER_BYTES_V1
    } else {
        RECORD_HEADER_BYTES
    }
}

/// Parses a record header of format `version` (`h` is [`record_header_len`] bytes);
/// `None` when the header checksum does not match.
pub(crate) fn decode_record_header(version: u32, h: &[u8]) -> Option<RecordHeader> {
    if version == WAL_VERSION_1 {
        if checksum(&h[..12]) as u32 != u32_at(h, 12) {
            return None;
        }
        return Some(RecordHeader {
            payload_len: u32_at(h, 0),
            payload_checksum: u64_at(h, 4),
            checksum_mask: u64::MAX,
        });
    }
    if checksum(&h[..8]) as u16 != u16::from_le_bytes([h[8], h[9]]) {
        return None;
    }
    Some(RecordHeader {
        payload_len: u32_at(h, 0),
        payload_checksum: u64::from(u32_at(h, 4)),
        checksum_mask: u64::from(u32::MAX),
    })
}
