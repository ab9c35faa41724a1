//! Child processes that are killed when dropped, and POSIX signals sent through the
//! `kill` utility (the workspace denies `unsafe`, which calling `libc::kill` would need).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A free loopback TCP port. Another process could take it before the caller binds it;
/// on a test machine that is rare enough.
pub fn free_port() -> u16 {
    free_ports(1)[0]
}

/// `n` distinct free loopback TCP ports: all are held at once while they are chosen, so
/// the kernel cannot hand out one twice (as `free_port` called `n` times can; a ZooKeeper
/// ensemble refuses a configuration whose ports collide).
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<std::net::TcpListener> = (0..n)
        .map(|_| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .expect("binding 127.0.0.1:0 to find a free port")
        })
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("a bound listener's address").port())
        .collect()
}

/// Sends `sig` (e.g. "KILL", "STOP", "CONT", "TERM") to process `pid`.
pub fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("running kill(1)");
    assert!(status.success(), "kill -{sig} {pid} failed");
}

/// A child process killed (SIGKILL) and reaped on drop unless it already exited.
#[derive(Debug)]
pub struct Child {
    pub name: String,
    child: Option<std::process::Child>,
}

impl Child {
    pub fn spawn(name: impl Into<String>, cmd: &mut Command) -> Child {
        let name = name.into();
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name} ({cmd:?}): {e}"));
        Child {
            name,
            child: Some(child),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, std::process::Child::id)
    }

    pub fn signal(&self, sig: &str) {
        signal(self.pid(), sig);
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            // A stopped process still dies of SIGKILL.
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits up to `limit` for the process to exit; returns its exit status, or None if
    /// it is still running.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            let c = self.child.as_mut()?;
            if let Ok(Some(status)) = c.try_wait() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The port an `lsm-server` started with `--port 0` bound, from its log line
    /// `lsm-server listening addr=127.0.0.1:PORT` in `log`; None as for [`Child::wait_for_log`].
    pub fn logged_port(&mut self, log: &Path, limit: Duration) -> Option<u16> {
        self.wait_for_log(log, "lsm-server listening addr=127.0.0.1:", limit)
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
    }

    /// Waits up to `limit` for a line containing `marker` in the file `log` (where the
    /// process writes its log); returns what follows the marker on the first such line.
    /// None when the process exits or the time runs out first.
    pub fn wait_for_log(&mut self, log: &Path, marker: &str, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        loop {
            // Looked at before the file, so that a line written just before exiting counts.
            let alive = self.alive();
            let text = std::fs::read_to_string(log).unwrap_or_default();
            if let Some(rest) = text.lines().find_map(|l| l.split_once(marker)) {
                return Some(rest.1.to_owned());
            }
            if !alive || Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.kill();
    }
}
