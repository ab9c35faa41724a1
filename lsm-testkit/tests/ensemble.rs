//! The test kit's own check: a standalone server and a three-server ensemble start and
//! report their modes; a killed ensemble member stops answering.

use lsm_testkit::{serial, ZkEnsemble};

#[test]
fn standalone_and_ensemble_start() {
    let _one_at_a_time = serial();
    let zk = ZkEnsemble::standalone();
    assert_eq!(zk.mode(0).as_deref(), Some("standalone"));

    let mut zk3 = ZkEnsemble::start(3);
    let modes: Vec<String> = (0..3).map(|i| zk3.mode(i).unwrap()).collect();
    assert_eq!(
        modes.iter().filter(|m| *m == "leader").count(),
        1,
        "{modes:?}"
    );
    assert_eq!(
        modes.iter().filter(|m| *m == "follower").count(),
        2,
        "{modes:?}"
    );
    let follower = modes.iter().position(|m| m == "follower").unwrap();
    zk3.kill(follower);
    assert_eq!(zk3.mode(follower), None);
    assert_eq!(zk3.connect_string().split(',').count(), 3);
}
