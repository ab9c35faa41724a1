//! The fuzz targets' committed corpora (`fuzz/corpus/<target>/seed-*`) and regression
//! inputs (`fuzz/regressions/<target>/*`, one file per finding) replayed through the same
//! entry functions the fuzzers call, so `cargo test` catches regressions without building
//! the fuzzers. `write_seed_corpora` (ignored; run it by name) regenerates the seeds from
//! files a real database writes and from the engine's encoders.

use std::path::{Path, PathBuf};

use lsm_core::{fuzzing, Db, Options};

/// `Ok(decoded)`, or `Err` for a bug the fuzzer would report.
type Entry = fn(&[u8]) -> Result<bool, String>;

/// Every lsm-core target and how its input is judged: decoders must not panic (whether
/// they accept a fuzzed input is free, but every seed must decode); the model must
/// agree with its `BTreeMap`.
const TARGETS: &[(&str, Entry)] = &[
    ("wal_segment", |d| Ok(fuzzing::wal_segment(d))),
    ("write_batch", |d| Ok(fuzzing::write_batch(d))),
    ("sstable", |d| Ok(fuzzing::sstable(d))),
    ("sstable_repaired", |d| Ok(fuzzing::sstable_repaired(d))),
    ("sstable_block", |d| Ok(fuzzing::block(d))),
    ("bloom", |d| Ok(fuzzing::bloom(d))),
    ("manifest", |d| Ok(fuzzing::manifest(d))),
    ("model", |d| fuzzing::model(d).map(|()| true)),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

#[test]
fn committed_corpora_and_regressions_replay_cleanly() {
    for (target, entry) in TARGETS {
        let seeds = lsm_testkit::seed_inputs(&fuzz_dir(), target);
        for (path, bytes) in &seeds {
            match entry(bytes) {
                Ok(true) => {}
                Ok(false) => panic!("{target}: seed {} does not decode", path.display()),
                Err(e) => panic!("{target}: {}: {e}", path.display()),
            }
        }
        for (path, bytes) in
            lsm_testkit::corpus_inputs(&fuzz_dir().join("regressions").join(target))
        {
            if let Err(e) = entry(&bytes) {
                panic!("{target}: regression {}: {e}", path.display());
            }
        }
    }
}

#[test]
#[ignore = "regenerates fuzz/corpus/*/seed-*; run by name"]
fn write_seed_corpora() {
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let dir = fuzz_dir().join("corpus").join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
    };
    for (target, name, bytes) in fuzzing::encoder_seeds() {
        write(target, name, &bytes);
    }
    // Files of a real database: a table, the manifest, a WAL segment with records.
    let tmp = tempfile::tempdir().unwrap();
    let opts = Options {
        memtable_size_bytes: 8 * 1024,
        block_size_bytes: 512,
        ..Options::default()
    };
    let db = Db::open(tmp.path(), opts).unwrap();
    for i in 0..200u32 {
        db.put(
            format!("key{i:04}"),
            format!("value-{i}-{}", "x".repeat((i % 40) as usize)),
        )
        .unwrap();
        if i % 17 == 0 {
            db.delete(format!("key{:04}", i / 2)).unwrap();
        }
    }
    db.flush().unwrap();
    for i in 0..30u32 {
        db.put(format!("wal{i:03}"), format!("{i}")).unwrap();
    }
    db.delete("wal007").unwrap();
    // Closed, so the live WAL segment is cut to its records (an open one ends in
    // reserved zeros).
    db.close().unwrap();
    let files: Vec<PathBuf> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let by_ext = |ext: &str| {
        let mut v: Vec<&PathBuf> = files
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == ext))
            .collect();
        v.sort_by_key(|p| std::fs::metadata(p).unwrap().len());
        v.first().map(|p| std::fs::read(p).unwrap())
    };
    let table = by_ext("sst").expect("a table");
    write("sstable", "table", &table);
    write("sstable_repaired", "table", &table);
    let mut wals: Vec<&PathBuf> = files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    wals.sort();
    write(
        "wal_segment",
        "segment",
        &std::fs::read(wals.last().unwrap()).unwrap(),
    );
    write(
        "manifest",
        "manifest",
        &std::fs::read(tmp.path().join("MANIFEST")).unwrap(),
    );
}

#[test]
fn the_repairing_sstable_target_gets_past_damaged_checksums() {
    let table = std::fs::read(fuzz_dir().join("corpus/sstable/seed-table")).unwrap();
    let mut damaged = table.clone();
    // The footer checksum (bytes 56..64 of the 72-byte footer).
    let at = damaged.len() - 72 + 60;
    damaged[at] ^= 0xff;
    assert!(fuzzing::sstable(&table));
    assert!(
        !fuzzing::sstable(&damaged),
        "a damaged checksum must be rejected"
    );
    assert!(fuzzing::sstable_repaired(&damaged));
}
