//! Cluster mode end to end: `lsm-server` processes joined through a real ZooKeeper
//! (started by the tests on free loopback ports), driven with the `redis` crate.
//! Election and agreement, forwarding through followers (pipelines, MULTI/EXEC, RESP3),
//! duplicate node ids, SIGTERM handover, kill -9 failover, a SIGSTOPped leader fenced
//! after it resumes, and the loss of ZooKeeper servers.
//!
//! Every test holds `lsm_testkit::serial()`: short ZooKeeper sessions expire spuriously
//! when several clusters share two busy cores.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lsm_testkit::{serial, Child, ZkEnsemble};

const SESSION_MS: u64 = 4000;

struct Node {
    id: String,
    port: u16,
    dir: PathBuf,
    log: PathBuf,
    process: Child,
    /// Extra command-line arguments it was started with.
    extra: Vec<String>,
}

fn spawn(zk: &str, id: &str, port: u16, dir: &Path, session_ms: u64) -> (Child, PathBuf) {
    spawn_with(zk, id, port, dir, session_ms, &[])
}

fn spawn_with(
    zk: &str,
    id: &str,
    port: u16,
    dir: &Path,
    session_ms: u64,
    extra: &[&str],
) -> (Child, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    // Each start logs to a file of its own (a restart or a second process on the same
    // directory does not overwrite an earlier log).
    static STARTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let start = STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let log = dir.with_extension(format!("{start}.log"));
    let out = std::fs::File::create(&log).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lsm-server"));
    cmd.args(["--port", &port.to_string(), "--metrics-port", "0"])
        .arg("--data-dir")
        .arg(dir)
        .args(["--zookeeper", zk, "--node-id", id, "--cluster-name", "test"])
        .args(["--zookeeper-session-timeout-ms", &session_ms.to_string()])
        .args(["--leader-wait-ms", "2000", "--log-level", "info"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(out);
    (Child::spawn(format!("lsm-server {id}"), &mut cmd), log)
}

/// The port a node started with `--port 0` bound, from its log line.
fn bound_port(process: &mut Child, log: &Path) -> u16 {
    process
        .logged_port(log, Duration::from_secs(30))
        .unwrap_or_else(|| {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            panic!("{} did not log its address; log:\n{text}", process.name)
        })
}

fn conn_to(port: u16) -> Option<redis::Connection> {
    let c = redis::Client::open(format!("redis://127.0.0.1:{port}/")).ok()?;
    let con = c.get_connection_with_timeout(Duration::from_secs(2)).ok()?;
    con.set_read_timeout(Some(Duration::from_secs(15))).ok()?;
    Some(con)
}

impl Node {
    /// Starts the node on a port the kernel picks (read back from its log, so no other
    /// process can take the port between choosing and binding it); restarts reuse it.
    fn start(zk: &str, id: &str, root: &Path, session_ms: u64, extra: &[&str]) -> Node {
        let dir = root.join(id);
        let (mut process, log) = spawn_with(zk, id, 0, &dir, session_ms, extra);
        let port = bound_port(&mut process, &log);
        let mut node = Node {
            id: id.into(),
            port,
            dir,
            log,
            process,
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
        };
        node.wait_ready();
        node
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(mut c) = self.try_conn() {
                if redis::cmd("PING").query::<String>(&mut c).is_ok() {
                    return;
                }
            }
            assert!(
                self.process.alive() && Instant::now() < deadline,
                "{} did not start; log:\n{}",
                self.id,
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn try_conn(&self) -> Option<redis::Connection> {
        conn_to(self.port)
    }

    /// Stops the node with SIGTERM (it must exit cleanly) and starts it again on the
    /// same port and data directory.
    fn restart(&mut self, zk: &str, session_ms: u64) {
        let status = self.stop();
        assert!(status.success(), "{}", self.log_text());
        self.start_again(zk, session_ms);
    }

    /// Stops the node with SIGTERM; it must exit within 20 s.
    fn stop(&mut self) -> std::process::ExitStatus {
        self.process.signal("TERM");
        self.process
            .wait_exit(Duration::from_secs(20))
            .unwrap_or_else(|| panic!("{} did not exit", self.id))
    }

    /// Starts the (stopped) node again on the same port and data directory.
    fn start_again(&mut self, zk: &str, session_ms: u64) {
        let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        let (process, log) = spawn_with(zk, &self.id, self.port, &self.dir, session_ms, &extra);
        self.process = process;
        self.log = log;
        self.wait_ready();
    }

    fn conn(&self) -> redis::Connection {
        self.try_conn()
            .unwrap_or_else(|| panic!("cannot connect to {}", self.id))
    }

    fn info(&self, section: &str) -> HashMap<String, String> {
        let text: String = redis::cmd("INFO")
            .arg(section)
            .query(&mut self.conn())
            .unwrap();
        text.lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
            .collect()
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// One test at a time, a standalone ZooKeeper, a temporary directory, and nodes n1, n2,
/// n3 started with `extra` arguments. Bind them in this order: the nodes are stopped
/// first, ZooKeeper and the lock last.
fn standalone_cluster(
    extra: &[&str],
) -> (
    std::sync::MutexGuard<'static, ()>,
    ZkEnsemble,
    tempfile::TempDir,
    String,
    Vec<Node>,
) {
    let serial = serial();
    let zk = ZkEnsemble::standalone();
    let root = tempfile::tempdir().unwrap();
    let cs = zk.connect_string();
    let nodes = three_nodes_with(&cs, root.path(), SESSION_MS, extra);
    (serial, zk, root, cs, nodes)
}

/// Nodes n1, n2, n3 joined to ZooKeeper at `zk`, each answering PING.
fn three_nodes(zk: &str, root: &Path, session_ms: u64) -> Vec<Node> {
    three_nodes_with(zk, root, session_ms, &[])
}

fn three_nodes_with(zk: &str, root: &Path, session_ms: u64, extra: &[&str]) -> Vec<Node> {
    ["n1", "n2", "n3"]
        .iter()
        .map(|id| Node::start(zk, id, root, session_ms, extra))
        .collect()
}

/// Waits until the live `nodes` agree on one leader among them; returns its index and
/// epoch.
fn agreed_leader(nodes: &[&Node]) -> (usize, u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let infos: Vec<_> = nodes.iter().map(|n| n.info("replication")).collect();
        let masters: Vec<usize> = (0..nodes.len())
            .filter(|&i| infos[i]["role"] == "master")
            .collect();
        if let [m] = masters[..] {
            let addr = nodes[m].addr();
            let epoch = &infos[m]["leader_epoch"];
            if infos
                .iter()
                .all(|i| i["leader_addr"] == addr && &i["leader_epoch"] == epoch)
            {
                return (m, epoch.parse().unwrap());
            }
        }
        assert!(Instant::now() < deadline, "no agreement: {infos:#?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Retries SET through `node` until it succeeds; returns how long that took.
fn set_until_ok(node: &Node, key: &str, value: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let result = node
            .try_conn()
            .ok_or_else(|| "no connection".to_owned())
            .and_then(|mut c| {
                redis::cmd("SET")
                    .arg(key)
                    .arg(value)
                    .query::<String>(&mut c)
                    .map_err(|e| e.to_string())
            });
        match result {
            Ok(_) => return start.elapsed(),
            Err(e) => assert!(
                start.elapsed() < limit,
                "SET through {} still failing after {limit:?}: {e}",
                node.id
            ),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until every node's engine is at the same sequence (all applied the same log);
/// returns it.
fn converged(nodes: &[&Node]) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let seqs: Vec<u64> = nodes
            .iter()
            .map(|n| n.info("lsm")["last_sequence"].parse().unwrap())
            .collect();
        if seqs.iter().all(|&s| s == seqs[0]) {
            return seqs[0];
        }
        if Instant::now() >= deadline {
            for n in nodes {
                let text = n.log_text();
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                eprintln!(
                    "--- {} (last lines, newest first):\n{}",
                    n.id,
                    tail.join("\n")
                );
            }
            panic!("engines did not converge: {seqs:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn get(node: &Node, key: &str) -> Option<String> {
    redis::cmd("GET").arg(key).query(&mut node.conn()).unwrap()
}

#[test]
fn three_nodes_agree_forward_and_hand_over() {
    let (_one_at_a_time, _zk, root, cs, mut nodes) = standalone_cluster(&[]);
    let (leader, epoch) = agreed_leader(&nodes.iter().collect::<Vec<_>>());
    // Membership arrives through its own watch: wait for it, bounded.
    let deadline = Instant::now() + Duration::from_secs(20);
    let cluster = loop {
        let c = nodes[0].info("cluster");
        if c["cluster_members"] == "3" || Instant::now() >= deadline {
            break c;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(cluster["cluster_enabled"], "1");
    assert_eq!(cluster["cluster_members"], "3", "{cluster:?}");
    assert_eq!(cluster["cluster_state"], "ok");
    let follower = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    let f = &nodes[follower];
    assert_eq!(f.info("replication")["master_link_status"], "up");

    // Writes through any node are read back through every node.
    for (i, n) in nodes.iter().enumerate() {
        let _: () = redis::cmd("SET")
            .arg(format!("k{i}"))
            .arg(format!("v{i}"))
            .query(&mut n.conn())
            .unwrap();
    }
    for n in &nodes {
        for i in 0..3 {
            assert_eq!(get(n, &format!("k{i}")), Some(format!("v{i}")));
        }
    }

    // A pipeline through a follower keeps its order; connection commands stay local.
    let mut c = f.conn();
    let mut pipe = redis::pipe();
    for i in 0..2000 {
        pipe.cmd("SET").arg(format!("p{i}")).arg(i).ignore();
        if i % 500 == 0 {
            pipe.cmd("PING").ignore();
        }
    }
    pipe.cmd("GET").arg("p1999").cmd("DBSIZE");
    let (last, size): (i64, i64) = pipe.query(&mut c).unwrap();
    assert_eq!((last, size), (1999, 2003));

    // MULTI/EXEC through a follower is one unit at the leader; a conditional write
    // sees the transaction's effect.
    let (a, b): (String, String) = redis::pipe()
        .atomic()
        .cmd("SET")
        .arg("t1")
        .arg("x")
        .cmd("GET")
        .arg("t1")
        .query(&mut c)
        .unwrap();
    assert_eq!((a.as_str(), b.as_str()), ("OK", "x"));
    let nx: Option<String> = redis::cmd("SET")
        .arg("t1")
        .arg("y")
        .arg("NX")
        .query(&mut c)
        .unwrap();
    assert_eq!(nx, None);
    let err = redis::cmd("EXEC").query::<String>(&mut c).unwrap_err();
    assert!(err.to_string().contains("EXEC without MULTI"), "{err}");

    // RESP3 through a follower: the link speaks the client's protocol.
    let mut c3 = redis::Client::open(format!("redis://{}/?protocol=resp3", f.addr()))
        .unwrap()
        .get_connection()
        .unwrap();
    let v: Option<String> = redis::cmd("GET").arg("missing").query(&mut c3).unwrap();
    assert_eq!(v, None);
    let values: Vec<Option<String>> = redis::cmd("MGET")
        .arg("k0")
        .arg("nope")
        .query(&mut c3)
        .unwrap();
    assert_eq!(values, [Some("v0".to_owned()), None]);
    let forwarded: u64 = f.info("cluster")["forwarded_commands"].parse().unwrap();
    assert!(forwarded >= 2000, "{forwarded}");

    // Every engine applies the same log: they converge to the same sequence, and the
    // leader reports both followers online.
    let seq = converged(&nodes.iter().collect::<Vec<_>>());
    assert!(seq >= 2003, "{seq}");
    let info = nodes[leader].info("replication");
    assert_eq!(info["connected_slaves"], "2", "{info:?}");
    assert!(info["slave0"].contains("state=online"), "{info:?}");
    assert_eq!(info["repl_state"], "leading");
    assert_eq!(f.info("replication")["repl_state"], "following");

    // Conditional writes stay atomic across connections while entries replicate: of
    // many clients racing SET NX on fresh keys through all nodes, one wins each key.
    let ports: Vec<u16> = nodes.iter().map(|n| n.port).collect();
    let wins: Vec<usize> = std::thread::scope(|s| {
        let racers: Vec<_> = (0..12)
            .map(|t| {
                let port = ports[t % 3];
                s.spawn(move || {
                    let mut c = conn_to(port).unwrap();
                    (0..50)
                        .filter(|k| {
                            redis::cmd("SET")
                                .arg(format!("race{k}"))
                                .arg(t)
                                .arg("NX")
                                .query::<Option<String>>(&mut c)
                                .unwrap()
                                .is_some()
                        })
                        .count()
                })
            })
            .collect();
        racers.into_iter().map(|r| r.join().unwrap()).collect()
    });
    assert_eq!(
        wins.iter().sum::<usize>(),
        50,
        "NX winners per racer: {wins:?}"
    );

    // A duplicate node id is refused with a clear error; so is a data directory that
    // belongs to another node.
    let (mut dup, dup_log) = spawn(&cs, "n2", 0, &root.path().join("dup"), SESSION_MS);
    let status = dup
        .wait_exit(Duration::from_secs(30))
        .expect("duplicate kept running");
    assert!(!status.success());
    let text = std::fs::read_to_string(&dup_log).unwrap();
    assert!(text.contains("node id `n2` is already in use"), "{text}");
    let (mut wrong, wrong_log) = spawn(&cs, "n9", 0, &nodes[0].dir, SESSION_MS);
    let status = wrong
        .wait_exit(Duration::from_secs(30))
        .expect("wrong node id kept running");
    assert!(!status.success());
    let text = std::fs::read_to_string(&wrong_log).unwrap();
    assert!(text.contains("belongs to node `n1`"), "{text}");

    // SIGTERM on the leader hands over at once (its znodes are deleted, no session
    // timeout to wait for) and it exits cleanly.
    nodes[leader].process.signal("TERM");
    let started = Instant::now();
    let (new, new_epoch) = agreed_leader(&[&nodes[follower], &nodes[other]]);
    let handover = started.elapsed();
    let (new, rest) = if new == 0 {
        (follower, other)
    } else {
        (other, follower)
    };
    assert!(
        handover < Duration::from_millis(SESSION_MS),
        "handover took {handover:?}"
    );
    assert!(new_epoch > epoch);
    let status = nodes[leader]
        .process
        .wait_exit(Duration::from_secs(20))
        .expect("the old leader did not exit");
    assert!(status.success(), "{}", nodes[leader].log_text());
    set_until_ok(&nodes[rest], "after", "handover", Duration::from_secs(10));
    assert_eq!(get(&nodes[new], "after").as_deref(), Some("handover"));
    nodes.clear();
}

/// Runs `op(n, connection)` for n = 0, 1, ... through the node on `port` until `stop` or
/// `limit` calls, reconnecting (after a 20 ms pause) whenever `op` reports a failure.
fn client_loop(
    port: u16,
    limit: u64,
    stop: &std::sync::atomic::AtomicBool,
    mut op: impl FnMut(u64, &mut redis::Connection) -> bool,
) {
    let mut conn = None;
    for n in 0..limit {
        if stop.load(std::sync::atomic::Ordering::Relaxed) {
            break;
        }
        if conn.is_none() {
            conn = conn_to(port);
        }
        if !conn.as_mut().is_some_and(|c| op(n, c)) {
            conn = None;
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Writes `w<t>-<i>` through the node on `port` until `stop` or 100 000 writes; returns
/// the keys whose SET was acknowledged.
fn write_until(port: u16, t: usize, stop: &std::sync::atomic::AtomicBool) -> Vec<String> {
    let mut acked = Vec::new();
    client_loop(port, 100_000, stop, |i, c| {
        let key = format!("w{t}-{i}");
        let ok = redis::cmd("SET")
            .arg(&key)
            .arg(i)
            .query::<String>(c)
            .is_ok();
        if ok {
            acked.push(key);
        }
        ok
    });
    acked
}

#[test]
fn failover_after_kill_9_of_the_leader_loses_no_acknowledged_write() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let (_one_at_a_time, _zk, _root, _cs, nodes) = standalone_cluster(&[]);
    let (leader, epoch) = agreed_leader(&nodes.iter().collect::<Vec<_>>());
    // Six clients write through all three nodes while the leader is killed.
    let stop = AtomicBool::new(false);
    let (acked, failover) = std::thread::scope(|s| {
        let writers: Vec<_> = (0..6)
            .map(|t| {
                let (port, stop) = (nodes[t % 3].port, &stop);
                s.spawn(move || write_until(port, t, stop))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(700));
        nodes[leader].process.signal("KILL");
        let killed = Instant::now();
        let survivors: Vec<&Node> = (0..3).filter(|&i| i != leader).map(|i| &nodes[i]).collect();
        // Writes through every survivor succeed once a new leader serves: within about
        // the session timeout plus a second or two.
        for (i, n) in survivors.iter().enumerate() {
            set_until_ok(n, &format!("after{i}"), "x", Duration::from_secs(20));
        }
        let failover = killed.elapsed();
        std::thread::sleep(Duration::from_millis(500));
        stop.store(true, Ordering::Relaxed);
        let acked: Vec<String> = writers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect();
        (acked, failover)
    });
    assert!(
        failover < Duration::from_millis(SESSION_MS + 3000),
        "failover took {failover:?}"
    );
    let survivors: Vec<&Node> = (0..3).filter(|&i| i != leader).map(|i| &nodes[i]).collect();
    let (_, new_epoch) = agreed_leader(&survivors);
    assert!(new_epoch > epoch, "{new_epoch} <= {epoch}");
    // Every acknowledged write is readable through every survivor, and both survivors'
    // engines applied the same log.
    assert!(
        acked.len() > 100,
        "only {} writes acknowledged",
        acked.len()
    );
    all_readable(&survivors, &acked);
    converged(&survivors);
    eprintln!(
        "failover after kill -9: {failover:?} (session timeout {SESSION_MS} ms); {} acknowledged writes, none lost",
        acked.len()
    );
}

/// Asserts that every key in `acked` is readable through every node in `nodes`.
fn all_readable(nodes: &[&Node], acked: &[String]) {
    for n in nodes {
        let mut c = n.conn();
        let mut pipe = redis::pipe();
        for key in acked {
            pipe.cmd("GET").arg(key);
        }
        let values: Vec<Option<String>> = pipe.query(&mut c).unwrap();
        let lost: Vec<&String> = acked
            .iter()
            .zip(&values)
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| k)
            .collect();
        assert!(
            lost.is_empty(),
            "{} acknowledged writes lost via {}: {lost:?}",
            lost.len(),
            n.id
        );
    }
}

#[test]
fn rolling_restart_under_write_load_loses_nothing() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let (_one_at_a_time, _zk, _root, cs, mut nodes) = standalone_cluster(&[]);
    agreed_leader(&nodes.iter().collect::<Vec<_>>());
    let ports: Vec<u16> = nodes.iter().map(|n| n.port).collect();
    let stop = AtomicBool::new(false);
    let acked = std::thread::scope(|s| {
        let writers: Vec<_> = (0..4)
            .map(|t| {
                let (port, stop) = (ports[t % 3], &stop);
                s.spawn(move || write_until(port, t, stop))
            })
            .collect();
        for i in 0..3 {
            std::thread::sleep(Duration::from_millis(400));
            nodes[i].restart(&cs, SESSION_MS);
            // The cluster serves again, with the restarted node following.
            let all: Vec<&Node> = nodes.iter().collect();
            agreed_leader(&all);
            set_until_ok(
                &nodes[i],
                &format!("restarted{i}"),
                "x",
                Duration::from_secs(20),
            );
        }
        std::thread::sleep(Duration::from_millis(400));
        stop.store(true, Ordering::Relaxed);
        writers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect::<Vec<String>>()
    });
    assert!(
        acked.len() > 100,
        "only {} writes acknowledged",
        acked.len()
    );
    let all: Vec<&Node> = nodes.iter().collect();
    all_readable(&all, &acked);
    let seq = converged(&all);
    eprintln!(
        "rolling restart: {} acknowledged writes, none lost; engines at sequence {seq}",
        acked.len()
    );
}

/// One client of the linearizability test: random SETs (unique values) and GETs of a
/// few keys through the node on `port`, until `stop` or 20 000 operations, one at a
/// time, each recorded with its call and return time since `epoch`.
fn record_history(
    port: u16,
    client: usize,
    epoch: Instant,
    stop: &std::sync::atomic::AtomicBool,
) -> Vec<(String, lsm_testkit::linearizability::Op)> {
    use lsm_testkit::linearizability::{Kind, Op};
    let mut history = Vec::new();
    let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ client as u64;
    let now = || epoch.elapsed().as_nanos() as u64;
    client_loop(port, 20_000, stop, |n, c| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let key = format!("lin{}", rng % 3);
        let call = now();
        if rng >> 32 & 1 == 0 {
            let value = format!("c{client}-{n}");
            let ok = redis::cmd("SET")
                .arg(&key)
                .arg(&value)
                .query::<String>(c)
                .is_ok();
            // A write that failed may still take effect: its outcome is unknown.
            let ret = ok.then(now);
            history.push((
                key,
                Op {
                    call,
                    ret,
                    kind: Kind::Write(value),
                },
            ));
            ok
        } else {
            match redis::cmd("GET").arg(&key).query::<Option<String>>(c) {
                Ok(v) => {
                    let ret = Some(now());
                    history.push((
                        key,
                        Op {
                            call,
                            ret,
                            kind: Kind::Read(v),
                        },
                    ));
                    true
                }
                // A failed read has no effect: it is left out.
                Err(_) => false,
            }
        }
    });
    history
}

#[test]
fn reads_and_writes_across_a_failover_are_linearizable() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let (_one_at_a_time, _zk, _root, _cs, nodes) = standalone_cluster(&[]);
    let (leader, _) = agreed_leader(&nodes.iter().collect::<Vec<_>>());
    let stop = AtomicBool::new(false);
    let start = Instant::now();
    let history = std::thread::scope(|s| {
        let clients: Vec<_> = (0..5)
            .map(|c| {
                let (port, stop) = (nodes[c % 3].port, &stop);
                s.spawn(move || record_history(port, c, start, stop))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(800));
        nodes[leader].process.signal("KILL");
        let survivor = &nodes[(leader + 1) % 3];
        set_until_ok(survivor, "lin-after", "x", Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(800));
        stop.store(true, Ordering::Relaxed);
        clients
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect::<Vec<_>>()
    });
    let mut per_key: HashMap<String, Vec<lsm_testkit::linearizability::Op>> = HashMap::new();
    for (key, op) in history {
        per_key.entry(key).or_default().push(op);
    }
    let mut total = 0;
    let mut unknown = 0;
    for (key, ops) in &per_key {
        total += ops.len();
        unknown += ops.iter().filter(|o| o.ret.is_none()).count();
        if let Err(e) = lsm_testkit::linearizability::check(ops) {
            panic!("history of {key} ({} operations): {e}", ops.len());
        }
    }
    assert!(total > 300, "only {total} operations recorded");
    eprintln!(
        "linearizable across a kill -9 failover: {total} operations on {} keys ({unknown} writes of unknown outcome)",
        per_key.len()
    );
}

#[test]
fn a_follower_behind_the_leaders_log_is_rebuilt_from_a_checkpoint() {
    // The leader keeps only 1 MiB of applied log (at least its active 8 MiB segment).
    let (_one_at_a_time, _zk, _root, cs, mut nodes) =
        standalone_cluster(&["--replication-log-mb", "1"]);
    let (leader, _) = agreed_leader(&nodes.iter().collect::<Vec<_>>());
    let down = (leader + 1) % 3;
    set_until_ok(&nodes[leader], "early", "1", Duration::from_secs(10));
    converged(&nodes.iter().collect::<Vec<_>>());
    nodes[down].stop();
    // About 20 MiB of writes while it is down: the leader releases the log it missed.
    let value = "x".repeat(1000);
    let mut c = nodes[leader].conn();
    for batch in 0..20 {
        let mut pipe = redis::pipe();
        for i in 0..1000 {
            pipe.cmd("SET")
                .arg(format!("big{batch}-{i}"))
                .arg(&value)
                .ignore();
        }
        pipe.query::<()>(&mut c).unwrap();
    }
    let first: u64 = nodes[leader].info("replication")["repl_log_first_index"]
        .parse()
        .unwrap();
    assert!(
        first > 2,
        "the leader still holds its whole log (first index {first})"
    );
    nodes[down].start_again(&cs, SESSION_MS);
    let all: Vec<&Node> = nodes.iter().collect();
    let seq = converged(&all);
    assert!(seq >= 20_001, "{seq}");
    assert!(
        nodes[down]
            .log_text()
            .contains("downloaded the leader's checkpoint"),
        "{}",
        nodes[down].log_text()
    );
    // It streams normally afterwards.
    set_until_ok(&nodes[down], "after-rebuild", "2", Duration::from_secs(10));
    converged(&all);
    assert_eq!(nodes[down].info("replication")["repl_state"], "following");
    // Its engine (the copy ENGINE names) holds the data.
    nodes[down].stop();
    let data = engine_contents(&nodes[down].dir);
    assert_eq!(data.len(), 20_000 + 2, "keys in the rebuilt engine");
    assert!(data.iter().any(|(k, v)| k == b"early" && v == b"1"));
    assert!(data.iter().any(|(k, v)| k == b"after-rebuild" && v == b"2"));
}

#[test]
fn a_write_without_a_majority_times_out_keeps_its_keys_and_applies_later() {
    let (_one_at_a_time, _zk, _root, _cs, nodes) = standalone_cluster(&[]);
    let (leader, _) = agreed_leader(&nodes.iter().collect::<Vec<_>>());
    let followers: Vec<&Node> = (0..3).filter(|&i| i != leader).map(|i| &nodes[i]).collect();
    set_until_ok(&nodes[leader], "pre", "1", Duration::from_secs(10));
    // Frozen followers keep their connections, so the write is accepted, then waits.
    for f in &followers {
        f.process.signal("STOP");
    }
    let port = nodes[leader].port;
    let (first, second) = std::thread::scope(|s| {
        let first = s.spawn(|| {
            let mut c = conn_to(port).unwrap();
            redis::cmd("SET")
                .arg("held")
                .arg("v1")
                .query::<String>(&mut c)
        });
        std::thread::sleep(Duration::from_millis(300));
        // A conditional write of the same key must not read around the pending one.
        let second = s.spawn(|| {
            let mut c = conn_to(port).unwrap();
            redis::cmd("SET")
                .arg("held")
                .arg("v2")
                .arg("NX")
                .query::<Option<String>>(&mut c)
        });
        (first.join().unwrap(), second.join().unwrap())
    });
    for f in &followers {
        f.process.signal("CONT");
    }
    let first = first.unwrap_err().to_string();
    assert!(first.to_lowercase().contains("timeout"), "{first}");
    let second = second.unwrap_err().to_string();
    assert!(second.to_lowercase().contains("tryagain"), "{second}");
    // Once the followers are back, the pending write commits and applies.
    let deadline = Instant::now() + Duration::from_secs(20);
    while get(&nodes[leader], "held").as_deref() != Some("v1") {
        assert!(Instant::now() < deadline, "the pending write never applied");
        std::thread::sleep(Duration::from_millis(50));
    }
    let nx: Option<String> = redis::cmd("SET")
        .arg("held")
        .arg("v3")
        .arg("NX")
        .query(&mut nodes[leader].conn())
        .unwrap();
    assert_eq!(nx, None, "NX after the pending write applied must fail");
    converged(&nodes.iter().collect::<Vec<_>>());
}

#[test]
fn with_leader_only_acks_a_returning_old_leader_converges_to_the_new_ones_data() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let (_one_at_a_time, _zk, _root, cs, mut nodes) =
        standalone_cluster(&["--replication-acks", "leader"]);
    let (leader, _) = agreed_leader(&nodes.iter().collect::<Vec<_>>());
    // Writes acknowledged by the leader alone, then kill -9: it may hold (and have
    // applied) entries the new leader never received.
    let stop = AtomicBool::new(false);
    let port = nodes[leader].port;
    std::thread::scope(|s| {
        let writers: Vec<_> = (0..4)
            .map(|t| {
                let stop = &stop;
                s.spawn(move || write_until(port, t, stop))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(700));
        nodes[leader].process.signal("KILL");
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.join().unwrap();
        }
    });
    let _ = nodes[leader].process.wait_exit(Duration::from_secs(10));
    let survivors: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let (new, _) = agreed_leader(&[&nodes[survivors[0]], &nodes[survivors[1]]]);
    let new = survivors[new];
    set_until_ok(&nodes[new], "after", "failover", Duration::from_secs(20));
    // The old leader returns as a follower: whatever it held beyond the new leader's log
    // is discarded (by cutting back or by a rebuild from a checkpoint), never served.
    nodes[leader].start_again(&cs, SESSION_MS);
    let all: Vec<&Node> = nodes.iter().collect();
    converged(&all);
    set_until_ok(&nodes[leader], "after-return", "1", Duration::from_secs(10));
    converged(&all);
    for i in [leader, new] {
        nodes[i].stop();
    }
    let (old_data, new_data) = (
        engine_contents(&nodes[leader].dir),
        engine_contents(&nodes[new].dir),
    );
    assert!(old_data == new_data, "the returning node did not converge");
    let rebuilt = nodes[leader]
        .log_text()
        .contains("downloaded the leader's checkpoint");
    eprintln!(
        "leader-only acks: the returning old leader converged to {} keys (rebuilt from a checkpoint: {rebuilt})",
        new_data.len()
    );
}

/// Every key and value of the engine of the node data directory `dir` (the node must
/// be stopped).
fn engine_contents(dir: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let dir = lsm_server::engine::engine_dir(dir).unwrap();
    let db = lsm_core::Db::open(dir, lsm_core::Options::default()).unwrap();
    db.iter()
        .map(|kv| {
            let (k, v) = kv.unwrap();
            (k.to_vec(), v.to_vec())
        })
        .collect()
}

#[test]
fn a_paused_leader_is_fenced_when_it_resumes_and_converges() {
    let (_one_at_a_time, _zk, _root, _cs, mut nodes) = standalone_cluster(&[]);
    let (old, epoch) = agreed_leader(&nodes.iter().collect::<Vec<_>>());
    set_until_ok(&nodes[old], "before", "pause", Duration::from_secs(10));
    // A client already connected to the old leader, as a real one would be.
    let mut stale_client = nodes[old].conn();
    nodes[old].process.signal("STOP");
    let survivor_ids: Vec<usize> = (0..3).filter(|&i| i != old).collect();
    let (new, new_epoch) = agreed_leader(&[&nodes[survivor_ids[0]], &nodes[survivor_ids[1]]]);
    let new = survivor_ids[new];
    assert!(new_epoch > epoch);
    set_until_ok(&nodes[new], "during", "pause", Duration::from_secs(10));
    let mut c = nodes[new].conn();
    for i in 0..100 {
        let _: () = redis::cmd("SET")
            .arg(format!("d{i}"))
            .arg(i)
            .query(&mut c)
            .unwrap();
    }

    nodes[old].process.signal("CONT");
    // Writes sent to the resumed node right away: each either fails or goes through the
    // new leader; none is acknowledged by the old one on its own.
    let mut acknowledged = Vec::new();
    for i in 0..50 {
        let key = format!("resumed{i}");
        let r: redis::RedisResult<String> =
            redis::cmd("SET").arg(&key).arg(i).query(&mut stale_client);
        if r.is_ok() {
            acknowledged.push(key);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // It rejoins as a follower of the new leader and converges to its data.
    let all: Vec<&Node> = nodes.iter().collect();
    assert_eq!(agreed_leader(&all), (new, new_epoch));
    for key in &acknowledged {
        assert!(
            get(&nodes[new], key).is_some(),
            "{key} acknowledged but not at the leader"
        );
    }
    converged(&all);
    assert_eq!(nodes[old].info("replication")["repl_state"], "following");
    // Its own engine holds exactly the new leader's data.
    for i in [old, new] {
        nodes[i].stop();
    }
    let (old_data, new_data) = (
        engine_contents(&nodes[old].dir),
        engine_contents(&nodes[new].dir),
    );
    assert!(
        new_data.len() >= 102 + acknowledged.len(),
        "{}",
        new_data.len()
    );
    assert!(old_data == new_data, "the resumed node did not converge");
    eprintln!(
        "stale leader: {} of 50 writes sent to it after SIGCONT were acknowledged (through the new leader); it converged to {} keys",
        acknowledged.len(),
        new_data.len()
    );
}

#[test]
fn zookeeper_server_loss_and_total_loss() {
    let _one_at_a_time = serial();
    let mut zk = ZkEnsemble::start(3);
    let root = tempfile::tempdir().unwrap();
    let cs = zk.connect_string();
    let session_ms = 8000;
    let nodes = three_nodes(&cs, root.path(), session_ms);
    let all: Vec<&Node> = nodes.iter().collect();
    let (leader, epoch) = agreed_leader(&all);
    let session = nodes[leader].info("cluster")["zookeeper_session_id"].clone();
    let server = zk
        .server_of_session(&session)
        .unwrap_or_else(|| panic!("no ZooKeeper server lists session {session}"));
    zk.kill(server);
    // The leader's client moves to another ZooKeeper server within its session: after a
    // brief pause the cluster serves again, without a new election.
    for n in &nodes {
        set_until_ok(
            n,
            &format!("zk-loss-{}", n.id),
            "x",
            Duration::from_secs(20),
        );
    }
    let (leader_after, epoch_after) = agreed_leader(&all);
    assert_eq!(
        (leader_after, epoch_after),
        (leader, epoch),
        "a new election happened"
    );

    // With ZooKeeper entirely down, writes fail with a clear error, within the bounded
    // wait, instead of being accepted by a node that cannot know it leads.
    zk.kill_all();
    let deadline = Instant::now() + Duration::from_millis(session_ms);
    let err = loop {
        let r: redis::RedisResult<String> = redis::cmd("SET")
            .arg("no-zk")
            .arg("x")
            .query(&mut nodes[leader].conn());
        match r {
            Err(e) => break e.to_string(),
            Ok(_) => assert!(
                Instant::now() < deadline,
                "writes still accepted without ZooKeeper"
            ),
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // The redis crate spells the code `ClusterDown`.
    assert!(err.to_uppercase().contains("CLUSTERDOWN"), "{err}");
    for n in &nodes {
        let started = Instant::now();
        let r: redis::RedisResult<String> =
            redis::cmd("SET").arg("no-zk").arg("y").query(&mut n.conn());
        let e = r.expect_err("write accepted without ZooKeeper").to_string();
        let e = e.to_uppercase();
        assert!(
            e.contains("CLUSTERDOWN") || e.contains("STALEEPOCH"),
            "{}: {e}",
            n.id
        );
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
