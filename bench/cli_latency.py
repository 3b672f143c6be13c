"""CLI latency: a cold ``hbmplan --workload infer ... --json`` against a bare ``python -c pass``.

Both run the same interpreter, interleaved, N times each; the figure is the ratio of medians
measured in this one run (the machine is shared and noisy, so absolute times mean little).
Target: ratio <= 3.0, and no jax import on that path.

    .venv/bin/python bench/cli_latency.py [--runs 21]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

PLAN = ["-m", "planner.cli", "--workload", "infer", "--tpu", "v4-8", "--model", "Qwen2.5-3B",
        "--max-total-tokens", "131072", "--json"]
BARE = ["-c", "pass"]


def _time(args: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, *args], check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=21)
    n = ap.parse_args().runs
    _time(PLAN), _time(BARE)  # warm the page cache for both
    plan, bare = [], []
    for _ in range(n):
        plan.append(_time(PLAN))
        bare.append(_time(BARE))
    mp, mb = statistics.median(plan), statistics.median(bare)
    probe = subprocess.run([sys.executable, "-c", "import sys, runpy; sys.argv=['hbmplan'," + ",".join(
        repr(a) for a in PLAN[2:]) + "]\ntry:\n    runpy.run_module('planner.cli', run_name='__main__')\n"
        "except SystemExit: pass\nprint('JAX_IMPORTED' if 'jax' in sys.modules else 'NO_JAX', file=sys.stderr)"],
        capture_output=True, text=True)
    jax_line = probe.stderr.strip().splitlines()[-1] if probe.stderr.strip() else "?"
    print(f"runs: {n}; median hbmplan infer --json: {mp * 1000:.1f} ms; median python -c pass: {mb * 1000:.1f} ms")
    print(f"ratio: {mp / mb:.2f}x (target <= 3.0x); jax on the path: {'yes' if jax_line == 'JAX_IMPORTED' else 'no'}")
    return 0 if mp / mb <= 3.0 and jax_line == "NO_JAX" else 1


if __name__ == "__main__":
    sys.exit(main())
