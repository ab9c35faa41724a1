//! Reading WAL segments back during recovery, with the tail rules of
//! `docs/durability.md`: a segment may end early — in a torn record, which is cut off, or
//! in zeros, the space a memory-mapped segment reserved ahead — only if no later segment
//! holds a record (normally: only the newest); anything else that fails verification is
//! [`Error::Corruption`].

use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::batch::WriteBatch;
use crate::coding::{checksum, u32_at, u64_at};
use crate::error::{Error, Result};
use crate::types::SeqNo;

use super::{
    decode_record_header, record_header_len, SEGMENT_HEADER_BYTES, WAL_MAGIC, WAL_VERSION,
    WAL_VERSION_1,
};

/// What a segment holds.
#[derive(Debug, Default)]
pub(crate) struct SegmentContents {
    /// Batches in log order with their first sequence number.
    pub(crate) batches: Vec<(SeqNo, WriteBatch)>,
    /// Length of the valid prefix of the file, in bytes.
    pub(crate) valid_len: u64,
    /// Why the tail was cut, when it was.
    pub(crate) torn_tail: Option<String>,
    /// Bytes of zeros after the last record: space reserved ahead and never written (a
    /// segment that was not finished, e.g. after a crash).
    pub(crate) zero_tail: u64,
}

impl SegmentContents {
    /// Why the segment ends before its file does, if it does.
    fn early_end(&self) -> Option<String> {
        match &self.torn_tail {
            Some(t) => Some(t.clone()),
            None if self.zero_tail > 0 => Some(format!("{} bytes of zeros", self.zero_tail)),
            None => None,
        }
    }
}

/// Reads consecutive segments `(path, number, bytes)`, oldest first. A segment may end
/// early (torn, or in reserved zeros) only if no later one holds a record: a crash leaves
/// such a tail on the segment being written, and recovery may have created an empty
/// successor before crashing again; but a segment is finished (truncated and synced)
/// before writes go to the next, so an early end followed by records is corruption.
pub(crate) fn read_segments(segments: &[(PathBuf, u64, Bytes)]) -> Result<Vec<SegmentContents>> {
    let mut out = Vec::with_capacity(segments.len());
    for (path, number, data) in segments {
        out.push(read_segment(path, data, *number)?);
    }
    for (i, c) in out.iter().enumerate() {
        let Some(reason) = c.early_end() else {
            continue;
        };
        if let Some(j) = (i + 1..out.len()).find(|&j| !out[j].batches.is_empty()) {
            return Err(Error::corruption(
                &segments[i].0,
                c.valid_len,
                format!(
                    "segment ends early ({reason}) but the later segment {} holds records",
                    segments[j].1
                ),
            ));
        }
    }
    Ok(out)
}

/// Decodes segment `number` from `data`, cutting a torn tail and stopping at reserved
/// zeros (see [`read_segments`] for when either is allowed).
pub(crate) fn read_segment(path: &Path, data: &Bytes, number: u64) -> Result<SegmentContents> {
    let corrupt = |offset: usize, reason: String| Error::corruption(path, offset as u64, reason);
    let mut out = SegmentContents::default();
    if data.len() < SEGMENT_HEADER_BYTES || data[..SEGMENT_HEADER_BYTES].iter().all(|&b| b == 0) {
        // Crash while the segment was being created (its space perhaps reserved, the
        // header not yet written): nothing in it was acknowledged.
        out.torn_tail = Some(format!("segment header missing ({} bytes)", data.len()));
        return Ok(out);
    }
    let h = &data[..SEGMENT_HEADER_BYTES];
    let stored = u64_at(h, 24);
    let actual = checksum(&h[..24]);
    if stored != actual {
        return Err(corrupt(
            0,
            format!(
                "segment header checksum mismatch: stored {stored:#018x}, computed {actual:#018x}"
            ),
        ));
    }
    if h[..8] != WAL_MAGIC {
        return Err(corrupt(0, "bad WAL magic".into()));
    }
    let version = u32_at(h, 8);
    if version != WAL_VERSION && version != WAL_VERSION_1 {
        return Err(Error::UnsupportedVersion {
            file: path.to_path_buf(),
            found: version,
            supported: WAL_VERSION,
        });
    }
    let recorded = u64_at(h, 16);
    if recorded != number {
        return Err(corrupt(
            16,
            format!("segment header names segment {recorded}, file name says {number}"),
        ));
    }

    let header_len = record_header_len(version);
    let decode = if version == WAL_VERSION_1 {
        WriteBatch::decode
    } else {
        WriteBatch::decode_wal
    };
    let mut pos = SEGMENT_HEADER_BYTES;
    let all_zero = |from: usize| data[from..].iter().all(|&b| b == 0);
    loop {
        out.valid_len = pos as u64;
        if pos == data.len() {
            return Ok(out);
        }
        let rest = data.len() - pos;
        if all_zero(pos) {
            out.zero_tail = rest as u64;
            return Ok(out);
        }
        if rest < header_len {
            out.torn_tail = Some(format!("record header truncated ({rest} bytes)"));
            return Ok(out);
        }
        let Some(header) = decode_record_header(version, &data[pos..pos + header_len]) else {
            if all_zero(pos + header_len) {
                // The last header, partly written before a crash.
                out.torn_tail = Some("record header checksum mismatch (torn)".into());
                return Ok(out);
            }
            return Err(corrupt(pos, "record header checksum mismatch".into()));
        };
        let start = pos + header_len;
        let end = start as u64 + u64::from(header.payload_len);
        if end > data.len() as u64 {
            out.torn_tail = Some(format!(
                "record of {} bytes runs past the end of the file ({} bytes)",
                header.payload_len,
                data.len()
            ));
            return Ok(out);
        }
        let end = end as usize;
        let payload = data.slice(start..end);
        let actual = header.checksum_of(&payload);
        if actual != header.payload_checksum {
            let reason = format!(
                "record checksum mismatch: stored {:#018x}, computed {actual:#018x}",
                header.payload_checksum
            );
            if end == data.len() || all_zero(end) {
                out.torn_tail = Some(reason);
                return Ok(out);
            }
            return Err(corrupt(pos, reason));
        }
        let (seq, batch) = decode(&payload)
            .map_err(|e| corrupt(start + e.offset, format!("bad batch: {}", e.reason)))?;
        if let Some((prev_seq, prev)) = out.batches.last() {
            if seq < prev_seq + prev.len() as u64 {
                return Err(corrupt(pos, format!("sequence {seq} goes backwards")));
            }
        }
        out.batches.push((seq, batch));
        pos = end;
    }
}

#[cfg(test)]
mod tests {
    use super::super::{encode_record, encode_segment_header, RECORD_HEADER_BYTES};
    use super::*;

    /// Segment `number` in format `version` with `n` one-put batches; also the end
    /// offset of each record.
    fn segment_in(version: u32, number: u64, first_seq: u64, n: usize) -> (Vec<u8>, Vec<usize>) {
        let mut buf = if version == WAL_VERSION_1 {
            super::super::v1::encode_segment_header(number).to_vec()
        } else {
            encode_segment_header(number).to_vec()
        };
        let mut ends = Vec::new();
        for i in 0..n {
            let mut b = WriteBatch::new();
            b.put(format!("key{i}"), format!("value{i}"));
            let mut payload = Vec::new();
            if version == WAL_VERSION_1 {
                b.encode(first_seq + i as u64, &mut payload);
                super::super::v1::encode_record(&mut buf, &payload);
            } else {
                b.encode_wal(first_seq + i as u64, &mut payload);
                encode_record(&mut buf, &payload);
            }
            ends.push(buf.len());
        }
        (buf, ends)
    }

    fn segment_numbered(number: u64, first_seq: u64, n: usize) -> (Vec<u8>, Vec<usize>) {
        segment_in(WAL_VERSION, number, first_seq, n)
    }

    fn segment(n: usize) -> (Vec<u8>, Vec<usize>) {
        segment_numbered(7, 1, n)
    }

    /// Both formats this build reads.
    const VERSIONS: [u32; 2] = [WAL_VERSION_1, WAL_VERSION];

    fn read(buf: &[u8]) -> Result<SegmentContents> {
        read_segment(Path::new("000007.wal"), &Bytes::copy_from_slice(buf), 7)
    }

    /// Segment 7 holding `first`, followed by segment 8 holding `n_next` batches.
    fn read_pair(first: &[u8], n_next: usize) -> Result<Vec<SegmentContents>> {
        let (next, _) = segment_numbered(8, 100, n_next);
        read_segments(&[
            (
                PathBuf::from("000007.wal"),
                7,
                Bytes::copy_from_slice(first),
            ),
            (PathBuf::from("000008.wal"), 8, Bytes::from(next)),
        ])
    }

    #[test]
    fn round_trip() {
        for version in VERSIONS {
            let (buf, _) = segment_in(version, 7, 1, 5);
            let c = read(&buf).unwrap();
            assert_eq!(c.batches.len(), 5);
            assert_eq!(c.batches[3].0, 4);
            let (k, v) = (&c.batches[3].1.ops[0].key, &c.batches[3].1.ops[0].value);
            assert_eq!((&k[..], &v[..]), (&b"key3"[..], &b"value3"[..]));
            assert_eq!(c.valid_len, buf.len() as u64);
            assert!(c.torn_tail.is_none());
            assert_eq!(c.zero_tail, 0);
            assert_eq!(read_pair(&buf, 3).unwrap()[1].batches.len(), 3);
        }
        // Version 2 stores a one-put batch in fewer bytes: a record header 6 bytes
        // smaller, and varints for the batch's sequence (1 byte here instead of 8; 3 in
        // the millions) and count (1 instead of 4).
        let (v1, _) = segment_in(WAL_VERSION_1, 7, 1, 1);
        let (v2, _) = segment_in(WAL_VERSION, 7, 1, 1);
        assert_eq!(v1.len() - v2.len(), 6 + 7 + 3);
    }

    /// A segment in a format this build does not know is refused by name, not misread.
    #[test]
    fn unknown_versions_are_refused() {
        let (mut buf, _) = segment(1);
        buf[8..12].copy_from_slice(&3u32.to_le_bytes());
        let c = crate::coding::checksum(&buf[..24]);
        buf[24..32].copy_from_slice(&c.to_le_bytes());
        let e = read(&buf).unwrap_err();
        assert!(
            matches!(e, Error::UnsupportedVersion { found: 3, .. }),
            "{e}"
        );
    }

    /// Every truncation keeps the whole records before it. It is accepted as a torn tail
    /// when no later segment holds records (even if an empty later segment exists: a
    /// crash during recovery), and is corruption when one does.
    #[test]
    fn truncation_is_a_torn_tail_only_without_later_records() {
        for version in VERSIONS {
            truncations_in(version);
        }
    }

    fn truncations_in(version: u32) {
        let (buf, ends) = segment_in(version, 7, 1, 4);
        for cut in 0..buf.len() {
            let c = read(&buf[..cut]).unwrap();
            let whole = ends.iter().filter(|&&e| e <= cut).count();
            assert_eq!(c.batches.len(), whole, "cut at {cut}");
            let at_boundary = cut == SEGMENT_HEADER_BYTES || ends.contains(&cut);
            assert_eq!(c.torn_tail.is_some(), !at_boundary, "cut at {cut}");
            assert_eq!(read_pair(&buf[..cut], 0).unwrap()[0].batches.len(), whole);
            if !at_boundary {
                assert!(read_pair(&buf[..cut], 1).unwrap_err().is_corruption());
            }
        }
    }

    #[test]
    fn flipped_byte_is_an_error_or_a_torn_tail_never_wrong_data() {
        for version in VERSIONS {
            flips_in(version);
        }
    }

    fn flips_in(version: u32) {
        let (buf, ends) = segment_in(version, 7, 1, 4);
        for at in 0..buf.len() {
            let mut bad = buf.clone();
            bad[at] ^= 0x20;
            match read(&bad) {
                Err(e) => assert!(e.is_corruption(), "{e}"),
                Ok(c) => {
                    // Only the last record may be dropped, and only as a torn tail.
                    assert!(at >= ends[2], "flip at {at} silently accepted");
                    assert_eq!(c.batches.len(), 3);
                    assert!(c.torn_tail.is_some());
                }
            }
        }
    }

    /// A memory-mapped segment that was not finished: zeros after the last record are
    /// its reserved space, not a tear; a record cut short by the zeros is torn. Either is
    /// corruption when a later segment holds records.
    #[test]
    fn zero_tails_end_a_segment_only_without_later_records() {
        let (mut buf, ends) = segment(2);
        buf.extend_from_slice(&[0u8; 4096]);
        let c = read(&buf).unwrap();
        assert_eq!(c.batches.len(), 2);
        assert!(c.torn_tail.is_none());
        assert_eq!(c.zero_tail, 4096);
        assert_eq!(c.valid_len, ends[1] as u64);
        assert!(read_pair(&buf, 0).is_ok());
        let e = read_pair(&buf, 1).unwrap_err();
        assert!(e.to_string().contains("later segment 8"), "{e}");
        // The second record partly written (header only, or header and part of the
        // payload), the rest still zeros.
        for keep in [3, RECORD_HEADER_BYTES, RECORD_HEADER_BYTES + 5] {
            let mut partial = buf.clone();
            partial[ends[0] + keep..ends[1]].fill(0);
            let c = read(&partial).unwrap();
            assert_eq!(c.batches.len(), 1, "keep {keep}");
            assert!(c.torn_tail.is_some(), "keep {keep}");
        }
        // Reserved but never even given its header: an empty segment.
        let c = read(&[0u8; 4096]).unwrap();
        assert!(c.batches.is_empty() && c.torn_tail.is_some());
    }
}
