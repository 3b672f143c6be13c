"""The planner applies measured residuals from calibration records, and reports its own error."""

import json
import shutil
from pathlib import Path

import pytest

from planner.accuracy import accuracy_rows
from planner.calibration import load_calibration, residual, serving_residual
from planner.cli import main
from planner.plan import make_plan
from planner.request import PlanRequest

SHIPPED = Path(__file__).resolve().parents[1] / "calibrations"


@pytest.fixture
def records():
    recs, warnings = load_calibration(SHIPPED)
    assert not warnings
    return recs


def test_shipped_seed_records_are_transcribed(records):
    assert len(records) >= 3
    seeds = [r for r in records if r.transcribed]
    assert {r.tpu_type for r in seeds} == {"v4-8"}
    assert all("seed" in r.source or "0" in r.source for r in seeds)


def test_seed_residual_is_the_median_of_measured_minus_predicted(records):
    # Qwen2.5-3B at 32768 tokens: flush_cache_before_kv_drop measured 8,957,558,784 B over 4 devices;
    # predicted params 1,562,243,072 + KV 603,998,208 per device.
    r003 = next(r for r in records if "003" in r.record_id)
    ph = r003.phase("flush_cache_before_kv_drop")
    assert ph.predicted_per_device == 1_562_243_072 + 2_415_992_832 // 4
    assert ph.residual_per_device(4) == [8_957_558_784 // 4 - ph.predicted_per_device] * 4
    res = residual(records, "v4", "bd09a87", "flush_cache_before_kv_drop")
    r002 = next(r for r in records if "002" in r.record_id)
    both = sorted([ph.residual_per_device(4)[0], r002.phase("flush_cache_before_kv_drop").residual_per_device(4)[0]])
    assert res.bytes == (both[0] + both[1]) // 2


def test_plan_adds_residual_only_when_enabled(records):
    req = PlanRequest(workload="infer", model="Qwen2.5-3B", max_total_tokens=32768)
    plain = make_plan(req)
    cal = make_plan(req, records)
    res = serving_residual(records, "v4", "bd09a87")
    assert res is not None
    assert cal.total_bytes == plain.total_bytes + res.bytes
    assert cal.uncalibrated_total_bytes == plain.total_bytes
    assert make_plan(req.with_(calibration=False), records).total_bytes == plain.total_bytes
    # no record for v6e: nothing is applied
    assert make_plan(req.with_(tpu="v6e-8"), records).calibration is None


def test_leave_one_out_never_uses_its_own_record(records):
    rows = accuracy_rows(records)
    assert rows
    for row in rows:
        if row["err_cal"] is not None:
            # the two Qwen2.5-3B runs calibrate each other: errors are equal and opposite
            twin = [r for r in rows if r["phase"] == row["phase"] and r["record"] != row["record"]
                    and r["err_cal"] is not None]
            assert twin and twin[0]["err_cal"] == pytest.approx(-row["err_cal"], abs=1)


def test_corrupt_and_unknown_version_records_are_skipped(tmp_path, capsys, monkeypatch):
    for f in SHIPPED.glob("*.json"):
        shutil.copy(f, tmp_path / f.name)
    (tmp_path / "broken.json").write_text("{ not json")
    good = json.loads(next(SHIPPED.glob("*.json")).read_text())
    (tmp_path / "future.json").write_text(json.dumps({**good, "schema_version": 99}))
    recs, warnings = load_calibration(tmp_path)
    assert len(recs) == len(list(SHIPPED.glob("*.json")))
    assert any("broken.json" in w for w in warnings) and any("future.json" in w for w in warnings)
    monkeypatch.setenv("HBMPLAN_CALIBRATIONS", str(tmp_path))
    code = main(["--workload", "infer", "--model", "Qwen2.5-3B"])
    err = capsys.readouterr().err
    assert code == 0 and "broken.json" in err and "Traceback" not in err


def test_cli_calibrated_and_uncalibrated(capsys):
    assert main(["--workload", "infer", "--model", "Qwen2.5-3B", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["calibration"]["residual_bytes_per_device"] == doc["per_device"]["components"]["calibration.engine_residual"]
    assert doc["per_device"]["uncalibrated_total_bytes"] < doc["per_device"]["total_bytes"]
    assert main(["--workload", "infer", "--model", "Qwen2.5-3B", "--json", "--no-calibration"]) == 0
    doc2 = json.loads(capsys.readouterr().out)
    assert doc2["calibration"] is None
    assert doc2["per_device"]["total_bytes"] == doc["per_device"]["uncalibrated_total_bytes"]


def test_accuracy_command(capsys):
    assert main(["accuracy"]) == 0
    out = capsys.readouterr().out
    assert "leave-one-out" in out and "kv_cache_rebuilt" in out
