"""Compose a plan: hardware + model + engine + training → per-device breakdown and verdict.

Pure functions over the typed records of the other modules; nothing here prints.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from planner.components import Component
from planner.engine import (
    EngineProfile,
    KvSizing,
    get_profile,
    kv_component,
    kv_layout,
    max_num_reqs,
    max_running_requests,
    param_component,
    req_to_token_bytes,
    size_kv,
)
from planner.errors import PlanError
from planner.model import ModelSpec, load_model_spec
from planner.request import PlanRequest, validate
from planner.tpu import TpuSlice, parse_slice
from planner.units import ceil_div, dtype_bytes, fmt_gib

VERDICTS = ("fits", "oom", "engine_cannot_start")
DEFAULT_MFS_INFER = 0.88
DEFAULT_MFS_RL = 0.5
DEFAULT_CHUNKED_PREFILL = 4096


class EnginePlan(NamedTuple):
    """The engine's side of a plan (per device unless noted)."""

    tp: int
    mem_fraction_static: float
    context_len: int
    requested_max_total_tokens: int | None
    sizing: KvSizing
    param_bytes_per_device: int
    kv_bytes_per_device: int
    kv_bytes_total: int
    max_running_requests: int
    req_to_token_bytes: int
    runtime_temp_bytes: int
    knobs_source: str

    def to_json(self) -> dict:
        s = self.sizing
        return {
            "tp": self.tp,
            "mem_fraction_static": self.mem_fraction_static,
            "context_len": self.context_len,
            "requested_max_total_tokens": self.requested_max_total_tokens,
            "max_total_tokens": s.num_tokens,
            "profiled_tokens": s.profiled_tokens,
            "capped_by": s.capped_by,
            "f0_bytes": s.f0_bytes,
            "f1_bytes": s.f1_bytes,
            "kv_budget_bytes": s.avail_bytes,
            "reserved_bytes": s.reserved_bytes,
            "cell_bytes": s.cell_bytes,
            "param_bytes_per_device": self.param_bytes_per_device,
            "kv_bytes_per_device": self.kv_bytes_per_device,
            "kv_bytes_total": self.kv_bytes_total,
            "max_running_requests": self.max_running_requests,
            "req_to_token_host_bytes": self.req_to_token_bytes,
            "runtime_temp_bytes_estimate": self.runtime_temp_bytes,
            "error": s.error,
            "knobs_source": self.knobs_source,
        }


class Plan(NamedTuple):
    """A finished plan. HBM components are per device; ``host`` components are per host."""

    request: PlanRequest
    slice: TpuSlice
    spec: ModelSpec
    profile: EngineProfile
    components: list[Component]
    host: list[Component]
    verdict: str
    headline: str
    engine: EnginePlan | None = None
    training: object | None = None  # planner.training.TrainingMemory
    step_need_bytes: int | None = None
    free_at_step_bytes: int | None = None
    notes: tuple[str, ...] = ()
    calibration: object | None = None  # planner.calibration.Residual
    step_band: object | None = None  # planner.step_accuracy.Band: the step estimate's error against XLA
    step_unpredicted: str | None = None  # why the step model does not predict XLA's schedule (flagged), else None

    @property
    def uncalibrated_total_bytes(self) -> int:
        return sum(c.bytes for c in self.components if not c.name.startswith("calibration."))

    @property
    def limit_bytes(self) -> int:
        return self.slice.limit_bytes

    @property
    def total_bytes(self) -> int:
        return sum(c.bytes for c in self.components)

    @property
    def headroom_bytes(self) -> int:
        return self.limit_bytes - self.total_bytes

    @property
    def fits(self) -> bool:
        return self.verdict == "fits"


# -- engine ---------------------------------------------------------------------------------------


def _engine_runtime_temp(spec: ModelSpec, tp: int, it: int, tokens_pad: int, bs_pad: int) -> Component:
    """Estimate of one forward's transient buffers: padded tokens × activations + fp32 logits."""
    H = spec.hidden
    inter = spec.intermediate if spec.moe is None else spec.moe.moe_intermediate * spec.moe.experts_per_tok
    hkv = tp if tp > spec.kv_heads else spec.kv_heads
    per_token = 2 * H + ceil_div(spec.q_dim + 2 * hkv * spec.head_dim, tp) + ceil_div(2 * inter, tp)
    acts = tokens_pad * per_token * it
    logits = bs_pad * spec.vocab * 4
    return Component(
        "engine.runtime_temporaries", acts + logits,
        "tok_pad · (2H + (nH + 2Hkv)·hd/T + 2I/T) · it  +  bs_pad · V · 4",
        {"tok_pad": tokens_pad, "bs_pad": bs_pad, "H": H, "T": tp, "I": inter, "V": spec.vocab, "it": it,
         "activations": acts, "logits": logits},
        exact=False, phase="transient",
        basis="estimate of the largest precompiled forward (token padding = min(max_prefill_tokens, "
        "chunked_prefill_size), batch padding = min(max_running_requests, tokens)); not yet measured",
    )


def plan_engine(
    spec: ModelSpec,
    slc: TpuSlice,
    profile: EngineProfile,
    req: PlanRequest,
    *,
    tp: int,
    f0_free_bytes: int,
    mem_fraction_static: float,
    max_total_tokens: int | None,
    max_running_flag: int | None,
    context_len: int,
    knobs_source: str,
    world: int | None = None,
) -> tuple[EnginePlan, list[Component], list[Component]]:
    """Size the engine on devices with ``f0_free_bytes`` free; return its HBM and host components.

    ``world`` is the engine's mesh size (data × tensor), over which MoE experts are split: every
    device of the slice for a serving engine (default), one host's devices for the RL runner's.
    """
    if slc.num_devices % tp:
        raise PlanError(
            f"--tp {tp} does not divide the {slc.num_devices} devices of {slc.name}; valid: "
            + ", ".join(str(t) for t in range(1, slc.num_devices + 1) if slc.num_devices % t == 0 and spec.heads % t == 0)
        )
    kv_dtype = req.kv_dtype or req.dtype
    params = param_component(spec, tp, profile, req.dtype, "engine.params",
                             num_devices=world or slc.num_devices)
    probe = kv_layout(spec, tp, 1, profile, kv_dtype, req.page_size)
    sizing = size_kv(f0_free_bytes, params.bytes, probe.cell_bytes, mem_fraction_static, max_total_tokens,
                     req.page_size)
    hbm = [params]
    n = sizing.num_tokens
    kv_total = kv_dev = 0
    if sizing.error is None:
        kv = kv_layout(spec, tp, n, profile, kv_dtype, req.page_size)
        kv_total, kv_dev = kv.total_bytes, kv.per_device_bytes
        hbm.append(kv_component(kv, "engine.kv_cache", profile))
    rows = max_num_reqs(sizing.profiled_tokens, context_len, max_running_flag)
    mrr = max_running_requests(n, rows, context_len, req.page_size, max_running_flag) if n else 0
    chunk = DEFAULT_CHUNKED_PREFILL if req.chunked_prefill_size is None else req.chunked_prefill_size
    tokens_pad = req.max_prefill_tokens if chunk <= 0 else min(req.max_prefill_tokens, chunk)
    bs_pad = max(1, min(mrr, tokens_pad))
    temp = _engine_runtime_temp(spec, tp, dtype_bytes(req.dtype), tokens_pad, bs_pad)
    host = [Component(
        "engine.req_to_token", req_to_token_bytes(rows, context_len),
        "(max_num_reqs + 1) · (context_len + 4) · 4   (host numpy int32)",
        {"max_num_reqs": rows, "context_len": context_len}, where="host",
        basis="ReqToTokenPool; max_num_reqs = --max-running-requests, else min(max(profiled/ctx·512, 2048), 4096)",
    )]
    eng = EnginePlan(tp, mem_fraction_static, context_len, max_total_tokens, sizing, params.bytes, kv_dev,
                     kv_total, mrr, host[0].bytes, temp.bytes, knobs_source)
    return eng, hbm, [temp] + host


# -- workloads ------------------------------------------------------------------------------------


def _sequences(req: PlanRequest) -> int:
    if req.prompts is not None:
        return req.prompts * req.samples_per_prompt
    if req.bs is not None:
        return req.bs
    return 32


def default_serving_tp(spec: ModelSpec, num_devices: int) -> int:
    """The largest tp that divides both the slice's devices and the attention heads (the rest of
    the devices become data-parallel replicas)."""
    return max(t for t in range(1, num_devices + 1) if num_devices % t == 0 and spec.heads % t == 0)


def rl_engine_defaults(req: PlanRequest, sequences: int, local_devices: int) -> tuple[int, int, int, str]:
    """The seeds' runner defaults: (context_len, max_total_tokens, max_running_requests, source)."""
    from planner.training import bucket

    ctx = bucket(bucket(req.prompt_len) + bucket(req.len))
    chunk = req.rollout_chunk or min(sequences, local_devices)
    mtt = min(min(16384, max(8192, 8 * ctx)), ctx * chunk)
    return ctx, mtt, chunk, "runner defaults: ctx = bucket(bucket(prompt)+bucket(len)), " \
        "max_total_tokens = min(16384, max(8192, 8·ctx), ctx·chunk), max_running_requests = chunk"


def _calibration_component(res) -> Component:
    return Component(
        "calibration.engine_residual", res.bytes,
        "median over matching records of (measured − predicted) per device",
        {"phase": res.phase, "generation": res.generation, "profile": res.profile,
         "records": len(res.record_ids)},
        exact=False, basis=f"{len(res.record_ids)} calibration record(s): {', '.join(res.record_ids)}; "
        "see `hbmplan accuracy` for its leave-one-out error",
    )


def make_plan(req: PlanRequest, records=None) -> Plan:
    """Build the plan for ``req``. Raises :class:`PlanError` for bad input.

    ``records`` (calibration records, see :mod:`planner.calibration`) add the median measured
    residual of the engine when ``req.calibration`` is set and a matching record exists.
    """
    req = validate(req)
    slc = parse_slice(req.tpu)
    spec = load_model_spec(req.model)
    profile = get_profile(req.engine_version)
    limit = slc.limit_bytes
    notes: list[str] = []
    res = None
    if req.calibration and records and req.workload != "train":
        from planner.calibration import serving_residual

        res = serving_residual(records, slc.generation.name, profile.version)

    if req.workload == "infer":
        tp = req.tp or default_serving_tp(spec, slc.num_devices)
        mfs = req.mem_fraction_static if req.mem_fraction_static is not None else DEFAULT_MFS_INFER
        ctx = req.context_length or spec.max_position
        eng, hbm, transient = plan_engine(
            spec, slc, profile, req, tp=tp, f0_free_bytes=limit, mem_fraction_static=mfs,
            max_total_tokens=req.max_total_tokens, max_running_flag=req.max_running_requests, context_len=ctx,
            knobs_source="sglang-jax defaults and flags",
        )
        host = [c for c in transient if c.where == "host"]
        if res is not None and eng.sizing.error is None:
            hbm.append(_calibration_component(res))
        comps = hbm + [c for c in transient if c.where == "hbm"]
        if req.max_total_tokens and eng.sizing.error is None and eng.sizing.num_tokens < req.max_total_tokens:
            notes.append(f"max_total_tokens {req.max_total_tokens} exceeds what mem_fraction_static {mfs} buys; "
                         f"the engine uses {eng.sizing.num_tokens} (it only logs a warning)")
        total = sum(c.bytes for c in comps)
        if eng.sizing.error:
            verdict = "engine_cannot_start"
            headline = (f"engine cannot start: {eng.sizing.error} (KV budget F1 − F0·(1−mfs) = "
                        f"{fmt_gib(eng.sizing.avail_bytes)} ≤ 0)")
        elif total > limit:
            verdict = "oom"
            headline = (f"oom: params + KV + forward temporaries need {fmt_gib(total)} "
                        f"of {fmt_gib(limit)} per device")
        else:
            verdict, headline = "fits", f"fits: {fmt_gib(total)} of {fmt_gib(limit)} per device"
        plan = Plan(req, slc, spec, profile, comps, host, verdict, headline, engine=eng, notes=tuple(notes),
                    calibration=res)
        return plan

    # training and co-located RL (imported here: the infer path stays light)
    from planner import step_accuracy
    from planner.training import (hoisting_line_note, near_line_other_outcome, parse_mesh, past_share_note,
                                  rings_line_note, scheduler_memory_share, train_shape,
                                  training_memory, unpredicted_step_reason)

    sequences = _sequences(req)
    mesh = parse_mesh(req.mesh, slc.num_devices)
    shape = train_shape(sequences, req.micro_bs, req.prompt_len, req.len, mesh)
    train = training_memory(spec, mesh, shape, req.optimizer, req.param_dtype, req.compute_dtype, req.remat, req.beta,
                            xla_limit_bytes=limit, generation=slc.generation.step_rules_name)
    resident = list(train.resident)
    need = train.step_temp_bytes
    gen = slc.generation.step_rules_name  # the rules' generation; the bands keep the slice's own
    unpredicted = unpredicted_step_reason(gen, req.optimizer, req.remat, train, slc.generation.name)
    regime = step_accuracy.regime(slc.generation.name, slc.num_devices, req.remat, train)
    band = None if unpredicted else step_accuracy.lookup(regime)
    if band is not None:
        notes.append(step_accuracy.band_note(band))
    elif not unpredicted:
        notes.append(f"step estimate: no {step_accuracy.MIN_BAND_RECORDS} compiles of such a step "
                     f"({step_accuracy.describe(regime)}) are on record to say how close it is; the step model was "
                     "fitted on v4, v5e and v6e compiles; check it with --compile")
    if slc.generation.step_rules:
        notes.append(f"the step model applies {gen}'s fitted rules to {slc.generation.name}, whose compiles came closer "
                     f"on them than on the defaults; its error band is over {slc.generation.name}'s own compiles, and "
                     f"figures that name {gen} are those rules")
    if unpredicted:
        notes.append(unpredicted)
    for near_line in (hoisting_line_note(train), rings_line_note(gen, train), past_share_note(train)):
        if near_line and not unpredicted:
            notes.append(near_line)
    if mesh.tp > 1:
        if not unpredicted:
            notes.append(step_accuracy.tp_note(mesh.tp, step_accuracy.tp_regime(train)))
        uneven = [f"{n} {kind}" for n, kind in spec.heads_tp_does_not_divide(mesh.tp)]
        if uneven:
            notes.append(f"training mesh tp = {mesh.tp} does not divide {spec.name}'s {' or '.join(uneven)}: an "
                         "attention kernel sharded by head (splash, as in the reference step) cannot run on it, and "
                         "--compile cannot build it; the estimate splits the q, k and v projections over tp as if it "
                         f"could; a tp that divides {math.gcd(spec.heads, spec.kv_heads)} shards by head")
    host: list[Component] = []
    eng = None
    engine_hbm: list[Component] = []
    if req.workload == "rl":
        local = slc.devices_per_host
        ctx, mtt, chunk, source = rl_engine_defaults(req, sequences, local)
        flags = req.max_total_tokens is not None or req.max_running_requests is not None or req.context_length
        if flags:
            source = "sglang-jax flags given by the user; runner defaults for the rest"
        mfs = req.mem_fraction_static if req.mem_fraction_static is not None else DEFAULT_MFS_RL
        free_at_engine = limit - sum(c.bytes for c in resident)
        eng, engine_hbm, transient = plan_engine(
            spec, slc, profile, req, tp=req.tp or local, f0_free_bytes=free_at_engine,
            mem_fraction_static=mfs,
            max_total_tokens=req.max_total_tokens if req.max_total_tokens is not None else mtt,
            max_running_flag=req.max_running_requests if req.max_running_requests is not None else chunk,
            context_len=req.context_length or ctx, knobs_source=source, world=local,
        )
        host = [c for c in transient if c.where == "host"]
        if res is not None and eng.sizing.error is None:
            engine_hbm.append(_calibration_component(res))
    comps = resident + engine_hbm + list(train.step)
    free = limit - sum(c.bytes for c in resident) - sum(c.bytes for c in engine_hbm)
    if eng is not None and eng.sizing.error:
        verdict = "engine_cannot_start"
        headline = (f"engine cannot start: {eng.sizing.error} (after the training state, F0 = "
                    f"{fmt_gib(eng.sizing.f0_bytes)}; KV budget F1 − F0·(1−mfs) = "
                    f"{fmt_gib(eng.sizing.avail_bytes)} ≤ 0)")
    elif need > free:
        verdict = "oom"
        headline = (f"oom: RESOURCE_EXHAUSTED loading 'jit_training_step': jit_training_step needs "
                    f"{fmt_gib(need)}, {fmt_gib(max(free, 0))} free")
    else:
        verdict, headline = "fits", f"fits: jit_training_step needs {fmt_gib(need)}, {fmt_gib(free)} free"
    share = scheduler_memory_share(gen)
    if verdict == "fits" and free - need < limit - int(share * limit):
        notes.append(f"the step leaves {fmt_gib(free - need)} of headroom, inside the {1 - share:.0%} of HBM that XLA:TPU's "
                     "scheduler keeps free; there the estimate has missed both ways (bench row 100: v5e, "
                     "0.9% headroom estimated before the untied lm_head's SwiGLU term, compile OOM with 9.90 GiB "
                     "of temp; row 106: v4, 3.2%, compiled with 9.55 GiB, 12% above the estimate); check it with "
                     "--compile")
    if verdict in ("fits", "oom"):
        flip = step_accuracy.verdict_note(band, need, free)
        if flip:
            notes.append(flip)
        near = None if unpredicted else near_line_other_outcome(train)
        if near is not None:
            line, other = near
            if (other > free) != (need > free):
                notes.append(f"the verdict turns on XLA's choice at the {line}: the other outcome, {fmt_gib(other)}, "
                             f"would {'not fit in' if other > free else 'fit in'} the {fmt_gib(max(free, 0))} free; "
                             "check it with --compile")
    plan = Plan(req, slc, spec, profile, comps, host, verdict, headline, engine=eng, training=train,
                step_need_bytes=need, free_at_step_bytes=free, notes=tuple(notes), calibration=res,
                step_band=band, step_unpredicted=unpredicted)
    return plan
