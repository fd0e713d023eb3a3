#!/usr/bin/env bash
# The fuzz tests over a range of seeds, with the integration-test binary built once.
#   tests/fuzz-sweep.sh FIRST LAST [CASES] [THREADS]      (defaults: 1 50 3000 1)
# SEEDS="14 16 19" overrides FIRST..LAST; BIN=<integration test binary> skips the build.
# Each seed's log goes to target/fuzz-sweep/seed-N-tT.log; a summary line per seed is printed:
# executions, panics behind the guard, signals (a child process ended by one), the slowest case.
set -euo pipefail
cd "$(dirname "$0")/.."
first=${1:-1} last=${2:-50} cases=${3:-3000} threads=${4:-1}
if [ -z "${BIN:-}" ]; then
  cargo test --test integration --no-run >/dev/null 2>&1
  BIN=$(ls -t target/debug/deps/integration-* | grep -v '\.d$' | head -1)
fi
bin=$BIN
logs=target/fuzz-sweep
mkdir -p "$logs"
for s in ${SEEDS:-$(seq "$first" "$last")}; do
  log="$logs/seed-$s-t$threads.log"
  start=$(date +%s)
  if FRIZZVIEW_FUZZ_CASES=$cases FRIZZVIEW_FUZZ_SEED=$s "$bin" fuzz --test-threads="$threads" --nocapture >"$log" 2>&1; then
    verdict=ok
  else
    verdict=FAILED
  fi
  # The harness's own tests inject a panic and an abort (readers named injected_*): not counted.
  real=$(grep ' executions' "$log" | grep -v injected_ || true)
  runs=$(grep -o '[0-9]* executions' <<<"$real" | awk '{n+=$1} END {print n+0}')
  guard=$(grep -o '[1-9][0-9]* panics behind the guard' <<<"$real" | awk '{n+=$1} END {print n+0}')
  signals=$(grep 'ended with signal' "$log" | grep -vc injected_abort || true)
  slowest=$(grep -o 'slowest case [0-9.]* s' "$log" | awk '{if ($3>m) m=$3} END {print m+0}')
  echo "seed $s threads $threads: $verdict, $runs executions, $guard panics behind the guard, $signals signals, slowest case ${slowest} s, $(( $(date +%s) - start )) s"
done
