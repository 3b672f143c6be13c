"""``hbmplan accuracy``: the planner's honest error report over every stored record.

For each record and each phase with a complete prediction it prints the uncalibrated error
(measured − predicted) and the leave-one-out calibrated error: the residual is learned from the
*other* records only, so a record never calibrates itself.
"""

from __future__ import annotations

import argparse
import statistics

from planner.calibration import default_calibration_dir, generation_of, load_calibration, residual
from planner.errors import PlanError
from planner.units import MiB


def accuracy_rows(records) -> list[dict]:
    """One row per (record, phase) with a complete prediction and a measurement."""
    rows = []
    for r in records:
        gen = generation_of(r.tpu_type)
        for ph in r.phases:
            res = ph.residual_per_device(r.num_devices)
            if not res:
                continue
            measured = ph.predicted_per_device + statistics.mean(res)
            loo = residual(records, gen, r.engine_profile, ph.name, exclude=r.record_id)
            cal_err = None if loo is None else measured - (ph.predicted_per_device + loo.bytes)
            rows.append({
                "record": r.record_id, "tpu": r.tpu_type, "model": r.model_name, "profile": r.engine_profile,
                "phase": ph.name, "measured": measured, "predicted": ph.predicted_per_device,
                "err_uncal": measured - ph.predicted_per_device, "err_cal": cal_err,
                "transcribed": r.transcribed,
            })
    return rows


def _pct(err, measured) -> str:
    return "n/a" if err is None else f"{100.0 * err / measured:+.2f}%"


def _mib(err) -> str:
    return "n/a" if err is None else f"{err / MiB:+.1f}"


def cli_accuracy(argv: list[str]) -> int:
    from planner.cli import _Parser

    p = _Parser(prog="hbmplan accuracy", description="Leave-one-out error of the planner on stored records.")
    p.add_argument("path", nargs="?", default=None, help="records folder (default: calibrations/)")
    p.add_argument("--steps", action="store_true",
                   help="instead: the training-step estimate's error bands against XLA:TPU compiles "
                        "(calibrations/compiled/training_steps.json, or the file PATH)")
    args = p.parse_args(argv)
    if args.steps:
        return _print_step_bands(args.path)
    folder = args.path or default_calibration_dir()
    records, warnings = load_calibration(folder)
    for w in warnings:
        print(f"hbmplan: warning: {w}")
    if not records:
        raise PlanError(f"no calibration records in {folder}")
    rows = accuracy_rows(records)
    print(f"{len(records)} record(s) in {folder}; error = measured − predicted, per device")
    print(f"{'record':44} {'tpu':7} {'model':16} {'phase':34} {'measured B':>15} {'uncal MiB':>10} "
          f"{'uncal %':>8} {'LOO cal MiB':>11} {'LOO cal %':>9}")
    for row in rows:
        print(f"{row['record'][:44]:44} {row['tpu']:7} {row['model'][:16]:16} {row['phase'][:34]:34} "
              f"{int(row['measured']):>15,} {_mib(row['err_uncal']):>10} {_pct(row['err_uncal'], row['measured']):>8} "
              f"{_mib(row['err_cal']):>11} {_pct(row['err_cal'], row['measured']):>9}")
    compared = {row["record"] for row in rows}
    for r in records:
        if r.record_id not in compared:
            print(f"{r.record_id}: no phase with a complete prediction and a measurement "
                  f"(phases: {', '.join(p.name for p in r.phases)})")
    unc = [abs(r["err_uncal"]) / r["measured"] for r in rows]
    cal = [abs(r["err_cal"]) / r["measured"] for r in rows if r["err_cal"] is not None]
    if unc:
        print(f"median |error|: uncalibrated {100 * statistics.median(unc):.2f}% over {len(unc)} phases"
              + (f"; calibrated (leave-one-out) {100 * statistics.median(cal):.2f}% over {len(cal)}" if cal else
                 "; calibrated: n/a (no other matching record for any phase)"))
    return 0


def _print_step_bands(path) -> int:
    """The step estimate's error bands, one line per regime with compiles, as the plans use them."""
    from planner import step_accuracy as sa

    p = path or sa.default_path()
    steps, bands = sa.load(p)
    versions = sa.compiler(p)
    print(f"{len(steps)} compiled training steps in {p} (jax {versions.get('jax')}, libtpu {versions.get('libtpu')}); "
          "error = (analytic step temp − XLA temp) / XLA temp")
    print(f"plans use the first band of their regime with at least {sa.MIN_BAND_RECORDS} compiles: "
          "(slice, remat, phase), then (slice, phase), then (slice)")
    print("phases: forward_start = the layers' weight all-gathers hoisted to the step's start; "
          "forward_start_windowed = hoisted as windowed-einsum rings")
    header = (f"{'regime':52} {'n':>3} {'range':>18} {'median':>7} {'held out: n, median, worst':>28}  "
              f"beyond ±{sa.WORST_BOUND_PCT:.0f}%")
    print(header)
    tp_started = False
    for b in bands:
        if b.regime[0] in sa.TP_CLASSES and not tp_started:
            tp_started = True
            print()
            print("bands by tp, quoted by plans with tp > 1: (tp class, remat, ring kind), then (tp class, ring kind), "
                  "then (tp class)")
            print(header)
        held = (f"{b.held_out_n}, {b.held_out_median_abs_pct:.1f}%, {b.held_out_worst_pct:+.1f}%"
                if b.held_out_n else "0")
        beyond = ", ".join(str(i) for i in b.beyond_bound_ids) or "-"
        print(f"{sa.describe(b.regime, short=True):52} {b.n:>3} {f'{b.lo_pct:+.1f}% to {b.hi_pct:+.1f}%':>18} "
              f"{b.median_abs_pct:>6.1f}% {held:>28}  {beyond}")
    return 0
