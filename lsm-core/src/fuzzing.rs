//! Entry points for the fuzz targets in `fuzz/` and for tests that replay their corpora:
//! each feeds arbitrary bytes to one decoder exactly as the engine would. They must never
//! panic; they return whether the input decoded.

use std::path::Path;

use bytes::Bytes;

use crate::coding::u64_at;

/// Decodes `data` as the newest WAL segment (torn tail allowed).
pub fn wal_segment(data: &[u8]) -> bool {
    let number = if data.len() >= 24 {
        u64_at(data, 16)
    } else {
        0
    };
    crate::wal::read_segment(
        Path::new("fuzz.wal"),
        &Bytes::copy_from_slice(data),
        number,
        true,
    )
    .is_ok()
}

/// Decodes `data` as a WAL record payload (a write batch).
pub fn write_batch(data: &[u8]) -> bool {
    crate::batch::WriteBatch::decode(&Bytes::copy_from_slice(data)).is_ok()
}

/// Opens `data` as an SSTable, iterates it fully and looks up the keys it saw plus a few
/// others.
pub fn sstable(data: &[u8]) -> bool {
    let Ok(table) =
        crate::sstable::Table::open(Path::new("fuzz.sst"), Bytes::copy_from_slice(data))
    else {
        return false;
    };
    let table = std::sync::Arc::new(table);
    let mut keys = Vec::new();
    let mut it = crate::sstable::TableIter::new(table.clone());
    let mut ok = it.seek_to_first().is_ok();
    let mut steps = 0;
    while ok && it.valid() && steps < 100_000 {
        if let Some((k, _)) = crate::types::split_internal(it.key()) {
            if keys.len() < 64 {
                keys.push(k.to_vec());
            }
        }
        ok = it.next().is_ok();
        steps += 1;
    }
    keys.extend([Vec::new(), b"zzzz".to_vec()]);
    for k in &keys {
        let _ = table.may_contain(crate::sstable::bloom::bloom_hash(k));
        ok &= table.get(k, crate::types::MAX_SEQNO).is_ok();
    }
    ok
}

/// Decodes `data` as a bloom filter block and probes it.
pub fn bloom(data: &[u8]) -> bool {
    match crate::sstable::bloom::Bloom::decode(data) {
        Ok(b) => {
            let _ = b.may_contain(crate::sstable::bloom::bloom_hash(data));
            true
        }
        Err(_) => false,
    }
}

/// Decodes `data` as a manifest.
pub fn manifest(data: &[u8]) -> bool {
    crate::manifest::ManifestData::decode(data).is_ok()
}
