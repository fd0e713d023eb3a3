#!/usr/bin/env bash
# The fuzz tests over a range of seeds, with the integration-test binary built once.
#   tests/fuzz-sweep.sh FIRST LAST [CASES] [THREADS...]      (defaults: 1 50 3000 1)
# Each THREADS value is one run per seed: THREADS reader threads in each fuzz child process
# (FRIZZVIEW_FUZZ_THREADS, the cases read concurrently in one process) and as many test threads
# (fuzz tests at once); `... 3000 1 2` runs every seed single- then multi-threaded.
# SEEDS="14 16 19" overrides FIRST..LAST; BIN=<integration test binary> skips the build;
# LOGS=<folder> (default target/fuzz-sweep) receives seed-N-tT.log per run.
# A summary line per run is printed: executions, panics behind the guard, signals (a child
# process ended by one), the slowest case. Run it niced on a shared machine: `nice -n 15 ...`.
set -euo pipefail
cd "$(dirname "$0")/.."
first=${1:-1} last=${2:-50} cases=${3:-3000}
shift $(( $# < 3 ? $# : 3 ))
modes=${*:-1}
if [ -z "${BIN:-}" ]; then
  cargo test --test integration --no-run >/dev/null 2>&1
  BIN=$(ls -t target/debug/deps/integration-* | grep -v '\.d$' | head -1)
fi
bin=$BIN
logs=${LOGS:-target/fuzz-sweep}
mkdir -p "$logs"
for s in ${SEEDS:-$(seq "$first" "$last")}; do
  for threads in $modes; do
    log="$logs/seed-$s-t$threads.log"
    start=$(date +%s)
    echo "seed $s threads $threads: started $(date -u +%H:%M:%S)" >"$log"
    if FRIZZVIEW_FUZZ_CASES=$cases FRIZZVIEW_FUZZ_SEED=$s FRIZZVIEW_FUZZ_THREADS=$threads \
      "$bin" fuzz --test-threads="$threads" --nocapture >>"$log" 2>&1; then
      verdict=ok
    else
      verdict=FAILED
    fi
    # The harness's own tests inject a panic and an abort (readers named injected_*): not counted.
    real=$(grep ' executions' "$log" | grep -v injected_ || true)
    runs=$(grep -o '[0-9]* executions' <<<"$real" | awk '{n+=$1} END {print n+0}' || true)
    guard=$(grep -o '[1-9][0-9]* panics behind the guard' <<<"$real" | awk '{n+=$1} END {print n+0}' || true)
    signals=$(grep 'ended with signal' "$log" | grep -vc injected_ || true)
    slowest=$(awk '/ executions/ {real = !/injected_/; file = $2; n = split(file, parts, "/"); file = parts[n]}
      real && match($0, /slowest case [0-9.]+ s: /) {
        t = substr($0, RSTART + 13, RLENGTH - 17) + 0
        if (t > m) { m = t; what = file ": " substr($0, RSTART + RLENGTH, 60) }
      }
      END {printf "%s s (%s)", m + 0, what}' "$log")
    echo "seed $s threads $threads: $verdict, $runs executions, $guard panics behind the guard, $signals signals, slowest case ${slowest}, $(( $(date +%s) - start )) s"
  done
done
