"""Compile recorded training steps with ``tie_word_embeddings`` flipped, and nothing else.

The step model's untied-lm_head term (:func:`planner.training.untied_ring_swiglu_bytes`) rests on
this control: the same step compiled with the catalog's config and with one flag changed. For
each case the script writes the flipped config.json to a temporary directory, plans the step with
it, compiles it deviceless (:mod:`planner.compile`, cached; the configs are kept under the compile
cache's ``tie_flip`` folder, whose paths the cache keys hold) and prints XLA's temp beside the
estimate without hoisting, with and without the SwiGLU products, and with hoisting.

    .venv/bin/python bench/tie_flip.py            # the three cases of bench/compile_vs_analytic.md
    .venv/bin/python bench/tie_flip.py --only 0   # one case

Each compile takes 2-3 minutes on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from planner.compile import cache_dir, compile_config, run_compile  # noqa: E402
from planner.model import CATALOG_DIR  # noqa: E402
from planner.plan import make_plan  # noqa: E402
from planner.request import PlanRequest  # noqa: E402
from planner.training import untied_ring_swiglu_bytes  # noqa: E402

#: (bench row whose step is compiled again, its model, the flipped tie_word_embeddings, the request)
CASES = (
    (533, "Qwen2.5-7B", True, dict(tpu="v4-32", bs=32, micro_bs=16, prompt_len=256, len=1024, optimizer="adamw")),
    (144, "Qwen2.5-3B", False, dict(tpu="v4-16", bs=16, micro_bs=8, prompt_len=512, len=1024, optimizer="adamw")),
    (430, "Qwen2.5-3B", False, dict(tpu="v6e-8", bs=16, micro_bs=8, prompt_len=512, len=1024, optimizer="adamw")),
)


def flipped_config(model: str, tied: bool, directory: Path) -> Path:
    """Write the catalog's config.json of ``model`` with ``tie_word_embeddings`` set to ``tied``."""
    cfg = json.loads((CATALOG_DIR / f"{model}.json").read_text())
    if bool(cfg.get("tie_word_embeddings", False)) == tied:
        raise SystemExit(f"tie_flip: {model} already has tie_word_embeddings={tied}")
    cfg["tie_word_embeddings"] = tied
    path = directory / f"{model}-{'tied' if tied else 'untied'}.json"
    path.write_text(json.dumps(cfg, indent=1))
    return path


def run_case(row: int, model: str, tied: bool, fields: dict, directory: Path) -> dict:
    path = flipped_config(model, tied, directory)
    plan = make_plan(PlanRequest(model=str(path), workload="train", remat="dots", **fields))
    inputs = plan.training.step[0].inputs
    swiglu = untied_ring_swiglu_bytes(plan.spec._replace(tied=False), inputs["L"], inputs["tok"], inputs["it_c"])
    result, cached, wall = run_compile(compile_config(plan))
    temp = (result.get("memory") or {}).get("temp_bytes")
    outcomes = inputs["outcomes"]
    plain = outcomes["not_hoisted_bytes"] - (0 if tied else swiglu)
    return {"row": row, "model": model, "tied": tied, **fields, "xla_temp_bytes": temp, "cached": cached,
            "wall_s": round(wall, 1), "resident_per_saved": (inputs.get("hoisting_line") or {}).get("resident_per_saved"),
            "estimate_plain_bytes": plain, "estimate_with_swiglu_bytes": plain + swiglu,
            "estimate_hoisted_bytes": outcomes["hoisted_bytes"], "predicted_bytes": plan.step_need_bytes}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", type=int, action="append", help="case index (repeatable)")
    args = ap.parse_args(argv)
    # a fixed folder: the config's path is part of the compile's cache key, so a re-run reads the cache
    folder = cache_dir() / "tie_flip"
    folder.mkdir(parents=True, exist_ok=True)
    for i, case in enumerate(CASES):
        if args.only and i not in args.only:
            continue
        r = run_case(*case, folder)
        temp = r["xla_temp_bytes"]
        if not temp:
            print(f"row {r['row']} {r['model']} tied={r['tied']}: no temp from the compile")
            continue
        pct = {k: 100 * (r[k] - temp) / temp for k in
               ("estimate_plain_bytes", "estimate_with_swiglu_bytes", "estimate_hoisted_bytes", "predicted_bytes")}
        print(f"row {r['row']}'s step, {r['model']} with tie_word_embeddings={r['tied']} on {r['tpu']}: "
              f"XLA temp {temp:,} B; without hoisting {pct['estimate_plain_bytes']:+.1f}%, with the SwiGLU "
              f"products {pct['estimate_with_swiglu_bytes']:+.1f}%, hoisted {pct['estimate_hoisted_bytes']:+.1f}%; "
              f"the plan {pct['predicted_bytes']:+.1f}% ({r['wall_s']} s{', cached' if r['cached'] else ''})",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
