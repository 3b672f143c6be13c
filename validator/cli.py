"""``hbmvalidate``: run the real sglang-jax Engine through a serving / RL lifecycle and compare
the device memory of every phase with the planner's prediction.

Phases (in order; the last six with ``--kv-drop-rebuild``, ``second_params_*`` with
``--second-params``): jax_ready, engine_ready_dummy, weights_swapped, generate_result,
flush_cache_before_kv_drop, kv_cache_dropped, second_params_ready, kv_cache_rebuilt,
generate_result_after_kv_rebuild, second_params_dropped.

Output: one JSON object per phase on stdout (and in ``--jsonl``), flushed as it happens, then a
``{"summary": ...}`` object; a human table on stderr. Exit codes: 0 ok; 1 a failed check with
``--strict``, different outputs with ``--assert-same-output``, or an engine failure; 2 bad input
(one line on stderr).

Multi-host (e.g. v4-16, 2 hosts): run the same command on every host with ``--nnodes``,
``--node-rank`` and ``--dist-init-addr``; host 0 generates, every host measures its own
devices, host 0 gathers them and writes the calibration record::

    gcloud compute tpus tpu-vm ssh NAME --zone ZONE --worker=all --command \\
      'cd hbmplan && .venv/bin/hbmvalidate --model-path /models/Qwen2.5-3B --tp 8 \\
         --nnodes 2 --node-rank $(curl -s -H Metadata-Flavor:Google \\
           http://metadata.google.internal/computeMetadata/v1/instance/attributes/agent-worker-number) \\
         --dist-init-addr WORKER0_IP:8476 --max-total-tokens 32768 --kv-drop-rebuild \\
         --second-params --assert-same-output --save-calibration calibrations --jsonl /tmp/v.jsonl'
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


class UsageError(Exception):
    """Bad input: reported as one line, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="hbmvalidate", description=__doc__.split("\n\n")[0])
    e = p.add_argument_group("engine (sglang-jax names)")
    e.add_argument("--model-path", required=True, help="folder with config.json (and weights/tokenizer if any)")
    e.add_argument("--tp", type=int, default=1, help="tensor parallel size (tp_size)")
    e.add_argument("--max-total-tokens", type=int, help="KV token slots to request")
    e.add_argument("--mem-fraction-static", type=float)
    e.add_argument("--dtype", default="bfloat16", help="model dtype (engine 'auto' reads config.json)")
    e.add_argument("--kv-cache-dtype", default="auto")
    e.add_argument("--page-size", type=int, default=1)
    e.add_argument("--context-length", type=int)
    e.add_argument("--max-running-requests", type=int)
    e.add_argument("--max-prefill-tokens", type=int)
    e.add_argument("--chunked-prefill-size", type=int)
    e.add_argument("--device", choices=("tpu", "cpu", "gpu"))
    e.add_argument("--nnodes", type=int, default=1)
    e.add_argument("--node-rank", type=int, default=0)
    e.add_argument("--dist-init-addr", help="host:port of node 0 (jax coordinator)")
    e.add_argument("--load-format", default="dummy", help="engine load format (default dummy)")
    e.add_argument("--random-seed", type=int, default=0)
    e.add_argument("--attention-backend", choices=("fa", "native"))
    e.add_argument("--disable-overlap-schedule", action="store_true")
    e.add_argument("--disable-precompile", action="store_true", help="disable_jax_precompile")
    e.add_argument("--log-level", default="error", help="engine log level")

    lc = p.add_argument_group("lifecycle")
    lc.add_argument("--weights", help="local safetensors checkpoint to swap in (else a second dummy set)")
    lc.add_argument("--kv-drop-rebuild", action="store_true", help="flush, drop KV, rebuild KV, generate again")
    lc.add_argument("--second-params", action="store_true", help="allocate a second param set while KV is dropped")
    lc.add_argument("--assert-same-output", action="store_true", help="greedy outputs before/after rebuild must match")
    lc.add_argument("--strict", action="store_true", help="exit 1 when any check fails")
    g = lc.add_mutually_exclusive_group()
    g.add_argument("--prompt")
    g.add_argument("--prompt-file")
    g.add_argument("--input-ids", help="comma-separated token ids (no tokenizer needed), e.g. 1,2,3")
    lc.add_argument("--max-new-tokens", type=int, default=16)

    o = p.add_argument_group("output")
    o.add_argument("--engine-version", help="planner engine profile (default: installed sglang-jax version)")
    o.add_argument("--model-name", help="name for records (default: config _name_or_path or folder name)")
    o.add_argument("--jsonl", help="also append phase objects to this JSONL file")
    o.add_argument("--save-calibration", nargs="?", const="calibrations", metavar="DIR",
                   help="write a calibration record into DIR (default ./calibrations)")
    o.add_argument("--wandb", action="store_true")
    o.add_argument("--wandb-project", default="hbmvalidate")
    o.add_argument("--wandb-name")
    o.add_argument("--wandb-entity")
    o.add_argument("--wandb-dir", help="local wandb folder (default: wandb's)")
    return p


def _parse_ids(text: str) -> list[int]:
    try:
        ids = [int(t) for t in text.replace(" ", "").split(",") if t != ""]
    except ValueError:
        raise UsageError(f"--input-ids must be comma-separated integers, got {text!r}") from None
    if not ids or any(i < 0 for i in ids):
        raise UsageError(f"--input-ids must be non-negative integers, got {text!r}")
    return ids


def validate(args) -> dict:
    """Check the arguments; return derived settings. Raises UsageError with one line."""
    mp = Path(args.model_path)
    if not (mp / "config.json").is_file():
        raise UsageError(f"--model-path {args.model_path}: no config.json there")
    for name in ("tp", "page_size", "max_new_tokens", "nnodes"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    for name in ("max_total_tokens", "context_length", "max_running_requests", "max_prefill_tokens",
                 "chunked_prefill_size"):
        v = getattr(args, name)
        if v is not None and v < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1, got {v}")
    if args.mem_fraction_static is not None and not 0 < args.mem_fraction_static <= 1:
        raise UsageError(f"--mem-fraction-static must be in (0, 1], got {args.mem_fraction_static}")
    if not 0 <= args.node_rank < args.nnodes:
        raise UsageError(f"--node-rank {args.node_rank} must be in [0, {args.nnodes})")
    if args.nnodes > 1 and (not args.dist_init_addr or ":" not in args.dist_init_addr):
        raise UsageError("--nnodes > 1 needs --dist-init-addr host:port")
    if args.nnodes > 1 and args.tp % args.nnodes:
        raise UsageError(f"--tp {args.tp} must be divisible by --nnodes {args.nnodes}")
    if args.second_params and not args.kv_drop_rebuild:
        raise UsageError("--second-params needs --kv-drop-rebuild (the second set is made while KV is dropped)")
    if args.assert_same_output and not args.kv_drop_rebuild:
        raise UsageError("--assert-same-output needs --kv-drop-rebuild (it compares before/after the rebuild)")
    if args.weights is not None:
        w = Path(args.weights)
        if not w.is_dir() or not any(w.glob("*.safetensors")):
            raise UsageError(f"--weights {args.weights}: not a folder with *.safetensors files")
    _check_tp_against_model(args)
    if args.engine_version is not None:
        from planner.engine import get_profile
        from planner.errors import PlanError

        try:
            get_profile(args.engine_version)
        except PlanError as e:
            raise UsageError(f"--engine-version: {e}") from None
    has_tok = any((mp / f).is_file() for f in TOKENIZER_FILES)
    prompt = args.prompt
    if args.prompt_file is not None:
        try:
            prompt = Path(args.prompt_file).read_text(encoding="utf-8")
        except OSError as e:
            raise UsageError(f"--prompt-file {args.prompt_file}: {e.strerror or e}") from None
    input_ids = _parse_ids(args.input_ids) if args.input_ids is not None else None
    if prompt is not None and not has_tok:
        raise UsageError(f"--model-path {args.model_path} has no tokenizer; give --input-ids instead of a prompt")
    if prompt is None and input_ids is None:
        if has_tok:
            prompt = "Hello"
        else:
            input_ids = [1, 2, 3, 4]
    if args.jsonl is not None:
        parent = Path(args.jsonl).resolve().parent
        if not parent.is_dir():
            raise UsageError(f"--jsonl {args.jsonl}: folder {parent} does not exist")
    if args.save_calibration is not None and Path(args.save_calibration).exists() and not Path(args.save_calibration).is_dir():
        raise UsageError(f"--save-calibration {args.save_calibration}: not a folder")
    return {"prompt": prompt, "input_ids": input_ids, "skip_tokenizer_init": input_ids is not None}


def _check_tp_against_model(args) -> None:
    """tp must divide the attention heads (planner.engine.check_tp). A model the planner cannot
    read is left to the engine (the run still measures; the prediction reports the error)."""
    try:
        from planner.engine import check_tp
        from planner.errors import PlanError
        from planner.model import load_model_spec
    except ImportError:
        return
    try:
        spec = load_model_spec(args.model_path)
    except PlanError:
        return
    try:
        check_tp(spec, args.tp)
    except PlanError as e:
        raise UsageError(str(e)) from None


def engine_kwargs(args, derived: dict) -> dict:
    kw = {
        "model_path": args.model_path,
        "load_format": args.load_format,
        "enable_single_process": True,
        "skip_tokenizer_init": derived["skip_tokenizer_init"],
        "tp_size": args.tp,
        "dtype": args.dtype,
        "kv_cache_dtype": args.kv_cache_dtype,
        "page_size": args.page_size,
        "random_seed": args.random_seed,
        "log_level": args.log_level,
        "nnodes": args.nnodes,
        "node_rank": args.node_rank,
    }
    optional = {
        "max_total_tokens": args.max_total_tokens,
        "mem_fraction_static": args.mem_fraction_static,
        "context_length": args.context_length,
        "max_running_requests": args.max_running_requests,
        "max_prefill_tokens": args.max_prefill_tokens,
        "chunked_prefill_size": args.chunked_prefill_size,
        "device": args.device,
        "dist_init_addr": args.dist_init_addr,
        "attention_backend": args.attention_backend,
    }
    kw.update({k: v for k, v in optional.items() if v is not None})
    if args.disable_overlap_schedule:
        kw["disable_overlap_schedule"] = True
    if args.disable_precompile:
        kw["disable_jax_precompile"] = True
    return kw


def _model_name(args) -> str:
    if args.model_name:
        return args.model_name
    import json

    try:
        cfg = json.loads((Path(args.model_path) / "config.json").read_text())
        name = cfg.get("_name_or_path")
        if isinstance(name, str) and name and not name.startswith("/"):
            return name
    except Exception:
        pass
    return Path(args.model_path).resolve().name


def main(argv: list[str] | None = None) -> int:
    """Entry point. Returns the exit code when no engine was started; once an engine runs, the
    process ends with ``os._exit`` after flushing everything (the engine's daemon threads and
    atexit hooks otherwise abort the interpreter at exit)."""
    try:
        args = build_parser().parse_args(argv)
        derived = validate(args)
    except UsageError as e:
        print(f"hbmvalidate: error: {e}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    if args.device == "cpu":
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
    from validator.run import Run

    run = Run(args, derived)
    code = run.execute()
    if run.engine_started:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
