"""Calibration records: schema round trip, atomic concurrent writes, tolerant loading, seeds."""

from __future__ import annotations

import json
import multiprocessing as mp
import threading
from pathlib import Path

import pytest

from planner.records import (
    SCHEMA_VERSION,
    CalibrationRecord,
    PhaseRecord,
    RecordError,
    config_hash,
    load_record,
    load_records,
    new_record_id,
    write_record_atomic,
)

SHIPPED = Path(__file__).resolve().parents[1] / "calibrations"


def make_record(i: int = 0, **over) -> CalibrationRecord:
    phases = (
        PhaseRecord(name="jax_ready", idx=0, source="live_arrays", measured_per_device=(0, 0),
                    measured_sum=0, predicted_components={}, predicted_per_device=0, delta_per_device=(0, 0),
                    delta_sum=0),
        PhaseRecord(name="engine_ready_dummy", idx=1, source="memory_stats",
                    measured_per_device=(1000 + i, 1010 + i), measured_sum=2010 + 2 * i,
                    peak_per_device=(2000, 2100), peak_max=2100, limit_per_device=(33_014_415_360,) * 2,
                    measured_components={"params": (600, 600), "kv": (390, 390)},
                    predicted_components={"params": 600, "kv": 390}, predicted_per_device=990,
                    delta_per_device=(10 + i, 20 + i), delta_sum=30 + 2 * i, extra={"elapsed_s": 1.5}),
    )
    fields = dict(record_id=new_record_id(), created="2026-01-22T00:00:00+00:00", transcribed=False,
                  source="hbmvalidate", tpu_type="v4-8", num_devices=2, num_hosts=1,
                  model={"name": "tiny", "config_hash": "ab" * 32},
                  engine={"profile": "0.0.2", "version": "0.0.2", "jax_version": "0.8.1"},
                  knobs={"tp": 2, "max_total_tokens": 256}, phases=phases, notes=f"n{i}")
    fields.update(over)
    return CalibrationRecord(**fields)


def test_round_trip_and_accessors(tmp_path):
    rec = make_record()
    path = write_record_atomic(rec, tmp_path)
    assert path.parent == tmp_path and path.suffix == ".json" and rec.record_id in path.name
    back = load_record(path)
    assert back == rec
    assert json.loads(path.read_text())["schema_version"] == SCHEMA_VERSION
    assert back.engine_profile == "0.0.2" and back.model_name == "tiny"
    ph = back.phase("engine_ready_dummy")
    assert ph.prediction_complete
    assert ph.residual_per_device(2) == [10, 20]
    assert back.phase("jax_ready").residual_per_device(2) == [0, 0]
    assert back.phase("nope") is None
    assert [p.name for p in back.phases] == ["jax_ready", "engine_ready_dummy"]


def test_sum_only_and_incomplete_predictions():
    sum_only = PhaseRecord(name="x", idx=0, source="log", measured_sum=4003, predicted_components={"params": 1000},
                           predicted_per_device=1000)
    assert sum_only.residual_per_device(4) == [0, 0, 0, 0]  # floor(3 / 4)
    unknown = PhaseRecord(name="x", idx=0, source="log", measured_sum=10,
                          predicted_components={"params": 1, "kv": None}, predicted_per_device=None)
    assert not unknown.prediction_complete and unknown.residual_per_device(4) is None


def _write_many(directory: str, n: int, tag: int) -> None:
    for i in range(n):
        write_record_atomic(make_record(tag * 1000 + i), directory)


def test_concurrent_writers_never_corrupt_each_other(tmp_path):
    # Two processes and two threads write at the same moment into one folder.
    procs = [mp.get_context("spawn").Process(target=_write_many, args=(str(tmp_path), 15, t)) for t in (1, 2)]
    threads = [threading.Thread(target=_write_many, args=(str(tmp_path), 15, t)) for t in (3, 4)]
    for w in procs + threads:
        w.start()
    for w in procs + threads:
        w.join(timeout=120)
    assert all(p.exitcode == 0 for p in procs)
    files = sorted(tmp_path.glob("*.json"))
    assert len(files) == 60
    assert not list(tmp_path.glob(".tmp-*"))  # no temp file left behind
    records, warnings = load_records(tmp_path)
    assert warnings == [] and len(records) == 60
    assert len({r.record_id for r in records}) == 60
    assert sorted(r.notes for r in records) == sorted(f"n{t * 1000 + i}" for t in (1, 2, 3, 4) for i in range(15))


def test_same_record_twice_gets_two_files(tmp_path):
    rec = make_record()
    a, b = write_record_atomic(rec, tmp_path), write_record_atomic(rec, tmp_path)
    assert a != b and a.exists() and b.exists()


def test_bad_records_are_skipped_with_a_warning_naming_the_file(tmp_path):
    good = write_record_atomic(make_record(), tmp_path)
    (tmp_path / "corrupt.json").write_text("{not json")
    (tmp_path / "truncated.json").write_text(good.read_text()[:50])
    future = json.loads(good.read_text())
    future["schema_version"] = SCHEMA_VERSION + 1
    (tmp_path / "future.json").write_text(json.dumps(future))
    missing = json.loads(good.read_text())
    del missing["phases"]
    (tmp_path / "missing.json").write_text(json.dumps(missing))
    badtype = json.loads(good.read_text())
    badtype["phases"][1]["measured_per_device"] = ["1000", 2]
    (tmp_path / "badtype.json").write_text(json.dumps(badtype))
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe\x00garbage")
    (tmp_path / ".tmp-record-inflight.json").write_text("{")  # a writer in progress: ignored
    records, warnings = load_records(tmp_path)
    assert [r.record_id for r in records] == [load_record(good).record_id]
    assert len(warnings) == 7
    for name in ("corrupt", "truncated", "future", "missing", "badtype", "list", "binary"):
        assert sum(f"{name}.json" in w for w in warnings) == 1, name
    assert any("schema_version" in w for w in warnings if "future.json" in w)
    with pytest.raises(RecordError, match="corrupt.json"):
        load_record(tmp_path / "corrupt.json")
    # A list of paths works too, including one that does not exist.
    records, warnings = load_records([good, tmp_path / "absent.json"])
    assert len(records) == 1 and len(warnings) == 1 and "absent.json" in warnings[0]


def test_config_hash_matches_the_planner(tmp_path):
    from planner.model import config_hash as planner_hash

    cfg = {"b": 1, "a": [1, 2, {"z": "ü", "y": None}], "hidden_size": 512}
    (tmp_path / "config.json").write_text(json.dumps(cfg, indent=3))
    h = config_hash(cfg)
    assert h == planner_hash(cfg) == config_hash(tmp_path) == config_hash(tmp_path / "config.json")
    assert len(h) == 64 and h != config_hash({**cfg, "b": 2})


def test_records_module_imports_no_third_party_package():
    import ast
    import subprocess
    import sys

    import planner.records as mod

    tree = ast.parse(Path(mod.__file__).read_text())
    roots = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    roots |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert roots <= set(sys.stdlib_module_names) | {"__future__", "planner"}
    code = ("import sys, planner.records as r; r.config_hash({'a': 1}); "
            "bad = [m for m in ('jax', 'numpy', 'pandas', 'wandb') if m in sys.modules]; "
            "sys.exit(1 if bad else 0)")
    assert subprocess.run([sys.executable, "-c", code], cwd=Path(mod.__file__).parents[1]).returncode == 0


def test_shipped_seed_records():
    records, warnings = load_records(SHIPPED)
    assert warnings == []
    seeds = {r.record_id: r for r in records if r.transcribed}
    assert set(seeds) == {"seed-000-qwen3-4b-v4-8-weight-swap", "seed-003-qwen2.5-3b-v4-8-kv-32768",
                          "seed-002-qwen2.5-3b-v4-8-kv-131072"}
    for r in seeds.values():
        assert r.tpu_type == "v4-8" and r.num_devices == 4
        assert r.engine == {"profile": "bd09a87", "version": "0.0.2", "jax_version": "0.8.1",
                            "commit": "bd09a87fc6e86c21ce14edd66948ac5dea3a4360"}
        assert r.source.endswith(".txt") and r.source[:3] in r.record_id
        assert all(p.source == "log" and p.measured_per_device is None for p in r.phases)
    s000 = seeds["seed-000-qwen3-4b-v4-8-weight-swap"]
    assert s000.model_name == "Qwen/Qwen3-4B" and s000.source == "000_349a9e25832b9347.txt"
    assert s000.phase("weights_swapped").measured_sum == 8_652_005_376
    assert s000.phase("weights_swapped").peak_max == 4_187_151_360
    assert s000.phase("generate_result").measured_sum == 9_074_287_616
    assert not s000.phase("generate_result").prediction_complete  # the log gives no max_total_tokens
    for rid, n, kv_total in (("seed-003-qwen2.5-3b-v4-8-kv-32768", 32768, 2_415_992_832),
                             ("seed-002-qwen2.5-3b-v4-8-kv-131072", 131072, 9_663_750_144)):
        r = seeds[rid]
        assert r.knobs["max_total_tokens"] == n
        flush, dropped = r.phase("flush_cache_before_kv_drop"), r.phase("kv_cache_dropped")
        second, rebuilt = r.phase("second_params_ready"), r.phase("kv_cache_rebuilt")
        # The logs' differences: the drop frees exactly the fused KV; the second set adds exactly
        # the predicted params (bd09a87 layout) on each of the 4 devices.
        assert flush.measured_sum - dropped.measured_sum == kv_total
        assert flush.predicted_components["kv"] * 4 == kv_total
        assert second.measured_sum - dropped.measured_sum == 4 * second.predicted_components["second_params"]
        assert second.predicted_components["params"] == 1_562_243_072
        assert second.source_name == "sglang_param_dict2_ready"
        assert rebuilt.predicted_per_device == 2 * 1_562_243_072 + kv_total // 4
    assert seeds["seed-003-qwen2.5-3b-v4-8-kv-32768"].phase("kv_cache_rebuilt").measured_sum == 15_206_531_072
    assert seeds["seed-002-qwen2.5-3b-v4-8-kv-131072"].phase("second_params_dropped").measured_sum == 16_244_908_032


def test_seed_records_regenerate_identically():
    from validator.seeds import build_seed_records

    records, _ = load_records(SHIPPED)
    shipped = {r.record_id: r for r in records if r.transcribed}
    for rec in build_seed_records():
        assert shipped[rec.record_id].to_dict() == rec.to_dict()
