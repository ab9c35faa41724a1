//! Byte-level encoding helpers shared by every on-disk format: little-endian fixed-width
//! integers, LEB128 varints, the xxh3 checksum, and a bounds-checked [`Reader`] that
//! turns every short read into a positioned error instead of a panic.

/// The checksum of every persisted unit: xxh3-64 over the bytes.
pub(crate) fn checksum(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes)
}

pub(crate) fn put_u32(buf: &mut Vec<u8>, v: u32) {
    buf.extend_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_u64(buf: &mut Vec<u8>, v: u64) {
    buf.extend_from_slice(&v.to_le_bytes());
}

/// Appends `v` as an unsigned LEB128 varint (1 to 10 bytes).
pub(crate) fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Appends a varint length followed by the bytes.
pub(crate) fn put_len_prefixed(buf: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(buf, bytes.len() as u64);
    buf.extend_from_slice(bytes);
}

/// Number of bytes `put_varint` writes for `v`.
pub(crate) fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

/// Reads a little-endian u32 at `pos`; the caller guarantees bounds.
pub(crate) fn u32_at(bytes: &[u8], pos: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[pos..pos + 4]);
    u32::from_le_bytes(b)
}

/// Reads a little-endian u64 at `pos`; the caller guarantees bounds.
pub(crate) fn u64_at(bytes: &[u8], pos: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[pos..pos + 8]);
    u64::from_le_bytes(b)
}

/// Reads a big-endian u64 at `pos` (the order of its bytes); the caller guarantees bounds.
#[inline]
pub(crate) fn u64_be_at(bytes: &[u8], pos: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[pos..pos + 8]);
    u64::from_be_bytes(b)
}

/// What a [`Reader`] found wrong: a description and the offset (relative to the start of
/// the reader's slice) where it happened. Callers add the file and base offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DecodeError {
    pub(crate) offset: usize,
    pub(crate) reason: String,
}

impl DecodeError {
    pub(crate) fn new(offset: usize, reason: impl Into<String>) -> Self {
        DecodeError {
            offset,
            reason: reason.into(),
        }
    }
}

#[cold]
fn too_large(at: usize, v: u64, max: usize, what: &str) -> DecodeError {
    DecodeError::new(at, format!("{what} {v} exceeds the limit {max}"))
}

#[cold]
fn truncated(at: usize, need: usize, left: usize, what: &str) -> DecodeError {
    DecodeError::new(
        at,
        format!("truncated {what}: need {need} bytes, {left} left"),
    )
}

/// A cursor over a byte slice where every read is bounds-checked.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0 }
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    #[inline]
    pub(crate) fn bytes(&mut self, n: usize, what: &str) -> Result<&'a [u8], DecodeError> {
        if n > self.remaining() {
            return Err(truncated(self.pos, n, self.remaining(), what));
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub(crate) fn u8(&mut self, what: &str) -> Result<u8, DecodeError> {
        Ok(self.bytes(1, what)?[0])
    }

    pub(crate) fn u32(&mut self, what: &str) -> Result<u32, DecodeError> {
        let b = self.bytes(4, what)?;
        Ok(u32_at(b, 0))
    }

    pub(crate) fn u64(&mut self, what: &str) -> Result<u64, DecodeError> {
        let b = self.bytes(8, what)?;
        Ok(u64_at(b, 0))
    }

    /// An unsigned LEB128 varint. One-byte varints (every length under 128, the common
    /// case in blocks) take an inlined fast path.
    #[inline]
    pub(crate) fn varint(&mut self, what: &str) -> Result<u64, DecodeError> {
        match self.bytes.get(self.pos) {
            Some(&b) if b < 0x80 => {
                self.pos += 1;
                Ok(u64::from(b))
            }
            _ => self.varint_multi(what),
        }
    }

    #[inline(never)]
    fn varint_multi(&mut self, what: &str) -> Result<u64, DecodeError> {
        let start = self.pos;
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let Some(&b) = self.bytes.get(self.pos) else {
                return Err(DecodeError::new(
                    start,
                    format!("truncated varint ({what})"),
                ));
            };
            self.pos += 1;
            let low = u64::from(b & 0x7f);
            if shift == 63 && low > 1 {
                return Err(DecodeError::new(start, format!("varint overflow ({what})")));
            }
            v |= low << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError::new(start, format!("varint too long ({what})")))
    }

    /// A varint that must fit a `usize` no larger than `max`.
    #[inline]
    pub(crate) fn varint_len(&mut self, max: usize, what: &str) -> Result<usize, DecodeError> {
        let start = self.pos;
        let v = self.varint(what)?;
        if v > max as u64 {
            return Err(too_large(start, v, max, what));
        }
        Ok(v as usize)
    }

    pub(crate) fn len_prefixed(&mut self, max: usize, what: &str) -> Result<&'a [u8], DecodeError> {
        let n = self.varint_len(max, what)?;
        self.bytes(n, what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_round_trip() {
        for v in [0u64, 1, 127, 128, 300, 1 << 35, u64::MAX - 1, u64::MAX] {
            let mut buf = Vec::new();
            put_varint(&mut buf, v);
            assert_eq!(buf.len(), varint_len(v));
            let mut r = Reader::new(&buf);
            assert_eq!(r.varint("v").unwrap(), v);
            assert!(r.is_empty());
        }
    }

    #[test]
    fn varint_rejects_truncation_and_overflow() {
        assert!(Reader::new(&[0x80]).varint("v").is_err());
        let too_long = [0xffu8; 11];
        assert!(Reader::new(&too_long).varint("v").is_err());
        let mut overflow = vec![0xffu8; 9];
        overflow.push(0x02);
        assert!(Reader::new(&overflow).varint("v").is_err());
    }

    #[test]
    fn reader_reports_truncation_offset() {
        let mut r = Reader::new(&[1, 2, 3]);
        r.u8("a").unwrap();
        let err = r.u32("b").unwrap_err();
        assert_eq!(err.offset, 1);
        assert!(err.reason.contains("truncated b"));
    }
}
