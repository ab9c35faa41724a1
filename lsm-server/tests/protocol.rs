//! The wire protocol with raw bytes: malformed and oversized frames, frames split across
//! reads, garbage, a client that declares a huge bulk and stalls, inline commands, idle
//! timeouts, and the metrics endpoint. A misbehaving client never affects the others.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{config, TestServer};

const LIMIT: Duration = Duration::from_secs(10);

fn connect(server: &TestServer) -> TcpStream {
    let s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    s
}

/// Reads until the server closes the connection (bounded by the read timeout).
fn read_to_close(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads exactly `n` bytes.
fn read_n(s: &mut TcpStream, n: usize) -> String {
    let mut buf = vec![0u8; n];
    s.read_exact(&mut buf).unwrap();
    String::from_utf8_lossy(&buf).into_owned()
}

fn ping_works(server: &TestServer) {
    let mut s = connect(server);
    s.write_all(b"*1\r\n$4\r\nPING\r\n").unwrap();
    assert_eq!(read_n(&mut s, 7), "+PONG\r\n");
}

#[test]
fn malformed_frames_get_a_protocol_error_and_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path()));
    let cases: [(&[u8], &str); 6] = [
        (
            b"*x\r\n",
            "-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*3000000\r\n",
            "-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*1\r\n$999999999999\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*1\r\n$-3\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*1\r\n:12\r\n",
            "-ERR Protocol error: expected '$', got ':'\r\n",
        ),
        (
            b"SET \"unbalanced\r\n",
            "-ERR Protocol error: unbalanced quotes in request\r\n",
        ),
    ];
    for (input, expected) in cases {
        let mut s = connect(&server);
        s.write_all(input).unwrap();
        assert_eq!(
            read_to_close(&mut s),
            expected,
            "input {:?}",
            String::from_utf8_lossy(input)
        );
    }
    let mut s = connect(&server);
    s.write_all(&vec![b'x'; 70 * 1024]).unwrap();
    assert_eq!(
        read_to_close(&mut s),
        "-ERR Protocol error: too big inline request\r\n"
    );
    ping_works(&server);
}

#[test]
fn frames_split_at_every_byte_are_reassembled() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path()));
    let mut s = connect(&server);
    s.set_nodelay(true).unwrap();
    let request =
        b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n";
    for b in request {
        s.write_all(&[*b]).unwrap();
        std::thread::sleep(Duration::from_micros(200));
    }
    assert_eq!(read_n(&mut s, 5 + 11), "+OK\r\n$5\r\nvalue\r\n");
}

#[test]
fn inline_commands_work() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path()));
    let mut s = connect(&server);
    s.write_all(b"PING\r\nSET greeting \"hello world\"\r\nGET greeting\nQUIT\r\n")
        .unwrap();
    assert_eq!(
        read_to_close(&mut s),
        "+PONG\r\n+OK\r\n$11\r\nhello world\r\n+OK\r\n"
    );
}

#[test]
fn garbage_does_not_hurt_other_clients() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path()));
    let mut x = 0x1234_5678_9abc_def0u64;
    for _ in 0..30 {
        let bytes: Vec<u8> = (0..200)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let mut s = connect(&server);
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let _ = s.write_all(&bytes);
        let _ = read_to_close(&mut s);
    }
    ping_works(&server);
}

#[test]
fn a_stalled_huge_bulk_does_not_block_others() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path()));
    // Declares a 500 MB value, sends a little of it, then stalls.
    let mut stalled = connect(&server);
    stalled
        .write_all(b"*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$500000000\r\nabcdef")
        .unwrap();
    let mut c = server.client();
    for i in 0..100 {
        let _: () = redis::cmd("SET").arg(i).arg(i).query(&mut c).unwrap();
    }
    let n: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(n, 100);
    let info: String = redis::cmd("INFO").arg("clients").query(&mut c).unwrap();
    assert!(info.contains("connected_clients:2"), "{info}");
    drop(stalled);
}

#[test]
fn unauthenticated_clients_are_limited() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(lsm_server::Config {
        requirepass: Some("pw".into()),
        ..config(dir.path())
    });
    let mut s = connect(&server);
    s.write_all(b"*20\r\n").unwrap();
    assert_eq!(
        read_to_close(&mut s),
        "-ERR Protocol error: unauthenticated multibulk length\r\n"
    );
    let mut s = connect(&server);
    s.write_all(b"*2\r\n$4\r\nECHO\r\n$100000\r\n").unwrap();
    assert_eq!(
        read_to_close(&mut s),
        "-ERR Protocol error: unauthenticated bulk length\r\n"
    );
    let mut s = connect(&server);
    s.write_all(b"PING\r\nAUTH pw\r\nPING\r\n").unwrap();
    let expected = "-NOAUTH Authentication required.\r\n+OK\r\n+PONG\r\n";
    assert_eq!(read_n(&mut s, expected.len()), expected);
}

#[test]
fn idle_clients_are_disconnected() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(lsm_server::Config {
        timeout_secs: 1,
        ..config(dir.path())
    });
    let mut s = connect(&server);
    let start = Instant::now();
    assert_eq!(read_to_close(&mut s), "");
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < LIMIT,
        "closed after {waited:?}"
    );
}

#[test]
fn metrics_endpoint_serves_prometheus_text() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(lsm_server::Config {
        // The metrics endpoint has no "pick one" setting (0 disables it).
        metrics_port: lsm_testkit::free_port(),
        ..config(dir.path())
    });
    let mut c = server.client();
    let _: () = redis::cmd("SET").arg("a").arg("1").query(&mut c).unwrap();
    let _: Option<String> = redis::cmd("GET").arg("a").query(&mut c).unwrap();
    let mut h = TcpStream::connect(server.metrics.unwrap()).unwrap();
    h.set_read_timeout(Some(LIMIT)).unwrap();
    h.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let body = read_to_close(&mut h);
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
    for needle in [
        "lsm_commands_total{command=\"set\"} 1",
        "lsm_command_duration_seconds_bucket{command=\"get\",le=\"+Inf\"} 1",
        "lsm_connected_clients 1",
        "lsm_engine_wal_bytes_written",
    ] {
        assert!(body.contains(needle), "metrics lack {needle}:\n{body}");
    }
    let mut h = TcpStream::connect(server.metrics.unwrap()).unwrap();
    h.set_read_timeout(Some(LIMIT)).unwrap();
    h.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    assert!(read_to_close(&mut h).starts_with("HTTP/1.1 404"));
}

#[test]
fn shutdown_closes_clients_and_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path()));
    let mut s = connect(&server);
    s.write_all(b"SET k v\r\n").unwrap();
    assert_eq!(read_n(&mut s, 5), "+OK\r\n");
    server.stop();
    assert_eq!(
        read_to_close(&mut s),
        "",
        "connection closed by the shutdown"
    );
    // The engine was closed cleanly: the directory lock is free and the write is there.
    let db = lsm_core::Db::open(dir.path(), lsm_core::Options::default()).unwrap();
    assert_eq!(db.get("k").unwrap().as_deref(), Some(&b"v"[..]));
}

fn info_field(server: &TestServer, field: &str) -> u64 {
    let mut c = server.client();
    let info: String = redis::cmd("INFO").arg("lsm").query(&mut c).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in {info}"))
        .trim()
        .parse()
        .unwrap()
}

/// Consecutive writes of a pipeline are committed together, with the same replies as one
/// by one: conditional writes see the earlier writes of the same pipeline.
#[test]
fn pipelined_writes_commit_together_with_sequential_semantics() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path()));
    let before = info_field(&server, "commit_groups");
    let mut s = connect(&server);
    let mut pipeline = String::new();
    for i in 0..100 {
        pipeline.push_str(&format!("SET k{i} v{i}\r\n"));
    }
    pipeline.push_str(
        "SET k1 x NX\r\nSET k1 y XX GET\r\nDEL k2 k2 nosuch\r\nSET k2 z NX\r\nGET k1\r\nMSET a\r\n",
    );
    s.write_all(pipeline.as_bytes()).unwrap();
    let expected = format!(
        "{}$-1\r\n$2\r\nv1\r\n:1\r\n+OK\r\n$1\r\ny\r\n-ERR wrong number of arguments for 'mset' command\r\n",
        "+OK\r\n".repeat(100)
    );
    assert_eq!(read_n(&mut s, expected.len()), expected);
    let groups = info_field(&server, "commit_groups") - before;
    assert!(
        groups <= 10,
        "105 pipelined writes took {groups} commit groups"
    );

    // A protocol error after writes: the writes before it are applied and answered first.
    let mut s = connect(&server);
    s.write_all(b"SET e1 1\r\nSET e2 2\r\n*1\r\n$-9\r\n")
        .unwrap();
    assert_eq!(
        read_to_close(&mut s),
        "+OK\r\n+OK\r\n-ERR Protocol error: invalid bulk length\r\n"
    );
    let mut c = server.client();
    let v: Option<String> = redis::cmd("GET").arg("e2").query(&mut c).unwrap();
    assert_eq!(v.as_deref(), Some("2"));
}
