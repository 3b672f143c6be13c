"""Calibration records: what one validator run (or one transcribed TPU log) measured.

A record is one JSON file. It holds, for each lifecycle phase, the device bytes the run
measured and the bytes the planner predicted for the same state, so the planner can learn
the residual (measured - predicted) per TPU type and engine profile.

Units: every byte count is an ``int`` number of bytes. "Per device" lists are in global
device order (``jax.devices()`` order, all hosts); ``None`` means "not measured" (a
transcribed log may only give the sum over devices).

This module imports only the standard library: the planner never imports jax.

Schema (``SCHEMA_VERSION`` 1), top level::

    schema_version   int, must equal SCHEMA_VERSION
    record_id        str, unique (also part of the file name)
    created          str, ISO-8601 UTC time the record was made
    transcribed      bool, True when copied by hand from a log rather than measured here
    source           str, "hbmvalidate" or the log file the numbers came from
    tpu_type         str, accelerator type ("v4-8"), or "cpu-<n>" / "gpu-<n>"
    num_devices      int, global device count
    num_hosts        int, hosts (JAX processes) that measured
    model            {"name": str, "config_hash": str | None}
    engine           {"profile": str, "version": str, "jax_version": str}
    knobs            {str: scalar}: tp, dtype, kv_dtype, page_size, max_total_tokens_requested,
                     max_total_tokens (actual), mem_fraction_static, ...
    phases           [PhaseRecord as a dict], in run order
    notes            str

A phase (see :class:`PhaseRecord`) carries ``measured_per_device``, ``measured_sum``,
``predicted_per_device`` and ``predicted_components`` (``{"params": b, "kv": b, ...}``,
per device; a value of ``None`` means the planner could not predict that part, which makes
the phase's prediction incomplete).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, NamedTuple

from planner.atomic import write_text_atomic

SCHEMA_VERSION = 1

#: What each lifecycle phase holds on the devices, in the planner's component names (a phase not
#: listed holds nothing the planner predicts). The validator and the TUI both read this table.
PHASE_COMPONENTS: dict[str, tuple[str, ...]] = {
    "jax_ready": (),
    "engine_ready_dummy": ("params", "kv"),
    "weights_swapped": ("params", "kv"),
    "generate_result": ("params", "kv"),
    "flush_cache_before_kv_drop": ("params", "kv"),
    "kv_cache_dropped": ("params",),
    "second_params_ready": ("params", "second_params"),
    "kv_cache_rebuilt": ("params", "kv"),
    "generate_result_after_kv_rebuild": ("params", "kv"),
    "second_params_dropped": ("params", "kv"),
}

#: The seeds' log names for phases that the validator names differently.
PHASE_ALIASES: dict[str, str] = {
    "weights_swapped_from_mllm": "weights_swapped",
    "sglang_param_dict2_ready": "second_params_ready",
    "after_drop_param_dict2": "second_params_dropped",
}

MEASURE_SOURCES = ("memory_stats", "live_arrays", "log")


class RecordError(ValueError):
    """A record file that cannot be read: bad JSON, a missing field, an unknown version."""


def canonical_json(obj: Any) -> str:
    """The canonical JSON text of ``obj``: sorted keys, no spaces, ASCII escapes (as planner.model)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def config_hash(config: dict | str | os.PathLike) -> str:
    """sha256 hex of the canonical JSON of a model's config.json.

    ``config`` is the parsed dict, a path to config.json, or a folder holding one.
    """
    if not isinstance(config, dict):
        p = Path(config)
        if p.is_dir():
            p = p / "config.json"
        with open(p, encoding="utf-8") as f:
            config = json.load(f)
    from planner.model import config_hash as dict_hash

    return dict_hash(config)


def _int_or_none(v: Any, what: str) -> int | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise RecordError(f"{what} must be an integer number of bytes, got {v!r}")
    return v


def _int_list_or_none(v: Any, what: str) -> tuple[int, ...] | None:
    if v is None:
        return None
    if not isinstance(v, (list, tuple)):
        raise RecordError(f"{what} must be a list of integers, got {type(v).__name__}")
    return tuple(_int_or_none(x, what) for x in v)


class PhaseRecord(NamedTuple):
    """One lifecycle phase: device bytes measured and predicted. All values are bytes.

    Attributes:
      name: phase name ("engine_ready_dummy", "kv_cache_dropped", ...).
      idx: position in the run (0-based).
      source: how device bytes were measured: "memory_stats" (TPU/GPU allocator),
        "live_arrays" (sum of live jax array shards, CPU) or "log" (transcribed).
      measured_per_device: bytes in use per device, global device order, or None.
      measured_sum: bytes in use summed over all devices, or None.
      peak_per_device: peak bytes in use per device (memory_stats only), or None.
      peak_max: largest peak over devices, or None.
      limit_per_device: allocator bytes_limit per device, or None.
      measured_components: per-device bytes of identified parts, e.g. {"params": [...],
        "kv": [...], "second_params": [...], "other": [...]} (live-array accounting).
      predicted_components: the planner's per-device bytes for each part of this phase's
        state ({"params": b, "kv": b, "second_params": b}); a None value = unknown part.
      predicted_per_device: sum of predicted_components (None if any part is unknown).
      delta_per_device: measured - predicted per device, or None.
      delta_sum: measured_sum - predicted_per_device * num_devices, or None.
      source_name: the phase's name in the source log when it differs from ``name``.
      extra: free-form small facts (elapsed seconds, check results, sha256 of outputs).
    """

    name: str
    idx: int
    source: str
    measured_per_device: tuple[int, ...] | None = None
    measured_sum: int | None = None
    peak_per_device: tuple[int, ...] | None = None
    peak_max: int | None = None
    limit_per_device: tuple[int, ...] | None = None
    measured_components: dict[str, tuple[int, ...]] = {}  # never mutated
    predicted_components: dict[str, int | None] = {}  # never mutated
    predicted_per_device: int | None = None
    delta_per_device: tuple[int, ...] | None = None
    delta_sum: int | None = None
    source_name: str | None = None
    extra: dict[str, Any] = {}  # never mutated

    @property
    def prediction_complete(self) -> bool:
        """True when the phase has a prediction and every predicted component is known (so the
        residual is meaningful). A phase holding nothing predicted (``jax_ready``) has an
        empty component set and a prediction of 0 bytes: complete."""
        return self.predicted_per_device is not None and all(
            v is not None for v in self.predicted_components.values()
        )

    def residual_per_device(self, num_devices: int) -> list[int] | None:
        """Measured minus predicted bytes per device.

        Uses the per-device list when measured; for a sum-only (transcribed) phase, the mean
        residual (floor of delta_sum / num_devices) repeated per device. None when the
        prediction is incomplete or nothing was measured.
        """
        if not self.prediction_complete:
            return None
        if self.measured_per_device is not None and None not in self.measured_per_device:
            return [m - self.predicted_per_device for m in self.measured_per_device]
        if self.measured_sum is not None and num_devices > 0:
            mean = (self.measured_sum - self.predicted_per_device * num_devices) // num_devices
            return [mean] * num_devices
        return None

    def to_dict(self) -> dict[str, Any]:
        d = self._asdict()
        d["predicted_components"] = dict(self.predicted_components)
        d["extra"] = dict(self.extra)
        for k in ("measured_per_device", "peak_per_device", "limit_per_device", "delta_per_device"):
            if d[k] is not None:
                d[k] = list(d[k])
        d["measured_components"] = {k: list(v) for k, v in self.measured_components.items()}
        return d

    @classmethod
    def from_dict(cls, d: Any) -> "PhaseRecord":
        if not isinstance(d, dict):
            raise RecordError("a phase must be a JSON object")
        try:
            name, idx, source = d["name"], d["idx"], d["source"]
        except KeyError as e:
            raise RecordError(f"phase is missing field {e.args[0]!r}") from None
        if not isinstance(name, str) or not name:
            raise RecordError("phase name must be a non-empty string")
        if isinstance(idx, bool) or not isinstance(idx, int):
            raise RecordError(f"phase {name!r}: idx must be an integer")
        if source not in MEASURE_SOURCES:
            raise RecordError(f"phase {name!r}: unknown source {source!r}")
        mc = d.get("measured_components") or {}
        pc = d.get("predicted_components") or {}
        if not isinstance(mc, dict) or not isinstance(pc, dict):
            raise RecordError(f"phase {name!r}: components must be objects")
        extra = d.get("extra") or {}
        if not isinstance(extra, dict):
            raise RecordError(f"phase {name!r}: extra must be an object")
        return cls(
            name=name,
            idx=idx,
            source=source,
            measured_per_device=_int_list_or_none(d.get("measured_per_device"), f"{name}.measured_per_device"),
            measured_sum=_int_or_none(d.get("measured_sum"), f"{name}.measured_sum"),
            peak_per_device=_int_list_or_none(d.get("peak_per_device"), f"{name}.peak_per_device"),
            peak_max=_int_or_none(d.get("peak_max"), f"{name}.peak_max"),
            limit_per_device=_int_list_or_none(d.get("limit_per_device"), f"{name}.limit_per_device"),
            measured_components={
                str(k): _int_list_or_none(v, f"{name}.measured_components.{k}") or ()
                for k, v in mc.items()
            },
            predicted_components={
                str(k): _int_or_none(v, f"{name}.predicted_components.{k}") for k, v in pc.items()
            },
            predicted_per_device=_int_or_none(d.get("predicted_per_device"), f"{name}.predicted_per_device"),
            delta_per_device=_int_list_or_none(d.get("delta_per_device"), f"{name}.delta_per_device"),
            delta_sum=_int_or_none(d.get("delta_sum"), f"{name}.delta_sum"),
            source_name=d.get("source_name"),
            extra=extra,
        )


class CalibrationRecord(NamedTuple):
    """One run's calibration record (see the module docstring for the JSON schema)."""

    record_id: str
    created: str
    transcribed: bool
    source: str
    tpu_type: str
    num_devices: int
    num_hosts: int
    model: dict[str, Any]
    engine: dict[str, Any]
    knobs: dict[str, Any]
    phases: tuple[PhaseRecord, ...]
    notes: str = ""
    schema_version: int = SCHEMA_VERSION

    @property
    def model_name(self) -> str:
        return str(self.model.get("name", ""))

    @property
    def engine_profile(self) -> str:
        return str(self.engine.get("profile", ""))

    def phase(self, name: str) -> PhaseRecord | None:
        """The first phase called ``name`` (or whose source_name is ``name``), else None."""
        for p in self.phases:
            if p.name == name or p.source_name == name:
                return p
        return None

    def to_dict(self) -> dict[str, Any]:
        d = self._asdict()
        d["model"], d["engine"], d["knobs"] = dict(self.model), dict(self.engine), dict(self.knobs)
        d["phases"] = [p.to_dict() for p in self.phases]
        order = ["schema_version"] + [k for k in d if k != "schema_version"]
        return {k: d[k] for k in order}

    @classmethod
    def from_dict(cls, d: Any) -> "CalibrationRecord":
        if not isinstance(d, dict):
            raise RecordError("a record must be a JSON object")
        version = d.get("schema_version")
        if version != SCHEMA_VERSION:
            raise RecordError(f"unknown schema_version {version!r} (this planner reads {SCHEMA_VERSION})")
        required = ("record_id", "created", "transcribed", "source", "tpu_type", "num_devices",
                    "num_hosts", "model", "engine", "knobs", "phases")
        missing = [k for k in required if k not in d]
        if missing:
            raise RecordError(f"missing field(s) {', '.join(missing)}")
        if not isinstance(d["transcribed"], bool):
            raise RecordError("transcribed must be true or false")
        for k in ("num_devices", "num_hosts"):
            if isinstance(d[k], bool) or not isinstance(d[k], int) or d[k] < 1:
                raise RecordError(f"{k} must be a positive integer")
        for k in ("model", "engine", "knobs"):
            if not isinstance(d[k], dict):
                raise RecordError(f"{k} must be an object")
        if not isinstance(d["phases"], list):
            raise RecordError("phases must be a list")
        for k in ("record_id", "created", "source", "tpu_type"):
            if not isinstance(d[k], str) or not d[k]:
                raise RecordError(f"{k} must be a non-empty string")
        return cls(
            record_id=d["record_id"],
            created=d["created"],
            transcribed=d["transcribed"],
            source=d["source"],
            tpu_type=d["tpu_type"],
            num_devices=d["num_devices"],
            num_hosts=d["num_hosts"],
            model=d["model"],
            engine=d["engine"],
            knobs=d["knobs"],
            phases=tuple(PhaseRecord.from_dict(p) for p in d["phases"]),
            notes=str(d.get("notes", "")),
        )


def new_record_id() -> str:
    """A unique id: UTC timestamp plus 12 random hex digits."""
    import uuid
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:12]


def utc_now_iso() -> str:
    """Current UTC time, ISO-8601 with seconds."""
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _slug(s: str) -> str:
    out = "".join(c if c.isalnum() or c in "-." else "-" for c in s)
    return "-".join(p for p in out.split("-") if p)[:60] or "x"


def record_filename(record: CalibrationRecord) -> str:
    """``<model>_<tpu>_<record_id>.json``, unique through the record id."""
    return f"{_slug(record.model_name)}_{_slug(record.tpu_type)}_{_slug(record.record_id)}.json"


def write_record_atomic(record: CalibrationRecord, directory: str | os.PathLike) -> Path:
    """Write ``record`` into ``directory`` atomically; return the final path.

    The JSON goes to a temporary file in the same directory, is fsynced, then renamed with
    ``os.replace``: a reader sees either no file or the whole record. The file name carries
    the record id (timestamp + random hex), and an existing name is never overwritten (a
    clash, which needs the same random id, gets a fresh suffix), so writers running at the
    same time never touch each other's files.
    """
    d = Path(directory)
    text = json.dumps(record.to_dict(), indent=1, sort_keys=False) + "\n"
    import uuid

    final = d / record_filename(record)
    while final.exists():
        final = d / (final.stem + "-" + uuid.uuid4().hex[:6] + ".json")
    return write_text_atomic(final, text, prefix=".tmp-record-")


def load_record(path: str | os.PathLike) -> CalibrationRecord:
    """Read one record file. Raises :class:`RecordError` (naming the file) when unreadable."""
    p = Path(path)
    try:
        with open(p, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RecordError(f"{p}: cannot read record: {e}") from None
    try:
        return CalibrationRecord.from_dict(data)
    except RecordError as e:
        raise RecordError(f"{p}: {e}") from None


def load_records(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
) -> tuple[list[CalibrationRecord], list[str]]:
    """Load every record from a folder (its ``*.json``, sorted) or from a list of paths.

    A corrupt, incomplete or unknown-version file is skipped; the second return value holds
    one warning line per skipped file, naming it. Temporary files of writers in progress
    (``.tmp-*``) are ignored. Never raises for a bad record file.
    """
    if isinstance(paths, (str, os.PathLike)):
        p = Path(paths)
        files = sorted(f for f in p.glob("*.json") if not f.name.startswith(".")) if p.is_dir() else [p]
    else:
        files = [Path(x) for x in paths]
    records: list[CalibrationRecord] = []
    warnings: list[str] = []
    for f in files:
        try:
            records.append(load_record(f))
        except RecordError as e:
            warnings.append(f"skipped calibration record {e}")
    return records, warnings
