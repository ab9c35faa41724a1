//! Reading a WAL segment back during recovery, with the torn-tail rules of
//! `docs/durability.md`: only the newest segment may end in a torn record, which is cut
//! off; anything else that fails verification is [`Error::Corruption`].

use std::path::Path;

use bytes::Bytes;

use crate::batch::WriteBatch;
use crate::coding::{checksum, u32_at, u64_at};
use crate::error::{Error, Result};
use crate::types::SeqNo;

use super::{
    decode_record_header, RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES, WAL_MAGIC, WAL_VERSION,
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
}

/// Decodes segment `number` from `data`. `newest` allows a torn tail.
pub(crate) fn read_segment(
    path: &Path,
    data: &Bytes,
    number: u64,
    newest: bool,
) -> Result<SegmentContents> {
    let corrupt = |offset: usize, reason: String| Error::corruption(path, offset as u64, reason);
    let mut out = SegmentContents::default();
    if data.len() < SEGMENT_HEADER_BYTES {
        if newest {
            // Crash while the segment was being created: nothing in it was acknowledged.
            out.torn_tail = Some(format!("segment header truncated at {} bytes", data.len()));
            return Ok(out);
        }
        return Err(corrupt(
            0,
            format!("segment header truncated at {} bytes", data.len()),
        ));
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
    if version != WAL_VERSION {
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

    let mut pos = SEGMENT_HEADER_BYTES;
    let all_zero = |from: usize| data[from..].iter().all(|&b| b == 0);
    loop {
        out.valid_len = pos as u64;
        if pos == data.len() {
            return Ok(out);
        }
        let rest = data.len() - pos;
        let torn = |reason: String| -> Result<Option<String>> {
            if newest {
                Ok(Some(reason))
            } else {
                Err(Error::corruption(path, pos as u64, reason))
            }
        };
        if rest < RECORD_HEADER_BYTES {
            out.torn_tail = torn(format!("record header truncated ({rest} bytes)"))?;
            return Ok(out);
        }
        let Some(header) = decode_record_header(&data[pos..pos + RECORD_HEADER_BYTES]) else {
            if all_zero(pos) {
                out.torn_tail = torn("zero-filled tail".into())?;
                return Ok(out);
            }
            return Err(corrupt(pos, "record header checksum mismatch".into()));
        };
        let start = pos + RECORD_HEADER_BYTES;
        let end = start as u64 + u64::from(header.payload_len);
        if end > data.len() as u64 {
            out.torn_tail = torn(format!(
                "record of {} bytes runs past the end of the file ({} bytes)",
                header.payload_len,
                data.len()
            ))?;
            return Ok(out);
        }
        let end = end as usize;
        let payload = data.slice(start..end);
        let actual = checksum(&payload);
        if actual != header.payload_checksum {
            let reason = format!(
                "record checksum mismatch: stored {:#018x}, computed {actual:#018x}",
                header.payload_checksum
            );
            if end == data.len() || all_zero(end) {
                out.torn_tail = torn(reason)?;
                return Ok(out);
            }
            return Err(corrupt(pos, reason));
        }
        let (seq, batch) = WriteBatch::decode(&payload)
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
    use super::super::{encode_record, encode_segment_header};
    use super::*;

    fn segment(n: usize) -> (Vec<u8>, Vec<usize>) {
        let mut buf = encode_segment_header(7).to_vec();
        let mut ends = Vec::new();
        for i in 0..n {
            let mut b = WriteBatch::new();
            b.put(format!("key{i}"), format!("value{i}"));
            let mut payload = Vec::new();
            b.encode(1 + i as u64, &mut payload);
            encode_record(&mut buf, &payload);
            ends.push(buf.len());
        }
        (buf, ends)
    }

    fn read(buf: &[u8], newest: bool) -> Result<SegmentContents> {
        read_segment(
            Path::new("000007.wal"),
            &Bytes::copy_from_slice(buf),
            7,
            newest,
        )
    }

    #[test]
    fn round_trip() {
        let (buf, _) = segment(5);
        let c = read(&buf, false).unwrap();
        assert_eq!(c.batches.len(), 5);
        assert_eq!(c.batches[3].0, 4);
        assert_eq!(c.valid_len, buf.len() as u64);
        assert!(c.torn_tail.is_none());
    }

    #[test]
    fn truncation_is_a_torn_tail_only_in_the_newest_segment() {
        let (buf, ends) = segment(4);
        for cut in SEGMENT_HEADER_BYTES..buf.len() {
            let c = read(&buf[..cut], true).unwrap();
            let whole = ends.iter().filter(|&&e| e <= cut).count();
            assert_eq!(c.batches.len(), whole, "cut at {cut}");
            if cut != SEGMENT_HEADER_BYTES && !ends.contains(&cut) {
                assert!(c.torn_tail.is_some());
                assert!(read(&buf[..cut], false).unwrap_err().is_corruption());
            }
        }
    }

    #[test]
    fn flipped_byte_is_an_error_or_a_torn_tail_never_wrong_data() {
        let (buf, ends) = segment(4);
        for at in 0..buf.len() {
            let mut bad = buf.clone();
            bad[at] ^= 0x20;
            match read(&bad, true) {
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

    #[test]
    fn zero_filled_tail_is_torn() {
        let (mut buf, _) = segment(2);
        buf.extend_from_slice(&[0u8; 100]);
        let c = read(&buf, true).unwrap();
        assert_eq!(c.batches.len(), 2);
        assert!(c.torn_tail.is_some());
    }
}
