"""``hbmplan``: the command line. Thin: parse, call the library, render, exit.

Exit codes: 0 fits, 3 does not fit or the engine cannot start, 2 bad input.
"""

from __future__ import annotations

import argparse
import sys

from planner.errors import PlanError

EXIT_FITS, EXIT_BAD_INPUT, EXIT_DOES_NOT_FIT = 0, 2, 3
SUBCOMMANDS = ("tpus", "models", "sweep", "accuracy")


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad input as one line and exit code 2."""

    def error(self, message: str):  # noqa: D401
        raise PlanError(message)


def add_plan_arguments(p: argparse.ArgumentParser, *, typed: bool = True) -> None:
    """The plan flags. With ``typed=False`` every value is a string (sweep lists and ranges)."""
    i = int if typed else str
    f = float if typed else str
    g = p.add_argument_group("target")
    g.add_argument("--tpu", default="v4-8", help="accelerator type, e.g. v4-8, v5litepod-16, v6e-8 (default v4-8)")
    g.add_argument("--model", default="Qwen2.5-7B", help="catalog name or path to config.json / its folder")
    g.add_argument("--workload", default="rl", help="rl (co-located rollout + training, default), train, infer")
    e = p.add_argument_group("sglang-jax engine (sglang-jax flag names)")
    e.add_argument("--engine-version", default=None, help="engine profile: bd09a87 (default) or 0.0.2")
    e.add_argument("--tp", type=i, default=None, help="tensor parallel size (infer: largest dividing devices and heads; rl: devices per host)")
    e.add_argument("--dtype", default="bfloat16", help="engine weight dtype")
    e.add_argument("--kv-dtype", "--kv-cache-dtype", dest="kv_dtype", default=None, help="KV dtype (default: --dtype)")
    e.add_argument("--page-size", type=i, default=1)
    e.add_argument("--mem-fraction-static", type=f, default=None, help="default 0.88 (infer), 0.5 (rl runner)")
    e.add_argument("--max-total-tokens", type=i, default=None)
    e.add_argument("--max-running-requests", type=i, default=None)
    e.add_argument("--context-length", type=i, default=None)
    e.add_argument("--chunked-prefill-size", type=i, default=None)
    e.add_argument("--max-prefill-tokens", type=i, default=16384)
    t = p.add_argument_group("training / RL (the seeds' GRPO runner)")
    t.add_argument("--bs", type=i, default=None, help="sequences per step (prompts × samples per prompt; default 32)")
    t.add_argument("--prompts", type=i, default=None, help="prompts per step (with --samples-per-prompt)")
    t.add_argument("--samples-per-prompt", "--num-pre-q", dest="samples_per_prompt", type=i, default=1)
    t.add_argument("--len", type=i, default=1024, help="max generation length (default 1024)")
    t.add_argument("--prompt-len", type=i, default=512, help="prompt length (default 512)")
    t.add_argument("--micro-bs", type=i, default=None, help="global micro-batch (default: the whole batch)")
    t.add_argument("--optimizer", default="lion", help="lion (default), adamw, sgd, adafactor")
    t.add_argument("--param-dtype", default="float32", help="master param dtype (default float32)")
    t.add_argument("--remat", default="dots", help="dots (default), full, none")
    t.add_argument("--beta", type=f, default=0.0, help="KL coefficient; != 0 keeps reference params")
    t.add_argument("--mesh", default=None, help="dp,fsdp,tp (default 1,-1,1: every device on fsdp)")
    t.add_argument("--rollout-chunk", type=i, default=None, help="rollout chunk (default min(bs, local devices))")


def _request_from_args(args: argparse.Namespace):
    from planner.request import FIELD_NAMES, PlanRequest

    values = {k: getattr(args, k) for k in FIELD_NAMES if hasattr(args, k)}
    values["calibration"] = not getattr(args, "no_calibration", False)
    return PlanRequest(**values)


def _has_records() -> bool:
    """Cheap check (no import of the records module) for calibration files to load."""
    import os

    folder = os.environ.get("HBMPLAN_CALIBRATIONS") or os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "calibrations")
    try:
        return any(n.endswith(".json") for n in os.listdir(folder))
    except OSError:
        return False


def _cmd_plan(argv: list[str]) -> int:
    p = _Parser(prog="hbmplan", description="Per-device HBM plan for sglang-jax and RL training on Cloud TPU.")
    add_plan_arguments(p)
    o = p.add_argument_group("output")
    o.add_argument("--json", action="store_true", help="print one JSON object")
    o.add_argument("--explain", action="store_true", help="show each formula with its inputs; with --compile, "
                   "also XLA's live temp through the step, read from the buffer assignment XLA dumps")
    o.add_argument("--suggest", action="store_true", help="list ways out even when the plan fits")
    o.add_argument("--no-calibration", action="store_true", help="ignore calibration records")
    o.add_argument("--compile", action="store_true", help="also compile the training step with XLA:TPU (needs jax[tpu])")
    args = p.parse_args(argv)
    from planner.plan import make_plan
    from planner.render import render_json, render_table

    req = _request_from_args(args)
    records = None
    if req.calibration and req.workload != "train" and _has_records():
        from planner.calibration import load_calibration

        records, warnings = load_calibration()
        for w in warnings:
            print(f"hbmplan: warning: {w}", file=sys.stderr)
    if args.compile:
        from planner.compile import unavailable_reason

        if unavailable_reason():
            raise PlanError(unavailable_reason())
    plan = make_plan(req, records)
    report = None
    if args.compile:
        from planner.compile import compile_plan, compile_report_json, render_compile

        report = compile_plan(plan, breakdown=args.explain)
    ways = []
    if args.suggest or not plan.fits:
        from planner.suggest import suggestions

        ways = suggestions(plan, records)
    if args.json:
        text = render_json(plan, ways)
        if report is not None:
            import json

            text = json.dumps({**json.loads(text), "compile": compile_report_json(report)}, indent=2)
        print(text)
    else:
        print(render_table(plan, explain=args.explain, suggestions=ways))
        if report is not None:
            print("\n" + render_compile(report, plan))
    if report is not None and plan.verdict != "engine_cannot_start":
        if report.verdict is None:
            return EXIT_BAD_INPUT
        return EXIT_FITS if report.fits else EXIT_DOES_NOT_FIT
    return EXIT_FITS if plan.fits else EXIT_DOES_NOT_FIT


def _cmd_tpus(argv: list[str]) -> int:
    _Parser(prog="hbmplan tpus").parse_args(argv)
    from planner.tpu import GENERATIONS, parse_slice
    from planner.units import gib

    print(f"{'generation':10} {'HBM/device':>11} {'dev/chip':>8} {'chips/host':>10}  sizes (suffix counts)")
    for g in GENERATIONS.values():
        names = g.name + (f" ({', '.join(g.aliases)})" if g.aliases else "")
        print(f"{names:10} {gib(g.limit_bytes):8.2f} GiB {g.devices_per_chip:>8} {g.chips_per_host:>10}  "
              f"{', '.join(str(n) for n in g.valid_sizes)} ({g.suffix_counts})")
    print()
    print(f"{'type':14} {'chips':>6} {'devices':>7} {'hosts':>5}  topology")
    for g in GENERATIONS.values():
        for n in g.valid_sizes:
            s = parse_slice(f"{g.name}-{n}")
            print(f"{s.name:14} {s.num_chips:>6} {s.num_devices:>7} {s.num_hosts:>5}  {s.topology}")
    return 0


def _cmd_models(argv: list[str]) -> int:
    _Parser(prog="hbmplan models").parse_args(argv)
    from planner.model import catalog_names, load_model_spec

    print(f"{'model':18} {'family':10} {'params':>16} {'L':>3} {'H':>6} {'heads':>5} {'kv':>3} {'hd':>4} "
          f"{'vocab':>7} tied")
    for name in catalog_names():
        s = load_model_spec(name)
        print(f"{name:18} {s.family:10} {s.param_count():>16,} {s.layers:>3} {s.hidden:>6} {s.heads:>5} "
              f"{s.kv_heads:>3} {s.head_dim:>4} {s.vocab:>7} {'yes' if s.tied else 'no'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in SUBCOMMANDS:
            cmd, rest = argv[0], argv[1:]
            if cmd == "tpus":
                return _cmd_tpus(rest)
            if cmd == "models":
                return _cmd_models(rest)
            if cmd == "sweep":
                from planner.grid import cli_sweep

                return cli_sweep(rest)
            from planner.accuracy import cli_accuracy

            return cli_accuracy(rest)
        return _cmd_plan(argv)
    except PlanError as exc:
        print(f"hbmplan: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
