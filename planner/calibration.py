"""Apply measured calibration records to predictions.

A record (``planner.records``) stores, per lifecycle phase, the device bytes a real run
measured and the bytes the planner predicted for the same state. The residual
(measured − predicted, per device) is what the exact layout does not cover: the runtime's own
buffers, allocator rounding, tiled-layout padding. For a new plan the planner adds the median
per-device residual of the records that match its TPU generation, engine profile and phase.
"""

from __future__ import annotations

import os
from typing import NamedTuple
from pathlib import Path

from planner.errors import PlanError
from planner.records import CalibrationRecord, load_records
from planner.tpu import parse_slice

#: Phases whose state is "engine serving": params + KV (+ what a generate leaves), best first.
SERVING_PHASES = ("generate_result", "flush_cache_before_kv_drop", "engine_ready_dummy")


def default_calibration_dir() -> Path:
    """``$HBMPLAN_CALIBRATIONS``, else the ``calibrations/`` folder of this checkout."""
    env = os.environ.get("HBMPLAN_CALIBRATIONS")
    return Path(env) if env else Path(__file__).resolve().parents[1] / "calibrations"


def generation_of(tpu_type: str) -> str:
    """TPU generation of a record's accelerator type; ``cpu``/``gpu`` for host runs."""
    head = tpu_type.split("-")[0].lower()
    if head in ("cpu", "gpu"):
        return head
    try:
        return parse_slice(tpu_type).generation.name
    except PlanError:
        return head


class Residual(NamedTuple):
    """Median per-device residual of matching records.

    Attributes:
      phase: the lifecycle phase it was measured at.
      generation: TPU generation.
      profile: engine profile.
      bytes: median of measured − predicted, per device (int bytes; may be negative).
      record_ids: the records it came from.
    """

    phase: str
    generation: str
    profile: str
    bytes: int
    record_ids: tuple[str, ...]


def median_int(values: list[int]) -> int:
    """Median of ints, as an int (the mean of the two middle values, floored, for an even count)."""
    v = sorted(values)
    mid = len(v) // 2
    return v[mid] if len(v) % 2 else (v[mid - 1] + v[mid]) // 2


def residual(
    records: list[CalibrationRecord], generation: str, profile: str, phase: str, exclude: str | None = None
) -> Residual | None:
    """Median per-device residual over the records matching (generation, profile, phase)."""
    values: list[int] = []
    ids: list[str] = []
    for r in records:
        if r.record_id == exclude or generation_of(r.tpu_type) != generation or r.engine_profile != profile:
            continue
        ph = r.phase(phase)
        res = ph.residual_per_device(r.num_devices) if ph is not None else None
        if res:
            values.extend(res)
            ids.append(r.record_id)
    if not values:
        return None
    return Residual(phase, generation, profile, median_int(values), tuple(ids))


def serving_residual(records: list[CalibrationRecord], generation: str, profile: str) -> Residual | None:
    """The residual of the first serving phase that has matching records."""
    for phase in SERVING_PHASES:
        r = residual(records, generation, profile, phase)
        if r is not None:
            return r
    return None


def load_calibration(path: str | os.PathLike | None = None) -> tuple[list[CalibrationRecord], list[str]]:
    """Records from ``path`` (default :func:`default_calibration_dir`) and warnings for skipped files."""
    folder = Path(path) if path is not None else default_calibration_dir()
    if not folder.exists():
        return [], []
    return load_records(folder)
