#!/usr/bin/env bash
# End-to-end test of the lsm-server binary with real clients: redis-cli (Debian's
# redis-tools) and redis-py (in target/pyenv, RESP3). Starts the server on a free
# loopback port with a temporary data directory, checks SIGTERM shuts it down cleanly and
# that data survives the restart, and stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."

# LSM_BIN: a binary already built (scripts/test.sh passes the one `cargo test` built).
if [ -z "${LSM_BIN:-}" ]; then cargo build -q -p lsm-server --bin lsm-server; fi
bin=${LSM_BIN:-target/debug/lsm-server}
py=target/pyenv/bin/python
work=$(mktemp -d)
pid=""
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
fails=0
passes=0
expect() { # name expected actual
    if [ "$2" == "$3" ]; then passes=$((passes+1)); echo "ok   $1"; else fails=$((fails+1)); echo "FAIL $1: expected [$2], got [$3]"; fi
}

start() {
    LSM_PORT=$port "$bin" --data-dir "$work/data" --metrics-port 0 --log-level warn 2>>"$work/server.log" &
    pid=$!
    for _ in $(seq 1 100); do
        if redis-cli -p "$port" ping >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    echo "server did not start:"; cat "$work/server.log"; exit 1
}

stop() {
    kill -TERM "$pid"
    for _ in $(seq 1 100); do
        if ! kill -0 "$pid" 2>/dev/null; then wait "$pid"; return $?; fi
        sleep 0.1
    done
    echo "server did not stop on SIGTERM"; return 1
}

start
cli() { redis-cli -p "$port" "$@"; }
expect "PING" "PONG" "$(cli ping)"
expect "SET" "OK" "$(cli set greeting 'hello world')"
expect "GET" "hello world" "$(cli get greeting)"
expect "GET missing" "" "$(cli get nothing)"
expect "DEL" "1" "$(cli del greeting)"
expect "MSET/MGET" $'1\n\n2' "$(cli mset a 1 b 2 >/dev/null; cli mget a zz b)"
expect "unknown command" "ERR unknown command 'foo', with args beginning with: 'x' " "$(cli foo x)"
expect "INFO role" "role:master" "$(cli info replication | tr -d '\r' | grep '^role:')"
expect "CONFIG GET" $'1) "save"\n2) ""' "$(cli --no-raw config get save)"
expect "interactive session (stdin)" $'OK\nv1' "$(printf 'set k1 v1\nget k1\n' | cli)"
expect "RESP3 via redis-cli -3" "v1" "$(cli -3 get k1)"
expect "pipe mode" "errors: 0, replies: 3" "$(printf 'SET p1 1\r\nSET p2 2\r\nSET p3 3\r\n' | cli --pipe 2>&1 | tr -d '\r' | grep -o 'errors: 0, replies: 3')"

echo "== redis-py"
if "$py" lsm-server/e2e/redis_py_check.py "$port"; then passes=$((passes+1)); else fails=$((fails+1)); fi

echo "== SIGTERM and restart"
if stop; then passes=$((passes+1)); echo "ok   clean exit on SIGTERM"; else fails=$((fails+1)); echo "FAIL exit status on SIGTERM"; fi
start
expect "data survives restart" "v1" "$(cli get k1)"
expect "pipelined keys survive" "3" "$(cli get p3)"
stop || true

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
