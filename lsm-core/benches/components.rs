//! Criterion benchmarks of the engine's hot components: memtable insert and lookup,
//! block encode and seek, bloom build and probe, and a point lookup served from an
//! SSTable (memtable empty, so bloom, index and data block are all on the path).
//!
//! `cargo bench -p lsm-core --bench components` (add `-- memtable` to pick some).
//! Keys are 16 bytes, values 100 bytes, as in `db_bench`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use lsm_core::internals::{bloom_build, bloom_hash, bloom_probe, encode_block, Block, Memtable};
use lsm_core::{Bytes, Db, Options};

const VALUE: [u8; 100] = [b'v'; 100];

fn key(i: u64) -> Vec<u8> {
    // Scrambled so that consecutive indices are not adjacent keys.
    format!("{:016x}", i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).into_bytes()
}

/// `m` with `keys` inserted, sequence numbers 1, 2, ...
fn fill(m: Memtable, keys: &[Bytes]) -> Memtable {
    for (i, k) in keys.iter().enumerate() {
        m.insert(k, i as u64 + 1, &VALUE);
    }
    m
}

fn memtable(c: &mut Criterion) {
    let mut g = c.benchmark_group("memtable");
    const N: u64 = 100_000;
    let keys: Vec<Bytes> = (0..N).map(|i| Bytes::from(key(i))).collect();
    g.throughput(Throughput::Elements(N));
    g.bench_function("insert_100k", |b| {
        b.iter_batched(Memtable::default, |m| fill(m, &keys), BatchSize::LargeInput);
    });
    // Inserts and then the ordering they defer (what a flush or the first scan pays).
    g.bench_function("insert_link_100k", |b| {
        b.iter_batched(
            Memtable::default,
            |m| {
                let m = fill(m, &keys);
                m.link();
                m
            },
            BatchSize::LargeInput,
        );
    });
    let m = fill(Memtable::default(), &keys);
    g.throughput(Throughput::Elements(1));
    let mut i = 0u64;
    g.bench_function("get_hit", |b| {
        b.iter(|| {
            i = (i + 7919) % N;
            black_box(m.contains(&keys[i as usize]))
        });
    });
    g.bench_function("get_miss", |b| {
        b.iter(|| {
            i = (i + 7919) % N;
            black_box(m.contains(&key(N + i)))
        });
    });
    g.finish();
}

fn block(c: &mut Criterion) {
    let mut g = c.benchmark_group("block");
    // About one 4 KiB block: 34 entries of 16-byte keys and 100-byte values.
    let mut entries: Vec<(Vec<u8>, Vec<u8>)> = (0..34).map(|i| (key(i), VALUE.to_vec())).collect();
    entries.sort();
    g.bench_function("encode_34_entries", |b| {
        b.iter(|| black_box(encode_block(&entries, 16)));
    });
    let block = Block::parse(Bytes::from(encode_block(&entries, 16))).expect("block decodes");
    let mut i = 0usize;
    g.bench_function("seek", |b| {
        b.iter(|| {
            i = (i + 13) % entries.len();
            black_box(block.seek(&entries[i].0))
        });
    });
    g.finish();
}

fn bloom(c: &mut Criterion) {
    let mut g = c.benchmark_group("bloom");
    let hashes: Vec<u64> = (0..10_000).map(|i| bloom_hash(&key(i))).collect();
    g.throughput(Throughput::Elements(hashes.len() as u64));
    g.bench_function("build_10k_keys", |b| {
        b.iter(|| black_box(bloom_build(&hashes, 10)));
    });
    let filter = bloom_build(&hashes, 10);
    g.throughput(Throughput::Elements(1));
    let mut i = 0u64;
    g.bench_function("probe_miss", |b| {
        b.iter(|| {
            i += 1;
            black_box(bloom_probe(&filter, bloom_hash(&key(1_000_000 + i))))
        });
    });
    g.finish();
}

fn table_lookup(c: &mut Criterion) {
    let mut g = c.benchmark_group("table");
    let dir = tempfile::tempdir().expect("temporary directory");
    let db = Db::open(dir.path(), Options::default()).expect("open");
    const N: u64 = 100_000;
    for i in 0..N {
        db.put(key(i), VALUE).expect("put");
    }
    db.flush().expect("flush");
    let mut i = 0u64;
    g.bench_function("point_get_hit", |b| {
        b.iter(|| {
            i = (i + 7919) % N;
            black_box(db.get(key(i)).expect("get"))
        });
    });
    g.bench_function("point_get_miss", |b| {
        b.iter(|| {
            i = (i + 7919) % N;
            black_box(db.get(key(N + i)).expect("get"))
        });
    });
    g.finish();
    db.close().expect("close");
}

criterion_group!(benches, memtable, block, bloom, table_lookup);
criterion_main!(benches);
