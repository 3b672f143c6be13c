"""Calibration records transcribed by hand from the measured TPU logs in shared/seeds.

Every number below is copied from the seed file named in ``source`` (sums over the 4 devices
of a v4-8, ``mem/jax/bytes_in_use_sum``); the logs give no exact per-device values, so
``measured_per_device`` is None. Predictions are the planner's (engine profile bd09a87, the
commit the runs pinned). Regenerate with ``python -m validator.seeds [DIR]`` (default
``calibrations/``); files are named by a fixed record id and replaced.

* 000 (Qwen/Qwen3-4B, weight swap into a dummy engine): weights_swapped, generate_result.
  The log does not give max_total_tokens, so the KV part of the prediction is unknown and
  these phases' predictions are incomplete (they carry the params prediction only).
* 003 (Qwen2.5-3B, KV drop/rebuild, max_total_tokens 32768, fused KV 2,415,992,832 B).
* 002 (Qwen2.5-3B, KV drop/rebuild, max_total_tokens 131072, fused KV 9,663,750,144 B).
"""

from __future__ import annotations

import sys
from pathlib import Path

from planner.records import CalibrationRecord, PhaseRecord, record_filename, write_record_atomic

PROFILE = "bd09a87"
ENGINE = {"profile": PROFILE, "version": "0.0.2", "jax_version": "0.8.1",
          "commit": "bd09a87fc6e86c21ce14edd66948ac5dea3a4360"}
NUM_DEVICES = 4
# When the runs were made (log names / W&B run dirs; time of day where the log gives it).
CREATED = {
    "seed-000-qwen3-4b-v4-8-weight-swap": "2026-01-21T12:06:31+00:00",
    "seed-003-qwen2.5-3b-v4-8-kv-32768": "2026-01-22T08:31:16+00:00",
    "seed-002-qwen2.5-3b-v4-8-kv-131072": "2026-01-22T00:00:00+00:00",
}

# (record id, seed file, model, catalog name, tp, max_total_tokens or None, phases, knobs extra, notes)
# phase: (name, source_name, measured_sum, peak_max, components, extra)
SEEDS = [
    (
        "seed-000-qwen3-4b-v4-8-weight-swap", "000_349a9e25832b9347.txt", "Qwen/Qwen3-4B", "Qwen3-4B", 4, None,
        [
            ("weights_swapped", None, 8_652_005_376, 4_187_151_360, ("params", "kv"), {}),
            ("generate_result", None, 9_074_287_616, None, ("params", "kv"), {}),
        ],
        {"wandb_mode": "offline", "prompt": "你是谁"},
        "Qwen3-4B swapped into a dummy engine on a v4-8 (spot), W&B offline run hm401xup. The log gives "
        "only bytes_in_use_sum (device*/bytes_in_use ~2163 MB each) and no max_total_tokens, so the KV "
        "prediction is unknown (None).",
    ),
    (
        "seed-003-qwen2.5-3b-v4-8-kv-32768", "003_684c2926f6b32c17.txt", "Qwen/Qwen2.5-3B", "Qwen2.5-3B", 4, 32768,
        [
            ("flush_cache_before_kv_drop", None, 8_957_558_784, None, ("params", "kv"), {}),
            ("kv_cache_dropped", None, 6_541_565_952, None, ("params",),
             {"deleted_buffers": 36, "missing_delete_method": 0}),
            ("second_params_ready", "sglang_param_dict2_ready", 12_790_538_240, None, ("params", "second_params"), {}),
            ("kv_cache_rebuilt", None, 15_206_531_072, None, ("params", "second_params", "kv"), {}),
        ],
        {"prompt": "Hello"},
        "KV drop/rebuild, max_total_tokens 32768 ('Fused KV size: 2.25 GB' = 2,415,992,832 B); drop frees "
        "exactly the KV bytes (sum). MLLM-JAX params swapped in; second param set = param_dict2.",
    ),
    (
        "seed-002-qwen2.5-3b-v4-8-kv-131072", "002_a48c8f57d1088576.txt", "Qwen/Qwen2.5-3B", "Qwen2.5-3B", 4, 131072,
        [
            ("engine_ready_dummy", None, 15_912_880_128, None, ("params", "kv"), {}),
            ("flush_cache_before_kv_drop", None, 16_244_695_040, None, ("params", "kv"), {}),
            ("kv_cache_dropped", None, 6_580_944_896, None, ("params",), {"fused_bytes_total": 9_663_750_144}),
            ("second_params_ready", "sglang_param_dict2_ready", 12_829_917_184, None, ("params", "second_params"), {}),
            ("kv_cache_rebuilt", None, 22_493_880_320, None, ("params", "second_params", "kv"),
             {"fused_bytes_total": 9_663_750_144}),
            ("second_params_dropped", "after_drop_param_dict2", 16_244_908_032, None, ("params", "kv"), {}),
        ],
        {"max_new_tokens": 4096, "temperature": 0.0, "same_output": True,
         "output_sha256": "9e9f6b55176c580c914189b3e40c6f80c58a5d2fa3caf41cab0b4b2cdb36b714"},
        "Big KV (max_total_tokens 131072, 'Fused KV size: 9.00 GB' = 9,663,750,144 B), W&B run kja6s32i; "
        "greedy outputs identical before/after the rebuild (determinism/same_output=1).",
    ),
]


def _predict(catalog: str, tp: int, n_tokens: int | None) -> dict[str, int | None]:
    from planner.engine import get_profile, kv_layout, param_bytes_per_device
    from planner.model import load_model_spec

    profile = get_profile(PROFILE)
    spec = load_model_spec(catalog)
    params = int(param_bytes_per_device(spec, tp, profile, dtype="bfloat16"))
    kv = None if n_tokens is None else int(kv_layout(spec, tp, n_tokens, profile, kv_dtype="bfloat16").per_device_bytes)
    return {"params": params, "kv": kv, "second_params": params, "config_hash": spec.config_hash}


def build_seed_records() -> list[CalibrationRecord]:
    """The transcribed records, predictions filled in by the planner (profile bd09a87)."""
    out = []
    for rid, source, model, catalog, tp, n_tokens, phases, extra_knobs, notes in SEEDS:
        pred = _predict(catalog, tp, n_tokens)
        recs = []
        for i, (name, source_name, measured_sum, peak_max, comps, extra) in enumerate(phases):
            pc = {c: pred[c] for c in comps}
            total = None if any(v is None for v in pc.values()) else sum(pc.values())
            recs.append(PhaseRecord(
                name=name, idx=i, source="log", measured_per_device=None, measured_sum=measured_sum,
                peak_max=peak_max, predicted_components=pc, predicted_per_device=total,
                delta_sum=None if total is None else measured_sum - total * NUM_DEVICES,
                source_name=source_name, extra=dict(extra),
            ))
        out.append(CalibrationRecord(
            record_id=rid, created=CREATED[rid], transcribed=True, source=source,
            tpu_type="v4-8", num_devices=NUM_DEVICES, num_hosts=1,
            model={"name": model, "config_hash": pred["config_hash"],
                   "config_hash_of": f"planner/model_configs/{catalog}.json (the log has no config.json)"},
            engine=dict(ENGINE),
            knobs={"tp": tp, "dtype": "bfloat16", "kv_dtype": "bfloat16", "page_size": 1,
                   "max_total_tokens_requested": n_tokens, "max_total_tokens": n_tokens,
                   "mem_fraction_static": None, **extra_knobs},
            phases=tuple(recs), notes=notes,
        ))
    return out


def write_seed_records(directory: str | Path) -> list[Path]:
    """Write (replace) the seed records in ``directory``; return their paths."""
    d = Path(directory)
    paths = []
    for rec in build_seed_records():
        old = d / record_filename(rec)
        if old.exists():
            old.unlink()
        paths.append(write_record_atomic(rec, d))
    return paths


if __name__ == "__main__":
    for p in write_seed_records(sys.argv[1] if len(sys.argv) > 1 else "calibrations"):
        print(p)
