#!/usr/bin/env bash
# redis-benchmark against lsm-server and against Debian's redis-server (appendonly yes),
# in the same run, alternating servers, for ROUNDS rounds; prints medians, the ratio of
# the medians, and the median of the per-round ratios (each round runs both servers back
# to back, so it is the figure least moved by the machine's drift).
#
#   scripts/bench-server.sh                 # default durability vs appendfsync everysec
#   SYNC=1 scripts/bench-server.sh          # lsm-server --sync vs appendfsync always
#   ROUNDS=3 N=200000 CLIENTS=50 scripts/bench-server.sh
#   LSM_THREADS=1 scripts/bench-server.sh   # lsm-server settings come from its LSM_* env
#
# Needs redis-server and redis-benchmark (Debian: redis-server, redis-tools); installs
# them when missing. Uses free loopback ports and temporary directories; stops what it
# starts. Raw CSV rows go to target/bench-server/.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
N=${N:-200000}
CLIENTS=${CLIENTS:-50}
SYNC=${SYNC:-0}
PIPELINES=${PIPELINES:-"1 16"}

if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends redis-server redis-tools >/dev/null
fi
cargo build -q --release -p lsm-server --bin lsm-server

work=$(mktemp -d)
out=target/bench-server
mkdir -p "$out"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ready() { for _ in $(seq 1 100); do redis-cli -p "$1" ping >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "port $1 not ready"; exit 1; }

lsm_port=$(free_port); redis_port=$(free_port)
lsm_args=(--port "$lsm_port" --data-dir "$work/lsm" --metrics-port 0 --log-level warn)
fsync=everysec
if [ "$SYNC" = 1 ]; then lsm_args+=(--sync); fsync=always; fi
target/release/lsm-server "${lsm_args[@]}" 2>"$work/lsm.log" & pids+=($!)
mkdir -p "$work/redis"
redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$work/redis" --appendonly yes \
    --appendfsync "$fsync" --save '' --daemonize no --logfile "$work/redis.log" & pids+=($!)
wait_ready "$lsm_port"; wait_ready "$redis_port"

suffix=""
if [ "$SYNC" = 1 ]; then suffix="-sync"; fi
csv="$out/raw-$(date +%Y%m%d-%H%M%S)$suffix.csv"
echo "server,pipeline,round,test,rps,avg_ms,min_ms,p50_ms,p95_ms,p99_ms,max_ms" > "$csv"
for round in $(seq 1 "$ROUNDS"); do
    for p in $PIPELINES; do
        for server in lsm redis; do
            port=$lsm_port; [ "$server" = redis ] && port=$redis_port
            echo "round $round/$ROUNDS: $server -P $p" >&2
            redis-benchmark -p "$port" -t set,get -n "$N" -r 1000000 -d 100 -c "$CLIENTS" -P "$p" --csv -q 2>/dev/null \
                | tail -n +2 | tr -d '"' | sed "s/^/$server,$p,$round,/" >> "$csv"
        done
    done
done

python3 - "$csv" "$SYNC" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
sync = sys.argv[2] == "1"
peer = "redis appendfsync always" if sync else "redis appendfsync everysec"
ours = "lsm-server --sync" if sync else "lsm-server"
print(f"\n{ours} vs {peer}: medians of {len(set(r['round'] for r in rows))} alternating rounds")
print(f"{'test':<6}{'-P':>4}{'lsm ops/s':>13}{'redis ops/s':>13}{'ratio':>8}{'per-round':>11}{'lsm p50/p99 ms':>18}{'redis p50/p99 ms':>19}")
for p in sorted({r["pipeline"] for r in rows}, key=int):
    for test in ["SET", "GET"]:
        def med(server, col):
            vals = [float(r[col]) for r in rows if r["server"] == server and r["pipeline"] == p and r["test"] == test]
            return statistics.median(vals) if vals else float("nan")
        l, r = med("lsm", "rps"), med("redis", "rps")
        # The two servers of one round ran back to back: their ratio is immune to the
        # machine's drift between rounds, which moves both absolute medians.
        def rps(server, rnd):
            return [float(x["rps"]) for x in rows if x["server"] == server and x["pipeline"] == p
                    and x["test"] == test and x["round"] == rnd]
        per_round = [a[0] / b[0] for rnd in sorted({x["round"] for x in rows})
                     for a, b in [(rps("lsm", rnd), rps("redis", rnd))] if a and b]
        pr = statistics.median(per_round) if per_round else float("nan")
        print(f"{test:<6}{p:>4}{l:>13,.0f}{r:>13,.0f}{l / r:>8.2f}{pr:>11.2f}"
              f"{med('lsm','p50_ms'):>9.3f}/{med('lsm','p99_ms'):<8.3f}{med('redis','p50_ms'):>9.3f}/{med('redis','p99_ms'):<8.3f}")
print(f"\nraw rows: {sys.argv[1]}")
PY
