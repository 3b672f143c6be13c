"""Turn a run's phases into a calibration record (``planner.records`` schema).

The per-device numbers come from the gathered measurements of every host (global device
order); the predictions and phase facts from host 0's phase objects (every host predicts the
same per-device bytes).
"""

from __future__ import annotations

from planner.records import CalibrationRecord, PhaseRecord, new_record_id, utc_now_iso


def _sum(vals):
    return None if vals is None or any(v is None for v in vals) else sum(vals)


def _max(vals):
    vals = [v for v in (vals or []) if v is not None]
    return max(vals) if vals else None


def build_record(*, phases: list[dict], global_phases: list[dict], tpu_type: str, num_devices: int,
                 num_hosts: int, model: dict, engine: dict, knobs: dict, notes: str = "") -> CalibrationRecord:
    """A :class:`CalibrationRecord` from host 0's phase objects and the gathered per-device data."""
    out = []
    for ph, g in zip(phases, global_phases):
        measured = g["bytes_in_use"]
        pred = ph["predicted"]
        total = pred["total"]
        comps = {c: g[c] for c in ("params", "kv", "second_params", "other") if g.get(c) is not None}
        peaks = g.get("peak_bytes_in_use")
        limits = g.get("bytes_limit")
        out.append(PhaseRecord(
            name=ph["phase"],
            idx=ph["phase_idx"],
            source=ph["memory"]["source"],
            measured_per_device=tuple(measured),
            measured_sum=_sum(measured),
            peak_per_device=tuple(peaks) if peaks and None not in peaks else None,
            peak_max=_max(peaks),
            limit_per_device=tuple(limits) if limits and None not in limits else None,
            measured_components={k: tuple(v) for k, v in comps.items() if None not in v},
            predicted_components=dict(pred["components"]),
            predicted_per_device=total,
            delta_per_device=tuple(m - total for m in measured) if total is not None else None,
            delta_sum=(_sum(measured) - total * len(measured)) if total is not None else None,
            extra={
                "elapsed_s": ph["elapsed_s"],
                "phase_elapsed_s": ph["phase_elapsed_s"],
                "checks": [{k: c[k] for k in ("name", "ok")} for c in ph["checks"]],
                "process_rss_bytes": g.get("process_rss_bytes"),
                **{k: v for k, v in (ph.get("info") or {}).items()
                   if k in ("output_sha256", "same_output", "deleted_buffers", "fused_bytes_total",
                            "weights_source", "max_total_tokens")},
            },
        ))
    return CalibrationRecord(
        record_id=new_record_id(),
        created=utc_now_iso(),
        transcribed=False,
        source="hbmvalidate",
        tpu_type=tpu_type,
        num_devices=num_devices,
        num_hosts=num_hosts,
        model=model,
        engine=engine,
        knobs=knobs,
        phases=tuple(out),
        notes=notes,
    )
