//! The `lsm-server` binary itself: the offline tools, configuration errors, its log, the
//! worker thread count.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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

/// Starts the binary on `--port 0` with data in `dir/data` and `args`, its stderr in
/// `dir/log`; returns it, the port it logged as bound, and the log's text so far.
fn start(dir: &Path, args: &[&str]) -> (lsm_testkit::Child, u16, String) {
    let log = dir.join("log");
    let mut server = lsm_testkit::Child::spawn(
        format!("lsm-server {args:?}"),
        bin()
            .args(args)
            .args(["--port", "0", "--metrics-port", "0", "--log-level", "info"])
            .arg("--data-dir")
            .arg(dir.join("data"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap()),
    );
    let port = server.logged_port(&log, Duration::from_secs(20));
    let text = std::fs::read_to_string(&log).unwrap();
    let port = port.unwrap_or_else(|| panic!("no listening line in the log:\n{text}"));
    (server, port, text)
}

/// The log names the address the server bound (`--port 0`: the one the kernel chose, and
/// the server answers there), in plain text when stderr is not a terminal.
#[test]
fn log_names_the_bound_address_in_plain_text() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, port, text) = start(dir.path(), &[]);
    assert!(
        !text.contains('\x1b'),
        "colour codes in a log file:\n{text}"
    );
    assert!(
        text.contains(" INFO lsm_server::server: lsm-server listening addr="),
        "{text}"
    );
    let mut c = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(5))
        .unwrap();
    assert_eq!(redis::cmd("PING").query::<String>(&mut c).unwrap(), "PONG");
    server.signal("TERM");
    let status = server
        .wait_exit(Duration::from_secs(20))
        .expect("exits on SIGTERM");
    assert!(status.success(), "{status}");
}

/// `--threads N` sets the number of worker threads serving connections (INFO's
/// `worker_threads`); 0, the default, is one per CPU core.
#[test]
fn threads_sets_the_number_of_workers() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    for (arg, want) in [("1", 1), ("3", 3), ("0", cores)] {
        let dir = tempfile::tempdir().unwrap();
        let (mut server, port, _) = start(dir.path(), &["--threads", arg]);
        let deadline = Instant::now() + Duration::from_secs(20);
        let info = loop {
            let reply = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
                .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(1)))
                .and_then(|mut c| redis::cmd("INFO").arg("server").query::<String>(&mut c));
            match reply {
                Ok(info) => break info,
                Err(_) if Instant::now() < deadline && server.alive() => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("--threads {arg}: server not answering: {e}"),
            }
        };
        assert!(
            info.lines().any(|l| l == format!("worker_threads:{want}")),
            "--threads {arg}:\n{info}"
        );
        server.signal("TERM");
        let status = server
            .wait_exit(Duration::from_secs(20))
            .expect("exits on SIGTERM");
        assert!(status.success(), "--threads {arg}: {status}");
    }
}
