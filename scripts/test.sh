#!/usr/bin/env bash
# Runs every test of the project on a fresh Debian machine. Installs what the tests need
# when it is missing (Debian packages: ZooKeeper, redis-tools; PyPI: the `redis` client in
# a virtual environment under target/), then runs the workspace's test suite and the
# end-to-end server test (scripts/e2e-server.sh) and a local cluster (scripts/e2e-cluster.sh).
#
# Environment: LSM_SKIP_SETUP=1 skips the installation step; extra arguments are passed to
# `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

setup() {
    local missing=()
    [ -f /usr/share/java/zookeeper.jar ] || missing+=(zookeeper)
    [ -f /usr/share/java/slf4j-simple.jar ] || missing+=(libslf4j-java)
    command -v redis-cli >/dev/null || missing+=(redis-tools)
    if [ ${#missing[@]} -gt 0 ]; then
        echo "== installing Debian packages: ${missing[*]}"
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
    local venv=target/pyenv
    if ! "$venv/bin/python" -c 'import redis' 2>/dev/null; then
        echo "== installing the Python redis client into $venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install -q 'redis>=5'
    fi
}

if [ "${LSM_SKIP_SETUP:-0}" != 1 ]; then
    setup
fi

echo "== cargo test (workspace)"
cargo test --workspace "$@"

echo "== benchmark harness smoke run (10k keys, lsm-core and fjall)"
cargo run -q -p benches --bin db_bench -- --num 10000 --rounds 1 --csv target/db_bench_smoke.csv

# `cargo test` built the server binary for its integration tests; the end-to-end scripts
# use it rather than rebuild with another feature set.
export LSM_BIN=target/debug/lsm-server
echo "== end to end: lsm-server with redis-cli and redis-py"
scripts/e2e-server.sh

echo "== end to end: scripts/cluster.sh (ZooKeeper + three nodes)"
scripts/e2e-cluster.sh
