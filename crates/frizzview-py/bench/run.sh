#!/usr/bin/env bash
# frizzview.frizzle against frizzle 0.2.8 in one run (see bench_frizzle.py). Creates a venv with
# frizzle==0.2.8 (jax==0.9.2, jaxlib==0.9.2: jax 0.10+ breaks jax-finufft 1.3.1) and this
# package built from the tree, then runs the benchmark. BENCH_VENV reuses a venv.
set -euo pipefail
cd "$(dirname "$0")/../../.."
VENV=${BENCH_VENV:-$(mktemp -d)/venv}
if [ ! -x "$VENV/bin/python" ]; then
  "${PYTHON:-python3}" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
fi
"$VENV/bin/python" -m pip install -q "frizzle==0.2.8" "jax==0.9.2" "jaxlib==0.9.2" numpy
"$VENV/bin/python" -m pip install -q ./crates/frizzview-py
JAX_ENABLE_X64=1 "$VENV/bin/python" crates/frizzview-py/bench/bench_frizzle.py "$@"
