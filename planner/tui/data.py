"""Runs for the TUI: calibration records and validator JSONL logs, read defensively.

A *run* is one measured lifecycle (one record file, or one validator log). Each run holds
phases; each phase has the bytes per device the run measured and the bytes the planner
predicted. Calibration records are read through :mod:`planner.records`; validator logs
(one JSON object per line, phases carrying a ``"phase"`` key) are read here, field by field,
tolerating missing pieces. Nothing here imports jax or textual.

Bytes are ``int`` everywhere; formatting is for display only.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from planner.errors import PlanError
from planner.units import GiB, KiB, MiB

from planner.records import PHASE_ALIASES, PHASE_COMPONENTS

#: record component key -> the planner Component it is predicted by.
COMPONENT_TO_PLAN = {"params": "engine.params", "second_params": "engine.params", "kv": "engine.kv_cache"}

# -- formatting -------------------------------------------------------------------------------------


def fmt_gib3(n: int | None) -> str:
    return "—" if n is None else f"{n / GiB:.3f}"


def fmt_bytes(n: int | None) -> str:
    return "—" if n is None else f"{n:,}"


def fmt_signed(n: int | None) -> str:
    """A signed, human-sized byte delta: '+38.5 KiB', '-1.20 GiB', '0 B'."""
    if n is None:
        return "—"
    if n == 0:
        return "0 B"
    sign = "+" if n > 0 else "-"
    a = abs(n)
    if a >= GiB:
        return f"{sign}{a / GiB:.2f} GiB"
    if a >= MiB:
        return f"{sign}{a / MiB:.1f} MiB"
    if a >= KiB:
        return f"{sign}{a / KiB:.1f} KiB"
    return f"{sign}{a} B"


def fmt_pct(p: float | None) -> str:
    return "—" if p is None else f"{p:+.2f}%"


def severity(pct: float | None) -> str:
    """'ok' (|Δ| < 1 %), 'warn' (< 5 %), 'bad' (≥ 5 %) or 'none' (no prediction/measure)."""
    if pct is None:
        return "none"
    a = abs(pct)
    return "ok" if a < 1.0 else "warn" if a < 5.0 else "bad"


# -- view model -----------------------------------------------------------------------------------


@dataclass
class PhaseView:
    """One phase of one run, per device. ``predicted_by`` says who predicted it."""

    name: str
    idx: int
    source: str
    num_devices: int
    measured_per_device: tuple[int | None, ...] | None = None
    measured_sum: int | None = None
    predicted: int | None = None
    predicted_components: dict[str, int | None] = field(default_factory=dict)
    measured_components: dict[str, tuple[int, ...]] = field(default_factory=dict)
    peak_per_device: tuple[int | None, ...] | None = None
    limit_per_device: tuple[int | None, ...] | None = None
    source_name: str | None = None
    predicted_by: str = "record"

    @property
    def per_device(self) -> list[int] | None:
        """Measured bytes of every device, or None when some device (or all) was not measured."""
        m = self.measured_per_device
        if m and None not in m:
            return [int(x) for x in m]
        return None

    @property
    def sum_only(self) -> bool:
        return self.per_device is None and self.measured_sum is not None

    @property
    def measured(self) -> int | None:
        """The device that matters: the largest per-device measure, else the mean of the sum."""
        pd = self.per_device
        if pd:
            return max(pd)
        if self.measured_sum is not None and self.num_devices > 0:
            return self.measured_sum // self.num_devices
        return None

    @property
    def delta(self) -> int | None:
        if self.measured is None or self.predicted is None:
            return None
        return self.measured - self.predicted

    @property
    def delta_pct(self) -> float | None:
        d = self.delta
        if d is None or not self.predicted:
            return None
        return 100.0 * d / self.predicted

    @property
    def limit(self) -> int | None:
        lims = [x for x in (self.limit_per_device or ()) if x]
        return min(lims) if lims else None

    def device_rows(self) -> list[tuple[int, int | None, int | None, int | None, int | None]]:
        """(device, measured, Δ vs predicted, peak, limit) per device."""
        n = max(self.num_devices, len(self.measured_per_device or ()))
        rows = []
        for i in range(n):
            m = _at(self.measured_per_device, i)
            d = None if m is None or self.predicted is None else m - self.predicted
            rows.append((i, m, d, _at(self.peak_per_device, i), _at(self.limit_per_device, i)))
        return rows


def _at(seq, i):
    if seq is None or i >= len(seq):
        return None
    return seq[i]


@dataclass
class RunView:
    """One measured run: identity, knobs and phases."""

    key: str
    path: Path
    kind: str  # "record" or "log"
    tpu: str
    model: str
    engine_profile: str
    engine_version: str
    created: str
    num_devices: int
    num_hosts: int = 1
    knobs: dict[str, Any] = field(default_factory=dict)
    phases: list[PhaseView] = field(default_factory=list)
    transcribed: bool = False
    source: str = ""
    notes: str = ""
    warnings: list[str] = field(default_factory=list)

    @property
    def date(self) -> str:
        return self.created[:10] if self.created else "—"

    @property
    def engine_label(self) -> str:
        return self.engine_profile or self.engine_version or "—"

    def worst(self) -> PhaseView | None:
        """The phase with the largest |measured − predicted| per device."""
        cands = [p for p in self.phases if p.delta is not None and p.predicted]
        return max(cands, key=lambda p: abs(p.delta)) if cands else None

    def search_text(self) -> str:
        return " ".join([self.key, self.path.name, self.tpu, self.model, self.engine_label,
                         self.engine_version, self.created, self.source, self.kind]).lower()


# -- calibration records ----------------------------------------------------------------------------


def _tuple_or_none(v) -> tuple | None:
    if v is None:
        return None
    try:
        return tuple(v)
    except TypeError:
        return None


def run_from_record(rec: Any, path: Path) -> RunView:
    """A :class:`planner.records.CalibrationRecord` (or anything shaped like it) as a run."""
    n = int(getattr(rec, "num_devices", 1) or 1)
    phases = []
    for i, p in enumerate(getattr(rec, "phases", ()) or ()):
        pc = dict(getattr(p, "predicted_components", {}) or {})
        pred = getattr(p, "predicted_per_device", None)
        if pred is None and pc and all(v is not None for v in pc.values()):
            pred = sum(pc.values())
        phases.append(PhaseView(
            name=str(getattr(p, "name", f"phase{i}")),
            idx=int(getattr(p, "idx", i) if getattr(p, "idx", None) is not None else i),
            source=str(getattr(p, "source", "")),
            num_devices=n,
            measured_per_device=_tuple_or_none(getattr(p, "measured_per_device", None)),
            measured_sum=getattr(p, "measured_sum", None),
            predicted=pred,
            predicted_components=pc,
            measured_components={k: tuple(v) for k, v in (getattr(p, "measured_components", {}) or {}).items()},
            peak_per_device=_tuple_or_none(getattr(p, "peak_per_device", None)),
            limit_per_device=_tuple_or_none(getattr(p, "limit_per_device", None)),
            source_name=getattr(p, "source_name", None),
        ))
    model = getattr(rec, "model", {}) or {}
    engine = getattr(rec, "engine", {}) or {}
    return RunView(
        key=str(getattr(rec, "record_id", path.stem)),
        path=path,
        kind="record",
        tpu=str(getattr(rec, "tpu_type", "?")),
        model=str(model.get("name", "?")) if isinstance(model, dict) else str(model),
        engine_profile=str(engine.get("profile", "") or "") if isinstance(engine, dict) else str(engine),
        engine_version=str(engine.get("version", "") or "") if isinstance(engine, dict) else "",
        created=str(getattr(rec, "created", "") or ""),
        num_devices=n,
        num_hosts=int(getattr(rec, "num_hosts", 1) or 1),
        knobs=dict(getattr(rec, "knobs", {}) or {}),
        phases=phases,
        transcribed=bool(getattr(rec, "transcribed", False)),
        source=str(getattr(rec, "source", "")),
        notes=str(getattr(rec, "notes", "") or ""),
    )


def _strip_path(msg: str, path: Path) -> str:
    for prefix in (f"{path}: ", f"{path.name}: "):
        if msg.startswith(prefix):
            return msg[len(prefix):]
    return msg


def load_record_file(path: Path) -> RunView:
    """Read one calibration record; raise ValueError (without the path) when it is unusable."""
    try:
        from planner import records
    except ImportError:  # pragma: no cover - records.py ships with the planner
        records = None
    if records is not None and hasattr(records, "load_record"):
        try:
            rec = records.load_record(path)
        except ValueError as e:
            raise ValueError(_strip_path(str(e), path)) from None
        return run_from_record(rec, path)
    try:  # pragma: no cover
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"cannot read record: {e}") from None
    return _run_from_loose_dict(data, path)  # pragma: no cover


def _run_from_loose_dict(d: Any, path: Path) -> RunView:  # pragma: no cover - fallback only
    if not isinstance(d, dict) or not isinstance(d.get("phases"), list):
        raise ValueError("not a calibration record (no phases list)")

    class _P:
        def __init__(self, pd):
            for k, v in pd.items():
                setattr(self, k, v)

    class _R:
        pass

    r = _R()
    for k, v in d.items():
        setattr(r, k, v)
    r.phases = [_P(p) for p in d["phases"] if isinstance(p, dict)]
    return run_from_record(r, path)


# -- validator JSONL logs ----------------------------------------------------------------------------


def _walk(obj: Any, depth: int = 3):
    """Yield obj and its nested dicts (breadth first, bounded depth)."""
    level = [obj]
    for _ in range(depth + 1):
        nxt = []
        for o in level:
            if isinstance(o, dict):
                yield o
                nxt.extend(v for v in o.values() if isinstance(v, dict))
        level = nxt


def _first(obj: Any, keys: Iterable[str], pred=lambda v: v is not None):
    for d in _walk(obj):
        for k in keys:
            if k in d and pred(d[k]):
                return d[k]
    return None


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _int_list(v) -> tuple[int | None, ...] | None:
    if not isinstance(v, (list, tuple)) or not v:
        return None
    if not all(x is None or _is_int(x) for x in v):
        return None
    return tuple(v)


def _devices_field(obj: Any, key: str) -> tuple[int | None, ...] | None:
    devs = _first(obj, ("devices",), lambda v: isinstance(v, list) and v and all(isinstance(x, dict) for x in v))
    if not devs:
        return None
    devs = sorted(devs, key=lambda x: x.get("index", 0) if _is_int(x.get("index", 0)) else 0)
    vals = [x.get(key) for x in devs]
    if all(v is None for v in vals) or not all(v is None or _is_int(v) for v in vals):
        return None
    return tuple(vals)


def _phase_from_log(obj: dict, idx: int, n_devices: int | None) -> PhaseView:
    raw_name = str(obj["phase"])
    name = PHASE_ALIASES.get(raw_name, raw_name)
    per_dev = _int_list(_first(obj, ("measured_per_device", "bytes_in_use_per_device", "bytes_in_use"),
                               lambda v: isinstance(v, list)))
    if per_dev is None:
        per_dev = _devices_field(obj, "bytes_in_use")
    msum = _first(obj, ("measured_sum", "bytes_in_use_sum"), _is_int)
    n = n_devices or (len(per_dev) if per_dev else 0) or 1
    pred = _first(obj, ("predicted_per_device",), _is_int)
    pc_raw = _first(obj, ("predicted_components",), lambda v: isinstance(v, dict))
    p = obj.get("predicted")
    if isinstance(p, dict) and isinstance(p.get("components"), dict):  # hbmvalidate's phase object
        pc_raw = pc_raw or p["components"]
        if pred is None and _is_int(p.get("total")):
            pred = p["total"]
    elif _is_int(p) and pred is None:
        pred = p
    elif isinstance(p, dict) and pc_raw is None:
        pc_raw = p
    pc = {str(k): (v if _is_int(v) else None) for k, v in (pc_raw or {}).items()}
    if pred is None and pc and all(v is not None for v in pc.values()):
        pred = sum(pc.values())
    mc_raw = _first(obj, ("measured_components",), lambda v: isinstance(v, dict))
    if mc_raw is None and isinstance(obj.get("components"), dict):
        mc_raw = obj["components"]
    mc = {str(k): tuple(v) for k, v in (mc_raw or {}).items() if _int_list(v) is not None and None not in v}
    peak = _int_list(_first(obj, ("peak_per_device",), lambda v: isinstance(v, list))) or \
        _devices_field(obj, "peak_bytes_in_use")
    limit = _int_list(_first(obj, ("limit_per_device",), lambda v: isinstance(v, list))) or \
        _devices_field(obj, "bytes_limit")
    source = obj.get("source") if isinstance(obj.get("source"), str) else \
        (_first(obj, ("source",), lambda v: isinstance(v, str)) or "log")
    pidx = obj.get("phase_idx", obj.get("idx"))
    return PhaseView(
        name=name, idx=pidx if _is_int(pidx) else idx, source=source, num_devices=n, measured_per_device=per_dev,
        measured_sum=msum if msum is not None else (sum(per_dev) if per_dev and None not in per_dev else None),
        predicted=pred, predicted_components=pc, measured_components=mc, peak_per_device=peak,
        limit_per_device=limit, source_name=raw_name if raw_name != name else None,
        predicted_by="log" if pred is not None or pc else "none",
    )


def load_log_file(path: Path) -> RunView:
    """Read a validator JSONL log. Bad lines are skipped (and listed in ``run.warnings``)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"cannot read log: {e}") from None
    objs, warnings = [], []
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            o = json.loads(line)
        except json.JSONDecodeError as e:
            warnings.append(f"{path.name}:{i}: skipped line that is not JSON ({e.msg})")
            continue
        if isinstance(o, dict):
            objs.append(o)
    phase_objs = [o for o in objs if isinstance(o.get("phase"), str) and o.get("phase")]
    if not phase_objs:
        raise ValueError("no phase objects (lines with a \"phase\" key) in the log")

    def meta(keys, pred=lambda v: v is not None and v != ""):
        for o in objs:
            v = _first(o, keys, pred)
            if v is not None:
                return v
        return None

    model = meta(("model", "model_name", "model_path"))
    if isinstance(model, dict):
        model = model.get("name") or model.get("path") or "?"
    engine = meta(("engine",), lambda v: isinstance(v, dict))
    profile = meta(("engine_profile", "profile"), lambda v: isinstance(v, str) and v) or ""
    version = meta(("engine_version", "sglang_jax_version"), lambda v: isinstance(v, str) and v) or ""
    if engine:
        profile = str(engine.get("profile") or profile)
        version = str(engine.get("version") or version)
    n_global = meta(("num_devices", "device_count"), _is_int)
    knobs = dict(meta(("knobs",), lambda v: isinstance(v, dict)) or {})
    for k in ("tp", "max_total_tokens", "max_total_tokens_requested", "mem_fraction_static", "dtype",
              "kv_dtype", "page_size", "context_length", "max_running_requests"):
        if k not in knobs:
            v = meta((k,), lambda v: isinstance(v, (int, float, str)) and not isinstance(v, bool))
            if v is not None:
                knobs[k] = v
    created = meta(("created", "time_utc", "timestamp", "time", "date"), lambda v: isinstance(v, str) and v)
    tpu = meta(("tpu_type", "accelerator_type", "tpu"), lambda v: isinstance(v, str) and v)
    # hbmvalidate logs name their calibration record: borrow what the log itself lacks
    saved = next((o["path"] for o in objs if o.get("event") == "calibration_saved"
                  and isinstance(o.get("path"), str)), None)
    rec = None
    if saved and (model is None or created is None):
        for cand in (Path(saved), path.parent / Path(saved).name):
            try:
                rec = load_record_file(cand) if cand.is_file() else None
            except ValueError:
                rec = None
            if rec is not None:
                break
    if rec is not None:
        model = model or rec.model
        tpu = tpu or rec.tpu
        profile = profile or rec.engine_profile
        version = version or rec.engine_version
        knobs = {**rec.knobs, **knobs}
        created = created or rec.created
    if not created:
        try:
            from datetime import datetime, timezone

            created = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc).isoformat(timespec="seconds")
        except OSError:
            created = ""
    phases = [_phase_from_log(o, i, None) for i, o in enumerate(phase_objs)]
    # per-device lists are this host's devices; the run's device count is what was measured
    n = max((len(p.measured_per_device or ()) for p in phases), default=0) or n_global or 1
    for p in phases:
        p.num_devices = n
    run = RunView(
        key=path.stem, path=path, kind="log",
        tpu=str(tpu or "?"),
        model=str(model or "?"), engine_profile=profile, engine_version=version,
        created=str(created),
        num_devices=n, num_hosts=int(meta(("num_hosts", "process_count"), _is_int) or 1),
        knobs=knobs, phases=phases, source=path.name, warnings=warnings,
    )
    fill_predictions(run)
    return run


def fill_predictions(run: RunView) -> None:
    """Predict phases the log left unpredicted, from the planner with the run's knobs."""
    todo = [p for p in run.phases if p.predicted is None
            and (not p.predicted_components or None in p.predicted_components.values())]
    if not todo:
        return
    plan, _ = plan_for_run(run)
    if plan is None:
        return
    by_name = {c.name: c.bytes for c in plan.components}
    for p in todo:
        comps = PHASE_COMPONENTS.get(p.name)
        if not comps:
            continue
        known = p.predicted_components
        p.predicted_components = {c: known.get(c) if known.get(c) is not None
                                  else by_name.get(COMPONENT_TO_PLAN[c]) for c in comps}
        if all(v is not None for v in p.predicted_components.values()):
            p.predicted = sum(p.predicted_components.values())
            p.predicted_by = "hbmtui"


# -- discovery ----------------------------------------------------------------------------------------


def discover(paths: Iterable[str | Path]) -> tuple[list[Path], list[str]]:
    """Files to open: folders give their ``*.json`` and ``*.jsonl`` (sorted, no dotfiles)."""
    files: list[Path] = []
    warnings: list[str] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            files.extend(sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith(".")
                                and f.suffix in (".json", ".jsonl")))
        elif p.is_file():
            files.append(p)
        else:
            warnings.append(f"{raw}: no such file or folder")
    return files, warnings


def load_runs(paths: Iterable[str | Path]) -> tuple[list[RunView], list[str]]:
    """Load every run; a file that cannot be read is skipped with one warning line naming it."""
    files, warnings = discover(paths)
    runs: list[RunView] = []
    for f in files:
        try:
            run = load_log_file(f) if f.suffix == ".jsonl" else load_record_file(f)
        except ValueError as e:
            warnings.append(f"skipped {f.name}: {e}")
            continue
        except Exception as e:  # never let one odd file take the TUI down
            warnings.append(f"skipped {f.name}: {type(e).__name__}: {e}")
            continue
        warnings.extend(run.warnings)
        runs.append(run)
    runs.sort(key=lambda r: (r.created, r.key), reverse=True)
    return runs, warnings


def default_paths(cwd: Path | None = None) -> list[Path]:
    """``calibrations/`` under the current folder, else the one in the package's repository."""
    here = (cwd or Path.cwd()) / "calibrations"
    if here.is_dir():
        return [here]
    repo = Path(__file__).resolve().parents[2] / "calibrations"
    return [repo]


# -- planner rebuild -------------------------------------------------------------------------------


_INT_KNOBS = ("page_size", "max_running_requests", "context_length", "chunked_prefill_size", "max_prefill_tokens")


def request_for_run(run: RunView):
    """The inference PlanRequest that reproduces the run's engine (knobs the record carries)."""
    from planner.request import PlanRequest

    k = run.knobs
    changes: dict[str, Any] = {"workload": "infer", "tpu": run.tpu, "model": run.model,
                               "engine_version": run.engine_profile or None}
    tp = k.get("tp")
    if _is_int(tp):
        changes["tp"] = tp
    mtt = k.get("max_total_tokens_requested")
    if not _is_int(mtt):
        mtt = k.get("max_total_tokens")
    if _is_int(mtt):
        changes["max_total_tokens"] = mtt
    mfs = k.get("mem_fraction_static")
    if isinstance(mfs, (int, float)) and not isinstance(mfs, bool):
        changes["mem_fraction_static"] = float(mfs)
    for name in ("dtype", "kv_dtype"):
        if isinstance(k.get(name), str) and k[name]:
            changes[name] = k[name]
    for name in _INT_KNOBS:
        if _is_int(k.get(name)):
            changes[name] = k[name]
    return PlanRequest(**changes)


def plan_for_run(run: RunView):
    """(plan, None) for the run's config, or (None, one-line reason) when it cannot be rebuilt."""
    from planner.plan import make_plan

    try:
        return make_plan(request_for_run(run)), None
    except PlanError as e:
        return None, str(e)
    except Exception as e:  # a knob of an odd type, a model the catalog lacks, ...
        return None, f"{type(e).__name__}: {e}"


def limit_for_run(run: RunView, plan=None) -> int | None:
    """Per-device limit: measured allocator limit, else the planner's TPU catalog."""
    lims = [p.limit for p in run.phases if p.limit]
    if lims:
        return min(lims)
    if plan is not None:
        return plan.limit_bytes
    try:
        from planner.tpu import parse_slice

        return parse_slice(run.tpu).limit_bytes
    except Exception:
        return None


# -- tables for export -----------------------------------------------------------------------------


@dataclass
class TableData:
    """A view as a plain table: what export writes."""

    title: str
    headers: list[str]
    rows: list[list[Any]]
    notes: list[str] = field(default_factory=list)

    def to_markdown(self) -> str:
        def cell(v) -> str:
            return str("" if v is None else v).replace("|", "\\|").replace("\n", " ")

        out = [f"# {self.title}", ""]
        out.append("| " + " | ".join(cell(h) for h in self.headers) + " |")
        out.append("|" + "|".join("---" for _ in self.headers) + "|")
        for r in self.rows:
            out.append("| " + " | ".join(cell(v) for v in r) + " |")
        if self.notes:
            out.append("")
            out.extend(self.notes)
        return "\n".join(out) + "\n"

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(self.headers)
        for r in self.rows:
            w.writerow(["" if v is None else v for v in r])
        return buf.getvalue()
