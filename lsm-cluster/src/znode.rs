//! What the cluster keeps in ZooKeeper, and its encoding (pure functions, unit-tested):
//!
//! ```text
//! /<chroot>/<cluster>/members/<node-id>   ephemeral   node_id=..\naddr=..\n
//! /<chroot>/<cluster>/election/c-<session>-<node-id>-<seq>   ephemeral sequential, same data
//! /<chroot>/<cluster>/leader              ephemeral   the winner's data; its czxid is the epoch
//! ```
//!
//! The candidate's name carries the session id, so after a connection loss during its
//! `create` a node can find the candidate it may have created (a ZooKeeper create can
//! succeed even though its reply never arrived).

/// A node of the cluster as its znodes describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub node_id: String,
    /// Where clients and other nodes reach it (`host:port`).
    pub addr: String,
}

/// The current leader and its epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderInfo {
    pub node_id: String,
    pub addr: String,
    /// The czxid of its `leader` znode: larger for every new leader.
    pub epoch: u64,
}

impl Member {
    pub(crate) fn encode(&self) -> Vec<u8> {
        format!("node_id={}\naddr={}\n", self.node_id, self.addr).into_bytes()
    }

    /// Parses znode data; errors say what is wrong (the data comes over the network).
    pub(crate) fn decode(data: &[u8]) -> Result<Member, String> {
        let text = std::str::from_utf8(data).map_err(|_| "znode data is not UTF-8".to_owned())?;
        let (mut node_id, mut addr) = (None, None);
        for line in text.lines().filter(|l| !l.is_empty()) {
            match line.split_once('=') {
                Some(("node_id", v)) => node_id = Some(v.to_owned()),
                Some(("addr", v)) => addr = Some(v.to_owned()),
                // Later versions may add fields.
                Some(_) => {}
                None => return Err(format!("znode data line `{line}` is not key=value")),
            }
        }
        match (node_id, addr) {
            (Some(node_id), Some(addr)) if !node_id.is_empty() && !addr.is_empty() => {
                Ok(Member { node_id, addr })
            }
            _ => Err("znode data lacks node_id or addr".to_owned()),
        }
    }
}

/// The prefix of this session's candidate name; ZooKeeper appends the sequence.
pub(crate) fn candidate_prefix(session_id: i64, node_id: &str) -> String {
    format!("c-{session_id:x}-{node_id}-")
}

/// The sequence number of a candidate znode name, or None for a foreign name.
pub(crate) fn candidate_sequence(name: &str) -> Option<i64> {
    let rest = name.strip_prefix("c-")?;
    let (_, seq) = rest.rsplit_once('-')?;
    if seq.len() < 10 || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    seq.parse().ok()
}

/// Candidate names in election order (lowest sequence first); foreign names are left out.
pub(crate) fn election_order(children: &[String]) -> Vec<&str> {
    let mut c: Vec<(i64, &str)> = children
        .iter()
        .filter_map(|n| candidate_sequence(n).map(|s| (s, n.as_str())))
        .collect();
    c.sort_unstable();
    c.into_iter().map(|(_, n)| n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_round_trip_and_garbage() {
        let m = Member {
            node_id: "n1".into(),
            addr: "127.0.0.1:7001".into(),
        };
        assert_eq!(Member::decode(&m.encode()), Ok(m));
        assert!(Member::decode(b"\xff\xfe").is_err());
        assert!(Member::decode(b"node_id=n1\n").is_err());
        assert!(Member::decode(b"garbage").is_err());
        assert!(Member::decode(b"").is_err());
        assert_eq!(
            Member::decode(b"node_id=a\naddr=h:1\nfuture=x\n").map(|m| m.addr),
            Ok("h:1".to_owned())
        );
    }

    #[test]
    fn candidates_order_by_sequence_not_by_name() {
        let names: Vec<String> = [
            "c-ff-n2-0000000012",
            "c-1a-n1-0000000003",
            "junk",
            "c-2b-n-3-0000000007",
            "c-2b-n3-12",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        assert_eq!(
            election_order(&names),
            [
                "c-1a-n1-0000000003",
                "c-2b-n-3-0000000007",
                "c-ff-n2-0000000012"
            ]
        );
        assert_eq!(candidate_prefix(0x1a, "n1"), "c-1a-n1-");
        assert_eq!(candidate_sequence("c-1a-n1-0000000003"), Some(3));
    }
}
