"""Write the README's SVG screenshots: ``python -m planner.tui.screenshots [OUT_DIR]``.

``tui-run.svg`` shows a run (the repository's first calibration record, else the seed-002
transcription below) and ``tui-plan.svg`` the design-card plan (v4-8, Qwen2.5-7B, rl, bs 32,
len 1024: OOM). Nothing here imports jax.
"""

from __future__ import annotations

import asyncio
import re
import sys
import tempfile
from pathlib import Path

# Seed 002 (Qwen2.5-3B, v4-8, sglang-jax bd09a87, max_total_tokens 131072): bytes_in_use summed
# over the 4 devices, as the run's log printed them (second param set made after the KV drop).
SEED_002_SUMS = (
    ("engine_ready_dummy", 15_912_880_128, ("params", "kv")),
    ("flush_cache_before_kv_drop", 16_244_695_040, ("params", "kv")),
    ("kv_cache_dropped", 6_580_944_896, ("params",)),
    ("second_params_ready", 12_829_917_184, ("params", "second_params")),
    ("kv_cache_rebuilt", 22_493_880_320, ("params", "kv", "second_params")),
    ("second_params_dropped", 16_244_908_032, ("params", "kv")),
)


def seed_002_record():
    """The seed-002 run as a transcribed calibration record, predicted by today's planner."""
    from planner.plan import make_plan
    from planner.records import CalibrationRecord, PhaseRecord
    from planner.request import PlanRequest

    plan = make_plan(PlanRequest(workload="infer", tpu="v4-8", model="Qwen2.5-3B", tp=4,
                                 max_total_tokens=131072, engine_version="bd09a87"))
    by = {c.name: c.bytes for c in plan.components}
    part = {"params": by["engine.params"], "second_params": by["engine.params"], "kv": by["engine.kv_cache"]}
    phases = []
    for i, (name, total, comps) in enumerate(SEED_002_SUMS):
        pc = {c: part[c] for c in comps}
        pred = sum(pc.values())
        phases.append(PhaseRecord(name=name, idx=i, source="log", measured_sum=total, predicted_components=pc,
                                  predicted_per_device=pred, delta_sum=total - 4 * pred))
    return CalibrationRecord(
        record_id="20260122T100610Z-seed002", created="2026-01-22T10:06:10+00:00", transcribed=True,
        source="seeds/002 (sglang_jax_qwen25_3b_kv_big_wandb_det0_same.log)", tpu_type="v4-8", num_devices=4,
        num_hosts=1, model={"name": "Qwen2.5-3B", "config_hash": None},
        engine={"profile": "bd09a87", "version": "0.0.2", "jax_version": "0.8.1"},
        knobs={"tp": 4, "dtype": "bfloat16", "page_size": 1, "max_total_tokens_requested": 131072,
               "max_total_tokens": 131072},
        phases=tuple(phases), notes="transcribed from the seed's bytes_in_use_sum lines",
    )


async def _shoot(records: Path, out: Path, size: tuple[int, int]) -> list[Path]:
    from planner.tui.screens import HbmTui, PlanScreen, RunScreen

    written = []
    app = HbmTui([records])
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        if app.runs:
            app.push_screen(RunScreen(max(app.runs, key=lambda r: (len(r.phases), r.created))))
            await pilot.pause(0.2)
            written.append(Path(app.save_screenshot("tui-run.svg", str(out))))
        from planner.request import PlanRequest

        app.push_screen(PlanScreen(PlanRequest(tpu="v4-8", model="Qwen2.5-7B", workload="rl", bs=32, len=1024)))
        await pilot.pause(0.2)
        await app.workers.wait_for_complete()
        await pilot.pause(0.2)
        written.append(Path(app.save_screenshot("tui-plan.svg", str(out))))
    return written


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0]) if argv else Path(__file__).resolve().parents[2] / "docs"
    out.mkdir(parents=True, exist_ok=True)
    repo_cal = Path(__file__).resolve().parents[2] / "calibrations"
    with tempfile.TemporaryDirectory() as tmp:
        records = repo_cal
        if not any(repo_cal.glob("*.json")):
            from planner.records import write_record_atomic

            records = Path(tmp)
            write_record_atomic(seed_002_record(), records)
        for p in asyncio.run(_shoot(records, out, (100, 30))):
            # drop Rich's random per-export id so a re-run only changes what changed on screen
            p.write_text(re.sub(r"\bterminal-\d+-", "terminal-", p.read_text(encoding="utf-8")), encoding="utf-8")
            print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
