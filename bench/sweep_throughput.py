"""Sweep throughput: ``planner.sweep`` over a 10,000-config grid against a Python loop of make_plan.

Grid ``rl10k`` (the target): 5 TPUs × 10 bs (16..160) × 10 len (256..4864) × 5 micro-bs × 4 mem_fraction_static,
co-located RL (training memory and the engine on every row; micro-bs 3 makes invalid rows,
mfs 0.35 starves the engine). Grid ``mixed``: rl / train / infer over the same axes (fewer mfs).
Each sweep runs once cold (first call in this process) and ``--repeat`` times warm; the loop
baseline plans a random ``--sample`` rows of the same grid one by one with ``make_plan``, in the
same run, and checks they equal the sweep's rows. Target: 10,000 configs in < 2 s (median).

    .venv/bin/python bench/sweep_throughput.py [--repeat 5] [--sample 300]
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TPUS = ["v4-8", "v4-16", "v4-32", "v5p-8", "v6e-4"]
GRIDS = {
    "rl10k": {
        "workload": ["rl"],
        "tpu": TPUS,
        "bs": list(range(16, 161, 16)),
        "len": list(range(256, 4865, 512)),
        "micro_bs": [None, 3, 8, 16, 32],
        "mem_fraction_static": [0.35, 0.5, 0.6, 0.7],
    },
    "mixed": {
        "workload": ["rl", "train", "infer"],
        "tpu": TPUS,
        "bs": list(range(16, 161, 16)),
        "len": list(range(256, 4865, 512)),
        "micro_bs": [None, 3, 8, 16],
        "mem_fraction_static": [0.35, 0.6],
    },
}
TARGET_S, TARGET_ROWS = 2.0, 10_000


def _loop(grid: dict, df, sample: int, seed: int = 0) -> tuple[float, int, int]:
    """make_plan over ``sample`` random rows of ``grid``; (seconds, rows, rows equal to the sweep)."""
    from planner.errors import PlanError
    from planner.plan import make_plan
    from planner.request import PlanRequest

    combos = list(itertools.product(*grid.values()))
    picks = random.Random(seed).sample(range(len(combos)), min(sample, len(combos)))
    reqs = [PlanRequest(**dict(zip(grid, combos[i]))) for i in picks]
    t = time.perf_counter()
    plans = []
    for req in reqs:
        try:
            plans.append(make_plan(req))
        except PlanError as exc:
            plans.append(exc)
    dt = time.perf_counter() - t
    same = 0
    for i, p in zip(picks, plans):
        row = df.iloc[i]
        if isinstance(p, PlanError):
            same += row["verdict"] == "invalid" and row["error"] == str(p)
        else:
            same += (row["verdict"] == p.verdict and int(row["total_bytes"]) == p.total_bytes
                     and (p.step_need_bytes is None or int(row["step_need_bytes"]) == p.step_need_bytes))
    return dt, len(reqs), same


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--sample", type=int, default=300)
    args = ap.parse_args()

    t = time.perf_counter()
    from planner.grid import sweep

    print(f"import planner.grid (pandas, numpy): {time.perf_counter() - t:.3f} s")
    ok = True
    for name, grid in GRIDS.items():
        t = time.perf_counter()
        df = sweep(grid)
        cold = time.perf_counter() - t
        warm = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            sweep(grid)
            warm.append(time.perf_counter() - t)
        med = statistics.median(warm)
        n = len(df)
        loop_s, loop_n, same = _loop(grid, df, args.sample)
        sweep_rate, loop_rate = n / med, loop_n / loop_s
        verdicts = ", ".join(f"{v} {c}" for v, c in df["verdict"].value_counts().items())
        print(f"[{name}] {n:,} configs ({verdicts})")
        print(f"  sweep: cold {cold:.3f} s; warm median {med:.3f} s, best {min(warm):.3f} s over {args.repeat} "
              f"-> {sweep_rate:,.0f} configs/s")
        print(f"  loop of make_plan over a {loop_n}-row sample: {loop_s:.3f} s -> {loop_rate:,.0f} configs/s "
              f"(10,000 would take ~{TARGET_ROWS / loop_rate:.1f} s); rows equal to the sweep: {same}/{loop_n}")
        print(f"  speed-up vs the loop: {sweep_rate / loop_rate:.1f}x")
        ok &= same == loop_n
        if name == "rl10k":
            target_ok = n >= TARGET_ROWS and med < TARGET_S
            print(f"  target: {n:,} configs in {med:.3f} s (< {TARGET_S:.0f} s): {'met' if target_ok else 'MISSED'}")
            ok &= target_ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
