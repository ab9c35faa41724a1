#!/usr/bin/env bash
# Cluster costs, measured with redis-benchmark in the same run, alternating, for ROUNDS
# rounds; prints medians and ratios. Two comparisons (COMPARE):
#
#   forwarding (default): a follower vs the leader of one local three-node cluster —
#                         what forwarding through a follower costs;
#   acks:                 the leaders of two clusters, one acknowledging writes once a
#                         majority holds them (the default) and one once the leader has
#                         them (replication_acks = leader) — what waiting for the
#                         followers costs.
#
#   scripts/bench-cluster.sh
#   COMPARE=acks TESTS=set scripts/bench-cluster.sh
#   ROUNDS=3 N=100000 CLIENTS=50 PIPELINES="1 16" scripts/bench-cluster.sh
#
# Uses its own cluster directories and ports (BASE_PORT, ZK_PORT; the second cluster of
# `acks` takes the next ten ports) and stops them at the end. Raw CSV rows go to
# target/bench-cluster/.
set -euo pipefail
cd "$(dirname "$0")/.."

COMPARE=${COMPARE:-forwarding}
ROUNDS=${ROUNDS:-3}
N=${N:-100000}
CLIENTS=${CLIENTS:-50}
PIPELINES=${PIPELINES:-"1 16"}
TESTS=${TESTS:-set,get}
BASE_PORT=${BASE_PORT:-17301}
ZK_PORT=${ZK_PORT:-21820}
root=$(mktemp -d)

command -v redis-benchmark >/dev/null || { echo "redis-benchmark missing (Debian: redis-tools)" >&2; exit 1; }
if [ -z "${LSM_BIN:-}" ]; then cargo build --release -q -p lsm-server; fi
export LSM_BIN=${LSM_BIN:-target/release/lsm-server}

clusters=()
cleanup() {
    for c in "${clusters[@]}"; do
        IFS=: read -r dir base zk <<<"$c"
        CLUSTER_DIR=$dir BASE_PORT=$base ZK_PORT=$zk scripts/cluster.sh down >/dev/null || true
    done
    rm -rf "$root"
}
trap cleanup EXIT

# up NAME BASE_PORT ZK_PORT [ENV=VALUE...]: starts a cluster; prints its leader's port.
up() {
    local name=$1 base=$2 zk=$3
    shift 3
    clusters+=("$root/$name:$base:$zk")
    env "$@" CLUSTER_DIR="$root/$name" BASE_PORT="$base" ZK_PORT="$zk" scripts/cluster.sh up >/dev/null
}

# role_port BASE_PORT ROLE: the port of the first node of the cluster with that role.
role_port() {
    local base=$1 want=$2
    for i in 0 1 2; do
        local port=$((base + i)) role
        role=$(redis-cli -p "$port" info replication | tr -d '\r' | awk -F: '/^role:/{print $2}')
        if [ "$role" = "$want" ]; then echo "$port"; return; fi
    done
    echo "no $want in the cluster at $base" >&2
    exit 1
}

case $COMPARE in
    forwarding)
        up fwd "$BASE_PORT" "$ZK_PORT"
        names=(follower leader)
        ports=("$(role_port "$BASE_PORT" slave)" "$(role_port "$BASE_PORT" master)")
        ;;
    acks)
        up majority "$BASE_PORT" "$ZK_PORT" LSM_REPLICATION_ACKS=majority
        up leader-only "$((BASE_PORT + 10))" "$((ZK_PORT + 1))" LSM_REPLICATION_ACKS=leader
        names=(majority leader-only)
        ports=("$(role_port "$BASE_PORT" master)" "$(role_port "$((BASE_PORT + 10))" master)")
        ;;
    *) echo "COMPARE must be forwarding or acks" >&2; exit 1 ;;
esac

out=target/bench-cluster
mkdir -p "$out"
csv="$out/$COMPARE-$(date +%Y%m%d-%H%M%S).csv"
echo "target,pipeline,round,test,rps,avg_ms,min_ms,p50_ms,p95_ms,p99_ms,max_ms" > "$csv"
for round in $(seq 1 "$ROUNDS"); do
    for p in $PIPELINES; do
        for i in 0 1; do
            echo "round $round/$ROUNDS: ${names[$i]} -P $p" >&2
            redis-benchmark -p "${ports[$i]}" -t "$TESTS" -n "$N" -r 1000000 -d 100 -c "$CLIENTS" -P "$p" --csv -q 2>/dev/null \
                | tail -n +2 | tr -d '"' | sed "s/^/${names[$i]},$p,$round,/" >> "$csv"
        done
    done
done

python3 - "$csv" "${names[0]}" "${names[1]}" <<'PY'
import csv, statistics, sys
path, a, b = sys.argv[1:4]
rows = list(csv.DictReader(open(path)))
print(f"\n{a} vs {b}: medians of {len(set(r['round'] for r in rows))} alternating rounds")
print(f"{'test':<6}{'-P':>4}{a + ' ops/s':>22}{b + ' ops/s':>22}{'ratio':>8}{a + ' p50/p99 ms':>26}{b + ' p50/p99 ms':>26}")
for p in sorted({r["pipeline"] for r in rows}, key=int):
    for test in sorted({r["test"] for r in rows}, reverse=True):
        def med(target, col):
            vals = [float(r[col]) for r in rows if r["target"] == target and r["pipeline"] == p and r["test"] == test]
            return statistics.median(vals) if vals else float("nan")
        x, y = med(a, "rps"), med(b, "rps")
        print(f"{test:<6}{p:>4}{x:>22,.0f}{y:>22,.0f}{x / y:>8.2f}"
              f"{med(a,'p50_ms'):>18.3f}/{med(a,'p99_ms'):<7.3f}"
              f"{med(b,'p50_ms'):>18.3f}/{med(b,'p99_ms'):<7.3f}")
print(f"\nraw rows: {path}")
PY
