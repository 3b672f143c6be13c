"""What to change: concrete ways out of an OOM, each re-checked with the same planner.

Every suggestion carries the modified request and the verdict the planner gives it, so nothing
is printed that the model has not confirmed.
"""

from __future__ import annotations

from functools import partial
from typing import Callable, NamedTuple

from planner.errors import PlanError
from planner.plan import Plan, make_plan
from planner.request import PlanRequest
from planner.tpu import parse_slice
from planner.units import fmt_gib


class Suggestion(NamedTuple):
    """One way out.

    Attributes:
      title: short name (``"smallest slice that fits"``).
      detail: one line with the figures.
      request: the changed request, or None when nothing of this kind fits.
      verdict: the planner's verdict for ``request`` (``"none"`` when there is none).
    """

    title: str
    detail: str
    request: PlanRequest | None
    verdict: str


#: Re-plans a changed request the way the plan itself was made (same calibration records).
Replan = Callable[[PlanRequest], Plan]


def _try(replan: Replan, req: PlanRequest) -> Plan | None:
    try:
        return replan(req)
    except PlanError:
        return None


def _fits(replan: Replan, req: PlanRequest) -> Plan | None:
    p = _try(replan, req)
    return p if p is not None and p.fits else None


def _need_free(p: Plan) -> str:
    if p.step_need_bytes is not None:
        return f"step needs {fmt_gib(p.step_need_bytes)}, {fmt_gib(p.free_at_step_bytes)} free"
    return f"{fmt_gib(p.total_bytes)} of {fmt_gib(p.limit_bytes)}"


def smallest_slice(plan: Plan, replan: Replan = make_plan) -> Suggestion:
    gen = plan.slice.generation
    for size in gen.valid_sizes:
        if size <= int(plan.slice.name.rsplit("-", 1)[1]):
            continue
        name = f"{gen.name}-{size}"
        req = plan.request.with_(tpu=name, mesh=None, tp=None if plan.request.workload != "infer" else plan.request.tp)
        p = _fits(replan, req)
        if p is None and plan.training is not None and req.micro_bs is not None:
            # keep the sequences per device of each micro-step on the bigger mesh
            devices = parse_slice(name).num_devices
            p = _fits(replan, req.with_(micro_bs=min(plan.training.shape.micro_per_device * devices,
                                                     plan.training.shape.padded_sequences)))
        if p is not None:
            s = parse_slice(name)
            return Suggestion("smallest slice that fits", f"{name} ({s.num_devices} devices, {s.num_hosts} host"
                              f"{'s' if s.num_hosts > 1 else ''}): {_need_free(p)}", p.request, p.verdict)
    return Suggestion("smallest slice that fits", f"no {gen.name} slice fits this config", None, "none")


def _largest_fitting_micro_batch(plan: Plan, replan: Replan) -> Plan | None:
    """The plan of ``plan.request`` with the largest micro-batch that fits, or None."""
    t = plan.training
    shards = t.mesh.batch_shards
    padded = t.shape.padded_sequences
    for micro in range(padded, 0, -shards):
        if padded % micro or micro % shards:
            continue
        p = _fits(replan, plan.request.with_(micro_bs=micro))
        if p is not None:
            return p
    return None


def largest_micro_batch(plan: Plan, replan: Replan = make_plan) -> Suggestion | None:
    t = plan.training
    if t is None:
        return None
    p = _largest_fitting_micro_batch(plan, replan)
    if p is not None:
        return Suggestion("largest micro-batch that fits", f"--micro-bs {p.request.micro_bs} (grad_accum "
                          f"{p.training.shape.grad_accum}): {_need_free(p)}", p.request, p.verdict)
    return Suggestion("largest micro-batch that fits", f"none: even --micro-bs {t.mesh.batch_shards} does not fit",
                      None, "none")


def bf16_master_params(plan: Plan, replan: Replan = make_plan) -> Suggestion | None:
    """bfloat16 master params (the optimizer state and the accumulator follow the param dtype).

    Where that alone does not fit, the largest micro-batch that fits with it. It halves the
    resident training state, and it changes the update's numerics, which the detail says.
    """
    if plan.training is None or plan.request.param_dtype == "bfloat16":
        return None
    p = _try(replan, plan.request.with_(param_dtype="bfloat16"))
    if p is None:
        return None
    flags = "--param-dtype bfloat16"
    if not p.fits:
        q = _largest_fitting_micro_batch(p, replan)
        if q is not None:
            p = q
            flags += f" --micro-bs {q.request.micro_bs} (grad_accum {q.training.shape.grad_accum})"
    return Suggestion("bfloat16 master params", f"{flags}: {p.verdict}, {_need_free(p)}; the optimizer state "
                      "and accumulator follow in bf16, which changes the update's numerics", p.request, p.verdict)


def mfs_window(plan: Plan, replan: Replan = make_plan) -> Suggestion | None:
    if plan.engine is None:
        return None
    ok = [m / 100 for m in range(1, 101) if _fits(replan, plan.request.with_(mem_fraction_static=m / 100))]
    if not ok:
        return Suggestion("mem_fraction_static window", "none exists: no mem_fraction_static in 0.01..1.00 "
                          "lets the engine start and the rest fit", None, "none")
    lo, hi = ok[0], ok[-1]
    gaps = len(ok) != round((hi - lo) * 100) + 1
    req = plan.request.with_(mem_fraction_static=lo)
    return Suggestion("mem_fraction_static window", f"{lo:.2f} .. {hi:.2f}{' (not contiguous)' if gaps else ''}: "
                      "below it the engine cannot start, above it the rest does not fit", req, "fits")


def largest_max_total_tokens(plan: Plan, replan: Replan = make_plan) -> Suggestion | None:
    if plan.engine is None:
        return None
    page = plan.request.page_size
    lo, hi = 0, 1 << 24
    if _fits(replan, plan.request.with_(max_total_tokens=page)) is None:
        return Suggestion("largest max_total_tokens that fits", "none: even one page of KV does not fit", None, "none")
    lo = page
    while hi - lo > page:
        mid = (lo + hi) // 2 // page * page
        if mid <= lo:
            break
        if _fits(replan, plan.request.with_(max_total_tokens=mid)):
            lo = mid
        else:
            hi = mid
    p = replan(plan.request.with_(max_total_tokens=lo))
    cap = "" if p.engine.sizing.capped_by == "max_total_tokens" else " (mem_fraction_static caps it there)"
    return Suggestion("largest max_total_tokens that fits", f"--max-total-tokens {lo}{cap}: {_need_free(p)}",
                      p.request, p.verdict)


def remat_full(plan: Plan, replan: Replan = make_plan) -> Suggestion | None:
    if plan.training is None or plan.request.remat == "full":
        return None
    p = _try(replan, plan.request.with_(remat="full"))
    if p is None:
        return None
    return Suggestion("remat full (nothing_saveable)", f"--remat full: {p.verdict}, {_need_free(p)}",
                      p.request, p.verdict)


def separate_rollout_host(plan: Plan, replan: Replan = make_plan) -> Suggestion | None:
    if plan.request.workload != "rl":
        return None
    train = _try(replan, plan.request.with_(workload="train"))
    if train is None:
        return None
    req = plan.request
    infer = _try(replan, PlanRequest(tpu=req.tpu, model=req.model, workload="infer",
                                     engine_version=req.engine_version, dtype=req.dtype,
                                     mem_fraction_static=req.mem_fraction_static))
    roll = f"; rollout engine alone on another {req.tpu}: {infer.verdict}" if infer is not None else ""
    return Suggestion("separate rollout host", f"training alone on {req.tpu}: {train.verdict}, "
                      f"{_need_free(train)}{roll}", train.request, train.verdict)


def suggestions(plan: Plan, records=None) -> list[Suggestion]:
    """All applicable ways out for ``plan`` (computed even when it fits).

    ``records`` are the calibration records ``plan`` was made with: every changed request is
    re-planned with them, so a suggestion's figures add the same measured engine residual as the
    plan's own verdict.
    """
    replan = partial(make_plan, records=records)
    out = [smallest_slice(plan, replan)]
    for fn in (largest_micro_batch, mfs_window, largest_max_total_tokens, remat_full, bf16_master_params,
               separate_rollout_host):
        s = fn(plan, replan)
        if s is not None:
            out.append(s)
    return out
