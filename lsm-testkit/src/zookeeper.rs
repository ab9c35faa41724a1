//! ZooKeeper servers for tests, from Debian's `zookeeper` package (3.8), each on free
//! loopback ports with its own data directory, killed on drop.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::process::{free_ports, Child};

const ZOOKEEPER_JAR: &str = "/usr/share/java/zookeeper.jar";
const SLF4J_SIMPLE_JAR: &str = "/usr/share/java/slf4j-simple.jar";
const ZOOKEEPER_CONF: &str = "/etc/zookeeper/conf";
/// ZooKeeper's tick in tests; session timeouts are clamped to [2, 20] ticks.
pub const TICK_MS: u64 = 500;

static SERIAL: Mutex<()> = Mutex::new(());

/// Held by every test that starts ZooKeeper, so that such tests run one at a time.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Panics with instructions when ZooKeeper or Java is missing: tests that need ZooKeeper
/// fail loudly instead of skipping.
fn check_installed() {
    for path in [ZOOKEEPER_JAR, SLF4J_SIMPLE_JAR] {
        assert!(
            Path::new(path).exists(),
            "{path} is missing: these tests need Debian's `zookeeper` and `libslf4j-java` \
             packages (scripts/test.sh installs them)"
        );
    }
    let java = Command::new("java")
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    assert!(
        java.is_ok_and(|s| s.success()),
        "`java` does not run: these tests need a Java runtime (Debian's `zookeeper` package \
         depends on one; scripts/test.sh installs it)"
    );
}

#[derive(Debug)]
struct Peer {
    client_port: u16,
    dir: PathBuf,
    cfg: PathBuf,
    process: Option<Child>,
}

/// One ZooKeeper server (`size == 1`, standalone mode) or a quorum ensemble.
#[derive(Debug)]
pub struct ZkEnsemble {
    peers: Vec<Peer>,
    _root: tempfile::TempDir,
}

impl ZkEnsemble {
    /// A standalone server, ready to serve.
    pub fn standalone() -> ZkEnsemble {
        Self::start(1)
    }

    /// `size` servers forming one ensemble (standalone mode when `size == 1`), ready to
    /// serve: every server reports a mode.
    pub fn start(size: usize) -> ZkEnsemble {
        assert!(size >= 1);
        check_installed();
        let root = tempfile::tempdir().expect("a temporary directory for ZooKeeper");
        let ports: Vec<(u16, u16, u16)> = free_ports(3 * size)
            .chunks_exact(3)
            .map(|p| (p[0], p[1], p[2]))
            .collect();
        let mut peers = Vec::new();
        for (i, (client_port, _, _)) in ports.iter().enumerate() {
            let dir = root.path().join(format!("zk{}", i + 1));
            std::fs::create_dir_all(&dir).expect("creating a ZooKeeper data directory");
            let mut cfg = format!(
                "tickTime={TICK_MS}\ninitLimit=10\nsyncLimit=5\ndataDir={}\n\
                 clientPort={client_port}\nclientPortAddress=127.0.0.1\n\
                 admin.enableServer=false\nmaxClientCnxns=0\n\
                 4lw.commands.whitelist=srvr,ruok,mntr,cons\nforceSync=no\npreAllocSize=4096\n",
                dir.display()
            );
            if size > 1 {
                for (j, (_, quorum, election)) in ports.iter().enumerate() {
                    cfg.push_str(&format!("server.{}=127.0.0.1:{quorum}:{election}\n", j + 1));
                }
                std::fs::write(dir.join("myid"), format!("{}\n", i + 1))
                    .expect("writing ZooKeeper's myid");
            }
            let cfg_path = dir.join("zoo.cfg");
            std::fs::write(&cfg_path, cfg).expect("writing zoo.cfg");
            peers.push(Peer {
                client_port: *client_port,
                dir,
                cfg: cfg_path,
                process: None,
            });
        }
        let mut zk = ZkEnsemble { peers, _root: root };
        for i in 0..size {
            zk.spawn(i);
        }
        for i in 0..size {
            zk.wait_ready(i, Duration::from_secs(60));
        }
        zk
    }

    fn spawn(&mut self, i: usize) {
        let peer = &mut self.peers[i];
        let log = std::fs::File::create(peer.dir.join("server.log")).expect("ZooKeeper log");
        let log2 = log.try_clone().expect("ZooKeeper log");
        let mut cmd = Command::new("java");
        cmd.args([
            "-Xms16m",
            "-Xmx64m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-Dzookeeper.admin.enableServer=false",
            "-cp",
            &format!("{ZOOKEEPER_CONF}:{ZOOKEEPER_JAR}:{SLF4J_SIMPLE_JAR}"),
            "org.apache.zookeeper.server.quorum.QuorumPeerMain",
        ])
        .arg(&peer.cfg)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
        peer.process = Some(Child::spawn(format!("zookeeper {}", i + 1), &mut cmd));
    }

    fn wait_ready(&mut self, i: usize, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            if self.mode(i).is_some() {
                return;
            }
            let alive = self.peers[i].process.as_mut().is_some_and(Child::alive);
            if !alive || Instant::now() >= deadline {
                let log = std::fs::read_to_string(self.peers[i].dir.join("server.log"))
                    .unwrap_or_default();
                let tail: String = log
                    .lines()
                    .rev()
                    .take(30)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("\n");
                panic!(
                    "ZooKeeper server {} on 127.0.0.1:{} did not become ready (alive: {alive}); \
                     last lines of its log:\n{tail}",
                    i + 1,
                    self.peers[i].client_port
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The server's `Mode:` (standalone, leader, follower) from the `srvr` command, or
    /// None when it does not answer.
    pub fn mode(&self, i: usize) -> Option<String> {
        self.four_letter(i, "srvr")?
            .lines()
            .find_map(|l| l.strip_prefix("Mode: ").map(str::to_owned))
    }

    /// The answer of server `i` to a four-letter command, or None when it does not answer.
    pub fn four_letter(&self, i: usize, cmd: &str) -> Option<String> {
        let addr = format!("127.0.0.1:{}", self.peers[i].client_port);
        let mut s = TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_secs(1)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        s.write_all(cmd.as_bytes()).ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        Some(out)
    }

    /// `127.0.0.1:p1,127.0.0.1:p2,...`
    pub fn connect_string(&self) -> String {
        self.peers
            .iter()
            .map(|p| format!("127.0.0.1:{}", p.client_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn client_port(&self, i: usize) -> u16 {
        self.peers[i].client_port
    }

    pub fn size(&self) -> usize {
        self.peers.len()
    }

    /// SIGKILLs server `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut p) = self.peers[i].process.take() {
            p.kill();
        }
    }

    /// Sends a signal (e.g. "STOP", "CONT") to server `i`.
    pub fn signal(&self, i: usize, sig: &str) {
        if let Some(p) = &self.peers[i].process {
            p.signal(sig);
        }
    }

    /// SIGKILLs every server.
    pub fn kill_all(&mut self) {
        for i in 0..self.peers.len() {
            self.kill(i);
        }
    }

    /// Starts server `i` again (after [`Self::kill`]) and waits until it serves.
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        self.spawn(i);
        self.wait_ready(i, Duration::from_secs(60));
    }

    /// Index of the server a client session (ZooKeeper's session id, e.g. `0x1000..`) is
    /// connected to, from each server's `cons` listing.
    pub fn server_of_session(&self, session_id: &str) -> Option<usize> {
        let needle = format!("sid=0x{}", session_id.trim_start_matches("0x"));
        (0..self.peers.len()).find(|&i| {
            self.four_letter(i, "cons")
                .is_some_and(|out| out.contains(&needle))
        })
    }
}
