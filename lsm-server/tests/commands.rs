//! Every command through the `redis` crate, over RESP2 and RESP3: replies, error texts,
//! binary safety, large values, pipelining, transactions, persistence and AUTH.

mod common;

use common::{config, TestServer};
use redis::{cmd, Value};

fn err_text<T: std::fmt::Debug>(r: redis::RedisResult<T>) -> String {
    let e = r.expect_err("expected an error reply");
    // The crate splits "CODE detail"; put it back together for comparison.
    match (e.code(), e.detail()) {
        (Some(code), Some(detail)) => format!("{code} {detail}"),
        _ => e.to_string(),
    }
}

#[test]
fn a_data_directory_that_does_not_exist_yet_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("fresh").join("data");
    let server = TestServer::start(config(&data));
    let mut c = server.client();
    let ok: String = cmd("SET").arg("k").arg("v").query(&mut c).unwrap();
    assert_eq!(ok, "OK");
    assert!(data.join("MANIFEST").exists());
}

#[test]
fn strings_and_keys() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path()));
    let mut c = server.client();
    let pong: String = cmd("PING").query(&mut c).unwrap();
    assert_eq!(pong, "PONG");
    let echo: String = cmd("ECHO").arg("hi there").query(&mut c).unwrap();
    assert_eq!(echo, "hi there");
    let ok: String = cmd("SET").arg("k").arg("v").query(&mut c).unwrap();
    assert_eq!(ok, "OK");
    let v: Option<String> = cmd("GET").arg("k").query(&mut c).unwrap();
    assert_eq!(v.as_deref(), Some("v"));
    let v: Option<String> = cmd("GET").arg("missing").query(&mut c).unwrap();
    assert_eq!(v, None);

    // NX / XX / GET
    let r: Option<String> = cmd("SET")
        .arg("k")
        .arg("x")
        .arg("NX")
        .query(&mut c)
        .unwrap();
    assert_eq!(r, None);
    let r: Option<String> = cmd("SET")
        .arg("new")
        .arg("1")
        .arg("nx")
        .query(&mut c)
        .unwrap();
    assert_eq!(r.as_deref(), Some("OK"));
    let r: Option<String> = cmd("SET")
        .arg("absent")
        .arg("1")
        .arg("XX")
        .query(&mut c)
        .unwrap();
    assert_eq!(r, None);
    let r: Option<String> = cmd("SET")
        .arg("k")
        .arg("v2")
        .arg("XX")
        .arg("GET")
        .query(&mut c)
        .unwrap();
    assert_eq!(r.as_deref(), Some("v"));
    let r: Option<String> = cmd("SET")
        .arg("fresh")
        .arg("1")
        .arg("GET")
        .query(&mut c)
        .unwrap();
    assert_eq!(r, None);
    assert_eq!(
        err_text(
            cmd("SET")
                .arg("k")
                .arg("v")
                .arg("NX")
                .arg("XX")
                .query::<Value>(&mut c)
        ),
        "ERR syntax error"
    );
    let e = err_text(
        cmd("SET")
            .arg("k")
            .arg("v")
            .arg("EX")
            .arg("10")
            .query::<Value>(&mut c),
    );
    assert!(e.contains("not supported"), "{e}");

    // DEL / EXISTS / MGET / MSET / DBSIZE
    let ok: String = cmd("MSET")
        .arg("a")
        .arg("1")
        .arg("b")
        .arg("2")
        .query(&mut c)
        .unwrap();
    assert_eq!(ok, "OK");
    let vals: Vec<Option<String>> = cmd("MGET")
        .arg("a")
        .arg("nope")
        .arg("b")
        .query(&mut c)
        .unwrap();
    assert_eq!(vals, [Some("1".into()), None, Some("2".into())]);
    let n: i64 = cmd("EXISTS")
        .arg("a")
        .arg("a")
        .arg("nope")
        .query(&mut c)
        .unwrap();
    assert_eq!(n, 2);
    let n: i64 = cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(n, 5); // k new fresh a b
    let n: i64 = cmd("DEL")
        .arg("a")
        .arg("b")
        .arg("nope")
        .query(&mut c)
        .unwrap();
    assert_eq!(n, 2);
    let n: i64 = cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(n, 3);

    // Errors in Redis's words.
    assert_eq!(
        err_text(cmd("FOO").arg("a").arg("b").query::<Value>(&mut c)),
        "ERR unknown command 'FOO', with args beginning with: 'a' 'b' "
    );
    assert_eq!(
        err_text(cmd("GET").query::<Value>(&mut c)),
        "ERR wrong number of arguments for 'get' command"
    );
    assert_eq!(
        err_text(cmd("MSET").arg("a").query::<Value>(&mut c)),
        "ERR wrong number of arguments for 'mset' command"
    );
    assert_eq!(
        err_text(cmd("SELECT").arg("1").query::<Value>(&mut c)),
        "ERR DB index is out of range"
    );
    let ok: String = cmd("SELECT").arg("0").query(&mut c).unwrap();
    assert_eq!(ok, "OK");
}

#[test]
fn binary_keys_and_a_10_mib_value() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path()));
    let mut c = server.client();
    let key = b"\x00bin\r\nkey\xff".to_vec();
    let value: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    let _: () = cmd("SET").arg(&key).arg(&value).query(&mut c).unwrap();
    let got: Vec<u8> = cmd("GET").arg(&key).query(&mut c).unwrap();
    assert_eq!(got, value);
    let big: Vec<u8> = (0..10 * 1024 * 1024u32)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    let _: () = cmd("SET").arg("big").arg(&big).query(&mut c).unwrap();
    let got: Vec<u8> = cmd("GET").arg("big").query(&mut c).unwrap();
    assert!(got == big, "10 MiB value round-trips");
}

#[test]
fn pipeline_of_10k_commands() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path()));
    let mut c = server.client();
    let mut p = redis::pipe();
    for i in 0..5_000 {
        p.cmd("SET").arg(format!("key:{i}")).arg(i).ignore();
    }
    for i in 0..5_000 {
        p.cmd("GET").arg(format!("key:{i}"));
    }
    let got: Vec<i64> = p.query(&mut c).unwrap();
    assert_eq!(got, (0..5_000).collect::<Vec<i64>>());
}

#[test]
fn resp3_hello_and_typed_replies() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path()));
    let mut c = server.resp3_client();
    let hello: Value = cmd("HELLO").arg("3").query(&mut c).unwrap();
    let Value::Map(fields) = hello else {
        panic!("HELLO 3 must reply with a map, got {hello:?}")
    };
    let find = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| matches!(k, Value::BulkString(b) if b == name.as_bytes()))
            .map(|(_, v)| v.clone())
    };
    assert_eq!(find("proto"), Some(Value::Int(3)));
    assert!(find("version").is_some() && find("id").is_some());
    let nil: Value = cmd("GET").arg("nothing").query(&mut c).unwrap();
    assert_eq!(nil, Value::Nil);
    let cfg: Value = cmd("CONFIG")
        .arg("GET")
        .arg("maxclients")
        .query(&mut c)
        .unwrap();
    assert!(matches!(cfg, Value::Map(ref m) if m.len() == 1), "{cfg:?}");
    let _: () = cmd("SET").arg("k").arg("v").query(&mut c).unwrap();
    let v: String = cmd("GET").arg("k").query(&mut c).unwrap();
    assert_eq!(v, "v");
    let info: String = cmd("INFO").arg("server").query(&mut c).unwrap();
    assert!(info.contains("redis_version:"), "{info}");
    let e = err_text(cmd("HELLO").arg("4").query::<Value>(&mut c));
    assert!(e.starts_with("NOPROTO"), "{e}");
    let _: Value = cmd("HELLO")
        .arg("3")
        .arg("SETNAME")
        .arg("named-by-hello")
        .query(&mut c)
        .unwrap();
    let name: String = cmd("CLIENT").arg("GETNAME").query(&mut c).unwrap();
    assert_eq!(name, "named-by-hello");
    let e = err_text(cmd("HELLO").arg("3").arg("BOGUS").query::<Value>(&mut c));
    assert!(e.contains("Syntax error in HELLO option"), "{e}");
}

#[test]
fn server_and_connection_commands() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path()));
    let mut c = server.client();
    let info: String = cmd("INFO").query(&mut c).unwrap();
    for section in [
        "# Server",
        "# Clients",
        "# Stats",
        "# Persistence",
        "# Replication",
        "# LSM",
    ] {
        assert!(info.contains(section), "INFO lacks {section}");
    }
    assert!(info.contains("role:master") && info.contains("connected_clients:1"));
    let only: String = cmd("INFO").arg("clients").query(&mut c).unwrap();
    assert!(only.starts_with("# Clients") && !only.contains("# Server"));
    let cfg: Vec<String> = cmd("CONFIG").arg("GET").arg("save").query(&mut c).unwrap();
    assert_eq!(cfg, ["save", ""]);
    let cfg: Vec<String> = cmd("CONFIG")
        .arg("GET")
        .arg("appendonly")
        .query(&mut c)
        .unwrap();
    assert_eq!(cfg, ["appendonly", "yes"]);
    let cfg: Vec<String> = cmd("CONFIG").arg("GET").arg("max*").query(&mut c).unwrap();
    assert_eq!(cfg.len(), 4, "{cfg:?}");
    let id: i64 = cmd("CLIENT").arg("ID").query(&mut c).unwrap();
    assert!(id > 0);
    let name: Option<String> = cmd("CLIENT").arg("GETNAME").query(&mut c).unwrap();
    assert_eq!(name, None);
    let _: () = cmd("CLIENT")
        .arg("SETNAME")
        .arg("tester")
        .query(&mut c)
        .unwrap();
    let name: Option<String> = cmd("CLIENT").arg("GETNAME").query(&mut c).unwrap();
    assert_eq!(name.as_deref(), Some("tester"));
    assert!(err_text(
        cmd("CLIENT")
            .arg("SETNAME")
            .arg("a b")
            .query::<Value>(&mut c)
    )
    .contains("cannot contain spaces"));
    let _: () = cmd("CLIENT")
        .arg("SETINFO")
        .arg("LIB-NAME")
        .arg("x")
        .query(&mut c)
        .unwrap();
    let count: i64 = cmd("COMMAND").arg("COUNT").query(&mut c).unwrap();
    assert!(count >= 20);
    let info: Vec<Value> = cmd("COMMAND")
        .arg("INFO")
        .arg("get")
        .arg("nosuch")
        .query(&mut c)
        .unwrap();
    assert_eq!(info.len(), 2);
    assert_eq!(info[1], Value::Nil);
    let docs: Value = cmd("COMMAND").arg("DOCS").arg("set").query(&mut c).unwrap();
    assert!(
        matches!(docs, Value::Array(ref a) if a.len() == 2),
        "{docs:?}"
    );
    assert!(err_text(
        cmd("CONFIG")
            .arg("SET")
            .arg("x")
            .arg("y")
            .query::<Value>(&mut c)
    )
    .contains("not supported"));
}

#[test]
fn range_flush_and_compact() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path()));
    let mut c = server.client();
    for i in 0..50 {
        let _: () = cmd("SET")
            .arg(format!("user:{i:03}"))
            .arg(i)
            .query(&mut c)
            .unwrap();
    }
    let _: () = cmd("SET").arg("zzz").arg("other").query(&mut c).unwrap();
    let ok: String = cmd("LSM.FLUSH").query(&mut c).unwrap();
    assert_eq!(ok, "OK");
    let page: Vec<String> = cmd("LSM.RANGE")
        .arg("user:010")
        .arg("user:013")
        .query(&mut c)
        .unwrap();
    assert_eq!(page, ["user:010", "10", "user:011", "11", "user:012", "12"]);
    let page: Vec<String> = cmd("LSM.RANGE")
        .arg("user:")
        .arg("")
        .arg("LIMIT")
        .arg("2")
        .query(&mut c)
        .unwrap();
    assert_eq!(page, ["user:000", "0", "user:001", "1"]);
    let all: Vec<String> = cmd("LSM.RANGE").arg("").arg("").query(&mut c).unwrap();
    assert_eq!(all.len(), 102);
    assert!(err_text(
        cmd("LSM.RANGE")
            .arg("a")
            .arg("b")
            .arg("LIMIT")
            .arg("0")
            .query::<Value>(&mut c)
    )
    .contains("LIMIT"));
    let _: i64 = cmd("DEL").arg("zzz").query(&mut c).unwrap();
    let ok: String = cmd("LSM.COMPACT").query(&mut c).unwrap();
    assert_eq!(ok, "OK");
    let info: String = cmd("INFO").arg("lsm").query(&mut c).unwrap();
    assert!(info.contains("table_tombstones:0"), "{info}");
    // The memtable's point index is reported beside its entries' bytes.
    let index_bytes: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("memtable_index_bytes:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no memtable_index_bytes in {info}"));
    assert!(index_bytes > 0, "{info}");
    // So is the backlog of entries not yet ordered; the compaction flushed them all.
    assert!(info.contains("memtable_unlinked_entries:0"), "{info}");
}

#[test]
fn transactions() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path()));
    let mut c = server.client();
    let r: Value = redis::pipe()
        .atomic()
        .cmd("SET")
        .arg("t1")
        .arg("a")
        .cmd("GET")
        .arg("t1")
        .cmd("DEL")
        .arg("t1")
        .cmd("GET")
        .arg("t1")
        .query(&mut c)
        .unwrap();
    assert_eq!(
        r,
        Value::Array(vec![
            Value::Okay,
            Value::BulkString(b"a".to_vec()),
            Value::Int(1),
            Value::Nil
        ])
    );
    // Errors: nesting, EXEC/DISCARD without MULTI, EXECABORT after a queued error.
    let _: () = cmd("MULTI").query(&mut c).unwrap();
    assert_eq!(
        err_text(cmd("MULTI").query::<Value>(&mut c)),
        "ERR MULTI calls can not be nested"
    );
    let queued: String = cmd("SET").arg("x").arg("1").query(&mut c).unwrap();
    assert_eq!(queued, "QUEUED");
    let _ = cmd("GET").query::<Value>(&mut c);
    assert!(err_text(cmd("EXEC").query::<Value>(&mut c)).starts_with("EXECABORT"));
    assert_eq!(
        err_text(cmd("EXEC").query::<Value>(&mut c)),
        "ERR EXEC without MULTI"
    );
    assert_eq!(
        err_text(cmd("DISCARD").query::<Value>(&mut c)),
        "ERR DISCARD without MULTI"
    );
    let _: () = cmd("MULTI").query(&mut c).unwrap();
    let _: String = cmd("SET").arg("x").arg("1").query(&mut c).unwrap();
    let _: () = cmd("DISCARD").query(&mut c).unwrap();
    let x: Option<String> = cmd("GET").arg("x").query(&mut c).unwrap();
    assert_eq!(x, None, "discarded");
}

/// MULTI/EXEC is one atomic batch: a reader never sees half a transaction, and SET NX
/// from many clients at once lets exactly one win.
///
/// Regression: MGET first read each key from the live database in turn, so it could
/// return `left` from before a transaction and `right` from after it (about one run in
/// two failed). Reads of a command now come from one engine snapshot.
#[test]
fn transactions_and_conditional_writes_are_atomic_across_clients() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path()));
    let url = server.url();
    let writer = {
        let url = url.clone();
        std::thread::spawn(move || {
            let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
            for i in 0..300 {
                let _: () = redis::pipe()
                    .atomic()
                    .cmd("SET")
                    .arg("left")
                    .arg(i)
                    .ignore()
                    .cmd("SET")
                    .arg("right")
                    .arg(i)
                    .ignore()
                    .query(&mut c)
                    .unwrap();
            }
        })
    };
    let mut r = server.client();
    let mut reads = 0;
    while !writer.is_finished() && reads < 5_000 {
        let (l, rr): (Option<i64>, Option<i64>) =
            cmd("MGET").arg("left").arg("right").query(&mut r).unwrap();
        assert_eq!(l, rr, "saw half a transaction");
        reads += 1;
    }
    writer.join().unwrap();

    let winners: Vec<_> = (0..8)
        .map(|t| {
            let url = url.clone();
            std::thread::spawn(move || {
                let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
                let mut wins = 0;
                for round in 0..50 {
                    let r: Option<String> = cmd("SET")
                        .arg(format!("race{round}"))
                        .arg(t)
                        .arg("NX")
                        .query(&mut c)
                        .unwrap();
                    wins += usize::from(r.is_some());
                }
                wins
            })
        })
        .collect();
    let total: usize = winners.into_iter().map(|w| w.join().unwrap()).sum();
    assert_eq!(total, 50, "exactly one SET NX wins each race");
}

/// `SET key value GET` from many clients at once, with `--sync` and without (a group
/// commits on its connection's task when no commit runs, else joins the next leader's
/// merged batch): every value written is returned as
/// the old value by exactly one later SET, except the last, which stays; none is lost or
/// seen twice. Blind writes of other keys run alongside.
#[test]
fn concurrent_get_and_set_chains_with_sync() {
    set_get_chains(true);
}

#[test]
fn concurrent_get_and_set_chains_without_sync() {
    set_get_chains(false);
}

fn set_get_chains(sync: bool) {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(lsm_server::Config {
        sync,
        ..config(dir.path())
    });
    let url = server.url();
    let (threads, rounds) = (6, 100);
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let url = url.clone();
            std::thread::spawn(move || {
                let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
                let mut olds = Vec::new();
                for i in 0..rounds {
                    let mut p = redis::pipe();
                    p.cmd("SET").arg(format!("blind{t}")).arg(i).ignore();
                    p.cmd("SET").arg("chain").arg(format!("{t}-{i}")).arg("GET");
                    let (old,): (Option<String>,) = p.query(&mut c).unwrap();
                    olds.push(old);
                }
                olds
            })
        })
        .collect();
    let mut seen: Vec<Option<String>> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let mut c = server.client();
    let last: Option<String> = cmd("GET").arg("chain").query(&mut c).unwrap();
    seen.push(last);
    let mut seen: Vec<String> = seen
        .into_iter()
        .map(|v| v.unwrap_or_else(|| "first".into()))
        .collect();
    seen.sort();
    let mut expected: Vec<String> = (0..threads)
        .flat_map(|t| (0..rounds).map(move |i| format!("{t}-{i}")))
        .chain(["first".to_string()])
        .collect();
    expected.sort();
    assert_eq!(seen, expected);
    for t in 0..threads {
        let v: String = cmd("GET").arg(format!("blind{t}")).query(&mut c).unwrap();
        assert_eq!(v, (rounds - 1).to_string());
    }
}

#[test]
fn data_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path()));
    let mut c = server.client();
    for i in 0..1000 {
        let _: () = cmd("SET")
            .arg(format!("p{i}"))
            .arg(i)
            .query(&mut c)
            .unwrap();
    }
    let _: i64 = cmd("DEL").arg("p7").query(&mut c).unwrap();
    drop(c);
    server.stop();
    let server = TestServer::start(config(dir.path()));
    let mut c = server.client();
    let n: i64 = cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(n, 999);
    let v: Option<i64> = cmd("GET").arg("p999").query(&mut c).unwrap();
    assert_eq!(v, Some(999));
}

#[test]
fn auth_and_noauth() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = lsm_server::Config {
        requirepass: Some("s3cret".into()),
        ..config(dir.path())
    };
    let server = TestServer::start(cfg);
    let mut c = server.client();
    assert_eq!(
        err_text(cmd("GET").arg("k").query::<Value>(&mut c)),
        "NOAUTH Authentication required."
    );
    assert!(err_text(cmd("AUTH").arg("wrong").query::<Value>(&mut c)).starts_with("WRONGPASS"));
    let _: () = cmd("AUTH").arg("s3cret").query(&mut c).unwrap();
    let _: () = cmd("SET").arg("k").arg("v").query(&mut c).unwrap();
    // The URL form authenticates with HELLO 3 AUTH (RESP3) or AUTH (RESP2).
    let mut c3 = redis::Client::open(format!("redis://:s3cret@{}/?protocol=resp3", server.addr))
        .unwrap()
        .get_connection()
        .unwrap();
    let v: String = cmd("GET").arg("k").query(&mut c3).unwrap();
    assert_eq!(v, "v");
    let mut raw = server.client();
    let e = err_text(cmd("HELLO").arg("3").query::<Value>(&mut raw));
    assert!(e.starts_with("NOAUTH HELLO must be called"), "{e}");

    // Without requirepass, legacy AUTH is an error.
    let dir2 = tempfile::tempdir().unwrap();
    let open = TestServer::start(config(dir2.path()));
    let e = err_text(cmd("AUTH").arg("x").query::<Value>(&mut open.client()));
    assert!(e.contains("without any password configured"), "{e}");
}

#[test]
fn maxclients_refuses_extra_connections() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(lsm_server::Config {
        maxclients: 2,
        ..config(dir.path())
    });
    let _a = server.client();
    let _b = server.client();
    let mut raw = std::net::TcpStream::connect(server.addr).unwrap();
    raw.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut reply = String::new();
    std::io::Read::read_to_string(&mut raw, &mut reply).unwrap();
    assert_eq!(reply, "-ERR max number of clients reached\r\n");
}
