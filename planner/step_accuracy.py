"""How good the analytic training-step estimate has been against the real XLA:TPU compiler.

``calibrations/compiled/training_steps.json`` holds one record per compiled configuration of
``bench/compile_vs_analytic.py``: the plan request, XLA's per-device temp and peak bytes
(deviceless compile, :mod:`planner.compile`) and whether the row was held out (compiled after
the rules that predict it were fixed). From it the bench derives, for today's step model, the
error bands the planner prints beside a step estimate:

* a record's error is ``(analytic step temp − XLA temp) / XLA temp`` in percent (positive: the
  estimate is above XLA's);
* records are grouped by regime: the slice class (``v4, 4 chips``, ``v4, 8+ chips``, ``v5e``,
  ``v6e``), the remat policy and the estimate's peak phase (``forward_start``: the layers' weight
  all-gathers hoisted; ``forward_start_windowed``: hoisted as windowed-einsum rings;
  ``backward_start``; ``update``);
* records whose plan is flagged as unpredicted (``Plan.step_unpredicted``, from
  :func:`planner.training.unpredicted_step_reason`)
  are left out: their plans print their own note;
* a plan gets the band of the most specific regime with at least :data:`MIN_BAND_RECORDS`
  records: (slice class, remat, phase), else (slice class, phase), else (slice class);
* steps with tp > 1 also fall in a tp band, (tp class, remat, ring kind) (:func:`tp_regime`), chosen
  the same way, which their plans quote for the estimate's tp terms (:func:`tp_note`);
* a band names its compiles beyond the compile check's worst bound (``WORST_BOUND_PCT``);
* where the band's ends would flip the plan's verdict (fits ↔ oom), the plan says so with the
  bytes XLA would need there (:func:`verdict_note`, :func:`need_range`).

The bands are stored in the file (the planner reads them in about a millisecond) and a test
re-derives them from the records with today's step model, so a model change that is not followed
by ``bench/compile_vs_analytic.py --records`` fails CI instead of printing stale figures.

Bytes are ints; ``*_gib`` fields (three decimals, as the bench tabled them) stand in for rows
compiled before the bench kept exact bytes.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable, NamedTuple

from planner.atomic import write_text_atomic
from planner.errors import PlanError
from planner.units import GiB

SCHEMA = "hbmplan.compiled_steps/1"
#: A band is printed only where at least this many compiles share the regime.
MIN_BAND_RECORDS = 5
#: The compile check's bound on the worst step error (percent of XLA's temp): bands name their
#: compiles beyond it (``Band.beyond_bound_ids``).
WORST_BOUND_PCT = 15.0
#: The tp classes of the tp bands: tp 2, and tp 4 and above (the records have tp 4 and 8).
TP_CLASSES = ("tp 2", "tp 4+")
#: Request fields a record may carry (``planner.request.PlanRequest`` names).
REQUEST_FIELDS = ("tpu", "model", "workload", "bs", "micro_bs", "prompt_len", "len", "optimizer", "remat",
                  "param_dtype", "compute_dtype", "beta", "mesh")


class CompiledStep(NamedTuple):
    """One compiled training step.

    Attributes:
      id: the bench grid row.
      request: PlanRequest fields (``REQUEST_FIELDS``).
      held_out: compiled after the rules that predict it were fixed (not used to fit them).
      temp_bytes: XLA's per-device temp bytes, or None where only ``temp_gib`` was kept.
      temp_gib: the same, in GiB to three decimals (always present).
      peak_gib: XLA's argument + output − alias + temp, GiB to three decimals.
      oom: the compile ran out of memory (the figures are parsed from its message).
      ring_bytes_at_peak: bytes of windowed-einsum ring buffers (``AllocateBuffer`` custom-calls)
        live at XLA's peak, from its buffer assignment; None where the breakdown was not kept.
    """

    id: int
    request: dict
    held_out: bool
    temp_bytes: int | None
    temp_gib: float
    peak_gib: float
    oom: bool = False
    ring_bytes_at_peak: int | None = None

    @property
    def xla_temp(self) -> float:
        """XLA's temp bytes: exact where kept, else from the three-decimal GiB figure."""
        return float(self.temp_bytes) if self.temp_bytes is not None else self.temp_gib * GiB

    def to_json(self) -> dict:
        return {"id": self.id, "request": self.request, "held_out": self.held_out,
                "xla": {"temp_bytes": self.temp_bytes, "temp_gib": self.temp_gib, "peak_gib": self.peak_gib,
                        "oom": self.oom, "ring_bytes_at_peak": self.ring_bytes_at_peak}}


class Band(NamedTuple):
    """The step estimate's error over the compiles of one regime (percent of XLA's temp).

    Attributes:
      regime: (slice class, remat, peak phase); trailing parts are ``"*"`` for a coarser band.
      n: compiles in it; lo_pct, hi_pct: the most negative and most positive error;
      median_abs_pct: median absolute error; held_out_n / held_out_median_abs_pct /
      held_out_worst_pct: the same over its held-out compiles (None where there are none);
      ids: the bench rows; beyond_bound_ids: those whose |error| exceeds ``WORST_BOUND_PCT``.
    """

    regime: tuple[str, str, str]
    n: int
    lo_pct: float
    hi_pct: float
    median_abs_pct: float
    held_out_n: int
    held_out_median_abs_pct: float | None
    held_out_worst_pct: float | None
    ids: tuple[int, ...]
    beyond_bound_ids: tuple[int, ...] = ()

    def to_json(self) -> dict:
        d = self._asdict()
        d["regime"], d["ids"], d["beyond_bound_ids"] = list(self.regime), list(self.ids), list(self.beyond_bound_ids)
        return d


#: The records this checkout ships; ``$HBMPLAN_COMPILED_STEPS`` names another file.
SHIPPED_PATH = Path(__file__).resolve().parents[1] / "calibrations" / "compiled" / "training_steps.json"


def default_path() -> Path:
    """``$HBMPLAN_COMPILED_STEPS``, else the shipped ``calibrations/compiled/training_steps.json``."""
    env = os.environ.get("HBMPLAN_COMPILED_STEPS")
    return Path(env) if env else SHIPPED_PATH


def slice_class(generation: str, num_devices: int) -> str:
    """The slice classes the bands distinguish: v4 by its chips (4, or 8 and more: the bench's v4 rows
    all shard fsdp over every chip), else the generation."""
    if generation == "v4":
        return "v4, 8+ chips" if num_devices >= 8 else "v4, 4 chips"
    return generation


def regime(generation: str, num_devices: int, remat: str, train) -> tuple[str, str, str] | None:
    """(slice class, remat, peak phase) of a training step (``TrainingMemory``); None without one.

    A ``forward_start`` peak estimated as windowed-einsum rings (``step.windowed_einsum_rings``:
    :func:`planner.training.windowed_einsum_expected`, with remat) is its own phase,
    ``forward_start_windowed``: the rings' buffers are what sits at that peak. So is a hoisted ring
    step's ``backward_start`` peak with the backward's ring chunks (``step.backward_ring_chunks``),
    ``backward_start_windowed``."""
    if train is None or not train.step:
        return None
    phase = train.step[0].inputs["peak_phase"]
    names = {c.name for c in train.step}
    if phase == "forward_start" and "step.windowed_einsum_rings" in names:
        phase = "forward_start_windowed"
    elif phase == "backward_start" and "step.backward_ring_chunks" in names:
        phase = "backward_start_windowed"
    return slice_class(generation, num_devices), remat, phase


def regime_of(plan) -> tuple[str, str, str] | None:
    """The regime of a finished plan; None for an inference plan."""
    return regime(plan.slice.generation.name, plan.slice.num_devices, plan.request.remat, plan.training)


def tp_regime(train) -> tuple[str, str, str] | None:
    """(tp class, remat, ring kind) of a training step whose mesh has tp > 1; None for tp 1 or no step.

    The tp class is one of ``TP_CLASSES``; the ring kind ``no rings`` (the fsdp all-gathers run
    plain, or no remat), ``rings, hoisted`` (the layers' gathers hoisted as windowed-einsum rings) or
    ``rings, not hoisted`` (:func:`planner.training.runs_rings` and the hoisting rules).
    The tp bands keyed by it say how the step estimate's tp terms have held against XLA."""
    from planner.training import runs_rings

    if train is None or not train.step or train.mesh.tp < 2:
        return None
    inputs = train.step[0].inputs
    kind = ("no rings" if not runs_rings(train) else
            "rings, hoisted" if inputs["hoisted"] else "rings, not hoisted")
    return TP_CLASSES[0] if train.mesh.tp == 2 else TP_CLASSES[1], inputs["remat"], kind


def _round(x: float) -> float:
    return round(x, 1)


def compute_bands(points: Iterable[tuple[tuple[str, str, str], float, bool, int]]) -> list[Band]:
    """Bands at every level from (regime, error %, held out, id) points, most specific first."""
    import statistics  # imported here: plans read the stored bands and skip its import (bench/cli_latency.py)

    groups: dict[tuple[str, str, str], list[tuple[float, bool, int]]] = {}
    for (cls, remat, phase), e, held, rid in points:
        for key in ((cls, remat, phase), (cls, "*", phase), (cls, "*", "*")):
            groups.setdefault(key, []).append((e, held, rid))
    bands = []
    for key in sorted(groups, key=lambda k: (k[0] in TP_CLASSES, k[0], k[1] == "*", k[2] == "*", k)):
        pts = groups[key]
        errs = [e for e, _, _ in pts]
        held = [e for e, h, _ in pts if h]
        bands.append(Band(key, len(pts), _round(min(errs)), _round(max(errs)),
                          _round(statistics.median(abs(e) for e in errs)), len(held),
                          _round(statistics.median(abs(e) for e in held)) if held else None,
                          _round(max(held, key=abs)) if held else None,
                          tuple(sorted(rid for _, _, rid in pts)),
                          tuple(sorted(rid for e, _, rid in pts if abs(e) > WORST_BOUND_PCT))))
    return bands


def evaluate(steps: Iterable[CompiledStep], plan_fn: Callable | None = None) -> list[tuple]:
    """(regime, error %, held out, id) of every record today's step model predicts (flagged ones left out),
    and a second point under its :func:`tp_regime` for each with tp > 1."""
    from planner.request import PlanRequest

    if plan_fn is None:
        from planner.plan import make_plan as plan_fn
    points = []
    for s in steps:
        plan = plan_fn(PlanRequest(**s.request))
        t = plan.training
        if plan.step_unpredicted:
            continue
        e = 100.0 * (t.step_temp_bytes - s.xla_temp) / s.xla_temp
        points.append((regime_of(plan), e, s.held_out, s.id))
        tp_key = tp_regime(t)
        if tp_key is not None:
            points.append((tp_key, e, s.held_out, s.id))
    return points


def band_for(bands: Iterable[Band], regime: tuple[str, str, str]) -> Band | None:
    """The most specific band of ``regime`` with at least ``MIN_BAND_RECORDS`` compiles, or None."""
    by_key = {b.regime: b for b in bands}
    cls, remat, phase = regime
    for key in ((cls, remat, phase), (cls, "*", phase), (cls, "*", "*")):
        b = by_key.get(key)
        if b is not None and b.n >= MIN_BAND_RECORDS:
            return b
    return None


_PHASE_WORDS = {"forward_start": "the layers' weight all-gathers hoisted, peak at the forward's start",
                "forward_start_windowed": "the layers' weight all-gathers hoisted as windowed-einsum rings, "
                                          "peak at the forward's start",
                "backward_start": "peak at the backward's start",
                "backward_start_windowed": "the layers' weight all-gathers hoisted as windowed-einsum rings, peak "
                                           "at the backward's start with its ring chunks",
                "update": "peak at the optimizer update",
                "no rings": "no windowed-einsum rings",
                "rings, hoisted": "windowed-einsum rings with the layers' all-gathers hoisted",
                "rings, not hoisted": "windowed-einsum rings, the layers' all-gathers not hoisted"}


def describe(regime: tuple[str, str, str], short: bool = False) -> str:
    """Words for a (possibly coarse) regime, e.g. ``v4, 4 chips, remat dots, peak at the backward's
    start``; ``short``: the phase by its name (``v4, 4 chips, remat dots, backward_start``)."""
    cls, remat, phase = regime
    parts = [cls]
    if remat != "*":
        parts.append(f"remat {remat}")
    if phase != "*":
        parts.append(phase if short else _PHASE_WORDS.get(phase, phase))
    return ", ".join(parts)


def records_label() -> str:
    """How a note names the records file in use: the shipped one by its repository path, another by its path."""
    p = default_path()
    return "calibrations/compiled/training_steps.json" if p == SHIPPED_PATH else str(p)


def _band_figures(band: Band) -> str:
    """A band's range, median, held-out figures and the compiles beyond ``WORST_BOUND_PCT``, in words."""
    held = ""
    if band.held_out_n:
        held = (f"; the {band.held_out_n} held out: median {band.held_out_median_abs_pct:.1f}%, "
                f"worst {band.held_out_worst_pct:+.1f}%")
    beyond = ""
    if band.beyond_bound_ids:
        rows = [str(i) for i in band.beyond_bound_ids]
        listed = rows[0] if len(rows) == 1 else ", ".join(rows[:-1]) + " and " + rows[-1]
        beyond = f"; beyond ±{WORST_BOUND_PCT:.0f}%: bench row{'s' if len(rows) > 1 else ''} {listed}"
    return (f"{band.lo_pct:+.1f}% to {band.hi_pct:+.1f}% of XLA's temp (median |error| {band.median_abs_pct:.1f}%"
            f"{held}{beyond}; {records_label()})")


def band_note(band: Band) -> str:
    """The plan note for a band: how far the estimate was from XLA over the compiles of its regime."""
    return (f"step estimate against XLA:TPU: over {band.n} compiles of such steps ({describe(band.regime)}) it was "
            f"{_band_figures(band)}; check it with --compile")


def tp_note(tp: int, key: tuple[str, str, str]) -> str:
    """The plan note for a training mesh with tp > 1: how the step estimate held over the compiles of
    its tp band (:func:`tp_regime`), with the tps they had, or that too few are on record."""
    band = lookup(key)
    if band is None:
        return (f"training mesh tp = {tp}: no {MIN_BAND_RECORDS} compiles of such a step ({describe(key)}) are on "
                "record to say how the step estimate's tp terms hold; check it with --compile")
    had = ""
    if band.regime[0] != TP_CLASSES[0]:  # a class of several tps: say which the compiles had
        steps, _ = load()
        ids = set(band.ids)
        tps = sorted({int(s.request["mesh"].split(",")[2]) for s in steps if s.id in ids and s.request.get("mesh")})
        had = ", compiled with tp " + " and ".join(str(t) for t in tps)
    return (f"training mesh tp = {tp}: over {band.n} compiles of such steps ({describe(band.regime)}{had}) the "
            f"step estimate was {_band_figures(band)}; check it with --compile")


def need_range(band: Band, need_bytes: int) -> tuple[int, int]:
    """(least, most) bytes XLA would need if this estimate erred as far as the band's ends did.

    An error of e % means XLA needed ``estimate / (1 + e/100)``: the band's most positive error
    gives the least, its most negative the most. Ends on the estimate's side of zero leave it."""
    least = int(need_bytes / (1 + band.hi_pct / 100)) if band.hi_pct > 0 else need_bytes
    most = int(need_bytes / (1 + band.lo_pct / 100)) if band.lo_pct < 0 else need_bytes
    return least, most


def verdict_note(band: Band | None, need_bytes: int, free_bytes: int) -> str | None:
    """A note where the band's range would flip the verdict (fits ↔ oom), else None."""
    if band is None:
        return None
    from planner.units import fmt_gib

    least, most = need_range(band, need_bytes)
    if need_bytes <= free_bytes < most:
        return (f"the fit is inside the estimate's band: had it erred as far as the worst of those compiles "
                f"({band.lo_pct:+.1f}%), jit_training_step would need {fmt_gib(most)}, more than the "
                f"{fmt_gib(free_bytes)} free; check it with --compile")
    if least <= free_bytes < need_bytes:
        return (f"the oom is inside the estimate's band: had it erred as far as the most generous of those "
                f"compiles ({band.hi_pct:+.1f}%), jit_training_step would need {fmt_gib(least)}, within the "
                f"{fmt_gib(max(free_bytes, 0))} free; check it with --compile")
    return None


# -- the file -------------------------------------------------------------------------------------


def _fail(path, msg: str) -> PlanError:
    return PlanError(f"compiled-step records {path}: {msg}")


def _parse_step(path, i: int, obj) -> CompiledStep:
    if not isinstance(obj, dict):
        raise _fail(path, f"steps[{i}] is not an object")
    try:
        req, xla = obj["request"], obj["xla"]
        rid, held = obj["id"], obj["held_out"]
        temp_bytes, temp_gib, peak_gib = xla["temp_bytes"], xla["temp_gib"], xla["peak_gib"]
    except (KeyError, TypeError) as e:
        raise _fail(path, f"steps[{i}] lacks {e}") from None
    if not isinstance(req, dict) or set(req) - set(REQUEST_FIELDS) or "tpu" not in req or "model" not in req:
        raise _fail(path, f"steps[{i}].request must hold tpu, model and only these fields: {', '.join(REQUEST_FIELDS)}")
    if isinstance(rid, bool) or not isinstance(rid, int) or not isinstance(held, bool):
        raise _fail(path, f"steps[{i}]: id must be an int and held_out a bool")
    if temp_bytes is not None and (isinstance(temp_bytes, bool) or not isinstance(temp_bytes, int) or temp_bytes <= 0):
        raise _fail(path, f"steps[{i}].xla.temp_bytes must be a positive int or null, got {temp_bytes!r}")
    for name, v in (("temp_gib", temp_gib), ("peak_gib", peak_gib)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
            raise _fail(path, f"steps[{i}].xla.{name} must be a positive number, got {v!r}")
    ring = xla.get("ring_bytes_at_peak")
    if ring is not None and (isinstance(ring, bool) or not isinstance(ring, int) or ring < 0):
        raise _fail(path, f"steps[{i}].xla.ring_bytes_at_peak must be a non-negative int or null, got {ring!r}")
    return CompiledStep(rid, dict(req), held, temp_bytes, float(temp_gib), float(peak_gib), bool(xla.get("oom", False)),
                        ring)


def _parse_band(path, i: int, obj) -> Band:
    try:
        b = Band(tuple(obj["regime"]), obj["n"], obj["lo_pct"], obj["hi_pct"], obj["median_abs_pct"],
                 obj["held_out_n"], obj["held_out_median_abs_pct"], obj["held_out_worst_pct"], tuple(obj["ids"]),
                 tuple(obj.get("beyond_bound_ids", ())))
    except (KeyError, TypeError) as e:
        raise _fail(path, f"bands[{i}] lacks {e}") from None
    if len(b.regime) != 3 or not isinstance(b.n, int) or b.n < 1:
        raise _fail(path, f"bands[{i}] needs a 3-part regime and a positive n")
    return b


def parse(doc, path="<doc>") -> tuple[list[CompiledStep], list[Band]]:
    """Validate a decoded file; raise :class:`PlanError` naming the first problem."""
    if not isinstance(doc, dict):
        raise _fail(path, "not a JSON object")
    if doc.get("schema") != SCHEMA:
        raise _fail(path, f"schema {doc.get('schema')!r} is not {SCHEMA!r}")
    steps_raw, bands_raw = doc.get("steps"), doc.get("bands")
    if not isinstance(steps_raw, list) or not isinstance(bands_raw, list):
        raise _fail(path, "needs lists 'steps' and 'bands'")
    steps = [_parse_step(path, i, s) for i, s in enumerate(steps_raw)]
    ids = [s.id for s in steps]
    if len(set(ids)) != len(ids):
        raise _fail(path, "duplicate step ids")
    return steps, [_parse_band(path, i, b) for i, b in enumerate(bands_raw)]


def load(path: str | os.PathLike | None = None) -> tuple[list[CompiledStep], list[Band]]:
    """Read and validate the file (default :func:`default_path`)."""
    steps, bands, _ = _load(path)
    return steps, bands


def compiler(path: str | os.PathLike | None = None) -> dict:
    """The versions that compiled the records (``{"jax": ..., "libtpu": ...}``), from the same read."""
    return dict(_load(path)[2])


def _load(path) -> tuple[list[CompiledStep], list[Band], dict]:
    p = Path(path) if path is not None else default_path()
    try:
        st = p.stat()
    except OSError as e:
        raise _fail(p, f"no such file ({e.strerror})") from None
    return _load_cached(str(p), st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=4)
def _load_cached(path: str, _mtime_ns: int, _size: int):
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _fail(path, f"unreadable ({e})") from None
    steps, bands = parse(doc, path)
    return steps, bands, doc.get("compiler") or {}


def lookup(key: tuple[str, str, str] | None, path: str | os.PathLike | None = None) -> Band | None:
    """The band of a regime from the records file, or None (no regime, too few compiles, or no
    shipped file). A file named by ``path`` or ``$HBMPLAN_COMPILED_STEPS`` must exist."""
    p = Path(path) if path is not None else default_path()
    if key is None:
        return None
    if not p.is_file():
        if p == SHIPPED_PATH:
            return None
        raise _fail(p, "no such file")
    _, bands = load(p)
    return band_for(bands, key)


def to_document(steps: list[CompiledStep], bands: list[Band], compiler: dict) -> dict:
    return {"schema": SCHEMA, "compiler": compiler, "source": "bench/compile_vs_analytic.py",
            "error": "(analytic step temp - XLA temp) / XLA temp, percent",
            "steps": [s.to_json() for s in sorted(steps, key=lambda s: s.id)],
            "bands": [b.to_json() for b in bands]}


def dumps(doc: dict) -> str:
    """The document as JSON with one step or band per line (diffs show what a re-run changed)."""
    lines = ["{"]
    keys = list(doc)
    for k in keys:
        v = doc[k]
        end = "," if k != keys[-1] else ""
        if isinstance(v, list):
            items = [f"  {json.dumps(x, separators=(', ', ': '))}" for x in v]
            lines.append(f" {json.dumps(k)}: [")
            lines.extend(item + ("," if j < len(items) - 1 else "") for j, item in enumerate(items))
            lines.append(f" ]{end}")
        else:
            lines.append(f" {json.dumps(k)}: {json.dumps(v)}{end}")
    return "\n".join(lines + ["}"]) + "\n"


def write_atomic(doc: dict, path: str | os.PathLike) -> Path:
    """Write the document to ``path`` atomically (temp file in the same folder, fsync, rename)."""
    parse(doc, path)  # never write a file the planner would refuse
    return write_text_atomic(path, dumps(doc), prefix=".tmp-steps-", mode=0o644)
