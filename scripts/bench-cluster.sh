#!/usr/bin/env bash
# Forwarding cost: redis-benchmark against a follower and against the leader of a local
# three-node cluster (scripts/cluster.sh), in the same run, alternating, for ROUNDS
# rounds; prints medians and the follower/leader ratio.
#
#   scripts/bench-cluster.sh
#   ROUNDS=3 N=100000 CLIENTS=50 PIPELINES="1 16" scripts/bench-cluster.sh
#
# Uses its own cluster directory and ports (BASE_PORT, ZK_PORT) and stops it at the end.
# Raw CSV rows go to target/bench-cluster/.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
N=${N:-100000}
CLIENTS=${CLIENTS:-50}
PIPELINES=${PIPELINES:-"1 16"}
export CLUSTER_DIR=${CLUSTER_DIR:-$(mktemp -d)/cluster}
export BASE_PORT=${BASE_PORT:-17301}
export ZK_PORT=${ZK_PORT:-21820}

command -v redis-benchmark >/dev/null || { echo "redis-benchmark missing (Debian: redis-tools)" >&2; exit 1; }
cleanup() { scripts/cluster.sh down >/dev/null || true; rm -rf "$CLUSTER_DIR"; }
trap cleanup EXIT
scripts/cluster.sh up >/dev/null

leader="" follower=""
for i in 0 1 2; do
    port=$((BASE_PORT + i))
    role=$(redis-cli -p "$port" info replication | tr -d '\r' | awk -F: '/^role:/{print $2}')
    if [ "$role" = master ]; then leader=$port; elif [ -z "$follower" ]; then follower=$port; fi
done
[ -n "$leader" ] && [ -n "$follower" ] || { echo "no leader/follower found" >&2; exit 1; }

out=target/bench-cluster
mkdir -p "$out"
csv="$out/raw-$(date +%Y%m%d-%H%M%S).csv"
echo "node,pipeline,round,test,rps,avg_ms,min_ms,p50_ms,p95_ms,p99_ms,max_ms" > "$csv"
for round in $(seq 1 "$ROUNDS"); do
    for p in $PIPELINES; do
        for node in follower leader; do
            port=$leader; [ "$node" = follower ] && port=$follower
            echo "round $round/$ROUNDS: $node -P $p" >&2
            redis-benchmark -p "$port" -t set,get -n "$N" -r 1000000 -d 100 -c "$CLIENTS" -P "$p" --csv -q 2>/dev/null \
                | tail -n +2 | tr -d '"' | sed "s/^/$node,$p,$round,/" >> "$csv"
        done
    done
done

python3 - "$csv" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
print(f"\nthrough a follower vs at the leader: medians of {len(set(r['round'] for r in rows))} alternating rounds")
print(f"{'test':<6}{'-P':>4}{'follower ops/s':>16}{'leader ops/s':>14}{'ratio':>8}{'follower p50/p99 ms':>22}{'leader p50/p99 ms':>20}")
for p in sorted({r["pipeline"] for r in rows}, key=int):
    for test in ["SET", "GET"]:
        def med(node, col):
            vals = [float(r[col]) for r in rows if r["node"] == node and r["pipeline"] == p and r["test"] == test]
            return statistics.median(vals) if vals else float("nan")
        f, l = med("follower", "rps"), med("leader", "rps")
        print(f"{test:<6}{p:>4}{f:>16,.0f}{l:>14,.0f}{f / l:>8.2f}"
              f"{med('follower','p50_ms'):>14.3f}/{med('follower','p99_ms'):<7.3f}"
              f"{med('leader','p50_ms'):>12.3f}/{med('leader','p99_ms'):<7.3f}")
print(f"\nraw rows: {sys.argv[1]}")
PY
