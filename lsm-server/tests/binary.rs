//! The `lsm-server` binary itself: the offline tools and configuration errors.

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lsm-server"))
}

#[test]
fn offline_tools_verify_dump_and_stats() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = lsm_core::Db::open(dir.path(), lsm_core::Options::default()).unwrap();
        for i in 0..100 {
            db.put(format!("k{i}"), "v").unwrap();
        }
        db.flush().unwrap();
        db.put("tail", "in the WAL").unwrap();
        db.close().unwrap();
    }
    let out = bin().arg("verify").arg(dir.path()).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with("ok: 1 tables (100 entries"), "{text}");

    let out = bin().arg("stats").arg(dir.path()).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("WAL: 1 segments"));

    let manifest = dir.path().join("MANIFEST");
    let out = bin().arg("dump").arg(&manifest).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 tables"));

    // Damage the table: verify fails, naming the file.
    let sst = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "sst"))
        .unwrap();
    let mut bytes = std::fs::read(&sst).unwrap();
    bytes[40] ^= 0x55;
    std::fs::write(&sst, bytes).unwrap();
    let out = bin().arg("verify").arg(dir.path()).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(".sst") && err.contains("offset"), "{err}");
}

#[test]
fn invalid_configuration_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "maxclients = 0\n").unwrap();
    let out = bin().arg("--config").arg(&cfg).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("maxclients"), "{err}");

    let out = bin().env("LSM_PORT", "not-a-port").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--port"), "{err}");
}
