"""sglang-jax engine memory: exact per-device params, fused KV cache, and KV sizing.

Every formula here follows the engine's source (see the profile for each version) and is
checked against measured runs: the seeds' fused KV bytes agree to the byte.

Symbols: T tp size, kv KV heads, L layers, hd head dim, H hidden, I intermediate, V vocab,
nH attention heads, ps page size, N max total tokens, it bytes per element.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from planner.components import Component
from planner.errors import PlanError
from planner.model import ModelSpec
from planner.units import ceil_div, dtype_bytes, round_up


class EngineProfile(NamedTuple):
    """One sglang-jax version's memory layout.

    Attributes:
      version: profile name (``"0.0.2"`` or ``"bd09a87"``).
      source: the upstream commit and files the layout was read from.
      head_dim_align: KV head dim is rounded up to this multiple (1 = no alignment).
      embedding_sharded: embedding and lm_head split by vocab over 'tensor' (else replicated).
      dummy_bias_sharded: with ``load_format='dummy'`` the q/k/v biases are split over 'tensor'
        (real weights keep them replicated on every profile).
      moe_experts_sharded_on: ``"experts"`` (expert axis over all devices, EP = data×tensor) or
        ``"intermediate"`` (EPMoE with ep_size 1: each expert's intermediate dim over all devices).
      moe_dummy_experts_squared: the dummy loader builds E/EP experts globally and splits them EP
        ways again, so a device holds E/EP² experts (0.0.2).
      moe_router_sharded: the router kernel's expert dim is split over all devices.
      moe_router_dtype: dtype of the router kernel (None: the model dtype).
    """

    version: str
    source: str
    head_dim_align: int
    embedding_sharded: bool
    dummy_bias_sharded: bool
    moe_experts_sharded_on: str
    moe_dummy_experts_squared: bool
    moe_router_sharded: bool
    moe_router_dtype: str | None


PROFILES: dict[str, EngineProfile] = {
    p.version: p
    for p in (
        EngineProfile(
            version="bd09a87",
            source="sgl-project/sglang-jax@bd09a87 (2026-01-20), the commit the seeds' TPU runs pinned; "
            "model_runner.profile_max_num_token, models/qwen2.py, models/qwen3_moe.py (EPMoE, ep_size 1)",
            head_dim_align=128,
            embedding_sharded=True,
            dummy_bias_sharded=False,
            moe_experts_sharded_on="intermediate",
            moe_dummy_experts_squared=False,
            moe_router_sharded=False,
            moe_router_dtype=None,
        ),
        EngineProfile(
            version="0.0.2",
            source="sglang-jax 0.0.2 from PyPI (= sgl-project/sglang-jax@3b79326b, 2025-10-22); "
            "embedding/lm_head WeightMapping sharding (None, None), qwen3_moe EPMoE experts on ('data','tensor'); "
            "layout measured on CPU to the byte (validator/NOTES-engine-layout.md)",
            head_dim_align=1,
            embedding_sharded=False,
            dummy_bias_sharded=True,
            moe_experts_sharded_on="experts",
            moe_dummy_experts_squared=True,
            moe_router_sharded=True,
            moe_router_dtype="float32",
        ),
    )
}

#: The profile used when none is given; see README "Engine profiles".
DEFAULT_ENGINE_VERSION = "bd09a87"


def get_profile(version: str | None = None) -> EngineProfile:
    """Return the :class:`EngineProfile` for ``version`` (default :data:`DEFAULT_ENGINE_VERSION`)."""
    key = DEFAULT_ENGINE_VERSION if version is None else str(version).strip().lower()
    if key.startswith("v"):
        key = key[1:]
    for name, profile in PROFILES.items():
        if key == name or (len(key) >= 7 and name.startswith(key[:7])):
            return profile
    raise PlanError(f"unknown engine version {version!r}; valid: {', '.join(PROFILES)}")


# -- tensor-parallel head layout -----------------------------------------------------------------


def replicated_kv_heads(kv_heads: int, tp: int) -> int:
    """KV heads after the engine replicates them for TP: T if T > kv, else kv (no padding)."""
    return tp if tp > kv_heads else kv_heads


def kv_heads_per_device(kv_heads: int, tp: int) -> int:
    """KV heads each device holds: 1 if T >= kv, else ceil(kv / T)."""
    return 1 if tp >= kv_heads else ceil_div(kv_heads, tp)


def aligned_head_dim(head_dim: int, profile: EngineProfile) -> int:
    """Head dim of the KV buffer: rounded up to 128 on bd09a87 and later, as is on 0.0.2."""
    return round_up(head_dim, profile.head_dim_align)


def check_tp(spec: ModelSpec, tp: int) -> None:
    """Raise :class:`PlanError` for a tp the engine cannot shard this model over."""
    if tp < 1:
        raise PlanError(f"--tp must be >= 1, got {tp}")
    if spec.heads % tp:
        raise PlanError(
            f"tp {tp} does not divide the {spec.heads} attention heads of {spec.name}; "
            f"valid tp: {', '.join(str(t) for t in range(1, spec.heads + 1) if spec.heads % t == 0)}"
        )


# -- parameters --------------------------------------------------------------------------------


LOAD_FORMATS = ("real", "dummy")


def param_bytes_by_group(
    spec: ModelSpec,
    tp: int,
    profile: EngineProfile,
    dtype: str = "bfloat16",
    load_format: str = "real",
    num_devices: int | None = None,
) -> dict[str, int]:
    """Bytes of the engine's weights held by one device, by group.

    Sharding (read from the engine's WeightMappings and measured on the real engine): q/k/v and
    gate/up split on their output dim over 'tensor'; o and down on their input dim; k/v built
    with T heads when kv < T; norms replicated; embedding/lm_head, biases and MoE experts per
    the profile. ``num_devices`` is the engine mesh size (data × tensor; default tp), over which
    MoE experts are split.
    """
    check_tp(spec, tp)
    if load_format not in LOAD_FORMATS:
        raise PlanError(f"unknown load format {load_format!r}; valid: {', '.join(LOAD_FORMATS)}")
    it = dtype_bytes(dtype)
    world = num_devices or tp
    H, hd, T = spec.hidden, spec.head_dim, tp
    hkv = replicated_kv_heads(spec.kv_heads, T)
    q_dev = ceil_div(spec.q_dim, T)
    kv_dev = ceil_div(hkv * hd, T)
    vocab_rows = ceil_div(spec.vocab, T) if profile.embedding_sharded else spec.vocab
    bias_sharded = profile.dummy_bias_sharded and load_format == "dummy"
    router_it = dtype_bytes(profile.moe_router_dtype) if profile.moe_router_dtype else it
    el = {
        "embedding": vocab_rows * H,
        "lm_head": 0 if spec.tied else vocab_rows * H,
        "final_norm": H,
        "attention": 0,
        "attention_bias": 0,
        "norms": 0,
        "mlp": 0,
        "moe_experts": 0,
    }
    router_bytes = 0
    for i in range(spec.layers):
        el["attention"] += 2 * H * q_dev + 2 * H * kv_dev
        if spec.qkv_bias:
            el["attention_bias"] += (q_dev + 2 * kv_dev) if bias_sharded else (spec.q_dim + 2 * hkv * hd)
        if spec.o_bias:
            el["attention_bias"] += H
        el["norms"] += spec.norm_params()
        if spec.is_moe_layer(i):
            m = spec.moe
            E = m.num_experts
            router_bytes += H * (ceil_div(E, world) if profile.moe_router_sharded else E) * router_it
            if profile.moe_experts_sharded_on == "experts":
                experts = ceil_div(E, world)
                if load_format == "dummy" and profile.moe_dummy_experts_squared:
                    experts = ceil_div(experts, world)
                el["moe_experts"] += experts * 3 * H * m.moe_intermediate
            else:
                el["moe_experts"] += E * 3 * H * ceil_div(m.moe_intermediate, world)
        else:
            el["mlp"] += 3 * H * ceil_div(spec.intermediate, T)
    out = {k: v * it for k, v in el.items()}
    out["moe_router"] = router_bytes
    return out


def param_bytes_per_device(
    spec: ModelSpec,
    tp: int,
    profile: EngineProfile,
    dtype: str = "bfloat16",
    load_format: str = "real",
    num_devices: int | None = None,
) -> int:
    """Bytes of the engine's weights on one device (exact layout of ``profile``)."""
    return sum(param_bytes_by_group(spec, tp, profile, dtype, load_format, num_devices).values())


def param_component(
    spec: ModelSpec, tp: int, profile: EngineProfile, dtype: str, name: str, num_devices: int | None = None
) -> Component:
    groups = param_bytes_by_group(spec, tp, profile, dtype, "real", num_devices)
    it = dtype_bytes(dtype)
    emb = "V/T·H" if profile.embedding_sharded else "V·H (replicated)"
    return Component(
        name=name,
        bytes=sum(groups.values()),
        formula=(
            f"it · [ {emb} · (2 if untied else 1) + H + L · ((2·nH·hd·H + 2·Hkv·hd·H + 3·H·I)/T "
            "+ norms + biases) ]  (MoE layers: router + experts as sharded)"
        ),
        inputs={
            "it": it, "T": tp, "V": spec.vocab, "H": spec.hidden, "L": spec.layers, "nH": spec.heads,
            "kv": spec.kv_heads, "Hkv": replicated_kv_heads(spec.kv_heads, tp), "hd": spec.head_dim,
            "I": spec.intermediate, "tied": spec.tied, "bytes_by_group": groups,
        },
        exact=True,
        basis=f"engine profile {profile.version}: {profile.source}",
    )


# -- fused KV cache ----------------------------------------------------------------------------


class KvLayout(NamedTuple):
    """The fused KV cache: ``num_layers`` arrays of ``buffer_shape``, sharded over 'tensor'.

    Attributes:
      num_tokens: N, the usable token slots (max_total_num_tokens).
      page_size: ps; the buffer has N + ps rows (slot 0 is a padding target).
      buffer_shape: global shape of one layer's buffer: (N + ps, 2·Hkv, hd_a).
      num_layers: L.
      itemsize: bytes per element.
      tp: T.
      heads_per_device: KV heads per device.
      total_bytes: global bytes over all layers (what "Fused KV size" logs, /2^30).
      per_device_bytes: bytes on one device.
      cell_bytes: bytes per token per device, as the engine's profiler computes it.
    """

    num_tokens: int
    page_size: int
    buffer_shape: tuple[int, int, int]
    num_layers: int
    itemsize: int
    tp: int
    heads_per_device: int
    total_bytes: int
    per_device_bytes: int
    cell_bytes: int


def kv_layout(
    spec: ModelSpec,
    tp: int,
    max_total_tokens: int,
    profile: EngineProfile,
    kv_dtype: str = "bfloat16",
    page_size: int = 1,
) -> KvLayout:
    """Exact fused-KV layout for ``max_total_tokens`` token slots."""
    check_tp(spec, tp)
    if max_total_tokens < 1:
        raise PlanError(f"max_total_tokens must be >= 1, got {max_total_tokens}")
    if page_size < 1:
        raise PlanError(f"--page-size must be >= 1, got {page_size}")
    it = dtype_bytes(kv_dtype)
    hkv = replicated_kv_heads(spec.kv_heads, tp)
    hd_a = aligned_head_dim(spec.head_dim, profile)
    per_dev_heads = kv_heads_per_device(spec.kv_heads, tp)
    rows = max_total_tokens + page_size
    return KvLayout(
        num_tokens=max_total_tokens,
        page_size=page_size,
        buffer_shape=(rows, 2 * hkv, hd_a),
        num_layers=spec.layers,
        itemsize=it,
        tp=tp,
        heads_per_device=per_dev_heads,
        total_bytes=spec.layers * rows * 2 * hkv * hd_a * it,
        per_device_bytes=spec.layers * rows * 2 * per_dev_heads * hd_a * it,
        cell_bytes=per_dev_heads * hd_a * spec.layers * 2 * it,
    )


def kv_component(kv: KvLayout, name: str, profile: EngineProfile) -> Component:
    return Component(
        name=name,
        bytes=kv.per_device_bytes,
        formula="L · (N + ps) · 2 · kv_dev · hd_a · it   (global: L · (N + ps) · 2 · Hkv · hd_a · it)",
        inputs={
            "L": kv.num_layers, "N": kv.num_tokens, "ps": kv.page_size, "kv_dev": kv.heads_per_device,
            "Hkv": kv.buffer_shape[1] // 2, "hd_a": kv.buffer_shape[2], "it": kv.itemsize,
            "global_bytes": kv.total_bytes, "buffer_shape": list(kv.buffer_shape),
        },
        exact=True,
        basis=f"MHATokenToKVPool, sharded P(None, 'tensor', None); profile {profile.version}; "
        "seed runs (Qwen2.5-3B, v4-8) match to the byte",
    )


# -- sizing from mem_fraction_static -------------------------------------------------------------


def engine_memory_reading(free_bytes: int) -> int:
    """Free bytes as the engine reads them: min over devices, through float32 KiB, back to int."""
    kib32 = struct.unpack("f", struct.pack("f", free_bytes / 1024))[0]
    return int(kib32 * 1024)


NOT_ENOUGH_MEMORY = "RuntimeError: Not enough memory. Please try to increase --mem-fraction-static."


class KvSizing(NamedTuple):
    """How the engine picks N from mem_fraction_static (``ModelRunner.profile_max_num_token``).

    All byte fields are per device.

    Attributes:
      f0_bytes: free memory read before the weights load.
      f1_bytes: free memory read after load and jit set-up.
      reserved_bytes: F0 · (1 − mem_fraction_static), left for runtime temporaries.
      avail_bytes: F1 − F0 · (1 − mfs): the KV budget; <= 0 means the engine cannot start.
      cell_bytes: KV bytes per token per device.
      profiled_tokens: max(1, avail // cell), or 0 when the engine cannot start.
      num_tokens: N after the max_total_tokens cap and page rounding (0: cannot start).
      capped_by: ``"max_total_tokens"`` or ``"memory"``.
      error: the engine's own start-up error, or None.
    """

    f0_bytes: int
    f1_bytes: int
    reserved_bytes: int
    avail_bytes: int
    cell_bytes: int
    profiled_tokens: int
    num_tokens: int
    capped_by: str
    error: str | None


def size_kv(
    f0_free_bytes: int,
    resident_before_kv_bytes: int,
    cell_bytes: int,
    mem_fraction_static: float,
    max_total_tokens: int | None,
    page_size: int,
) -> KvSizing:
    """Reproduce the engine's KV sizing.

    Args:
      f0_free_bytes: per-device free HBM when the engine starts (before its weights).
      resident_before_kv_bytes: what the engine allocates between F0 and F1 (its weights).
      cell_bytes: KV bytes per token per device.
      mem_fraction_static: the engine knob, in (0, 1].
      max_total_tokens: the cap, or None.
      page_size: tokens per page.
    """
    if not 0.0 < mem_fraction_static <= 1.0:
        raise PlanError(f"--mem-fraction-static must be in (0, 1], got {mem_fraction_static}")
    f0 = engine_memory_reading(f0_free_bytes)
    f1 = engine_memory_reading(f0_free_bytes - resident_before_kv_bytes)
    reserved = f0 * (1 - mem_fraction_static)
    avail = f1 - reserved
    if avail <= 0:
        return KvSizing(f0, f1, int(reserved), int(avail), cell_bytes, 0, 0, "memory", NOT_ENOUGH_MEMORY)
    profiled = max(1, int(avail // cell_bytes))
    n = profiled if max_total_tokens is None else min(profiled, max_total_tokens)
    capped_by = "max_total_tokens" if max_total_tokens is not None and max_total_tokens <= profiled else "memory"
    n = n // page_size * page_size
    error = NOT_ENOUGH_MEMORY if n <= 0 else None
    return KvSizing(f0, f1, int(reserved), int(avail), cell_bytes, profiled, max(n, 0), capped_by, error)


# -- derived engine numbers (host side) ----------------------------------------------------------

FLASH_ATTENTION_TOKEN_LIMIT = 131072
NATIVE_ATTENTION_REQUEST_LIMIT = 4096


def max_num_reqs(profiled_tokens: int, context_len: int, max_running_requests: int | None) -> int:
    """Request-pool rows (``init_memory_pool``): the flag, else min(max(profiled/ctx·512, 2048), 4096)."""
    if max_running_requests is not None:
        return max_running_requests
    return min(max(int(profiled_tokens / context_len * 512), 2048), 4096)


def max_running_requests(
    num_tokens: int, pool_rows: int, context_len: int, page_size: int, flag: int | None, backend: str = "fa"
) -> int:
    """min(flag or N // 2, request-pool size (rows + 1), attention-backend limit)."""
    attn = (
        FLASH_ATTENTION_TOKEN_LIMIT // ceil_div(context_len, page_size)
        if backend == "fa"
        else NATIVE_ATTENTION_REQUEST_LIMIT
    )
    server = num_tokens // 2 if flag is None else flag
    return min(server, pool_rows + 1, attn)


def req_to_token_bytes(pool_rows: int, context_len: int) -> int:
    """Host bytes of the int32 ``req_to_token`` array: (rows + 1) · (context_len + 4) · 4."""
    return (pool_rows + 1) * (context_len + 4) * 4
