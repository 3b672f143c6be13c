"""The plan request: every knob the planner takes, validated once."""

from __future__ import annotations

from typing import NamedTuple

from planner.errors import PlanError

WORKLOADS = ("rl", "train", "infer")
OPTIMIZERS = ("lion", "adamw", "sgd", "adafactor")
REMAT_POLICIES = ("dots", "full", "none")


class PlanRequest(NamedTuple):
    """All inputs of one plan. ``None`` means "the engine's or the runner's default".

    Engine knobs carry sglang-jax's names. Training knobs follow the seeds' GRPO runner.
    """

    tpu: str = "v4-8"
    model: str = "Qwen2.5-7B"
    workload: str = "rl"
    # sglang-jax engine
    engine_version: str | None = None
    tp: int | None = None
    dtype: str = "bfloat16"
    kv_dtype: str | None = None
    page_size: int = 1
    mem_fraction_static: float | None = None
    max_total_tokens: int | None = None
    max_running_requests: int | None = None
    context_length: int | None = None
    chunked_prefill_size: int | None = None
    max_prefill_tokens: int = 16384
    # training / RL
    bs: int | None = None
    prompts: int | None = None
    samples_per_prompt: int = 1
    len: int = 1024
    prompt_len: int = 512
    micro_bs: int | None = None
    optimizer: str = "lion"
    param_dtype: str = "float32"
    compute_dtype: str = "bfloat16"
    remat: str = "dots"
    beta: float = 0.0
    mesh: str | None = None
    rollout_chunk: int | None = None
    # calibration
    calibration: bool = True

    def with_(self, **changes) -> "PlanRequest":
        return self._replace(**changes)


def _positive(name: str, value, allow_none: bool = True) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PlanError(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")


def validate(req: PlanRequest) -> PlanRequest:
    """Check ranges and choices; raise :class:`PlanError` with one clear line."""
    if req.workload not in WORKLOADS:
        raise PlanError(f"unknown --workload {req.workload!r}; valid: {', '.join(WORKLOADS)}")
    if req.optimizer not in OPTIMIZERS:
        raise PlanError(f"unknown --optimizer {req.optimizer!r}; valid: {', '.join(OPTIMIZERS)}")
    if req.remat not in REMAT_POLICIES:
        raise PlanError(f"unknown --remat {req.remat!r}; valid: {', '.join(REMAT_POLICIES)}")
    for name in ("tp", "max_total_tokens", "max_running_requests", "context_length", "bs", "prompts",
                 "micro_bs", "rollout_chunk"):
        _positive(name, getattr(req, name))
    for name in ("page_size", "max_prefill_tokens", "samples_per_prompt", "len", "prompt_len"):
        _positive(name, getattr(req, name), allow_none=False)
    if req.chunked_prefill_size is not None and (req.chunked_prefill_size == 0 or req.chunked_prefill_size < -1):
        raise PlanError(f"--chunked-prefill-size must be positive or -1 (off), got {req.chunked_prefill_size}")
    mfs = req.mem_fraction_static
    if mfs is not None and not (0.0 < mfs <= 1.0):
        raise PlanError(f"--mem-fraction-static must be in (0, 1], got {mfs}")
    if not (req.beta >= 0.0):
        raise PlanError(f"--beta must be >= 0, got {req.beta}")
    return req


FIELD_NAMES: tuple[str, ...] = PlanRequest._fields
DEFAULTS: dict[str, object] = dict(PlanRequest._field_defaults)
