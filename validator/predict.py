"""The planner's per-device predictions for each lifecycle phase. Bytes are ints, per device.

A phase's state is a set of components: ``params`` (the engine's weights), ``kv`` (the fused
KV cache) and ``second_params`` (a second param set of the same structure). The prediction
for the phase is the sum of its components' predicted bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from planner.records import PHASE_COMPONENTS


@dataclass(frozen=True)
class Prediction:
    """Predicted per-device bytes of each component, and how they were computed."""

    params: int | None
    kv: int | None
    kv_total: int | None  # global KV bytes (all devices), what "Fused KV size" logs
    profile: str
    error: str | None = None

    def components(self, names: tuple[str, ...]) -> dict[str, int | None]:
        table = {"params": self.params, "kv": self.kv, "second_params": self.params}
        return {n: table[n] for n in names}


def components_for(phase: str, has_second_params: bool) -> tuple[str, ...]:
    """Components of ``phase``; the rebuilt phases hold the second set when one was made."""
    comps = PHASE_COMPONENTS.get(phase, ())
    if has_second_params and phase in ("kv_cache_rebuilt", "generate_result_after_kv_rebuild"):
        comps = comps + ("second_params",)
    return comps


def _dtype_name(dtype) -> str:
    """'bfloat16' from a jnp dtype, numpy dtype, type or string."""
    try:
        import numpy as np

        return np.dtype(dtype).name
    except Exception:
        return str(getattr(dtype, "__name__", dtype))


def predict(
    model_path: str,
    tp: int,
    max_total_tokens: int,
    engine_version: str,
    dtype,
    kv_dtype,
    page_size: int,
    load_format: str = "dummy",
    num_devices: int | None = None,
) -> Prediction:
    """Ask the planner. Any planner error becomes ``Prediction.error`` (predictions None).

    ``load_format`` is the engine's: "dummy" keeps the dummy layout, anything else (a real
    checkpoint) the safetensors layout. ``num_devices`` is the engine mesh size.
    """
    try:
        from planner.engine import get_profile, kv_layout, param_bytes_per_device
        from planner.model import load_model_spec

        profile = get_profile(engine_version)
        spec = load_model_spec(model_path)
        params = param_bytes_per_device(
            spec, tp, profile, dtype=_dtype_name(dtype), load_format="dummy" if load_format == "dummy" else "real",
            num_devices=None if num_devices is None else int(num_devices))
        kv = kv_layout(spec, tp, int(max_total_tokens), profile, kv_dtype=_dtype_name(kv_dtype),
                       page_size=int(page_size))
        return Prediction(params=int(params), kv=int(kv.per_device_bytes), kv_total=int(kv.total_bytes),
                          profile=profile.version)
    except Exception as e:  # the validator still measures without a prediction
        return Prediction(params=None, kv=None, kv_total=None, profile=str(engine_version),
                          error=f"{type(e).__name__}: {e}")
