"""hbmtui: the Textual TUI, driven headless with ``App.run_test()`` (80×24 and larger).

Records are written into tmp_path in the ``planner.records`` format: one set predicted by
today's planner (to hold the tables to ``make_plan``), one frozen set with constant bytes (for
the snapshots, so planner changes do not churn them). Async tests run through ``asyncio.run``
(no async pytest plugin needed). Snapshots live in ``tests/__snapshots__/test_tui/``; refresh
them with ``pytest tests/test_tui.py --snapshot-update``.
"""

from __future__ import annotations

import asyncio
import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("textual")

from textual.widgets import DataTable, Input, OptionList, Static  # noqa: E402
from textual.worker import WorkerCancelled, WorkerState  # noqa: E402

from planner.plan import make_plan  # noqa: E402
from planner.records import CalibrationRecord, PhaseRecord, write_record_atomic  # noqa: E402
from planner.request import PlanRequest  # noqa: E402
from planner.tui import data  # noqa: E402
from planner.tui.screens import (  # noqa: E402
    ExplainScreen,
    HbmTui,
    HelpScreen,
    PlanScreen,
    RunScreen,
    RunsScreen,
    parse_form,
)
from planner.units import GiB  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SMALL, LARGE = (80, 24), (120, 40)
LIMIT_V4 = 33_014_415_360

# The engine run the records describe: Qwen2.5-3B on v4-8, tp 4, 32768 KV tokens, bd09a87.
RUN_REQ = PlanRequest(workload="infer", tpu="v4-8", model="Qwen2.5-3B", tp=4, max_total_tokens=32768,
                      engine_version="bd09a87")
# Exact per-device bytes for that run (docs: matched on TPU to the byte), frozen for snapshots.
FROZEN_PARAMS, FROZEN_KV = 1_562_243_072, 603_998_208


def run(coro):
    return asyncio.run(coro)


def cell(table: DataTable, row: int, col: int) -> str:
    return str(table.get_row_at(row)[col])


def text(widget: Static) -> str:
    return str(widget.content)


def _record(record_id: str, created: str, params: int, kv: int, *, transcribed=False) -> CalibrationRecord:
    """A per-device (memory_stats) record, or a transcribed sum-only one, for RUN_REQ."""
    layout = [
        ("engine_ready_dummy", ("params", "kv"), [39_000, 39_000, 39_000, 39_024]),
        ("kv_cache_dropped", ("params",), [20_000, 20_000, 21_000, 20_000]),
        ("second_params_ready", ("params", "second_params"), [83_000_000, 83_000_000, 83_100_000, 83_000_000]),
        ("kv_cache_rebuilt", ("params", "kv", "second_params"), [400_000_000] * 4),
    ]
    part = {"params": params, "second_params": params, "kv": kv}
    phases = []
    for i, (name, comps, extra) in enumerate(layout):
        pc = {c: part[c] for c in comps}
        pred = sum(pc.values())
        m = [pred + e for e in extra]
        if transcribed:
            phases.append(PhaseRecord(name=name, idx=i, source="log", measured_sum=sum(m), predicted_components=pc,
                                      predicted_per_device=pred, delta_sum=sum(m) - 4 * pred))
        else:
            phases.append(PhaseRecord(
                name=name, idx=i, source="memory_stats", measured_per_device=tuple(m), measured_sum=sum(m),
                peak_per_device=tuple(x + 4096 for x in m), peak_max=max(m) + 4096,
                limit_per_device=(LIMIT_V4,) * 4, predicted_components=pc, predicted_per_device=pred,
                delta_per_device=tuple(x - pred for x in m), delta_sum=sum(m) - 4 * pred))
    return CalibrationRecord(
        record_id=record_id, created=created, transcribed=transcribed,
        source="seeds/003" if transcribed else "hbmvalidate", tpu_type="v4-8", num_devices=4, num_hosts=1,
        model={"name": "Qwen2.5-3B", "config_hash": None},
        engine={"profile": "bd09a87", "version": "0.0.2", "jax_version": "0.8.1"},
        knobs={"tp": 4, "dtype": "bfloat16", "kv_dtype": "bfloat16", "page_size": 1,
               "max_total_tokens_requested": 32768, "max_total_tokens": 32768},
        phases=tuple(phases))


def _write_pair(folder: Path, params: int, kv: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_record_atomic(_record("20260123T120000Z-aaaaaaaaaaaa", "2026-01-23T12:00:00+00:00", params, kv), folder)
    write_record_atomic(_record("20260122T083116Z-bbbbbbbbbbbb", "2026-01-22T08:31:16+00:00", params, kv,
                                transcribed=True), folder)
    return folder


@pytest.fixture(scope="module")
def planned() -> dict[str, int]:
    return {c.name: c.bytes for c in make_plan(RUN_REQ).components}


@pytest.fixture
def records_dir(tmp_path, planned) -> Path:
    """Two records whose predictions are today's make_plan numbers."""
    return _write_pair(tmp_path / "calibrations", planned["engine.params"], planned["engine.kv_cache"])


@pytest.fixture
def frozen_cwd(tmp_path, monkeypatch) -> Path:
    """cwd = tmp_path holding calibrations/ with constant bytes (the snapshots show 'calibrations')."""
    _write_pair(tmp_path / "calibrations", FROZEN_PARAMS, FROZEN_KV)
    monkeypatch.chdir(tmp_path)
    return tmp_path


async def _settle(pilot, app, t: float = 0.0) -> None:
    """Let debounce timers fire, then wait until no worker is pending or running.

    Workers in an exclusive group cancel their predecessors; a cancelled one raises
    from ``wait()``, which is expected here, so only live workers are awaited and a
    cancellation is not an error. Any other exception from a worker fails the test.
    """
    await pilot.pause(t)
    for _ in range(100):
        live = [w for w in app.workers if w.state in (WorkerState.PENDING, WorkerState.RUNNING)]
        if not live:
            break
        outcomes = await asyncio.gather(*(w.wait() for w in live), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException) and not isinstance(outcome, WorkerCancelled):
                raise outcome
        await pilot.pause()
    await pilot.pause()


async def _set_field(pilot, screen: PlanScreen, name: str, value: str) -> None:
    """Clear a form field and type ``value`` key by key, as a user would."""
    inp = screen.query_one(f"#f-{name}", Input)
    inp.focus()
    await pilot.pause()
    await pilot.press("end", "ctrl+u")
    if value:
        await pilot.press(*list(value))


# -- runs screen ------------------------------------------------------------------------------------


def test_runs_screen_lists_and_filters(records_dir):
    async def go():
        app = HbmTui([records_dir])
        async with app.run_test(size=SMALL) as pilot:
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, RunsScreen)
            t = screen.query_one("#runs", DataTable)
            assert t.row_count == 2
            # newest first: TPU, model, engine, date, phases, worst Δ, Δ%
            assert [cell(t, 0, i) for i in range(6)] == ["v4-8", "Qwen2.5-3B", "bd09a87", "2026-01-23", "measured",
                                                         "4"]
            assert cell(t, 1, 4) == "transcr"
            worst = next(r for r in screen.shown if not r.transcribed).worst()
            assert worst.name == "kv_cache_rebuilt" and worst.delta == 400_000_000
            assert cell(t, 0, 6) == data.fmt_signed(400_000_000) == "+381.5 MiB"
            assert cell(t, 0, 7) == data.fmt_pct(worst.delta_pct)
            # filter: '/' focuses the Input, typing narrows the rows, esc clears
            await pilot.press("slash")
            assert app.focused.id == "filter"
            await pilot.press(*"01-22")
            await pilot.pause()
            assert t.row_count == 1 and cell(t, 0, 3) == "2026-01-22"
            await pilot.press(*" nomatch")
            await pilot.pause()
            assert t.row_count == 0
            assert "0 of 2 runs" in text(screen.query_one("#runs-status", Static))
            await pilot.press("escape")
            await pilot.pause()
            assert t.row_count == 2 and app.focused is t

    run(go())


def test_shipped_calibrations_open():
    """The repository's calibrations/ (if any are shipped): every readable record is a row."""
    from planner.records import load_records

    folder = REPO / "calibrations"
    recs, _ = load_records(folder) if folder.is_dir() else ([], [])
    logs = sorted(folder.glob("*.jsonl")) if folder.is_dir() else []

    async def go():
        app = HbmTui([folder])
        async with app.run_test(size=SMALL) as pilot:
            await pilot.pause()
            t = app.screen.query_one("#runs", DataTable)
            assert t.row_count >= len(recs)
            assert t.row_count <= len(recs) + len(logs)
            if t.row_count:  # open the newest and check its predicted column against the record
                await pilot.press("enter")
                await pilot.pause()
                assert isinstance(app.screen, RunScreen)
                r = app.screen.run
                ph = app.screen.query_one("#phases", DataTable)
                for i, p in enumerate(r.phases):
                    assert cell(ph, i, 1).rstrip("*") == data.fmt_gib3(p.predicted)

    run(go())


# -- run screen: tables against the planner -------------------------------------------------------


def test_run_screen_matches_planner(records_dir, planned):
    params, kv = planned["engine.params"], planned["engine.kv_cache"]
    expected = {"engine_ready_dummy": params + kv, "kv_cache_dropped": params,
                "second_params_ready": 2 * params, "kv_cache_rebuilt": 2 * params + kv}

    async def go():
        app = HbmTui([records_dir])
        async with app.run_test(size=SMALL) as pilot:
            await pilot.pause()
            await pilot.press("enter")  # newest: the per-device record
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, RunScreen) and not screen.run.transcribed
            t = screen.query_one("#phases", DataTable)
            assert t.row_count == 4
            for i, p in enumerate(screen.run.phases):
                assert p.predicted == expected[p.name]  # the record holds the planner's bytes
                assert cell(t, i, 0) == p.name
                assert cell(t, i, 1) == f"{expected[p.name] / GiB:.3f}"
                assert cell(t, i, 2) == f"{p.measured / GiB:.3f}"
                assert cell(t, i, 3) == data.fmt_signed(p.measured - expected[p.name])
            # measured = the largest device; Δ% coloured by size
            p2 = screen.run.phases[2]
            assert p2.measured == 2 * params + 83_100_000
            assert cell(t, 2, 4) == data.fmt_pct(100 * 83_100_000 / (2 * params))
            assert data.severity(p2.delta_pct) == "warn"
            assert data.severity(screen.run.phases[0].delta_pct) == "ok"

            # explain tab: the planner's components for the run's config, to the byte
            await pilot.press("4")
            await pilot.pause()
            e = screen.query_one("#explain", DataTable)
            assert screen.query_one("#run-tabs").active == "tab-explain"
            shown = {cell(e, i, 0): cell(e, i, 1) for i in range(e.row_count)}
            for name, b in planned.items():
                assert shown[name] == f"{b:,}"
            assert cell(e, 0, 3) == "="  # the record's params equal today's planner
            detail = text(screen.query_one("#explain-detail", Static))
            comp = make_plan(RUN_REQ).components[0]
            assert comp.formula in detail and f"{comp.bytes:,}" in detail
            await pilot.press("enter")  # full explanation in a modal
            await pilot.pause()
            assert isinstance(app.screen, ExplainScreen) and app.screen.comp.name == comp.name
            await pilot.press("escape")
            await pilot.pause()
            assert app.screen is screen

            # devices tab: min/max spread, and the drill-down follows the highlighted phase
            await pilot.press("3")
            await pilot.pause()
            s = screen.query_one("#dev-summary", DataTable)
            assert cell(s, 2, 3) == data.fmt_signed(100_000).lstrip("+") and cell(s, 2, 4) == "2"
            await pilot.press("down", "down")
            await pilot.pause()
            d = screen.query_one("#dev-detail", DataTable)
            assert screen.device_phase.name == "second_params_ready"
            assert [cell(d, i, 1) for i in range(4)] == [f"{2 * params + x:,}" for x in
                                                         (83_000_000, 83_000_000, 83_100_000, 83_000_000)]

            # bars tab: one bar per phase against the per-device limit
            await pilot.press("2")
            await pilot.pause()
            bars = str(screen.query_one("#bars").render())
            assert "limit 30.75 GiB/device" in bars
            assert all(p.name in bars for p in screen.run.phases)

            await pilot.press("escape")
            await pilot.pause()
            assert isinstance(app.screen, RunsScreen)

    run(go())


def test_transcribed_run_and_larger_terminal(records_dir, planned):
    """A sum-only (transcribed) record at 120×40: measured = mean per device, marked '~'."""
    async def go():
        app = HbmTui([records_dir])
        async with app.run_test(size=LARGE) as pilot:
            await pilot.pause()
            await pilot.press("down", "enter")
            await pilot.pause()
            screen = app.screen
            assert screen.run.transcribed
            t = screen.query_one("#phases", DataTable)
            p0 = screen.run.phases[0]
            assert p0.sum_only and p0.measured == p0.measured_sum // 4
            assert cell(t, 0, 2) == f"{p0.measured / GiB:.3f}~"
            await pilot.press("2")
            await pilot.pause()
            bars = str(screen.query_one("#bars").render()).splitlines()
            assert max(len(line) for line in bars) > 100  # bars use the wider terminal
            await pilot.press("3")
            await pilot.pause()
            assert cell(screen.query_one("#dev-summary", DataTable), 0, 3) == "sum only"

    run(go())


# -- plan screen -------------------------------------------------------------------------------------


def test_plan_design_card_oom_then_fits():
    """v4-8, Qwen2.5-7B, rl, bs 32, len 1024 is OOM; bs 1 fits. Typed into the form, debounced."""
    card = PlanRequest(tpu="v4-8", model="Qwen2.5-7B", workload="rl", bs=32, len=1024)
    expected = make_plan(card)
    assert expected.verdict == "oom"

    async def go():
        app = HbmTui([], start="plan")
        async with app.run_test(size=SMALL) as pilot:
            await _settle(pilot, app)
            screen = app.screen
            assert isinstance(screen, PlanScreen)
            # the form opens on the design card; retype bs as a user would
            assert {n: screen.query_one(f"#f-{n}", Input).value for n in ("tpu", "model", "workload", "len")} == {
                "tpu": "v4-8", "model": "Qwen2.5-7B", "workload": "rl", "len": "1024"}
            await _set_field(pilot, screen, "bs", "32")
            await _settle(pilot, app, PlanScreen.DEBOUNCE_S + 0.15)
            assert screen.plan.verdict == "oom"
            assert "OOM" in text(screen.query_one("#verdict", Static))
            t = screen.query_one("#breakdown", DataTable)
            for i, c in enumerate(expected.components):
                assert cell(t, i, 0) == c.name
                assert cell(t, i, 1) == f"{c.bytes / GiB:.3f}" + ("" if c.exact else "≈")
            n = len(expected.components)
            assert cell(t, n, 1) == f"{expected.total_bytes / GiB:.3f}"
            assert cell(t, n + 2, 1) == f"{expected.headroom_bytes / GiB:.3f}"

            await _set_field(pilot, screen, "bs", "1")
            await _settle(pilot, app, PlanScreen.DEBOUNCE_S + 0.15)
            assert screen.plan.request.bs == 1
            assert screen.plan.verdict == "fits" == make_plan(card.with_(bs=1)).verdict
            assert "FITS" in text(screen.query_one("#verdict", Static))

    run(go())


def test_plan_bad_input_shows_error_line():
    async def go():
        app = HbmTui([], start="plan")
        async with app.run_test(size=SMALL) as pilot:
            await _settle(pilot, app)
            screen = app.screen
            good = screen.plan
            err = screen.query_one("#plan-error", Static)
            await _set_field(pilot, screen, "bs", "3x")
            await _settle(pilot, app, PlanScreen.DEBOUNCE_S + 0.15)
            assert text(err) == "✘ --bs must be an integer, got '3x'"
            assert screen.plan is good and screen.query_one("#result").has_class("stale")
            screen.query_one("#f-bs", Input).value = "32"  # programmatic edits go the same way
            screen.query_one("#f-tpu", Input).value = "v9-8"
            await _settle(pilot, app, PlanScreen.DEBOUNCE_S + 0.15)
            assert "unknown TPU type 'v9-8'" in text(err)
            screen.query_one("#f-tpu", Input).value = ""
            await _settle(pilot, app, PlanScreen.DEBOUNCE_S + 0.15)
            assert "--tpu is required" in text(err)
            await _set_field(pilot, screen, "tpu", "v5p-8")
            await _settle(pilot, app, PlanScreen.DEBOUNCE_S + 0.15)
            assert text(err) == "" and not screen.query_one("#result").has_class("stale")
            assert screen.plan.slice.name == "v5p-8"
            assert app.is_running

    run(go())


def test_parse_form_errors():
    base = PlanRequest()
    ok = {"tpu": "v4-8", "model": "Qwen2.5-7B", "workload": "rl", "bs": "32", "len": "", "mem_fraction_static": "0.4"}
    req = parse_form(ok, base)
    assert req.bs == 32 and req.len == 1024 and req.mem_fraction_static == 0.4 and req.tp is None
    from planner.errors import PlanError

    with pytest.raises(PlanError, match="--mem-fraction-static must be a number"):
        parse_form({**ok, "mem_fraction_static": "half"}, base)
    with pytest.raises(PlanError, match="--max-total-tokens must be an integer"):
        parse_form({**ok, "max_total_tokens": "1e4"}, base)


def test_suggestion_applies_to_form():
    async def go():
        app = HbmTui([], start="plan")
        async with app.run_test(size=(100, 30)) as pilot:
            await _settle(pilot, app, 0.1)
            screen = app.screen
            assert screen.plan.verdict == "oom"
            usable = [i for i, s in enumerate(screen.suggestions) if s.request is not None]
            if not usable:
                pytest.skip("planner.suggest offers nothing for the design card")
            i = usable[0]
            s = screen.suggestions[i].request
            ol = screen.query_one("#suggestions", OptionList)
            ol.focus()
            ol.highlighted = i
            await pilot.press("enter")
            await _settle(pilot, app, PlanScreen.DEBOUNCE_S + 0.15)
            assert screen.base == s
            assert screen.plan.request == s
            assert screen.plan.verdict == make_plan(s).verdict
            assert screen.query_one("#f-tpu", Input).value == s.tpu

    run(go())


# -- bad files, logs ------------------------------------------------------------------------------


def test_malformed_files_are_skipped_with_a_visible_warning(records_dir):
    (records_dir / "broken.json").write_text("{not json")
    bad = json.loads(next(records_dir.glob("*.json")).read_text())
    bad["schema_version"] = 99
    (records_dir / "future.json").write_text(json.dumps(bad))
    del bad["phases"]
    bad["schema_version"] = 1
    (records_dir / "nophases.json").write_text(json.dumps(bad))

    async def go():
        app = HbmTui([records_dir])
        async with app.run_test(size=SMALL) as pilot:
            await pilot.pause()
            screen = app.screen
            assert screen.query_one("#runs", DataTable).row_count == 2
            w = screen.query_one("#warnings", Static)
            assert w.display and w.region.height > 0
            msg = text(w)
            assert "3 problems" in msg
            assert "broken.json" in msg and "future.json" in msg and "nophases.json" in msg
            assert "schema_version" in msg and "phases" in msg
            assert any("broken.json" in m for m in app.messages)  # also a toast

    run(go())


def _phase_obj(name: str, idx: int, used: list[int], pred: dict[str, int | None]) -> dict:
    total = None if any(v is None for v in pred.values()) else sum(pred.values())
    return {
        "phase": name, "phase_idx": idx, "elapsed_s": 1.0, "phase_elapsed_s": 0.5, "process_index": 0,
        "memory": {"source": "memory_stats", "devices": [
            {"index": j, "id": j, "process_index": 0, "kind": "TPU v4", "bytes_in_use": u,
             "peak_bytes_in_use": u + 1, "bytes_limit": LIMIT_V4, "largest_free_block_bytes": None}
            for j, u in enumerate(used)], "bytes_in_use_sum": sum(used), "peak_bytes_in_use_max": max(used) + 1,
            "process_rss_bytes": 1},
        "components": {"params": [pred.get("params") or 0] * len(used), "kv": [pred.get("kv") or 0] * len(used)},
        "predicted": {"components": pred, "total": total, "profile": "bd09a87"},
        "info": {"accelerator_type": "v4-8", "device_count": len(used)} if idx == 0 else {},
        "checks": [],
    }


def test_validator_jsonl_log(tmp_path, planned):
    params, kv = planned["engine.params"], planned["engine.kv_cache"]
    lines = [
        _phase_obj("jax_ready", 0, [0, 0, 0, 0], {}),
        _phase_obj("engine_ready_dummy", 1, [params + kv + 100] * 4, {"params": params, "kv": kv}),
        _phase_obj("kv_cache_dropped", 2, [params + 50] * 4, {"params": params}),
    ]
    log = tmp_path / "v.jsonl"
    text_lines = [json.dumps(o) for o in lines]
    text_lines.insert(2, "not json at all")
    text_lines.append(json.dumps({"summary": {"columns": [], "rows": []}, "ok": True, "num_devices": 4}))
    log.write_text("\n".join(text_lines) + "\n")

    runs, warnings = data.load_runs([log])
    assert len(runs) == 1 and any("v.jsonl:3" in w for w in warnings)
    r = runs[0]
    assert r.kind == "log" and r.tpu == "v4-8" and r.engine_profile == "bd09a87" and r.num_devices == 4
    assert [p.name for p in r.phases] == ["jax_ready", "engine_ready_dummy", "kv_cache_dropped"]
    assert r.phases[1].predicted == params + kv and r.phases[1].delta == 100
    assert r.phases[1].limit == LIMIT_V4 and r.phases[1].measured_components["params"] == (params,) * 4
    assert r.worst().name == "engine_ready_dummy"

    async def go():
        app = HbmTui([log])
        async with app.run_test(size=SMALL) as pilot:
            await pilot.pause()
            await pilot.press("enter")
            await pilot.pause()
            t = app.screen.query_one("#phases", DataTable)
            assert t.row_count == 3 and cell(t, 1, 3) == "+100 B"
            await pilot.press("4")  # no model in the log: explain says why instead of crashing
            await pilot.pause()
            assert "cannot rebuild" in text(app.screen.query_one("#explain-detail", Static))

    run(go())


# -- export, help, theme ---------------------------------------------------------------------------


def test_export_markdown_and_csv(records_dir, tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.chdir(out)
    plan = make_plan(PlanRequest(bs=32))

    async def go():
        app = HbmTui([records_dir])
        async with app.run_test(size=SMALL) as pilot:
            await pilot.pause()
            await pilot.press("ctrl+o")
            await pilot.pause()
            md = app.last_export
            assert md is not None and md.parent == out and md.suffix == ".md"
            assert any(str(md) in m for m in app.messages)
            body = md.read_text()
            assert "| run | file | tpu |" in body and body.count("| v4-8 |") == 2
            await pilot.press("enter", "4")  # run → explain tab → export the planner components
            await pilot.pause()
            await pilot.press("ctrl+b")
            await pilot.pause()
            rows = list(csv.DictReader(app.last_export.open()))
            assert {r["component"]: int(r["bytes"]) for r in rows} == {
                c.name: c.bytes for c in make_plan(RUN_REQ).components + make_plan(RUN_REQ).host}
            await pilot.press("escape", "p")  # plan screen (defaults = the design card)
            await _settle(pilot, app, 0.1)
            await pilot.press("ctrl+b")
            await pilot.pause()
            rows = list(csv.DictReader(app.last_export.open()))
            got = {r["component"]: int(r["bytes"]) for r in rows}
            assert got == {**{c.name: c.bytes for c in plan.components}, "total": plan.total_bytes,
                           "limit": plan.limit_bytes, "headroom": plan.headroom_bytes}

    run(go())


def test_help_theme_and_keys(records_dir):
    async def go():
        app = HbmTui([records_dir])
        async with app.run_test(size=SMALL) as pilot:
            await pilot.pause()
            assert app.theme == "textual-dark"
            await pilot.press("question_mark")
            await pilot.pause()
            assert isinstance(app.screen, HelpScreen)
            assert "ctrl+t" in text(app.screen.query_one("#help-text", Static))
            await pilot.press("escape")
            await pilot.pause()
            assert isinstance(app.screen, RunsScreen)
            await pilot.press("ctrl+t")
            await pilot.pause()
            assert app.theme == "textual-light"
            await pilot.press("enter", "2")  # run screen restyles in the light theme
            await pilot.pause()
            await pilot.press("p")  # plan this run's config
            await _settle(pilot, app, 0.1)
            screen = app.screen
            assert isinstance(screen, PlanScreen)
            assert screen.plan.request.workload == "infer" and screen.plan.request.max_total_tokens == 32768
            assert screen.query_one("#f-tp", Input).value == "4"
            await pilot.press("ctrl+t")
            await pilot.pause()
            assert app.theme == "textual-dark"
            await pilot.press("f1")  # '?' is typed into inputs, f1 always opens help
            await pilot.pause()
            assert isinstance(app.screen, HelpScreen)
            await pilot.press("escape", "escape", "escape")
            await pilot.pause()
            assert isinstance(app.screen, RunsScreen)

    run(go())


def test_default_paths_and_cli(tmp_path, monkeypatch):
    from planner.tui import app as tui_app

    assert data.default_paths(tmp_path) == [REPO / "calibrations"]
    (tmp_path / "calibrations").mkdir()
    assert data.default_paths(tmp_path) == [tmp_path / "calibrations"]
    with pytest.raises(SystemExit) as e:
        tui_app.main(["--help"])
    assert e.value.code == 0
    assert tui_app.HbmTui is HbmTui


def test_no_jax_import():
    """The TUI, the planner and the suggestions never import jax (checked in a fresh process)."""
    code = (
        "import asyncio, sys\n"
        "from planner.tui.app import main\n"
        "from planner.tui.screens import HbmTui\n"
        "async def go():\n"
        "    app = HbmTui([], start='plan')\n"
        "    async with app.run_test(size=(80, 24)) as pilot:\n"
        "        await pilot.pause(0.2)\n"
        "        await app.workers.wait_for_complete()\n"
        "asyncio.run(go())\n"
        "bad = sorted(m for m in sys.modules if m == 'jax' or m.startswith(('jax.', 'jaxlib')))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=60)


# -- snapshots ---------------------------------------------------------------------------------------


def test_snapshot_runs(frozen_cwd, snap_compare):
    assert snap_compare(HbmTui(["calibrations"]), terminal_size=SMALL)


def test_snapshot_run_phases(frozen_cwd, snap_compare):
    assert snap_compare(HbmTui(["calibrations"]), press=["enter"], terminal_size=SMALL)


def test_snapshot_plan_design_card(frozen_cwd, snap_compare):
    async def before(pilot):
        await _settle(pilot, pilot.app, 0.1)

    assert snap_compare(HbmTui(["calibrations"], start="plan"), terminal_size=SMALL, run_before=before)
