//! [`WriteBatch`]: a group of puts and deletes applied atomically, and its encodings as a
//! WAL record payload: varint header (version 2, written) and fixed header (version 1,
//! read; also `to_bytes`, what replication ships). See `docs/format/wal.md`.
//!
//! Invariant: a batch is applied all-or-nothing, in memory and after a crash, because it
//! is one checksummed WAL record.

use bytes::Bytes;

use crate::coding::{
    put_len_prefixed, put_u32, put_u64, put_varint, varint_len, DecodeError, Reader,
};
use crate::error::{Error, Result};
use crate::types::{Kind, SeqNo, MAX_KEY_BYTES, MAX_VALUE_BYTES};

/// Largest encoded batch accepted by [`crate::Db::write`], in bytes (1 GiB).
pub const MAX_BATCH_BYTES: usize = 1 << 30;

/// Fixed header of an encoded batch: first sequence (u64) and operation count (u32).
pub(crate) const BATCH_HEADER_BYTES: usize = 12;

/// User keys up to this many bytes are stored inside an [`Op`] itself.
const INLINE_KEY_BYTES: usize = 30;

/// A key as a batch holds it: short keys inline (building a batch of small puts
/// allocates nothing per key), longer ones shared.
#[derive(Clone)]
pub(crate) enum UserKey {
    Inline {
        len: u8,
        bytes: [u8; INLINE_KEY_BYTES],
    },
    Heap(Bytes),
}

impl UserKey {
    pub(crate) fn from_slice(key: &[u8]) -> Self {
        if key.len() <= INLINE_KEY_BYTES {
            let mut bytes = [0u8; INLINE_KEY_BYTES];
            bytes[..key.len()].copy_from_slice(key);
            UserKey::Inline {
                len: key.len() as u8,
                bytes,
            }
        } else {
            UserKey::Heap(Bytes::copy_from_slice(key))
        }
    }

    pub(crate) fn from_bytes(key: Bytes) -> Self {
        if key.len() <= INLINE_KEY_BYTES {
            UserKey::from_slice(&key)
        } else {
            UserKey::Heap(key)
        }
    }
}

impl std::ops::Deref for UserKey {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            UserKey::Inline { len, bytes } => &bytes[..usize::from(*len)],
            UserKey::Heap(b) => b,
        }
    }
}

impl PartialEq for UserKey {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for UserKey {}

impl std::fmt::Debug for UserKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", &**self)
    }
}

/// One operation of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Op {
    pub(crate) kind: Kind,
    /// Short keys inline (no allocation).
    pub(crate) key: UserKey,
    pub(crate) value: Bytes,
}

/// Puts and deletes applied together by [`crate::Db::write`]: all of them or none, also
/// after a crash. Later operations on the same key win.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBatch {
    pub(crate) ops: Vec<Op>,
    encoded_bytes: usize,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        WriteBatch::default()
    }

    /// Adds a put of `value` under `key`.
    pub fn put(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.push(
            Kind::Value,
            UserKey::from_slice(key.as_ref()),
            Bytes::copy_from_slice(value.as_ref()),
        );
    }

    /// Adds a deletion of `key`.
    pub fn delete(&mut self, key: impl AsRef<[u8]>) {
        self.push(
            Kind::Tombstone,
            UserKey::from_slice(key.as_ref()),
            Bytes::new(),
        );
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True when the batch holds no operation.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Removes every operation.
    pub fn clear(&mut self) {
        self.ops.clear();
        self.encoded_bytes = 0;
    }

    /// Size of the batch's serialized form ([`WriteBatch::to_bytes`]), in bytes: what
    /// [`MAX_BATCH_BYTES`] limits. Its WAL record payload is a few bytes smaller.
    pub fn encoded_len(&self) -> usize {
        BATCH_HEADER_BYTES + self.encoded_bytes
    }

    /// Appends every operation of `other`, after this batch's own.
    pub fn append(&mut self, other: WriteBatch) {
        self.encoded_bytes += other.encoded_bytes;
        self.ops.extend(other.ops);
    }

    /// The batch's serialized form (`docs/format/wal.md`, the batch payload of version-1
    /// WAL records): the sequence number its first operation gets (u64), the operation
    /// count (u32), then each operation. Replication ships batches in this form.
    pub fn to_bytes(&self, first_seq: u64) -> Vec<u8> {
        let mut buf = Vec::with_capacity(self.encoded_len());
        self.encode(first_seq, &mut buf);
        buf
    }

    /// Parses [`WriteBatch::to_bytes`]'s form; values are zero-copy slices of `bytes`.
    /// Returns the first sequence number and the batch.
    ///
    /// # Errors
    /// [`Error::Corruption`] (with file `<write batch>`) at the offset where the bytes
    /// stop making sense.
    pub fn from_bytes(bytes: &Bytes) -> Result<(u64, WriteBatch)> {
        WriteBatch::decode(bytes)
            .map_err(|e| Error::corruption("<write batch>", e.offset as u64, e.reason))
    }

    pub(crate) fn push(&mut self, kind: Kind, key: UserKey, value: Bytes) {
        self.encoded_bytes += op_encoded_len(kind, key.len(), value.len());
        self.ops.push(Op { kind, key, value });
    }

    /// Checks the documented limits ([`crate::MAX_KEY_BYTES`], [`crate::MAX_VALUE_BYTES`],
    /// [`MAX_BATCH_BYTES`]) as [`crate::Db::write`] does.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the limit exceeded.
    pub fn validate(&self) -> Result<()> {
        for op in &self.ops {
            check_op(op.key.len(), op.value.len())?;
        }
        if self.encoded_len() > MAX_BATCH_BYTES {
            return Err(Error::InvalidArgument(format!(
                "batch of {} bytes exceeds the limit of {MAX_BATCH_BYTES} bytes",
                self.encoded_len()
            )));
        }
        if self.ops.len() > u32::MAX as usize {
            return Err(Error::InvalidArgument(
                "batch has too many operations".into(),
            ));
        }
        Ok(())
    }

    /// Appends the batch in [`WriteBatch::to_bytes`]'s form (fixed 12-byte header),
    /// its first op getting sequence `first_seq`.
    pub(crate) fn encode(&self, first_seq: SeqNo, buf: &mut Vec<u8>) {
        buf.reserve(self.encoded_len());
        put_u64(buf, first_seq);
        put_u32(buf, self.ops.len() as u32);
        self.encode_ops(buf);
    }

    /// Appends the payload of a version-2 WAL record: the first sequence and the
    /// operation count as varints (instead of 12 fixed bytes), then the operations.
    pub(crate) fn encode_wal(&self, first_seq: SeqNo, buf: &mut Vec<u8>) {
        buf.reserve(self.encoded_len());
        put_varint(buf, first_seq);
        put_varint(buf, self.ops.len() as u64);
        self.encode_ops(buf);
    }

    /// The operations after either header.
    fn encode_ops(&self, buf: &mut Vec<u8>) {
        for op in &self.ops {
            encode_op(buf, op.kind, &op.key, &op.value);
        }
    }

    /// Decodes [`WriteBatch::encode`]'s form (version-1 WAL records, replication);
    /// values (and keys too long to store inline) are zero-copy slices of `payload`.
    pub(crate) fn decode(payload: &Bytes) -> Result<(SeqNo, WriteBatch), DecodeError> {
        let mut r = Reader::new(payload);
        let first_seq = r.u64("batch sequence")?;
        let count = u64::from(r.u32("batch count")?);
        Self::decode_ops(payload, r, first_seq, count)
    }

    /// Decodes [`WriteBatch::encode_wal`]'s form (version-2 WAL records).
    pub(crate) fn decode_wal(payload: &Bytes) -> Result<(SeqNo, WriteBatch), DecodeError> {
        let mut r = Reader::new(payload);
        let first_seq = r.varint("batch sequence")?;
        let count = r.varint("batch count")?;
        Self::decode_ops(payload, r, first_seq, count)
    }

    /// Decodes the `count` operations after a batch header that `r` has just read.
    fn decode_ops(
        payload: &Bytes,
        mut r: Reader<'_>,
        first_seq: SeqNo,
        count: u64,
    ) -> Result<(SeqNo, WriteBatch), DecodeError> {
        // Each op takes at least two bytes; a larger count is corrupt and must not
        // drive a huge allocation.
        if count > r.remaining() as u64 / 2 + 1 {
            return Err(DecodeError::new(
                r.position(),
                format!("batch count {count} exceeds its payload"),
            ));
        }
        let count = count as usize;
        let mut batch = WriteBatch::new();
        batch.ops.reserve(count);
        let slice = |s: &[u8]| payload.slice_ref(s);
        for _ in 0..count {
            let at = r.position();
            let kind = Kind::from_u8(r.u8("op kind")?)
                .ok_or_else(|| DecodeError::new(at, "unknown op kind"))?;
            let key = UserKey::from_bytes(slice(r.len_prefixed(MAX_KEY_BYTES, "key length")?));
            let value = match kind {
                Kind::Value => slice(r.len_prefixed(MAX_VALUE_BYTES, "value length")?),
                Kind::Tombstone => Bytes::new(),
            };
            batch.push(kind, key, value);
        }
        if !r.is_empty() {
            return Err(DecodeError::new(r.position(), "trailing bytes after batch"));
        }
        Ok((first_seq, batch))
    }
}

/// One put or delete borrowed from the caller: what [`crate::Db::put`] and
/// [`crate::Db::delete`] commit without building a [`WriteBatch`] (no allocation) when
/// they lead their commit group themselves. Encoded exactly as a one-operation batch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OneOp<'a> {
    pub(crate) kind: Kind,
    pub(crate) key: &'a [u8],
    pub(crate) value: &'a [u8],
}

impl OneOp<'_> {
    /// The limits [`WriteBatch::validate`] checks (a single operation within them is
    /// always below [`MAX_BATCH_BYTES`]).
    pub(crate) fn validate(&self) -> Result<()> {
        check_op(self.key.len(), self.value.len())
    }

    pub(crate) fn encoded_len(&self) -> usize {
        BATCH_HEADER_BYTES + op_encoded_len(self.kind, self.key.len(), self.value.len())
    }

    /// Appends the version-2 WAL payload of the one-operation batch with sequence `seq`
    /// (see [`WriteBatch::encode_wal`]).
    pub(crate) fn encode_wal(&self, seq: SeqNo, buf: &mut Vec<u8>) {
        buf.reserve(self.encoded_len());
        put_varint(buf, seq);
        put_varint(buf, 1);
        encode_op(buf, self.kind, self.key, self.value);
    }

    /// The same operation as an owned batch.
    pub(crate) fn to_batch(self) -> WriteBatch {
        let mut b = WriteBatch::new();
        match self.kind {
            Kind::Value => b.put(self.key, self.value),
            Kind::Tombstone => b.delete(self.key),
        }
        b
    }
}

/// Bytes an operation adds to a batch's payload.
fn op_encoded_len(kind: Kind, key_len: usize, value_len: usize) -> usize {
    let mut n = 1 + varint_len(key_len as u64) + key_len;
    if kind == Kind::Value {
        n += varint_len(value_len as u64) + value_len;
    }
    n
}

fn encode_op(buf: &mut Vec<u8>, kind: Kind, key: &[u8], value: &[u8]) {
    buf.push(kind as u8);
    put_len_prefixed(buf, key);
    if kind == Kind::Value {
        put_len_prefixed(buf, value);
    }
}

fn check_op(key_len: usize, value_len: usize) -> Result<()> {
    if key_len > MAX_KEY_BYTES {
        return Err(Error::InvalidArgument(format!(
            "key of {key_len} bytes exceeds the limit of {MAX_KEY_BYTES} bytes"
        )));
    }
    if value_len > MAX_VALUE_BYTES {
        return Err(Error::InvalidArgument(format!(
            "value of {value_len} bytes exceeds the limit of {MAX_VALUE_BYTES} bytes"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut b = WriteBatch::new();
        b.put(b"a", b"1");
        b.delete(b"b");
        b.put(b"", vec![7u8; 300]);
        let mut buf = Vec::new();
        b.encode(42, &mut buf);
        assert_eq!(buf.len(), b.encoded_len());
        let (seq, d) = WriteBatch::decode(&Bytes::from(buf)).unwrap();
        assert_eq!(seq, 42);
        assert_eq!(d, b);
    }

    #[test]
    fn public_form_and_append() {
        let mut a = WriteBatch::new();
        a.put(b"a", b"1");
        let mut b = WriteBatch::new();
        b.delete(b"b");
        b.put(b"c", vec![3u8; 40]);
        a.append(b.clone());
        assert_eq!(a.len(), 3);
        let bytes = Bytes::from(a.to_bytes(7));
        assert_eq!(bytes.len(), a.encoded_len());
        let (seq, back) = WriteBatch::from_bytes(&bytes).unwrap();
        assert_eq!((seq, &back), (7, &a));
        let err = WriteBatch::from_bytes(&bytes.slice(..bytes.len() - 1)).unwrap_err();
        assert!(err.is_corruption(), "{err}");
    }

    #[test]
    fn every_truncation_is_an_error() {
        let mut b = WriteBatch::new();
        b.put(b"key", b"value");
        b.delete(b"gone");
        let mut buf = Vec::new();
        b.encode(1, &mut buf);
        for n in 0..buf.len() {
            assert!(
                WriteBatch::decode(&Bytes::copy_from_slice(&buf[..n])).is_err(),
                "len {n}"
            );
        }
    }

    #[test]
    fn limits_are_checked() {
        let mut b = WriteBatch::new();
        b.put(vec![0u8; MAX_KEY_BYTES + 1], b"v");
        assert!(matches!(b.validate(), Err(Error::InvalidArgument(_))));
    }
}
