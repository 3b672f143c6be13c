"""Renderers: a plan as a text table, as --explain text, or as a JSON-able dict."""

from __future__ import annotations

import json

from planner import step_accuracy
from planner.plan import Plan
from planner.units import fmt_gib, gib


def _table(rows: list[list[str]], header: list[str], align: str) -> str:
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]

    def line(cells):
        out = []
        for i, cell in enumerate(cells):
            cell = str(cell)
            out.append(cell.rjust(widths[i]) if align[i] == "r" else cell.ljust(widths[i]))
        return "  ".join(out).rstrip()

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), sep] + [line(r) for r in rows])


def _pct(n: int, limit: int) -> str:
    return f"{100.0 * n / limit:5.1f}%"


def render_table(plan: Plan, explain: bool = False, suggestions=()) -> str:
    """Human-readable per-device breakdown, verdict and notes."""
    s, limit = plan.slice, plan.limit_bytes
    req = plan.request
    out = [
        f"hbmplan: {plan.spec.name} on {s.name} ({s.num_devices} devices, {s.num_hosts} host"
        f"{'s' if s.num_hosts > 1 else ''}, {fmt_gib(limit)} per device), workload {req.workload}, "
        f"engine sglang-jax {plan.profile.version}",
    ]
    if plan.training is not None:
        t = plan.training
        sh = t.shape
        out.append(
            f"training: {sh.sequences} sequences/step, seq {sh.seq_len} (bucket(prompt {req.prompt_len}) + "
            f"bucket(len {req.len})), micro-batch {sh.micro_batch} ({sh.micro_per_device}/device), "
            f"grad_accum {sh.grad_accum}, mesh dp,fsdp,tp = {t.mesh}, {req.optimizer}, {req.param_dtype} params, "
            f"remat {req.remat}"
        )
    if plan.engine is not None:
        e = plan.engine
        z = e.sizing
        out.append(
            f"engine: tp {e.tp}, mem_fraction_static {e.mem_fraction_static}, context {e.context_len}, "
            f"max_total_tokens {z.num_tokens} (profiled {z.profiled_tokens}, capped by {z.capped_by}), "
            f"max_running_requests {e.max_running_requests}, KV total {fmt_gib(e.kv_bytes_total)}"
        )
    out.append("")
    rows = []
    for c in plan.components:
        rows.append([c.name, f"{c.bytes:,}", f"{gib(c.bytes):.3f}", _pct(c.bytes, limit),
                     "exact" if c.exact else "estimate"])
    rows.append(["total", f"{plan.total_bytes:,}", f"{gib(plan.total_bytes):.3f}",
                 _pct(plan.total_bytes, limit), ""])
    if plan.calibration is not None:
        u = plan.uncalibrated_total_bytes
        rows.append(["uncalibrated total", f"{u:,}", f"{gib(u):.3f}", _pct(u, limit), "exact+est."])
    rows.append(["limit", f"{limit:,}", f"{gib(limit):.3f}", "100.0%", s.generation.name])
    rows.append(["headroom", f"{plan.headroom_bytes:,}", f"{gib(plan.headroom_bytes):.3f}",
                 _pct(plan.headroom_bytes, limit), ""])
    out.append(_table(rows, ["component (per device)", "bytes", "GiB", "of limit", "kind"], "lrrrl"))
    for c in plan.host:
        out.append(f"host memory: {c.name} {c.bytes:,} B ({fmt_gib(c.bytes)}) per host")
    if explain:
        out.append("")
        out.append("explain:")
        for c in plan.components + plan.host:
            out.append(f"  {c.name} = {c.bytes:,} B  [{'exact' if c.exact else 'estimate'}]")
            out.append(f"    formula: {c.formula}")
            inputs = ", ".join(f"{k}={v}" for k, v in c.inputs.items())
            out.append(f"    inputs:  {inputs}")
            if c.basis:
                out.append(f"    basis:   {c.basis}")
        if plan.engine is not None:
            z = plan.engine.sizing
            out.append(
                f"  engine sizing: F0 {z.f0_bytes:,} B, F1 {z.f1_bytes:,} B, budget F1 − F0·(1−mfs) = "
                f"{z.avail_bytes:,} B, cell {z.cell_bytes:,} B/token → profiled {z.profiled_tokens:,}, N {z.num_tokens:,}"
            )
    for note in plan.notes:
        out.append(f"note: {note}")
    out.append("")
    out.append(f"verdict: {plan.headline}")
    if suggestions:
        out.append("")
        out.append("what to change (each re-checked with the same model):")
        for sug in suggestions:
            mark = {"fits": "+", "none": "x"}.get(sug.verdict, "-")
            out.append(f"  [{mark}] {sug.title}: {sug.detail}")
    return "\n".join(out)


def plan_to_json(plan: Plan, suggestions=()) -> dict:
    """The plan as one JSON object (keys documented in the README)."""
    s = plan.slice
    doc = {
        "verdict": plan.verdict,
        "headline": plan.headline,
        "workload": plan.request.workload,
        "tpu": {"type": s.name, "generation": s.generation.name, "num_devices": s.num_devices,
                "num_hosts": s.num_hosts, "num_chips": s.num_chips},
        "model": {"name": plan.spec.name, "family": plan.spec.family, "params": plan.spec.param_count(),
                  "config_hash": plan.spec.config_hash},
        "engine_profile": plan.profile.version,
        "limit_bytes": plan.limit_bytes,
        "per_device": {
            "total_bytes": plan.total_bytes,
            "uncalibrated_total_bytes": plan.uncalibrated_total_bytes,
            "headroom_bytes": plan.headroom_bytes,
            "components": {c.name: c.bytes for c in plan.components},
            "details": {c.name: c.to_json() for c in plan.components},
        },
        "host": {c.name: c.to_json() for c in plan.host},
        "notes": list(plan.notes),
        "calibration": None if plan.calibration is None else {
            "phase": plan.calibration.phase, "generation": plan.calibration.generation,
            "profile": plan.calibration.profile, "residual_bytes_per_device": plan.calibration.bytes,
            "records": list(plan.calibration.record_ids)},
        "suggestions": [{"title": x.title, "detail": x.detail, "verdict": x.verdict} for x in suggestions],
    }
    if plan.engine is not None:
        doc["engine"] = plan.engine.to_json()
    if plan.training is not None:
        t = plan.training
        doc["training"] = {
            "resident_bytes": t.resident_bytes,
            "step_temp_bytes": t.step_temp_bytes,
            "free_bytes_at_step": plan.free_at_step_bytes,
            "sequences": t.shape.sequences,
            "seq_len": t.shape.seq_len,
            "micro_batch": t.shape.micro_batch,
            "grad_accum": t.shape.grad_accum,
            "tokens_per_device": t.shape.tokens_per_device,
            "step_accuracy": None if plan.step_band is None else {
                **plan.step_band.to_json(),
                "need_range_bytes": list(step_accuracy.need_range(plan.step_band, plan.step_need_bytes))},
            "mesh": {"dp": t.mesh.dp, "fsdp": t.mesh.fsdp, "tp": t.mesh.tp},
        }
    return doc


def render_json(plan: Plan, suggestions=()) -> str:
    return json.dumps(plan_to_json(plan, suggestions), indent=2)
