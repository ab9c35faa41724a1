//! The network side of replication: the leader's stream to each follower, the
//! follower's side of it, the log fetch a new leader completes its log with, and the
//! driver that follows the cluster view.
//!
//! A follower opens a connection to the leader's client port and sends
//! `LSM.REPLICATE <epoch> <node_id> <addr> <index> <entry epoch> <sequence>` (after
//! `AUTH` when the cluster has a password), naming the last entry of its log. The
//! leader answers `+OK` when its log holds that entry, `-DIVERGED <epoch> <index>` when
//! the follower must first cut its log back (it then reconnects), `-RESYNC <reason>`
//! when they share nothing the leader still holds, or `-STALEEPOCH` when it does not
//! lead in that epoch. After `+OK` the connection carries binary frames
//! `[kind u8][length u32][payload]`: `E` = `[commit u64][count u32]` and `count` ×
//! `[length u32][entry]`, `C` = `[commit u64]` (sent at least every
//! [`HEARTBEAT`]); the follower answers each `E` frame with the index of its last
//! entry as a u64 once it has appended (and in sync mode fsynced) them. All integers are
//! little-endian.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use lsm_cluster::{Cluster, LeaderInfo, Role};
use lsm_core::WriteBatch;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::log::Reconcile;
use super::{Acks, Entry, FollowerInfo, Point, ReplRole, Replication};
use crate::protocol::{encode_request, reply_frame_len, Reply, Request};

/// The leader sends a commit frame at least this often, so an idle link is noticed.
pub const HEARTBEAT: Duration = Duration::from_millis(250);
/// A follower that hears nothing for this long reconnects.
pub const LINK_TIMEOUT: Duration = Duration::from_secs(3);
/// Most bytes of entries in one frame.
const FRAME_BYTES: usize = 1 << 20;
/// Most bytes of entries in one fetch reply.
const FETCH_BYTES: usize = 4 << 20;
/// How long opening a replication connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

const FRAME_ENTRIES: u8 = b'E';
const FRAME_COMMIT: u8 = b'C';

fn parse_u64(arg: &[u8], what: &str) -> Result<u64, String> {
    std::str::from_utf8(arg)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{what} is not a number"))
}

fn parse_point(args: &[Bytes]) -> Result<Point, String> {
    Ok(Point {
        index: parse_u64(&args[0], "index")?,
        epoch: parse_u64(&args[1], "entry epoch")?,
        seq: parse_u64(&args[2], "sequence")?,
    })
}

fn point_args(p: Point) -> [Bytes; 3] {
    [
        Bytes::from(p.index.to_string()),
        Bytes::from(p.epoch.to_string()),
        Bytes::from(p.seq.to_string()),
    ]
}

async fn write_line(socket: &mut TcpStream, line: &str) {
    let _ = socket.write_all(format!("{line}\r\n").as_bytes()).await;
}

/// Serves `LSM.REPLICATE` on the leader: the connection becomes the stream to one
/// follower (which sends nothing after the request until it is answered).
pub async fn serve_follower(repl: Arc<Replication>, mut socket: TcpStream, req: Request) {
    if req.len() != 7 {
        write_line(
            &mut socket,
            "-ERR wrong number of arguments for 'lsm.replicate' command",
        )
        .await;
        return;
    }
    let parsed = parse_u64(&req[1], "epoch").and_then(|e| Ok((e, parse_point(&req[4..7])?)));
    let (epoch, theirs) = match parsed {
        Ok(v) => v,
        Err(e) => return write_line(&mut socket, &format!("-ERR {e}")).await,
    };
    let node = String::from_utf8_lossy(&req[2]).into_owned();
    let addr = String::from_utf8_lossy(&req[3]).into_owned();
    // Announce the follower's position (a recovering leader gathers them), then wait
    // until this node's log is complete.
    let announced = {
        // Lock order: the log before the state.
        let last = repl.log.lock().last().index;
        let mut st = repl.st.lock();
        match st.role {
            ReplRole::Recovering { epoch: e } | ReplRole::Leading { epoch: e } if e == epoch => {
                st.announced.insert(node.clone(), (addr.clone(), theirs));
                repl.cv.notify_all();
                repl.publish(&st, last);
                Ok(st.generation)
            }
            ref other => Err(format!(
                "-STALEEPOCH this node does not lead in epoch {epoch} ({other:?})"
            )),
        }
    };
    let generation = match announced {
        Ok(g) => g,
        Err(msg) => return write_line(&mut socket, &msg).await,
    };
    let mut rx = repl.subscribe();
    loop {
        let (same, leading) = {
            let st = repl.st.lock();
            (
                st.generation == generation,
                st.role == (ReplRole::Leading { epoch }),
            )
        };
        if !same {
            return write_line(&mut socket, "-STALEEPOCH leadership changed").await;
        }
        if leading {
            break;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
    let answer = repl.log.lock().reconcile(theirs);
    match answer {
        Reconcile::Match => {}
        Reconcile::Diverged { epoch: e, index } => {
            return write_line(&mut socket, &format!("-DIVERGED {e} {index}")).await
        }
        Reconcile::Resync(reason) => {
            return write_line(&mut socket, &format!("-RESYNC {reason}")).await
        }
    }
    {
        let mut st = repl.st.lock();
        if st.generation != generation {
            return;
        }
        st.followers.insert(
            node.clone(),
            FollowerInfo {
                addr,
                matched: theirs.index,
                streaming: true,
                last_ack: std::time::Instant::now(),
            },
        );
    }
    tracing::info!(follower = %node, from = theirs.index, "streaming the log to a follower");
    write_line(&mut socket, "+OK").await;
    let (mut rd, mut wr) = socket.into_split();
    let acks = {
        let repl = repl.clone();
        let node = node.clone();
        async move {
            let mut buf = [0u8; 8];
            while rd.read_exact(&mut buf).await.is_ok() {
                repl.follower_acked(&node, generation, u64::from_le_bytes(buf));
            }
        }
    };
    let send = async {
        let mut next = theirs.index;
        let mut sent_commit = u64::MAX;
        let mut frame = Vec::new();
        let mut last_sent = tokio::time::Instant::now();
        loop {
            if last_sent.elapsed() >= HEARTBEAT {
                // Nothing sent for a while: repeat the commit index as a heartbeat.
                sent_commit = u64::MAX;
            }
            let (entries, commit) = {
                let log = repl.log.lock();
                let st = repl.st.lock();
                if st.generation != generation {
                    return;
                }
                (log.entries_after(next, FRAME_BYTES), st.commit)
            };
            frame.clear();
            if let Some(last) = entries.last() {
                next = last.index;
                frame.push(FRAME_ENTRIES);
                frame.extend_from_slice(&[0; 4]);
                frame.extend_from_slice(&commit.to_le_bytes());
                frame.extend_from_slice(&(entries.len() as u32).to_le_bytes());
                for e in &entries {
                    frame.extend_from_slice(&(e.encoded_len() as u32).to_le_bytes());
                    e.encode(&mut frame);
                }
            } else if commit != sent_commit {
                frame.push(FRAME_COMMIT);
                frame.extend_from_slice(&[0; 4]);
                frame.extend_from_slice(&commit.to_le_bytes());
            }
            if !frame.is_empty() {
                let len = (frame.len() - 5) as u32;
                frame[1..5].copy_from_slice(&len.to_le_bytes());
                if wr.write_all(&frame).await.is_err() {
                    return;
                }
                sent_commit = commit;
                last_sent = tokio::time::Instant::now();
                continue;
            }
            let wait = HEARTBEAT.saturating_sub(last_sent.elapsed());
            if let Ok(Err(_)) = tokio::time::timeout(wait, rx.changed()).await {
                return;
            }
        }
    };
    tokio::select! {
        () = acks => {}
        () = send => {}
    }
    let mut st = repl.st.lock();
    if st.generation == generation {
        if let Some(f) = st.followers.get_mut(&node) {
            f.streaming = false;
        }
    }
    tracing::info!(follower = %node, "replication stream ended");
}

/// A minimal RESP client for the replication handshakes.
struct Peer {
    stream: TcpStream,
    input: BytesMut,
}

impl Peer {
    async fn connect(addr: &str, password: Option<&str>) -> Result<Peer, String> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| format!("connecting to {addr}: no answer within {CONNECT_TIMEOUT:?}"))?
            .map_err(|e| format!("connecting to {addr}: {e}"))?;
        let _ = stream.set_nodelay(true);
        let mut peer = Peer {
            stream,
            input: BytesMut::with_capacity(64 * 1024),
        };
        if let Some(pw) = password {
            let reply = peer
                .call(vec![
                    Bytes::from_static(b"AUTH"),
                    Bytes::copy_from_slice(pw.as_bytes()),
                ])
                .await?;
            if reply.first() == Some(&b'-') {
                return Err(format!(
                    "{addr} refused AUTH: {}",
                    String::from_utf8_lossy(&reply)
                ));
            }
        }
        Ok(peer)
    }

    /// Sends one request and returns its raw reply frame.
    async fn call(&mut self, req: Request) -> Result<Bytes, String> {
        self.call_within(req, LINK_TIMEOUT).await
    }

    /// [`Peer::call`], waiting up to `limit` for each read.
    async fn call_within(&mut self, req: Request, limit: Duration) -> Result<Bytes, String> {
        let mut out = BytesMut::new();
        encode_request(&req, &mut out);
        self.stream
            .write_all(&out)
            .await
            .map_err(|e| format!("sending: {e}"))?;
        loop {
            match reply_frame_len(&self.input) {
                Ok(Some(n)) => return Ok(self.input.split_to(n).freeze()),
                Ok(None) => {}
                Err(e) => return Err(format!("bad reply: {e}")),
            }
            self.input.reserve(64 * 1024);
            let read = tokio::time::timeout(limit, self.stream.read_buf(&mut self.input));
            match read.await {
                Ok(Ok(0)) => return Err("connection closed".into()),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(format!("reading: {e}")),
                Err(_) => return Err(format!("no reply within {limit:?}")),
            }
        }
    }

    /// Reads exactly `n` bytes of the binary stream.
    async fn read_exact(&mut self, n: usize, limit: Duration) -> Result<Bytes, String> {
        while self.input.len() < n {
            self.input.reserve(n - self.input.len());
            match tokio::time::timeout(limit, self.stream.read_buf(&mut self.input)).await {
                Ok(Ok(0)) => return Err("the leader closed the stream".into()),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(format!("reading the stream: {e}")),
                Err(_) => return Err(format!("nothing from the leader for {limit:?}")),
            }
        }
        Ok(self.input.split_to(n).freeze())
    }
}

/// Splits a RESP array reply of bulk strings, integers and simple strings into its
/// elements' bytes; an error reply becomes `Err` with its text.
fn array_items(frame: &[u8]) -> Result<Vec<Bytes>, String> {
    let text = |b: &[u8]| String::from_utf8_lossy(b).trim_end().to_owned();
    if frame.first() == Some(&b'-') {
        return Err(text(&frame[1..]));
    }
    let mut pos = 0;
    let line = |pos: &mut usize| -> Result<(u8, Vec<u8>), String> {
        let rest = &frame[*pos..];
        let nl = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("reply cut short")?;
        let out = (rest[0], rest[1..nl].to_vec());
        *pos += nl + 2;
        Ok(out)
    };
    let (kind, count) = line(&mut pos)?;
    if kind != b'*' {
        return Err(format!("expected an array, got {}", text(frame)));
    }
    let count: usize = parse_u64(&count, "array length")? as usize;
    let mut items = Vec::with_capacity(count);
    for _ in 0..count {
        let (kind, body) = line(&mut pos)?;
        match kind {
            b'$' => {
                let n = parse_u64(&body, "bulk length")? as usize;
                if frame.len() < pos + n + 2 {
                    return Err("bulk string cut short".into());
                }
                items.push(Bytes::copy_from_slice(&frame[pos..pos + n]));
                pos += n + 2;
            }
            b':' | b'+' => items.push(Bytes::from(body)),
            _ => return Err(format!("unexpected element type {}", kind as char)),
        }
    }
    Ok(items)
}

/// `LSM.LOGFETCH <epoch> <index> <entry epoch> <sequence>` on any node: the entries
/// after the caller's last one if this log holds it (`MATCH` then entries), else where
/// the caller must cut back to (`DIVERGED epoch index`) or `RESYNC reason`. A new
/// leader completes its log with it; answering promises to ignore older leaders.
pub fn log_fetch(repl: &Replication, req: &Request) -> Reply {
    let parsed = parse_u64(&req[1], "epoch").and_then(|e| Ok((e, parse_point(&req[2..5])?)));
    let (epoch, theirs) = match parsed {
        Ok(v) => v,
        Err(e) => return Reply::err(format!("ERR {e}")),
    };
    let mut log = repl.log.lock();
    if epoch < log.promised_epoch() {
        return Reply::err(format!(
            "STALEEPOCH this node follows epoch {} already",
            log.promised_epoch()
        ));
    }
    if let Err(e) = log.promise(epoch) {
        return Reply::err(format!("ERR {e}"));
    }
    let bulk = |s: String| Reply::Bulk(Bytes::from(s));
    match log.reconcile(theirs) {
        Reconcile::Match => {
            let mut items = vec![bulk("MATCH".into())];
            for e in log.entries_after(theirs.index, FETCH_BYTES) {
                let mut b = Vec::with_capacity(e.encoded_len());
                e.encode(&mut b);
                items.push(Reply::Bulk(Bytes::from(b)));
            }
            Reply::Array(items)
        }
        Reconcile::Diverged { epoch, index } => Reply::Array(vec![
            bulk("DIVERGED".into()),
            bulk(epoch.to_string()),
            bulk(index.to_string()),
        ]),
        Reconcile::Resync(r) => Reply::Array(vec![bulk("RESYNC".into()), bulk(r)]),
    }
}

/// Cuts this node's log back as a leader's or donor's `DIVERGED epoch index` asks; a
/// cut below what the engine has applied cannot be done (its data would have to be
/// rebuilt), which fails replication.
fn cut_back(repl: &Replication, epoch: u64, index: u64) -> Result<(), String> {
    // Entries a leader said were committed may be being applied right now: never cut
    // below them (the commit index is at least the applied one).
    let applied = repl.commit_index();
    let mut log = repl.log.lock();
    let cut = log.cut_point(epoch, index).ok_or_else(|| {
        format!(
            "the log shares nothing with the leader's after entry {}",
            log.base().index
        )
    })?;
    if cut >= log.last().index {
        return Err(format!(
            "the leader asks to cut back to entry {index} (epoch {epoch}), which this log \
             already ends at or before"
        ));
    }
    if cut < applied {
        return Err(format!(
            "this node applied (or was told committed) entries up to {applied} that the \
             leader does not have (it has entries only up to {cut} in common); its data \
             must be rebuilt"
        ));
    }
    tracing::warn!(
        from = log.last().index,
        to = cut,
        "cutting back the log to the leader's"
    );
    log.truncate_after(cut).map_err(|e| e.to_string())
}

/// Appends entries received from the leader (fsync in sync mode, off the async workers).
fn append_received(repl: &Replication, entries: &[Entry], epoch: u64) -> Result<u64, String> {
    if let Some(e) = entries.iter().find(|e| e.epoch > epoch) {
        return Err(format!(
            "entry {} has epoch {} above the leader's {epoch}",
            e.index, e.epoch
        ));
    }
    let mut log = repl.log.lock();
    let mut append = || log.append(entries).map_err(|e| e.to_string());
    if repl.settings.sync {
        tokio::task::block_in_place(append)?;
    } else {
        append()?;
    }
    Ok(log.last().index)
}

/// Most bytes of a checkpoint file sent in one reply.
const CHUNK_BYTES: u64 = 4 << 20;
/// How long the leader may take to make a checkpoint or send a chunk.
const CHECKPOINT_TIMEOUT: Duration = Duration::from_secs(120);
/// Checkpoints older than this are removed when a new one is made.
const CHECKPOINT_KEEP: Duration = Duration::from_secs(600);
/// The leader's checkpoints, inside its data directory.
pub const CHECKPOINT_DIR: &str = "checkpoints";

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

/// `LSM.CHECKPOINT <epoch>` on the leader: makes a checkpoint of its engine and answers
/// `[id, index, epoch, sequence, name, size, name, size, ...]`: the log point the copy
/// holds everything up to, and its files, which `LSM.CHECKPOINTREAD` returns.
pub fn make_checkpoint(repl: &Replication, req: &Request) -> Reply {
    let epoch = match parse_u64(&req[1], "epoch") {
        Ok(e) => e,
        Err(e) => return Reply::err(format!("ERR {e}")),
    };
    if repl.role() != (ReplRole::Leading { epoch }) {
        return Reply::err(format!(
            "STALEEPOCH this node does not lead in epoch {epoch}"
        ));
    }
    let root = repl.settings.data_dir.join(CHECKPOINT_DIR);
    match checkpoint_into(repl, &root) {
        Ok((id, point, files)) => {
            let mut items = vec![
                Reply::Bulk(Bytes::from(id)),
                Reply::Int(point.index as i64),
                Reply::Int(point.epoch as i64),
                Reply::Int(point.seq as i64),
            ];
            for (name, size) in files {
                items.push(Reply::Bulk(Bytes::from(name)));
                items.push(Reply::Int(size as i64));
            }
            Reply::Array(items)
        }
        Err(e) => Reply::err(format!("ERR checkpoint: {e}")),
    }
}

/// A checkpoint's id, log point and files with their sizes.
type Checkpoint = (String, Point, Vec<(String, u64)>);

fn checkpoint_into(repl: &Replication, root: &std::path::Path) -> Result<Checkpoint, String> {
    std::fs::create_dir_all(root).map_err(|e| format!("creating {}: {e}", root.display()))?;
    // Old checkpoints go (their hard links pin tables the engine compacted away).
    if let Ok(items) = std::fs::read_dir(root) {
        for item in items.flatten() {
            let old = item
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_none_or(|age| age > CHECKPOINT_KEEP);
            if old {
                let _ = std::fs::remove_dir_all(item.path());
            }
        }
    }
    let id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
        .to_string();
    let dir = root.join(&id);
    let seq = repl.db().checkpoint(&dir).map_err(|e| e.to_string())?;
    let point = {
        let applied = repl.applied_index();
        let log = repl.log.lock();
        (log.base().index..=applied)
            .rev()
            .filter_map(|i| log.point_at(i))
            .find(|p| p.seq == seq)
            .ok_or_else(|| {
                format!("no applied log entry ends at the checkpoint's sequence {seq}")
            })?
    };
    let mut files = Vec::new();
    for item in std::fs::read_dir(&dir).map_err(|e| format!("listing {}: {e}", dir.display()))? {
        let item = item.map_err(|e| e.to_string())?;
        let size = item.metadata().map_err(|e| e.to_string())?.len();
        files.push((item.file_name().to_string_lossy().into_owned(), size));
    }
    files.sort();
    Ok((id, point, files))
}

/// `LSM.CHECKPOINTREAD <id> <file> <offset>`: up to 4 MiB of a checkpoint file from
/// `offset` (empty at its end).
pub fn read_checkpoint(repl: &Replication, req: &Request) -> Reply {
    let id = String::from_utf8_lossy(&req[1]);
    let name = String::from_utf8_lossy(&req[2]);
    let offset = match parse_u64(&req[3], "offset") {
        Ok(o) => o,
        Err(e) => return Reply::err(format!("ERR {e}")),
    };
    if !valid_name(&id) || !valid_name(&name) {
        return Reply::err("ERR bad checkpoint id or file name");
    }
    let path = repl
        .settings
        .data_dir
        .join(CHECKPOINT_DIR)
        .join(&*id)
        .join(&*name);
    let read = || -> std::io::Result<Vec<u8>> {
        use std::io::{Read, Seek};
        let mut f = std::fs::File::open(&path)?;
        f.seek(std::io::SeekFrom::Start(offset))?;
        let mut buf = Vec::new();
        f.take(CHUNK_BYTES).read_to_end(&mut buf)?;
        Ok(buf)
    };
    match read() {
        Ok(bytes) => Reply::Bulk(Bytes::from(bytes)),
        Err(e) => Reply::err(format!("ERR reading {}: {e}", path.display())),
    }
}

/// Rebuilds this follower's engine from a checkpoint of the leader's: downloads it into
/// a new engine directory, then puts it in force (see [`Replication::install_copy`]).
async fn resync(
    repl: &Replication,
    leader: &LeaderInfo,
    password: Option<&str>,
) -> Result<(), String> {
    let mut peer = Peer::connect(&leader.addr, password).await?;
    let req = vec![
        Bytes::from_static(b"LSM.CHECKPOINT"),
        Bytes::from(leader.epoch.to_string()),
    ];
    let items = array_items(&peer.call_within(req, CHECKPOINT_TIMEOUT).await?)?;
    if items.len() < 4 || items.len() % 2 != 0 {
        return Err("unexpected LSM.CHECKPOINT answer".into());
    }
    let id = items[0].clone();
    let point = parse_point(&items[1..4])?;
    let target =
        crate::engine::next_engine_dir(&repl.settings.data_dir).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&target);
    std::fs::create_dir_all(&target).map_err(|e| format!("creating {}: {e}", target.display()))?;
    let mut total = 0u64;
    for pair in items[4..].chunks(2) {
        let name = String::from_utf8_lossy(&pair[0]).into_owned();
        let size = parse_u64(&pair[1], "file size")?;
        if !valid_name(&name) {
            return Err(format!("bad file name {name:?} in the checkpoint"));
        }
        let path = target.join(&name);
        let mut file = std::fs::File::create(&path)
            .map_err(|e| format!("creating {}: {e}", path.display()))?;
        let mut offset = 0u64;
        while offset < size {
            let req = vec![
                Bytes::from_static(b"LSM.CHECKPOINTREAD"),
                id.clone(),
                pair[0].clone(),
                Bytes::from(offset.to_string()),
            ];
            let reply = peer.call_within(req, CHECKPOINT_TIMEOUT).await?;
            let chunk = bulk_body(&reply)?;
            if chunk.is_empty() {
                return Err(format!(
                    "{name} ends at {offset} bytes, the leader said {size}"
                ));
            }
            tokio::task::block_in_place(|| {
                use std::io::Write as _;
                file.write_all(&chunk)
            })
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
            offset += chunk.len() as u64;
        }
        tokio::task::block_in_place(|| file.sync_all())
            .map_err(|e| format!("syncing {}: {e}", path.display()))?;
        total += size;
    }
    tokio::task::block_in_place(|| std::fs::File::open(&target).and_then(|d| d.sync_all()))
        .map_err(|e| format!("syncing {}: {e}", target.display()))?;
    tracing::info!(
        files = (items.len() - 4) / 2,
        bytes = total,
        index = point.index,
        "downloaded the leader's checkpoint"
    );
    tokio::task::block_in_place(|| repl.install_copy(&target, point))
}

/// The bytes of a bulk-string reply frame; an error reply becomes `Err`.
fn bulk_body(frame: &[u8]) -> Result<Bytes, String> {
    if frame.first() == Some(&b'-') {
        return Err(String::from_utf8_lossy(&frame[1..]).trim_end().to_owned());
    }
    if frame.first() != Some(&b'$') {
        return Err("expected a bulk string".into());
    }
    let nl = frame
        .windows(2)
        .position(|w| w == b"\r\n")
        .ok_or("bad bulk reply")?;
    let n = parse_u64(&frame[1..nl], "bulk length")? as usize;
    let start = nl + 2;
    if frame.len() < start + n {
        return Err("bulk string cut short".into());
    }
    Ok(Bytes::copy_from_slice(&frame[start..start + n]))
}

enum Outcome {
    /// Reconnect at once (after cutting back).
    Again,
}

/// One connection of a follower to the leader of `epoch`; returns when it ends.
async fn follow_once(
    repl: &Replication,
    leader: &LeaderInfo,
    my_addr: &str,
    password: Option<&str>,
) -> Result<Outcome, String> {
    let epoch = leader.epoch;
    let mut peer = Peer::connect(&leader.addr, password).await?;
    let me = repl.last();
    let mut req = vec![
        Bytes::from_static(b"LSM.REPLICATE"),
        Bytes::from(epoch.to_string()),
        Bytes::from(repl.settings.node_id.clone()),
        Bytes::from(my_addr.to_owned()),
    ];
    req.extend(point_args(me));
    let reply = peer.call(req).await?;
    let line = String::from_utf8_lossy(&reply).trim_end().to_owned();
    if let Some(rest) = line.strip_prefix("-DIVERGED ") {
        let mut it = rest.split(' ').map(|s| s.parse::<u64>());
        let (Some(Ok(e)), Some(Ok(i))) = (it.next(), it.next()) else {
            return Err(format!("bad answer from the leader: {line}"));
        };
        if let Err(reason) = cut_back(repl, e, i) {
            tracing::warn!("{reason}: rebuilding from the leader's checkpoint");
            resync(repl, leader, password).await?;
        }
        return Ok(Outcome::Again);
    }
    if let Some(reason) = line.strip_prefix("-RESYNC ") {
        tracing::warn!(
            "the leader cannot stream to this node ({reason}): rebuilding from its checkpoint"
        );
        resync(repl, leader, password).await?;
        return Ok(Outcome::Again);
    }
    if line != "+OK" {
        return Err(format!("the leader refused replication: {line}"));
    }
    repl.st.lock().link_up = true;
    tracing::info!(leader = %leader.node_id, epoch, from = me.index, "replicating from the leader");
    loop {
        let mut head = peer.read_exact(5, LINK_TIMEOUT).await?;
        let kind = head.get_u8();
        let len = head.get_u32_le() as usize;
        if len > (1 << 30) + FRAME_BYTES {
            return Err(format!("frame of {len} bytes from the leader"));
        }
        let mut body = peer.read_exact(len, LINK_TIMEOUT).await?;
        match kind {
            FRAME_COMMIT if body.len() == 8 => repl.leader_committed(body.get_u64_le()),
            FRAME_ENTRIES if body.len() >= 12 => {
                let commit = body.get_u64_le();
                let count = body.get_u32_le() as usize;
                let mut entries = Vec::with_capacity(count.min(1 << 16));
                for _ in 0..count {
                    if body.len() < 4 {
                        return Err("entries frame cut short".into());
                    }
                    let n = body.get_u32_le() as usize;
                    if body.len() < n {
                        return Err("entries frame cut short".into());
                    }
                    entries.push(Entry::decode(&body.split_to(n))?);
                }
                let last = append_received(repl, &entries, epoch)?;
                peer.stream
                    .write_all(&last.to_le_bytes())
                    .await
                    .map_err(|e| format!("acknowledging: {e}"))?;
                repl.leader_committed(commit);
            }
            _ => {
                return Err(format!(
                    "bad frame from the leader (kind {kind}, {len} bytes)"
                ))
            }
        }
    }
}

/// Follows the leader of `leader.epoch` until aborted: reconnects after failures.
async fn follow(
    repl: Arc<Replication>,
    leader: LeaderInfo,
    my_addr: String,
    password: Option<String>,
) {
    {
        let mut log = repl.log.lock();
        if leader.epoch < log.promised_epoch() {
            tracing::warn!(
                epoch = leader.epoch,
                promised = log.promised_epoch(),
                "not following a leader older than one already followed"
            );
            return;
        }
        if let Err(e) = log.promise(leader.epoch) {
            drop(log);
            repl.fail(e.to_string());
            return;
        }
    }
    let mut pause = Duration::from_millis(50);
    loop {
        if repl.failed().is_some() {
            return;
        }
        match follow_once(&repl, &leader, &my_addr, password.as_deref()).await {
            Ok(Outcome::Again) => continue,
            Err(e) => tracing::debug!(leader = %leader.node_id, "replication link: {e}"),
        }
        repl.st.lock().link_up = false;
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

/// Completes this new leader's log from the most advanced of a majority, appends the
/// epoch's first (empty) entry, and marks the node serving once that entry is applied.
async fn lead(repl: Arc<Replication>, epoch: u64, password: Option<String>) {
    if let Err(e) = repl.log.lock().promise(epoch) {
        repl.fail(e.to_string());
        return;
    }
    repl.set_role(ReplRole::Recovering { epoch });
    let generation = repl.st.lock().generation;
    let mut rx = repl.subscribe();
    if repl.settings.acks == Acks::Majority {
        loop {
            let best = {
                let own = repl.log.lock().last();
                let st = repl.st.lock();
                if st.generation != generation {
                    return;
                }
                if st.announced.len() + 1 < repl.majority() {
                    None
                } else {
                    let best = st
                        .announced
                        .iter()
                        .max_by_key(|(_, (_, p))| (p.epoch, p.index))
                        .map(|(n, (a, p))| (n.clone(), a.clone(), *p));
                    Some(best.filter(|(_, _, p)| (p.epoch, p.index) > (own.epoch, own.index)))
                }
            };
            match best {
                None => {
                    let _ = tokio::time::timeout(HEARTBEAT, rx.changed()).await;
                }
                Some(None) => break,
                Some(Some((node, addr, p))) => {
                    tracing::info!(donor = %node, upto = p.index, "completing the log from a follower");
                    match fetch_from(&repl, &addr, epoch, password.as_deref()).await {
                        Ok(()) => break,
                        Err(e) => {
                            tracing::warn!(donor = %node, "log fetch failed: {e}");
                            if repl.failed().is_some() {
                                return;
                            }
                            repl.st.lock().announced.remove(&node);
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            }
        }
    }
    // The epoch's first entry: committing it commits everything before it.
    let noop = {
        let mut log = repl.log.lock();
        let last = log.last();
        let entry = match Entry::new(
            last.index + 1,
            epoch,
            Bytes::from(WriteBatch::new().to_bytes(last.seq + 1)),
        ) {
            Ok(e) => e,
            Err(e) => {
                drop(log);
                return repl.fail(e);
            }
        };
        if let Err(e) = log.append(std::slice::from_ref(&entry)) {
            drop(log);
            return repl.fail(e.to_string());
        }
        let mut st = repl.st.lock();
        if st.generation != generation {
            return;
        }
        st.role = ReplRole::Leading { epoch };
        repl.advance_commit(&log, &mut st);
        repl.publish(&st, entry.index);
        repl.cv.notify_all();
        entry.index
    };
    tracing::info!(
        epoch,
        index = noop,
        "log complete; waiting for the epoch's first entry to commit"
    );
    let ticket = super::Ticket {
        index: noop,
        generation,
    };
    if repl.wait(ticket).await.is_ok() {
        let mut st = repl.st.lock();
        if st.generation == generation {
            st.serving = true;
            tracing::info!(epoch, index = noop, "serving as leader");
        }
    }
}

/// Copies the entries this node misses from `addr`.
async fn fetch_from(
    repl: &Replication,
    addr: &str,
    epoch: u64,
    password: Option<&str>,
) -> Result<(), String> {
    let mut peer = Peer::connect(addr, password).await?;
    loop {
        let mut req = vec![
            Bytes::from_static(b"LSM.LOGFETCH"),
            Bytes::from(epoch.to_string()),
        ];
        req.extend(point_args(repl.last()));
        let items = array_items(&peer.call(req).await?)?;
        match items.first().map(|b| &b[..]) {
            Some(b"MATCH") if items.len() == 1 => return Ok(()),
            Some(b"MATCH") => {
                let entries = items[1..]
                    .iter()
                    .map(Entry::decode)
                    .collect::<Result<Vec<_>, _>>()?;
                append_received(repl, &entries, epoch)?;
            }
            Some(b"DIVERGED") if items.len() == 3 => {
                let e = parse_u64(&items[1], "epoch")?;
                let i = parse_u64(&items[2], "index")?;
                if let Err(reason) = cut_back(repl, e, i) {
                    repl.fail(reason.clone());
                    return Err(reason);
                }
            }
            Some(b"RESYNC") => {
                let reason = format!(
                    "the most advanced follower shares no log with this new leader ({}); its \
                     data must be rebuilt",
                    String::from_utf8_lossy(items.get(1).map_or(&b""[..], |b| &b[..]))
                );
                repl.fail(reason.clone());
                return Err(reason);
            }
            _ => return Err("unexpected LSM.LOGFETCH answer".into()),
        }
    }
}

/// What this node should be doing, from the cluster view.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Duty {
    Idle,
    Lead(u64),
    Follow(LeaderInfo),
}

/// Follows the cluster view: leads, follows or idles, until the cluster is left. A node
/// whose replication failed while it leads leaves the cluster, so another takes over.
pub async fn drive(
    repl: Arc<Replication>,
    cluster: Arc<Cluster>,
    my_addr: String,
    password: Option<String>,
) {
    let mut rx = cluster.subscribe();
    let mut current: Option<(Duty, tokio::task::JoinHandle<()>)> = None;
    loop {
        let duty = {
            let v = rx.borrow_and_update();
            match (&v.role, &v.leader) {
                (Role::Leader { epoch }, _) => Duty::Lead(*epoch),
                (Role::Follower, Some(l)) if l.node_id != v.node_id => Duty::Follow(l.clone()),
                _ => Duty::Idle,
            }
        };
        if let Some(reason) = repl.failed() {
            if matches!(duty, Duty::Lead(_)) {
                tracing::error!("leaving the cluster: replication failed: {reason}");
                if let Some((_, task)) = current.take() {
                    task.abort();
                }
                cluster.leave().await;
                return;
            }
        } else if current.as_ref().map(|(d, _)| d) != Some(&duty) {
            if let Some((_, task)) = current.take() {
                task.abort();
                let _ = task.await;
            }
            let task = match duty.clone() {
                Duty::Idle => {
                    repl.set_role(ReplRole::Idle);
                    tokio::spawn(async {})
                }
                Duty::Lead(epoch) => tokio::spawn(lead(repl.clone(), epoch, password.clone())),
                Duty::Follow(l) => {
                    repl.set_role(ReplRole::Following {
                        epoch: l.epoch,
                        leader: l.node_id.clone(),
                    });
                    tokio::spawn(follow(repl.clone(), l, my_addr.clone(), password.clone()))
                }
            };
            current = Some((duty, task));
        }
        // A failure shows in the replication state, not in the view: look again soon.
        if let Ok(Err(_)) = tokio::time::timeout(HEARTBEAT, rx.changed()).await {
            break;
        }
    }
    if let Some((_, task)) = current.take() {
        task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_items_parses_what_log_fetch_sends() {
        let reply = Reply::Array(vec![
            Reply::Bulk(Bytes::from_static(b"MATCH")),
            Reply::Bulk(Bytes::from_static(b"a\r\nb")),
            Reply::Bulk(Bytes::new()),
        ]);
        let mut out = BytesMut::new();
        reply.encode(crate::protocol::Protocol::Resp2, &mut out);
        let items = array_items(&out).unwrap();
        assert_eq!(items, vec![&b"MATCH"[..], &b"a\r\nb"[..], &b""[..]]);
        assert_eq!(array_items(b"-ERR nope\r\n").unwrap_err(), "ERR nope");
        assert!(array_items(b"*2\r\n$5\r\nMATCH\r\n").is_err());
        assert!(array_items(b"*1\r\n$9\r\nMATCH\r\n").is_err());
    }
}
