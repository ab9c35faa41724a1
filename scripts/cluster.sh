#!/usr/bin/env bash
# A local three-node lsm-server cluster on loopback: one ZooKeeper server (Debian's
# `zookeeper` package) and nodes n1, n2, n3, each with its own data directory.
#
#   scripts/cluster.sh up       build (release), start ZooKeeper and the three nodes
#   scripts/cluster.sh status   who runs, who leads
#   scripts/cluster.sh down     stop exactly what `up` started (SIGTERM, then SIGKILL)
#
# Settings (environment): CLUSTER_DIR (default ./cluster), ZK_PORT (default 21810),
# BASE_PORT (default 7001: nodes on 7001-7003, metrics on 9001-9003), SESSION_MS (6000),
# LSM_BIN (a prebuilt lsm-server; default: build target/release/lsm-server).
# Clients talk to any node: redis-cli -p 7001 (followers forward to the leader).
set -euo pipefail
cd "$(dirname "$0")/.."

dir=${CLUSTER_DIR:-./cluster}
zk_port=${ZK_PORT:-21810}
base=${BASE_PORT:-7001}
session_ms=${SESSION_MS:-6000}
nodes=(n1 n2 n3)
bin=${LSM_BIN:-target/release/lsm-server}

# Whether pid file $1 names a live process whose command line contains $2 (so a pid
# reused by an unrelated process is never signalled).
ours() {
    local pidfile=$1 mark=$2 pid
    [ -f "$pidfile" ] || return 1
    pid=$(cat "$pidfile")
    [ -r "/proc/$pid/cmdline" ] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$mark"
}

ping_port() { # port -> 0 when a RESP server answers PING
    if command -v redis-cli >/dev/null; then
        [ "$(redis-cli -p "$1" ping 2>/dev/null)" = "PONG" ]
    else
        exec 3<>"/dev/tcp/127.0.0.1/$1" 2>/dev/null || return 1
        printf 'PING\r\n' >&3
        local reply
        read -r -t 2 reply <&3 || true
        exec 3>&-
        [ "${reply%$'\r'}" = "+PONG" ]
    fi
}

zk_mode() { # prints ZooKeeper's "Mode: ..." line; waits at most 2 s per line
    exec 3<>"/dev/tcp/127.0.0.1/$zk_port" 2>/dev/null || return 1
    printf 'srvr' >&3
    local line
    while read -r -t 2 line <&3; do
        case $line in Mode:*) echo "$line"; break ;; esac
    done
    exec 3>&-
}

up() {
    if [ ! -f /usr/share/java/zookeeper.jar ] || [ ! -f /usr/share/java/slf4j-simple.jar ]; then
        echo "ZooKeeper is missing: sudo apt-get install zookeeper libslf4j-java" >&2
        exit 1
    fi
    if [ -z "${LSM_BIN:-}" ]; then cargo build --release -q -p lsm-server; fi
    mkdir -p "$dir/zk/data"
    dir=$(cd "$dir" && pwd)
    if ours "$dir/zk/pid" "$dir/zk/zoo.cfg"; then
        echo "ZooKeeper already running (pid $(cat "$dir/zk/pid"))"
    else
        cat >"$dir/zk/zoo.cfg" <<CFG
tickTime=1000
initLimit=10
syncLimit=5
dataDir=$dir/zk/data
clientPort=$zk_port
clientPortAddress=127.0.0.1
admin.enableServer=false
maxClientCnxns=0
4lw.commands.whitelist=srvr,ruok,mntr,cons
CFG
        nohup java -Xms16m -Xmx64m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
            -cp /etc/zookeeper/conf:/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar \
            org.apache.zookeeper.server.quorum.QuorumPeerMain "$dir/zk/zoo.cfg" \
            >"$dir/zk/server.log" 2>&1 &
        echo $! >"$dir/zk/pid"
        for _ in $(seq 1 100); do
            if [ -n "$(zk_mode 2>/dev/null)" ]; then break; fi
            sleep 0.2
        done
        if [ -z "$(zk_mode 2>/dev/null)" ]; then
            echo "ZooKeeper did not start; see $dir/zk/server.log" >&2
            exit 1
        fi
        echo "ZooKeeper on 127.0.0.1:$zk_port"
    fi
    local i=0
    for n in "${nodes[@]}"; do
        local port=$((base + i)) metrics=$((base + 2000 + i))
        i=$((i + 1))
        mkdir -p "$dir/$n"
        if ours "$dir/$n.pid" "--node-id $n"; then
            echo "$n already running (pid $(cat "$dir/$n.pid"))"
            continue
        fi
        nohup "$bin" --port "$port" --metrics-port "$metrics" --data-dir "$dir/$n/data" \
            --zookeeper "127.0.0.1:$zk_port" --node-id "$n" \
            --zookeeper-session-timeout-ms "$session_ms" >"$dir/$n.log" 2>&1 &
        echo $! >"$dir/$n.pid"
    done
    i=0
    for n in "${nodes[@]}"; do
        local port=$((base + i))
        i=$((i + 1))
        for _ in $(seq 1 100); do
            if ping_port "$port"; then break; fi
            sleep 0.2
        done
        ping_port "$port" || { echo "$n did not start; see $dir/$n.log" >&2; exit 1; }
    done
    status
}

status() {
    [ -d "$dir" ] || { echo "no cluster in $dir"; return 0; }
    dir=$(cd "$dir" && pwd)
    if ours "$dir/zk/pid" "$dir/zk/zoo.cfg"; then
        echo "zookeeper  127.0.0.1:$zk_port  pid $(cat "$dir/zk/pid")  $(zk_mode 2>/dev/null)"
    else
        echo "zookeeper  not running"
    fi
    local i=0
    for n in "${nodes[@]}"; do
        local port=$((base + i))
        i=$((i + 1))
        if ours "$dir/$n.pid" "--node-id $n"; then
            local role="?"
            if command -v redis-cli >/dev/null; then
                role=$(redis-cli -p "$port" info replication 2>/dev/null | tr -d '\r' |
                    awk -F: '/^role:/{r=$2} /^leader_epoch:/{e=$2} END{print r" epoch "e}')
            fi
            echo "$n         127.0.0.1:$port  pid $(cat "$dir/$n.pid")  $role"
        else
            echo "$n         not running"
        fi
    done
}

stop_pid() { # pidfile mark name
    if ours "$1" "$2"; then
        local pid
        pid=$(cat "$1")
        kill -TERM "$pid"
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; fi
        echo "stopped $3 (pid $pid)"
    fi
    rm -f "$1"
}

down() {
    [ -d "$dir" ] || { echo "no cluster in $dir"; return 0; }
    dir=$(cd "$dir" && pwd)
    for n in "${nodes[@]}"; do
        stop_pid "$dir/$n.pid" "--node-id $n" "$n"
    done
    stop_pid "$dir/zk/pid" "$dir/zk/zoo.cfg" zookeeper
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    *)
        echo "usage: $0 up|down|status" >&2
        exit 2
        ;;
esac
