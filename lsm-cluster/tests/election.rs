//! Election, membership, handover and fencing against a real ZooKeeper server (started by
//! the test on free loopback ports; see `lsm-testkit`).

use std::time::{Duration, Instant};

use lsm_cluster::{Cluster, ClusterConfig, ClusterError, NotServing, Role, Route};
use lsm_testkit::{serial, ZkEnsemble};

const SESSION: Duration = Duration::from_secs(4);

fn cfg(zk: &ZkEnsemble, node: &str, port: u16) -> ClusterConfig {
    ClusterConfig {
        zookeeper: format!("{}/tests", zk.connect_string()),
        cluster_name: "election".into(),
        node_id: node.into(),
        advertise_addr: format!("127.0.0.1:{port}"),
        session_timeout: SESSION,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Waits until `f` holds for the views of all `nodes`.
async fn settle(nodes: &[&Cluster], what: &str, f: impl Fn(&[lsm_cluster::ClusterView]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let views: Vec<_> = nodes.iter().map(|n| n.view()).collect();
        if f(&views) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: views never settled: {views:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn leaders(views: &[lsm_cluster::ClusterView]) -> Vec<&str> {
    views
        .iter()
        .filter(|v| matches!(v.role, Role::Leader { .. }))
        .map(|v| v.node_id.as_str())
        .collect()
}

/// All views agree on one leader, which is the one node whose role is leader, and
/// every node sees all `members`.
fn agreed(views: &[lsm_cluster::ClusterView], members: usize) -> bool {
    let l = leaders(views);
    l.len() == 1
        && views.iter().all(|v| {
            v.leader.as_ref().map(|x| x.node_id.as_str()) == Some(l[0])
                && v.members.len() == members
                && v.connected
        })
        && views.iter().all(|v| {
            v.leader.as_ref().map(|x| x.epoch) == views[0].leader.as_ref().map(|x| x.epoch)
        })
}

#[test]
fn three_nodes_elect_one_leader_and_hand_over() {
    let _one_at_a_time = serial();
    let zk = ZkEnsemble::standalone();
    runtime().block_on(async {
        let a = Cluster::join(cfg(&zk, "n1", 7001)).await.unwrap();
        let b = Cluster::join(cfg(&zk, "n2", 7002)).await.unwrap();
        let c = Cluster::join(cfg(&zk, "n3", 7003)).await.unwrap();
        settle(&[&a, &b, &c], "first election", |v| agreed(v, 3)).await;
        let view = a.view();
        let first = view.leader.clone().unwrap();
        // The first to join wins; its epoch is the leader znode's czxid.
        assert_eq!(first.node_id, "n1");
        assert_eq!(view.role, Role::Leader { epoch: first.epoch });
        assert_eq!(first.addr, "127.0.0.1:7001");
        assert_eq!(a.fence(), Ok(first.epoch));
        assert_eq!(b.fence(), Err(NotServing::NotLeader));
        assert_eq!(
            a.route(Duration::ZERO).await,
            Ok(Route::Local { epoch: first.epoch })
        );
        assert_eq!(
            c.route(Duration::ZERO).await,
            Ok(Route::Forward(first.clone()))
        );
        let ids: Vec<_> = view.members.iter().map(|m| m.node_id.as_str()).collect();
        assert_eq!(ids, ["n1", "n2", "n3"]);

        // A duplicate id at another address is refused at once, naming the holder.
        let started = Instant::now();
        match Cluster::join(cfg(&zk, "n2", 7999)).await {
            Err(ClusterError::DuplicateNodeId { node_id, addr }) => {
                assert_eq!((node_id.as_str(), addr.as_str()), ("n2", "127.0.0.1:7002"));
            }
            other => panic!("duplicate node id accepted: {other:?}"),
        }
        assert!(started.elapsed() < SESSION, "{:?}", started.elapsed());

        // Handover: the leader leaves; its successor leads well within a session timeout,
        // with a larger epoch, and the leaver's member znode is gone.
        let left = Instant::now();
        a.leave().await;
        assert_eq!(a.fence(), Err(NotServing::NotLeader));
        settle(&[&b, &c], "after handover", |v| agreed(v, 2)).await;
        let handover = left.elapsed();
        assert!(handover < SESSION, "handover took {handover:?}");
        let second = b.view().leader.unwrap();
        assert_eq!(second.node_id, "n2", "the successor is the next candidate");
        assert!(second.epoch > first.epoch, "{second:?} vs {first:?}");
        assert_eq!(b.fence(), Ok(second.epoch));

        // The leaver may join again, as a follower now.
        let a = Cluster::join(cfg(&zk, "n1", 7001)).await.unwrap();
        settle(&[&a, &b, &c], "rejoined", |v| agreed(v, 3)).await;
        assert_eq!(a.view().leader.unwrap(), second);
        for n in [&a, &b, &c] {
            n.leave().await;
        }
    });
}

#[test]
fn leader_stops_serving_without_zookeeper() {
    let _one_at_a_time = serial();
    let mut zk = ZkEnsemble::standalone();
    runtime().block_on(async {
        let a = Cluster::join(cfg(&zk, "n1", 7001)).await.unwrap();
        let b = Cluster::join(cfg(&zk, "n2", 7002)).await.unwrap();
        settle(&[&a, &b], "election", |v| agreed(v, 2)).await;
        let epoch = a.fence().unwrap();

        zk.kill_all();
        // The leader learns of the lost connection from the closed socket; at the
        // latest its lease runs out.
        let lost = Instant::now();
        while a.fence().is_ok() {
            assert!(lost.elapsed() < SESSION, "still serving without ZooKeeper");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(matches!(
            a.fence(),
            Err(NotServing::Disconnected | NotServing::LeaseExpired)
        ));
        let err = a.route(Duration::from_millis(300)).await.unwrap_err();
        assert!(err.reason.contains("leads"), "{err}");
        assert!(err.waited_ms >= 300, "{err}");
        // A follower still knows the leader and may forward to it: the leader fences.
        assert!(matches!(b.route(Duration::ZERO).await, Ok(Route::Forward(l)) if l.epoch == epoch));
        drop((a, b));
    });
}

/// ZooKeeper frozen (SIGSTOP): the leader stops serving within its lease at the latest
/// (here the session layer notices the silent connection first), and once ZooKeeper is
/// back within the session timeout it serves again in the same epoch: no new election.
#[test]
fn leader_pauses_while_zookeeper_is_frozen_and_resumes_in_the_same_epoch() {
    let _one_at_a_time = serial();
    let zk = ZkEnsemble::standalone();
    runtime().block_on(async {
        let a = Cluster::join(cfg(&zk, "n1", 7001)).await.unwrap();
        settle(&[&a], "election", |v| agreed(v, 1)).await;
        let epoch = a.fence().unwrap();
        let timeout = a.session_timeout();

        zk.signal(0, "STOP");
        let frozen = Instant::now();
        let reason = loop {
            if let Err(reason) = a.fence() {
                break reason;
            }
            assert!(
                frozen.elapsed() < timeout,
                "still serving with ZooKeeper frozen"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let stopped_after = frozen.elapsed();
        let limit = timeout.mul_f64(lsm_cluster::LEASE_FRACTION) + timeout / 6;
        assert!(
            stopped_after <= limit + Duration::from_millis(100),
            "stopped serving only after {stopped_after:?} (lease limit {limit:?})"
        );
        eprintln!("ZooKeeper frozen: leader stopped serving after {stopped_after:?} ({reason})");

        zk.signal(0, "CONT");
        let resumed = Instant::now();
        loop {
            match a.fence() {
                Ok(e) => {
                    assert_eq!(e, epoch, "same leadership, no new election");
                    break;
                }
                Err(_) => assert!(resumed.elapsed() < timeout * 3, "never served again"),
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        a.leave().await;
    });
}

/// A paused process in miniature: every runtime worker is blocked, so neither the
/// ZooKeeper client nor the heartbeat runs, while the clock goes on. Seen from outside
/// the runtime, the leader's view still says "connected", yet `fence` refuses once the
/// lease is over: a paused leader refuses to serve before it learns anything from
/// ZooKeeper. Afterwards it serves again in the same epoch.
#[test]
fn lease_expires_while_the_process_is_frozen() {
    let _one_at_a_time = serial();
    let zk = ZkEnsemble::standalone();
    let rt = runtime();
    let a = rt.block_on(async {
        let a = Cluster::join(cfg(&zk, "n1", 7001)).await.unwrap();
        settle(&[&a], "election", |v| agreed(v, 1)).await;
        a
    });
    let epoch = a.fence().unwrap();
    let timeout = a.session_timeout();
    let freeze = timeout.mul_f64(0.8);
    let hogs: Vec<_> = (0..2)
        .map(|_| rt.spawn(async move { std::thread::sleep(freeze) }))
        .collect();
    let frozen = Instant::now();
    let reason = loop {
        if let Err(reason) = a.fence() {
            break reason;
        }
        assert!(
            frozen.elapsed() < freeze,
            "still serving with the process frozen"
        );
        std::thread::sleep(Duration::from_millis(2));
    };
    let stopped_after = frozen.elapsed();
    assert_eq!(reason, NotServing::LeaseExpired);
    assert!(
        a.view().connected,
        "the frozen client cannot have noticed anything"
    );
    let limit = timeout.mul_f64(lsm_cluster::LEASE_FRACTION);
    // The last heartbeat may have been sent just after `frozen` was taken.
    assert!(
        stopped_after <= limit + Duration::from_millis(200),
        "{stopped_after:?} > {limit:?}"
    );
    eprintln!("frozen process: lease refused service after {stopped_after:?} (lease {limit:?})");
    rt.block_on(async {
        for h in hogs {
            h.await.unwrap();
        }
        let thawed = Instant::now();
        loop {
            if let Ok(e) = a.fence() {
                assert_eq!(e, epoch);
                break;
            }
            assert!(thawed.elapsed() < timeout, "never served again");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        a.leave().await;
    });
}
