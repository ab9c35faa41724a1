#!/usr/bin/env bash
# End-to-end check of scripts/cluster.sh with the debug binary: `up` starts ZooKeeper and
# three nodes, a write through one node is read through the others, the leader reports
# two followers, the write survives kill -9 of the leader, `status` names one leader,
# `down` stops everything it started (no process of it is left).
set -euo pipefail
cd "$(dirname "$0")/.."

# LSM_BIN: a binary already built (scripts/test.sh passes the one `cargo test` built).
if [ -z "${LSM_BIN:-}" ]; then cargo build -q -p lsm-server --bin lsm-server; fi
export LSM_BIN=${LSM_BIN:-target/debug/lsm-server}
work=$(mktemp -d)
export CLUSTER_DIR=$work/cluster
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
export ZK_PORT=$(free_port)
# Three consecutive free ports for the nodes (and base+2000.. for their metrics).
for _ in $(seq 1 50); do
    base=$((20000 + RANDOM % 20000))
    if python3 - "$base" <<'PY'
import socket, sys
b = int(sys.argv[1])
for p in (b, b + 1, b + 2, b + 2000, b + 2001, b + 2002):
    s = socket.socket(); s.bind(("127.0.0.1", p)); s.close()
PY
    then break; fi
done
export BASE_PORT=$base
cleanup() { scripts/cluster.sh down >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

fails=0
expect() { # name expected actual
    if [ "$2" == "$3" ]; then echo "ok   $1"; else fails=$((fails+1)); echo "FAIL $1: expected [$2], got [$3]"; fi
}

scripts/cluster.sh up >"$work/up.log" || { cat "$work/up.log"; exit 1; }
expect "cluster.sh up: 3 nodes, one master" 1 "$(grep -c ' master ' "$work/up.log")"
expect "set through node 2" OK "$(redis-cli -p $((base + 1)) set e2e cluster)"
expect "get through node 3" cluster "$(redis-cli -p $((base + 2)) get e2e)"
expect "get through node 1" cluster "$(redis-cli -p "$base" get e2e)"

# Replication: the leader reports two followers online; after kill -9 of the leader,
# the data is still there through the survivors.
info() { redis-cli -p "$1" info replication | tr -d '\r' | awk -F: -v k="$2" '$1 == k {print $2}'; }
leader_port=""
for i in 0 1 2; do
    if [ "$(info $((base + i)) role)" = master ]; then leader_port=$((base + i)); leader_node=n$((i + 1)); fi
done
for _ in $(seq 1 100); do
    [ "$(info "$leader_port" connected_slaves)" = 2 ] && break
    sleep 0.1
done
expect "leader reports 2 followers online" 2 "$(info "$leader_port" connected_slaves)"
kill -9 "$(cat "$CLUSTER_DIR/$leader_node.pid")"
survivor=$base
[ "$survivor" = "$leader_port" ] && survivor=$((base + 1))
got=""
for _ in $(seq 1 150); do
    got=$(redis-cli -p "$survivor" get e2e 2>/dev/null || true)
    [ "$got" = cluster ] && break
    sleep 0.1
done
expect "after kill -9 of the leader, the write is read through a survivor" cluster "$got"
pids=$(cat "$CLUSTER_DIR"/*.pid "$CLUSTER_DIR"/zk/pid)
scripts/cluster.sh down >/dev/null
left=0
for p in $pids; do if kill -0 "$p" 2>/dev/null; then left=$((left + 1)); fi; done
expect "cluster.sh down leaves no process" 0 "$left"
expect "cluster.sh status after down" "zookeeper  not running" "$(scripts/cluster.sh status | head -1)"
if [ "$fails" -ne 0 ]; then echo "$fails cluster e2e checks failed"; exit 1; fi
echo "cluster e2e: all checks passed"
