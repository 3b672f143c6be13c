"""Phase objects: measurement + prediction + delta + checks, written as they happen.

One phase object (a JSON line on stdout and in the JSONL file), all bytes ints, per device
lists in local device order (``memory.devices[j]``)::

    {"phase", "phase_idx", "elapsed_s", "phase_elapsed_s", "process_index",
     "memory": {"source", "devices": [{index, id, process_index, kind, bytes_in_use,
                peak_bytes_in_use, bytes_limit, largest_free_block_bytes}],
                "bytes_in_use_sum", "peak_bytes_in_use_max", "process_rss_bytes"},
     "components": {"params": [...], "kv": [...], "second_params": [...], "other": [...]},
     "kv_fused_bytes_total": int | None,          # global KV bytes allocated now
     "predicted": {"components": {name: bytes}, "total": bytes | None, "profile": str},
     "delta": {"bytes_per_device": [...], "pct_per_device": [...],
               "components": {name: [measured - predicted per device]}},
     "checks": [{"name", "ok", "expected", "observed", ...}],
     "info": {...}}

``other`` = bytes_in_use - params - kv - second_params: on CPU the small non-param arrays
(RNG keys, sampler state), on TPU also runtime reservations and layout padding.
"""

from __future__ import annotations

import json
import time
from typing import Any, TextIO

from validator import measure
from validator.predict import Prediction, components_for

COMPONENTS = ("params", "kv", "second_params")


class PhaseWriter:
    """Builds phase objects and writes each one at once to stdout and the JSONL file."""

    def __init__(self, stdout: TextIO, jsonl: TextIO | None, wandb=None, process_index: int = 0):
        self.stdout, self.jsonl, self.wandb = stdout, jsonl, wandb
        self.process_index = process_index
        self.t0 = time.monotonic()
        self.t_last = self.t0
        self.phases: list[dict] = []
        self.prediction: Prediction | None = None
        self.has_second_params = False

    def emit(self, obj: dict) -> None:
        """Write one JSON object as a line to stdout and the JSONL file, flushed."""
        line = json.dumps(obj, separators=(",", ":"), default=str)
        self.stdout.write(line + "\n")
        self.stdout.flush()
        if self.jsonl is not None:
            self.jsonl.write(line + "\n")
            self.jsonl.flush()

    def phase(self, name: str, session=None, info: dict | None = None,
              checks: list[dict] | None = None, check_fn=None) -> dict:
        """Measure now, attach prediction and deltas, run the checks, write it out.

        ``check_fn(obj)`` may return more checks computed from this phase's measurement (e.g. a
        change against an earlier phase); they are part of the object before it is written.
        """
        import jax

        devices = list(jax.local_devices())
        snap = measure.snapshot(devices)
        now = time.monotonic()
        comps: dict[str, list[int]] = {}
        kv_total = None
        if session is not None:
            comps["params"] = measure.arrays_bytes_per_device(session.param_leaves(), devices)
            kv_arrays = session.kv_arrays()
            comps["kv"] = measure.arrays_bytes_per_device(kv_arrays, devices)
            comps["second_params"] = measure.arrays_bytes_per_device(session.second_params or [], devices)
            kv_total = sum(int(b.nbytes) for b in kv_arrays)
        else:
            comps = {c: [0] * len(devices) for c in COMPONENTS}
        comps["other"] = [
            d.bytes_in_use - sum(comps[c][j] for c in COMPONENTS) for j, d in enumerate(snap.devices)
        ]
        obj: dict[str, Any] = {
            "phase": name,
            "phase_idx": len(self.phases),
            "elapsed_s": round(now - self.t0, 3),
            "phase_elapsed_s": round(now - self.t_last, 3),
            "process_index": self.process_index,
            "memory": snap.as_dict(),
            "components": comps,
            "kv_fused_bytes_total": kv_total,
            "predicted": self._predicted(name),
            "info": info or {},
        }
        obj["delta"] = _delta(obj)
        obj["checks"] = list(checks or []) + self._auto_checks(obj)
        if check_fn is not None:
            obj["checks"] += list(check_fn(obj))
        self.t_last = now
        self.phases.append(obj)
        self.emit(obj)
        if self.wandb is not None:
            from validator.wandb_log import phase_metrics

            self.wandb.log(phase_metrics(obj))
        return obj

    def _predicted(self, name: str) -> dict:
        p = self.prediction
        names = components_for(name, self.has_second_params)
        if p is None:
            comps: dict[str, int | None] = {n: None for n in names}
            profile, error = None, ("no prediction yet" if names else None)
        else:
            comps, profile, error = p.components(names), p.profile, p.error
        total = None if any(v is None for v in comps.values()) else sum(comps.values())
        out = {"components": comps, "total": total, "profile": profile}
        if error:
            out["error"] = error
        return out

    def _auto_checks(self, obj: dict) -> list[dict]:
        """Each predicted component equals the measured one on every device (exact)."""
        checks = []
        for name, pred in obj["predicted"]["components"].items():
            if pred is None or name not in obj["components"]:
                continue
            measured = obj["components"][name]
            checks.append({
                "name": f"{name}_match_prediction",
                "ok": all(m == pred for m in measured),
                "expected": pred,
                "observed": measured,
            })
        return checks


def _delta(obj: dict) -> dict:
    total = obj["predicted"]["total"]
    used = [d["bytes_in_use"] for d in obj["memory"]["devices"]]
    out: dict[str, Any] = {"bytes_per_device": None, "pct_per_device": None, "components": {}}
    if total is not None:
        out["bytes_per_device"] = [u - total for u in used]
        out["pct_per_device"] = [round(100.0 * (u - total) / total, 4) if total else None for u in used]
    for name, pred in obj["predicted"]["components"].items():
        if pred is not None and name in obj["components"]:
            out["components"][name] = [m - pred for m in obj["components"][name]]
    return out


#: Bytes per device a change check lets the device total drift by: the engine's own scalars (a
#: sampling step counter, a follower host's copy of the last batch's flags) come and go with its
#: threads' timing. Seen: 4 B on the second host of the two-process CPU run. (A follower's whole
#: forward batch, 10 KB, once landed in a reading too; the barrier after each measurement in
#: ``validator.run`` closes that race rather than this tolerance.)
CHANGE_TOLERANCE_BYTES = 64


def change_check(name: str, before: dict, after: dict, expected_per_device: list[int],
                 sign: int, tolerance_bytes: int = CHANGE_TOLERANCE_BYTES) -> dict:
    """Check bytes_in_use changed by ``expected`` per device between two phases, within
    ``tolerance_bytes`` per device (the mismatch is reported to the byte either way).

    ``sign`` -1: the bytes went down by ``expected`` (freed); +1: up (allocated).
    """
    b = [d["bytes_in_use"] for d in before["memory"]["devices"]]
    a = [d["bytes_in_use"] for d in after["memory"]["devices"]]
    observed = [(y - x) * sign for x, y in zip(b, a)]  # freed: before - after; allocated: after - before
    return {
        "name": name,
        "ok": len(observed) == len(expected_per_device) and all(
            abs(o - e) <= tolerance_bytes for o, e in zip(observed, expected_per_device)),
        "tolerance_bytes": tolerance_bytes,
        "expected": list(expected_per_device),
        "observed": observed,
        "mismatch_bytes": [o - e for o, e in zip(observed, expected_per_device)],
    }


SUMMARY_COLUMNS = [
    "phase", "idx", "source", "measured_max", "predicted", "delta_max_abs", "delta_pct_max_abs",
    "params_measured_max", "params_predicted", "kv_measured_max", "kv_predicted",
    "second_params_measured_max", "other_max", "checks_ok",
]


def summary_rows(phases: list[dict]) -> list[list]:
    """One row per phase for the summary table (bytes per device; max over devices)."""
    rows = []
    for ph in phases:
        used = [d["bytes_in_use"] for d in ph["memory"]["devices"]]
        delta = ph["delta"].get("bytes_per_device")
        pcts = [p for p in (ph["delta"].get("pct_per_device") or []) if p is not None]
        pc = ph["predicted"]["components"]
        c = ph["components"]
        rows.append([
            ph["phase"], ph["phase_idx"], ph["memory"]["source"], max(used),
            ph["predicted"]["total"],
            max(delta, key=abs) if delta else None,
            max(pcts, key=abs) if pcts else None,
            max(c["params"]), pc.get("params"), max(c["kv"]), pc.get("kv"),
            max(c["second_params"]), max(c["other"]),
            all(ch["ok"] for ch in ph["checks"]),
        ])
    return rows


def format_table(columns: list[str], rows: list[list]) -> str:
    """Plain-text table (right-aligned numbers, thousands separators)."""
    def cell(v):
        if isinstance(v, bool):
            return "yes" if v else "NO"
        if isinstance(v, int):
            return f"{v:,}"
        if isinstance(v, float):
            return f"{v:.3f}"
        return "-" if v is None else str(v)

    text = [[cell(v) for v in r] for r in rows]
    widths = [max(len(c), *(len(r[i]) for r in text)) if text else len(c) for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in text]
    return "\n".join(lines)
