//! Damaged files: a flipped byte at sampled offsets, or truncation at sampled lengths, of
//! a WAL segment, an SSTable and the manifest. Opening and reading give a corruption
//! error or the documented torn-tail behaviour (the newest WAL loses its damaged tail):
//! never a panic, never wrong data.

mod common;

use std::path::{Path, PathBuf};

use lsm_core::{Db, Error, Options};

const TABLE_KEYS: u32 = 400;
const WAL_KEYS: u32 = 60;

fn options() -> Options {
    Options {
        background_threads: false,
        block_size_bytes: 512,
        ..Options::default()
    }
}

fn value(i: u32) -> String {
    format!("value-{i}-{}", "v".repeat((i % 13) as usize))
}

/// A database with `TABLE_KEYS` keys in one table and `WAL_KEYS` more only in the WAL.
fn pristine() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), options()).unwrap();
    for i in 0..TABLE_KEYS {
        db.put(format!("k{i:04}"), value(i)).unwrap();
    }
    db.flush().unwrap();
    for i in TABLE_KEYS..TABLE_KEYS + WAL_KEYS {
        db.put(format!("k{i:04}"), value(i)).unwrap();
    }
    db.close().unwrap();
    dir
}

fn file_with(dir: &Path, ext: &str) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.extension().is_some_and(|e| e == ext) || p.file_name().is_some_and(|n| n == ext)
        })
        .unwrap_or_else(|| panic!("no {ext} file"))
}

fn copy_dir(from: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, to.path().join(p.file_name().unwrap())).unwrap();
    }
    to
}

fn assert_corruption(e: &Error, what: &str) {
    assert!(
        e.is_corruption(),
        "{what}: expected a corruption error, got {e}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("offset") || msg.contains("version"),
        "{what}: error does not say where: {msg}"
    );
}

/// Opens a damaged copy. Returns how many keys survived, having checked that every key
/// read is correct. `allow_loss` allows a torn WAL tail (keys missing at the end).
fn check_damaged(dir: &Path, what: &str, allow_loss: bool) -> Option<u32> {
    let db = match Db::open(dir, options()) {
        Ok(db) => db,
        Err(e) => {
            assert_corruption(&e, what);
            return None;
        }
    };
    let mut present = 0;
    for i in 0..TABLE_KEYS + WAL_KEYS {
        match db.get(format!("k{i:04}")) {
            Ok(Some(v)) => {
                assert_eq!(v, value(i).as_bytes(), "{what}: wrong value for k{i:04}");
                present += 1;
            }
            Ok(None) => assert!(
                allow_loss && i >= TABLE_KEYS,
                "{what}: k{i:04} silently lost"
            ),
            Err(e) => assert_corruption(&e, what),
        }
    }
    for item in db.iter() {
        match item {
            Ok((k, v)) => {
                let i: u32 = std::str::from_utf8(&k[1..]).unwrap().parse().unwrap();
                assert_eq!(v, value(i).as_bytes(), "{what}: wrong value in scan");
            }
            Err(e) => {
                assert_corruption(&e, what);
                break;
            }
        }
    }
    Some(present)
}

fn sampled(len: usize, samples: usize) -> impl Iterator<Item = usize> {
    let step = (len / samples).max(1);
    // Odd steps spread the samples over different field positions.
    (0..len).step_by(step | 1).chain([len.saturating_sub(1)])
}

fn flip_and_check(ext: &str, allow_loss: bool, samples: usize) -> (usize, usize) {
    let base = pristine();
    let name = file_with(base.path(), ext).file_name().unwrap().to_owned();
    let len = std::fs::metadata(base.path().join(&name)).unwrap().len() as usize;
    let (mut errors, mut opened) = (0, 0);
    for at in sampled(len, samples) {
        let copy = copy_dir(base.path());
        let path = copy.path().join(&name);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[at] ^= 0x41;
        std::fs::write(&path, &bytes).unwrap();
        match check_damaged(copy.path(), &format!("{ext} byte {at} flipped"), allow_loss) {
            None => errors += 1,
            Some(_) => opened += 1,
        }
    }
    for cut in sampled(len, samples / 2) {
        let copy = copy_dir(base.path());
        let path = copy.path().join(&name);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let what = format!("{ext} truncated to {cut}");
        match check_damaged(copy.path(), &what, allow_loss) {
            None => errors += 1,
            Some(present) => {
                opened += 1;
                assert!(allow_loss, "{what}: accepted");
                assert!(present >= TABLE_KEYS, "{what}");
            }
        }
    }
    (errors, opened)
}

#[test]
fn damaged_sstable_is_detected() {
    let (errors, _) = flip_and_check("sst", false, 120);
    assert!(errors > 0);
}

#[test]
fn damaged_manifest_is_detected() {
    let (errors, opened) = flip_and_check("MANIFEST", false, 60);
    assert!(errors > 0);
    assert_eq!(opened, 0, "every manifest flip or cut must be an error");
}

#[test]
fn damaged_wal_is_detected_or_cut_as_torn_tail() {
    let (errors, opened) = flip_and_check("wal", true, 120);
    assert!(
        errors > 0 && opened > 0,
        "{errors} errors, {opened} torn tails"
    );
}

#[test]
fn torn_wal_tail_keeps_every_complete_record() {
    let base = pristine();
    let name = file_with(base.path(), "wal")
        .file_name()
        .unwrap()
        .to_owned();
    let bytes = std::fs::read(base.path().join(&name)).unwrap();
    // Cutting inside the last record loses exactly that record.
    let copy = copy_dir(base.path());
    std::fs::write(copy.path().join(&name), &bytes[..bytes.len() - 3]).unwrap();
    let present = check_damaged(copy.path(), "tail cut", true).unwrap();
    assert_eq!(present, TABLE_KEYS + WAL_KEYS - 1);
    // A zero-filled tail (preallocation, or a power loss after a size update) is a torn
    // tail too.
    let copy = copy_dir(base.path());
    let mut padded = bytes;
    padded.extend_from_slice(&[0u8; 4096]);
    std::fs::write(copy.path().join(&name), &padded).unwrap();
    assert_eq!(
        check_damaged(copy.path(), "zero tail", true).unwrap(),
        TABLE_KEYS + WAL_KEYS
    );
}

/// A WAL segment header as `docs/format/wal.md` defines it: magic, version 1, reserved,
/// number, xxh3-64 of the first 24 bytes.
/// A WAL segment header (`docs/format/wal.md`) for segment `number` in format `version`.
fn segment_header(number: u64, version: u32) -> Vec<u8> {
    let mut h = b"LSMWAL\0\x01".to_vec();
    h.extend_from_slice(&version.to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes());
    h.extend_from_slice(&number.to_le_bytes());
    let c = xxhash_rust::xxh3::xxh3_64(&h);
    h.extend_from_slice(&c.to_le_bytes());
    h
}

/// Regression: a crash during recovery. Recovering a segment with a torn tail creates a
/// fresh, empty segment before the manifest records the new log start; a crash between
/// the two left the torn segment "not the newest", and the next open refused it as
/// corruption (found reasoning about the memory-mapped WAL, whose unfinished segments end
/// in zeros). An early end is accepted when no later segment holds a record, and is still
/// corruption when one does.
#[test]
fn torn_tail_followed_by_an_empty_segment_opens() {
    let base = pristine();
    let wal = file_with(base.path(), "wal");
    let name = wal.file_name().unwrap().to_owned();
    let number: u64 = wal.file_stem().unwrap().to_str().unwrap().parse().unwrap();
    let bytes = std::fs::read(&wal).unwrap();
    let next = format!("{:06}.wal", number + 100);
    let version = u32::from_le_bytes(bytes[8..12].try_into().unwrap());

    let copy = copy_dir(base.path());
    std::fs::write(copy.path().join(&name), &bytes[..bytes.len() - 3]).unwrap();
    std::fs::write(
        copy.path().join(&next),
        segment_header(number + 100, version),
    )
    .unwrap();
    let present = check_damaged(copy.path(), "torn tail, then an empty segment", true);
    assert_eq!(present, Some(TABLE_KEYS + WAL_KEYS - 1));

    // The same torn segment followed by one holding records (the original's, renumbered).
    let copy = copy_dir(base.path());
    std::fs::write(copy.path().join(&name), &bytes[..bytes.len() - 3]).unwrap();
    let mut later = segment_header(number + 100, version);
    later.extend_from_slice(&bytes[32..]);
    std::fs::write(copy.path().join(&next), later).unwrap();
    let e = Db::open(copy.path(), options()).unwrap_err();
    assert_corruption(&e, "torn tail, then records");
    assert!(e.to_string().contains("later segment"), "{e}");
}

#[test]
fn missing_table_is_an_error_naming_it() {
    let base = pristine();
    let copy = copy_dir(base.path());
    std::fs::remove_file(file_with(copy.path(), "sst")).unwrap();
    let e = Db::open(copy.path(), options()).unwrap_err();
    assert!(e.to_string().contains(".sst"), "{e}");
}
