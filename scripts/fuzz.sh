#!/usr/bin/env bash
# Runs the fuzz targets with libFuzzer through cargo-fuzz, each for SECONDS (default 60),
# JOBS targets at a time (default 1), and prints executions and coverage per target.
#
#   scripts/fuzz.sh                      # every target, 60 s each
#   scripts/fuzz.sh 1800 sstable model   # two targets, 30 minutes each
#   JOBS=2 ASAN=1 scripts/fuzz.sh 600    # two at a time, with AddressSanitizer
#
# Without ASAN the targets build on stable with `--sanitizer none`; with ASAN=1 they build
# with AddressSanitizer through RUSTC_BOOTSTRAP=1. Installs cargo-fuzz when missing. The
# corpus grows in fuzz/corpus/<target>/ (only the committed seed-* files are tracked);
# findings land in fuzz/artifacts/<target>/: fix them and add each input to
# fuzz/regressions/<target>/, which `cargo test` replays. Logs: target/fuzz-logs/.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-60}
shift || true
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
cd fuzz
if [ $# -gt 0 ]; then targets=("$@"); else mapfile -t targets < <(cargo fuzz list); fi
jobs=${JOBS:-1}
san=(--sanitizer none)
if [ "${ASAN:-0}" = 1 ]; then san=(); export RUSTC_BOOTSTRAP=1; fi
logs=../target/fuzz-logs
mkdir -p "$logs"
cargo fuzz build "${san[@]}" "${targets[@]}" 2>/dev/null || cargo fuzz build "${san[@]}"

run_one() {
    local t=$1
    mkdir -p "corpus/$t"
    cargo fuzz run "${san[@]}" "$t" "corpus/$t" -- -max_total_time="$secs" -print_final_stats=1 \
        >"$logs/$t.log" 2>&1 || echo "!! $t stopped with a finding: see $logs/$t.log and fuzz/artifacts/$t/"
}

running=0
for t in "${targets[@]}"; do
    run_one "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then wait -n || true; running=$((running - 1)); fi
done
wait

printf '\n%-15s %12s %10s %10s %8s\n' target executions cov ft corpus
for t in "${targets[@]}"; do
    log=$logs/$t.log
    execs=$(grep -m1 'stat::number_of_executed_units' "$log" | awk '{print $2}' || true)
    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || true)
    [ -n "$done_line" ] || done_line=$(grep -E '^#[0-9]+[[:space:]]' "$log" | tail -1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$done_line")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$done_line")
    corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$done_line")
    printf '%-15s %12s %10s %10s %8s\n' "$t" "${execs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}"
done
