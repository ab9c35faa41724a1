//! Entry points for the fuzz targets in `fuzz/` and for tests that replay their corpora:
//! each feeds arbitrary bytes to one decoder exactly as the engine would. They must never
//! panic; they return whether the input decoded.

use std::path::Path;

use bytes::Bytes;

use crate::coding::u64_at;

/// Decodes `data` as a WAL segment (the newest: a torn tail is allowed).
pub fn wal_segment(data: &[u8]) -> bool {
    let number = if data.len() >= 24 {
        u64_at(data, 16)
    } else {
        0
    };
    crate::wal::read_segment(Path::new("fuzz.wal"), &Bytes::copy_from_slice(data), number).is_ok()
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

/// Parses `data` as a data or index block, iterates it fully and seeks to the keys it saw
/// plus a few others.
pub fn block(data: &[u8]) -> bool {
    let Ok(block) = crate::sstable::block::Block::parse(Bytes::copy_from_slice(data)) else {
        return false;
    };
    let mut it = block.iter();
    let mut keys: Vec<Vec<u8>> = Vec::new();
    let mut ok = it.seek_to_first().is_ok();
    let mut steps = 0;
    while ok && it.valid() && steps < 100_000 {
        if keys.len() < 32 {
            keys.push(it.key().to_vec());
        }
        let _ = it.value_slice();
        ok = it.next().is_ok();
        steps += 1;
    }
    keys.extend([Vec::new(), vec![0xff; 8]]);
    for k in &keys {
        let mut it = block.iter();
        ok &= it.seek(k).is_ok();
    }
    ok
}

/// One step of [`model`].
#[derive(Debug, Clone)]
enum ModelOp {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
    Batch(Vec<(Vec<u8>, Option<Vec<u8>>)>),
    Get(Vec<u8>),
    Range(Vec<u8>, Vec<u8>),
    Flush,
    Compact,
    Reopen,
}

/// Decodes operations from fuzz bytes: one byte picks the operation, the next ones its
/// key (from a small space, so operations collide) and value length.
fn model_ops(data: &[u8]) -> Vec<ModelOp> {
    let mut ops = Vec::new();
    let mut i = 0;
    let mut byte = || {
        let b = data.get(i).copied();
        i += 1;
        b
    };
    let key = |b: u8| format!("key{:03}", b % 64).into_bytes();
    while let Some(op) = byte() {
        let a = byte().unwrap_or(0);
        let b = byte().unwrap_or(0);
        ops.push(match op % 16 {
            0..=5 => ModelOp::Put(key(a), vec![b; usize::from(b) * 3 % 700]),
            6 | 7 => ModelOp::Delete(key(a)),
            8 => ModelOp::Batch(
                (0..(b % 5))
                    .map(|j| {
                        let k = key(a.wrapping_add(j * 7));
                        let v = (j % 2 == 0).then(|| vec![j; usize::from(a) + 1]);
                        (k, v)
                    })
                    .collect(),
            ),
            9 | 10 => ModelOp::Get(key(a)),
            // Bounds in either order: a reversed range must come back empty.
            11 => ModelOp::Range(key(a), key(b)),
            12 => ModelOp::Flush,
            13 => ModelOp::Compact,
            _ => ModelOp::Reopen,
        });
        if ops.len() >= 2_000 {
            break;
        }
    }
    ops
}

/// Runs the operations encoded in `data` (put, delete, batch, get, range, flush,
/// compact, reopen) on a [`crate::Db`] in a fresh directory (under `LSM_FUZZ_DIR`,
/// else `/dev/shm`, else the temporary directory) with tiny
/// memtables and levels (so flushes and compactions happen), and checks every read
/// against a `BTreeMap`. Returns a description of the first divergence, or of an engine
/// error, as `Err`; the fuzz target panics on it.
///
/// # Errors
/// The engine disagreed with the model or failed.
pub fn model(data: &[u8]) -> Result<(), String> {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicU64, Ordering};
    static RUN: AtomicU64 = AtomicU64::new(0);

    // Memory-backed when possible: the engine's fsyncs would otherwise bound the
    // fuzzer to a few dozen runs a second.
    let base = std::env::var_os("LSM_FUZZ_DIR")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            let shm = Path::new("/dev/shm");
            shm.is_dir().then(|| shm.to_path_buf())
        })
        .unwrap_or_else(std::env::temp_dir);
    let dir = base.join(format!(
        "lsm-fuzz-model-{}-{}",
        std::process::id(),
        RUN.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let opts = crate::Options {
        memtable_size_bytes: 4096,
        max_sealed_memtables: 2,
        block_size_bytes: 256,
        l0_compaction_trigger: 2,
        l0_slowdown_trigger: 4,
        l0_stop_trigger: 8,
        l1_target_bytes: 8192,
        level_size_ratio: 2,
        num_levels: 4,
        target_file_size_bytes: 4096,
        background_threads: false,
        ..crate::Options::default()
    };
    let result = (|| {
        let err = |what: &str, e: crate::Error| format!("{what}: {e}");
        let mut db = crate::Db::open(&dir, opts.clone()).map_err(|e| err("open", e))?;
        let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        for (step, op) in model_ops(data).into_iter().enumerate() {
            match &op {
                ModelOp::Put(k, v) => {
                    db.put(k, v).map_err(|e| err("put", e))?;
                    model.insert(k.clone(), v.clone());
                }
                ModelOp::Delete(k) => {
                    db.delete(k).map_err(|e| err("delete", e))?;
                    model.remove(k);
                }
                ModelOp::Batch(items) => {
                    let mut batch = crate::WriteBatch::new();
                    for (k, v) in items {
                        match v {
                            Some(v) => {
                                batch.put(k, v);
                                model.insert(k.clone(), v.clone());
                            }
                            None => {
                                batch.delete(k);
                                model.remove(k);
                            }
                        }
                    }
                    db.write(batch).map_err(|e| err("write", e))?;
                }
                ModelOp::Get(k) => {
                    let got = db.get(k).map_err(|e| err("get", e))?;
                    if got.as_deref() != model.get(k).map(Vec::as_slice) {
                        return Err(format!("step {step}: {op:?} returned {got:?}"));
                    }
                }
                ModelOp::Range(a, b) => {
                    let got: Vec<(Vec<u8>, Vec<u8>)> = db
                        .range(a.as_slice()..b.as_slice())
                        .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())))
                        .collect::<Result<_, _>>()
                        .map_err(|e| err("range", e))?;
                    let want: Vec<(Vec<u8>, Vec<u8>)> = if a <= b {
                        model
                            .range(a.clone()..b.clone())
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect()
                    } else {
                        Vec::new()
                    };
                    if got != want {
                        return Err(format!(
                            "step {step}: {op:?} returned {} entries, model {}",
                            got.len(),
                            want.len()
                        ));
                    }
                }
                ModelOp::Flush => db.flush().map_err(|e| err("flush", e))?,
                ModelOp::Compact => db.compact().map_err(|e| err("compact", e))?,
                ModelOp::Reopen => {
                    db.close().map_err(|e| err("close", e))?;
                    db = crate::Db::open(&dir, opts.clone()).map_err(|e| err("reopen", e))?;
                }
            }
        }
        let all: Vec<(Vec<u8>, Vec<u8>)> = db
            .iter()
            .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())))
            .collect::<Result<_, _>>()
            .map_err(|e| err("iter", e))?;
        if all != model.into_iter().collect::<Vec<_>>() {
            return Err("final full scan differs from the model".into());
        }
        db.close().map_err(|e| err("close", e))
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Seed inputs for the targets whose input is not a whole file, made by the engine's own
/// encoders: `(target, name, bytes)`. File targets (`wal_segment`, `sstable`,
/// `manifest`) are seeded from a real database directory by the corpus test.
pub fn encoder_seeds() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let mut seeds = Vec::new();
    let mut builder = crate::sstable::block::BlockBuilder::new(4);
    for i in 0..20u32 {
        let mut key = Vec::new();
        crate::types::encode_internal(
            &mut key,
            format!("key{i:04}").as_bytes(),
            crate::types::trailer(u64::from(i) + 1, crate::types::Kind::Value),
        );
        builder.add(&key, format!("value{i}").as_bytes());
    }
    seeds.push(("sstable_block", "data-block", builder.finish()));
    let hashes: Vec<u64> = (0..100u32)
        .map(|i| crate::sstable::bloom::bloom_hash(format!("key{i}").as_bytes()))
        .collect();
    seeds.push((
        "bloom",
        "100-keys",
        crate::sstable::bloom::build(&hashes, 10),
    ));
    let mut batch = crate::WriteBatch::new();
    batch.put(b"alpha", b"1");
    batch.delete(b"beta");
    batch.put(b"", vec![7u8; 300]);
    let mut encoded = Vec::new();
    batch.encode(42, &mut encoded);
    seeds.push(("write_batch", "put-delete-empty-key", encoded));
    // Model: puts, a batch, gets, a range, flush, compact, reopen, in the op encoding
    // of `model_ops` (op byte, key byte, value byte).
    seeds.push((
        "model",
        "mixed",
        vec![
            0, 1, 9, 1, 2, 200, 6, 1, 0, 8, 3, 4, 9, 2, 0, 11, 0, 60, 12, 0, 0, 0, 5, 5, 13, 0, 0,
            14, 0, 0, 10, 2, 0, 11, 0, 63,
        ],
    ));
    seeds.push((
        "model",
        "many-puts",
        (0..600u32).map(|i| (i * 7 % 251) as u8).collect(),
    ));
    seeds
}

/// Rewrites every checksum of `data` taken as an SSTable (footer; index, filter and
/// properties blocks; the data blocks the index names) so that mutated inputs get past
/// the checksums into the structure decoders. Out-of-range handles are left alone.
fn repair_table_checksums(data: &mut [u8]) {
    use crate::coding::checksum;
    use crate::sstable::{BLOCK_TRAILER_BYTES, SST_FOOTER_BYTES, SST_HEADER_BYTES};
    if data.len() < SST_HEADER_BYTES + SST_FOOTER_BYTES {
        return;
    }
    let footer = data.len() - SST_FOOTER_BYTES;
    let fix_block = |data: &mut [u8], offset: u64, len: u64| -> Option<(usize, usize)> {
        let start = usize::try_from(offset).ok()?;
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        if start < SST_HEADER_BYTES || end.checked_add(BLOCK_TRAILER_BYTES)? > footer {
            return None;
        }
        let c = checksum(&data[start..end]);
        data[end..end + BLOCK_TRAILER_BYTES].copy_from_slice(&c.to_le_bytes());
        Some((start, end))
    };
    let handle = |data: &[u8], i: usize| {
        (
            u64_at(data, footer + 16 * i),
            u64_at(data, footer + 16 * i + 8),
        )
    };
    let (index_off, index_len) = handle(data, 0);
    for i in 1..3 {
        let (o, l) = handle(data, i);
        let _ = fix_block(data, o, l);
    }
    if let Some((start, end)) = fix_block(data, index_off, index_len) {
        let index = Bytes::copy_from_slice(&data[start..end]);
        if let Ok(block) = crate::sstable::block::Block::parse(index) {
            let mut it = block.iter();
            let mut ok = it.seek_to_first().is_ok();
            let mut handles = Vec::new();
            while ok && it.valid() && handles.len() < 10_000 {
                let mut r = crate::coding::Reader::new(it.value_slice());
                if let (Ok(o), Ok(l)) = (r.varint("offset"), r.varint("length")) {
                    handles.push((o, l));
                }
                ok = it.next().is_ok();
            }
            for (o, l) in handles {
                let _ = fix_block(data, o, l);
            }
        }
    }
    let c = checksum(&data[footer..footer + 56]);
    data[footer + 56..footer + 64].copy_from_slice(&c.to_le_bytes());
}

/// [`sstable`] after [`repair_table_checksums`]: reaches the block, index, filter and
/// properties decoders with structurally mutated tables.
pub fn sstable_repaired(data: &[u8]) -> bool {
    let mut d = data.to_vec();
    repair_table_checksums(&mut d);
    sstable(&d)
}
