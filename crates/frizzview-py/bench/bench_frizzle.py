"""Time frizzview.frizzle against frizzle 0.2.8 in one process, on the shared reference cases.

Case a (10 visits x 2000 px -> 2000 px): both, alternating, one untimed warm-up call each (for
frizzle it includes JAX's compilation, also reported), then the median of --repeats calls; the
ratio frizzle / frizzview is printed, and the two outputs are compared. Case b (30 x 8000 ->
8500 px): frizzview alone (frizzle 0.2.8 asks for one 41 GB buffer there), dense C* and band.

Run by bench/run.sh (a venv with frizzle==0.2.8, jax==0.9.2 and this package); JAX_ENABLE_X64=1
is set here before jax is imported, so frizzle computes in float64 like the reference outputs.
"""

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("JAX_ENABLE_X64", "1")

import numpy as np  # noqa: E402

import frizzview  # noqa: E402

REF = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "reference"


def load(name):
    z = np.load(REF / name)
    return [z["lam_out"], z["lam"].ravel(), z["flux"].ravel(), z["ivar"].ravel(), z["mask"].ravel()], z["flags"].ravel()


def timed(f):
    t = time.perf_counter()
    out = f()
    return time.perf_counter() - t, out


def settle(limit=3.0, quiet=0.002, step=0.05):
    """Wait until this process is quiet: less than ``quiet`` s of CPU in a ``step`` s interval
    (at most ``limit`` s). After a call returns, JAX keeps working on background threads
    (freeing frizzle's buffers: measured ~90 ms of CPU over ~0.3 s after a case-a call, with
    the main thread asleep); without this pause that work lands in the next timed call, which
    on a 2-CPU machine is frizzview's. Returns the seconds waited."""
    t0 = time.perf_counter()
    c = time.process_time()
    while time.perf_counter() - t0 < limit:
        time.sleep(step)
        c2 = time.process_time()
        if c2 - c < quiet:
            break
        c = c2
    return time.perf_counter() - t0


def cpu():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def loadavg():
    try:
        return " ".join(open("/proc/loadavg").read().split()[:3])
    except OSError:
        return "?"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--no-frizzle", action="store_true", help="time frizzview alone")
    ap.add_argument("--no-settle", action="store_true",
                    help="time each call right after the previous one (no wait for background work)")
    a = ap.parse_args()
    print(f"cpu: {cpu()} ({os.cpu_count()} logical CPUs); python {sys.version.split()[0]}; "
          f"threads {a.threads or 'all'}; JAX_ENABLE_X64={os.environ['JAX_ENABLE_X64']}; "
          f"load average {loadavg()}")
    args, flags = load("case_a_f64_input.npz")

    def fv():
        return frizzview.frizzle(*args, flags=flags, threads=a.threads)

    def fv_band():
        return frizzview.frizzle(*args, flags=flags, C_band=5, threads=a.threads)

    runs = {"frizzview (dense C*)": fv, "frizzview (band, 5 lags)": fv_band}
    if not a.no_frizzle:
        import jax
        from frizzle import frizzle as upstream

        def fz():
            y, C, f, meta = upstream(*args, flags=flags)
            return jax.block_until_ready(y), jax.block_until_ready(C), f, meta

        runs = {"frizzle 0.2.8": fz, **runs}
        print(f"frizzle 0.2.8 with jax {jax.__version__}")
    first, outs = {}, {}
    for name, f in runs.items():
        first[name], outs[name] = timed(f)
    times = {name: [] for name in runs}
    waited = []
    for _ in range(a.repeats):
        for name, f in runs.items():
            if not a.no_settle:
                waited.append(settle())
            times[name].append(timed(f)[0])
    how = ("each call right after the previous one" if a.no_settle else
           f"each call after the process went quiet (waited median {statistics.median(waited):.2f} s, "
           f"max {max(waited):.2f} s)")
    print(f"\ncase a (10 x 2000 -> 2000 px), {a.repeats} alternating runs after one warm-up, {how}:")
    med = {}
    for name in runs:
        med[name] = statistics.median(times[name])
        print(f"  {name:26s} median {med[name]:8.4f} s  (min {min(times[name]):.4f}, first call {first[name]:.3f} s)")
    if not a.no_frizzle:
        y0, C0, f0, m0 = outs["frizzle 0.2.8"]
        y1, C1, f1, m1 = outs["frizzview (dense C*)"]
        y0, C0 = np.asarray(y0), np.asarray(C0)
        ok = ~np.asarray(m0["no_data_mask"])
        s = np.sqrt(np.diag(C0)[ok])
        print(f"  agreement: max |dy*| {np.max(np.abs(y1[ok] - y0[ok]) / s):.2e} sigma, "
              f"max rel d var {np.max(np.abs(np.diag(C1)[ok] - np.diag(C0)[ok]) / np.diag(C0)[ok]):.2e}, "
              f"flags identical {np.array_equal(np.asarray(f0), f1)}")
        # The numpy operators and flag rule of frizzview.compat against frizzle's own.
        import frizzle as F
        from frizzle.utils import combine_flags as upstream_flags
        from frizzview import compat
        rng = np.random.default_rng(0)
        worst = 0.0
        for p in (5, 9, 31):
            c, x, v = rng.standard_normal(p), np.sort(rng.uniform(-3, 3, 40)), rng.standard_normal(40)
            worst = max(worst,
                        np.max(np.abs(np.asarray(F.matvec(c, x, p)) - compat.matvec(c, x, p))),
                        np.max(np.abs(np.asarray(F.rmatvec(v, x, p)) - compat.rmatvec(v, x, p))),
                        np.max(np.abs(np.asarray(F.ATCinvA(c, x, p)) - compat.ATCinvA(c, x, p))))
        lo, lx = np.linspace(0, 1, 50), rng.uniform(-0.1, 1.1, 300)
        fl = rng.integers(0, 2**5, 300).astype(np.uint64)
        same = np.array_equal(upstream_flags(lo, lx, fl), compat.utils.combine_flags(lo, lx, fl))
        print(f"  frizzview.compat operators vs frizzle's (finufft eps 1e-6): max diff {worst:.1e}; "
              f"combine_flags identical {same}")
        # Every entry of the dense C*, relative to sqrt(C_jj C_ll) (frizzle's censored columns
        # are inf in both).
        fin = np.isfinite(C0) & np.isfinite(C1)
        sd = np.sqrt(np.abs(np.diag(C0)))
        rel = np.abs(C1 - C0)[fin] / np.outer(sd, sd)[fin]
        print(f"  dense C*: {fin.sum()} finite entries, max |dC*| / sqrt(C_jj C_ll) {rel.max():.2e}; "
              f"inf pattern identical {np.array_equal(np.isinf(C0), np.isinf(C1))}")
        for name in ("frizzview (dense C*)", "frizzview (band, 5 lags)"):
            print(f"  ratio frizzle / {name}: {med['frizzle 0.2.8'] / med[name]:.0f}x on {cpu()} "
                  f"({os.cpu_count()} CPUs, load average {loadavg()})")
    args, flags = load("case_b_f32_input.npz")
    print("\ncase b (30 x 8000 -> 8500 px), frizzview alone (frizzle 0.2.8 needs one 41 GB buffer):")
    for label, kw in (("band, 5 lags", dict(C_band=5)), ("dense C*", {})):
        ts = []
        for _ in range(max(1, a.repeats if label.startswith("band") else 2)):
            t, out = timed(lambda: frizzview.frizzle(*args, flags=flags, threads=a.threads, **kw))
            ts.append(t)
            del out
        print(f"  frizzview ({label:12s}) median {statistics.median(ts):8.4f} s over {len(ts)} runs")
    import resource
    print(f"\npeak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
