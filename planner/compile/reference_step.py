"""The reference training step the compile check hands to XLA:TPU.

Plain JAX + optax, built from abstract shapes only (``jax.ShapeDtypeStruct`` with shardings; no
weights). It mirrors the seeds' GRPO ``jit_training_step`` (shared/notes/rl-training-memory.md):

* Qwen2 / Qwen3 / Llama decoder layers from the :class:`~planner.model.ModelSpec` fields
  (hidden, intermediate, layers, heads, kv_heads, head_dim, vocab, tied, qkv_bias, o_bias,
  qk_norm); RMSNorm, RoPE, GQA, SwiGLU.
* Master params in ``param_dtype`` (fp32 by default), compute in ``compute_dtype`` (bf16): every
  weight is cast where it is used.
* Layers are stacked and run with ``lax.scan``; the scan body is one layer wrapped in
  ``jax.checkpoint`` with the remat policy (``dots`` = checkpoint_dots_with_no_batch_dims,
  ``full`` = nothing_saveable, ``none`` = no checkpoint). The scan is what keeps a 7B compile
  under a minute; the per-layer checkpoint is what remat means inside a scan. The lm_head and
  loss are checkpointed with the same policy (the seeds wrap the lm_head Dense in remat).
* Attention: the Pallas splash kernel (causal) under ``shard_map`` when the sequence is a
  multiple of 128, otherwise naive dot attention with an fp32 s² score matrix — the runner's rule.
* Full-vocab logits in the compute dtype, log_softmax + take_along_axis for the token log-probs,
  a second full softmax for the entropy, the PPO clipped ratio against stop_gradient(logps).
* ``optax.chain(clip_by_global_norm(1.0), <optimizer>)``; with grad_accum > 1 a gradient
  accumulator in the state, ``lax.cond`` applying the update on the last micro-step; the whole
  state is donated.
* Mesh (dp, fsdp, tp): q/k/v/gate/up/embedding/lm_head P('fsdp','tp'), o/down P('tp','fsdp'),
  norms and biases replicated; the batch is split over ('dp','fsdp').
* beta != 0 adds a reference-param copy to the state and a no-grad reference forward.

Everything is driven by a JSON-able config dict (see :func:`planner.compile.compile_config`), so the
parent process never needs jax.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from planner.param_layout import param_arrays

BATCH = ("dp", "fsdp")
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


# -- parameter layout --------------------------------------------------------------------------


def param_layout(m: dict, stacked: bool = True) -> dict[str, tuple[tuple[int, ...], P]]:
    """name -> (global shape, PartitionSpec) of every trainable array (:func:`planner.param_layout.param_arrays`).

    ``stacked``: the layer arrays carry a leading layer axis (for ``lax.scan``); otherwise each
    layer has its own arrays (``layers/<i>/wq``), as in an unrolled flax model.
    """
    return {name: (shape, P(*axes)) for name, (shape, axes) in param_arrays(m, stacked=stacked).items()}


def _nest(flat: dict[str, Any]) -> dict:
    tree: dict = {}
    for key, value in flat.items():
        node = tree
        parts = key.split("/")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return tree


# -- model -------------------------------------------------------------------------------------


def _rms_norm(x, w, eps=1e-6):
    xf = x.astype(jnp.float32)
    var = jnp.mean(xf * xf, axis=-1, keepdims=True)
    return (xf * lax.rsqrt(var + eps) * w.astype(jnp.float32)).astype(x.dtype)


def _rope(x, positions, theta=1_000_000.0):
    """x [B, S, n, hd]; rotate-half RoPE in fp32."""
    hd = x.shape[-1]
    inv = 1.0 / (theta ** (jnp.arange(0, hd, 2, dtype=jnp.float32) / hd))
    ang = positions[:, :, None].astype(jnp.float32) * inv[None, None, :]
    ang = jnp.concatenate([ang, ang], axis=-1)[:, :, None, :]
    cos, sin = jnp.cos(ang), jnp.sin(ang)
    xf = x.astype(jnp.float32)
    x1, x2 = jnp.split(xf, 2, axis=-1)
    rot = jnp.concatenate([-x2, x1], axis=-1)
    return (xf * cos + rot * sin).astype(x.dtype)


def _naive_attention(q, k, v, cdt):
    """Causal dot attention with an fp32 [B, nH, S, S] score matrix (GQA by grouping)."""
    B, S, nh, hd = q.shape
    nkv = k.shape[2]
    g = nh // nkv
    qg = q.reshape(B, S, nkv, g, hd)
    scores = jnp.einsum("bqkgd,bskd->bkgqs", qg, k, preferred_element_type=jnp.float32)
    scores = scores / math.sqrt(hd)
    mask = jnp.tril(jnp.ones((S, S), dtype=bool))
    scores = jnp.where(mask, scores, jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(scores, axis=-1).astype(cdt)
    out = jnp.einsum("bkgqs,bskd->bqkgd", probs, v)
    return out.reshape(B, S, nh, hd)


@functools.lru_cache(maxsize=None)
def _splash_kernel(seq: int, heads: int):
    from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_kernel as sk
    from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_mask as sm

    mask = sm.MultiHeadMask([sm.CausalMask((seq, seq)) for _ in range(heads)])
    return sk.make_splash_mha(mask, head_shards=1, q_seq_shards=1)


def _splash_attention(q, k, v, mesh):
    """Causal Pallas splash attention, one kernel per (batch shard, tp shard) under shard_map."""
    B, S, nh, hd = q.shape
    tp = mesh.shape["tp"]
    local_heads = nh // tp
    q = jnp.transpose(q, (0, 2, 1, 3)) / math.sqrt(hd)  # [B, nH, S, hd]
    k = jnp.transpose(k, (0, 2, 1, 3))
    v = jnp.transpose(v, (0, 2, 1, 3))
    spec = P(BATCH, "tp", None, None)

    kernel = _splash_kernel(S, local_heads)

    def local(ql, kl, vl):
        return jax.vmap(kernel)(ql, kl, vl)

    out = jax.shard_map(local, mesh=mesh, in_specs=(spec, spec, spec), out_specs=spec, check_vma=False)(q, k, v)
    return jnp.transpose(out, (0, 2, 1, 3))


def _constrain(x, mesh, spec):
    return lax.with_sharding_constraint(x, NamedSharding(mesh, spec))


def _layer(h, w, positions, m, cdt, mesh, attention):
    """One decoder layer on the residual stream h [B, S, H] (compute dtype)."""
    B, S, H = h.shape
    nh, nkv, hd = m["heads"], m["kv_heads"], m["head_dim"]
    c = lambda name: w[name].astype(cdt)  # noqa: E731 - cast master weight at use
    x = _rms_norm(h, w["ln1"])
    q = x @ c("wq")
    k = x @ c("wk")
    v = x @ c("wv")
    if m["qkv_bias"]:
        q, k, v = q + c("bq"), k + c("bk"), v + c("bv")
    q = _constrain(q.reshape(B, S, nh, hd), mesh, P(BATCH, None, "tp", None))
    k = _constrain(k.reshape(B, S, nkv, hd), mesh, P(BATCH, None, "tp", None))
    v = _constrain(v.reshape(B, S, nkv, hd), mesh, P(BATCH, None, "tp", None))
    if m["qk_norm"]:
        q, k = _rms_norm(q, w["q_norm"]), _rms_norm(k, w["k_norm"])
    q, k = _rope(q, positions), _rope(k, positions)
    if attention == "splash":
        a = _splash_attention(q, k, v, mesh)
    else:
        a = _naive_attention(q, k, v, cdt)
    o = a.reshape(B, S, nh * hd) @ c("wo")
    if m.get("o_bias"):
        o = o + c("bo")
    h = _constrain(h + o, mesh, P(BATCH, None, None))
    x = _rms_norm(h, w["ln2"])
    gate = _constrain(x @ c("w_gate"), mesh, P(BATCH, None, "tp"))
    up = _constrain(x @ c("w_up"), mesh, P(BATCH, None, "tp"))
    d = (jax.nn.silu(gate) * up) @ c("w_down")
    return _constrain(h + d, mesh, P(BATCH, None, None))


REMAT_POLICIES = {
    "dots": lambda: jax.checkpoint_policies.checkpoint_dots_with_no_batch_dims,
    "full": lambda: jax.checkpoint_policies.nothing_saveable,
}


def _maybe_remat(fn, remat, prevent_cse=True):
    """Per-layer ``jax.checkpoint`` with the policy. Unrolled layers keep ``prevent_cse=True`` (the
    default, and flax ``nn.remat``'s): without it XLA merges the backward's re-gathered weights with
    the forward's and keeps every layer's all-gathered weights alive from forward to backward."""
    if remat == "none":
        return fn
    return jax.checkpoint(fn, policy=REMAT_POLICIES[remat](), prevent_cse=prevent_cse)


def _forward_logits(params, tokens, m, cdt, mesh, remat, attention, layers_mode="scan"):
    B, S = tokens.shape
    positions = jnp.broadcast_to(jnp.arange(S, dtype=jnp.int32)[None, :], (B, S))
    h = jnp.take(params["embed"].astype(cdt), tokens, axis=0)
    h = _constrain(h, mesh, P(BATCH, None, None))
    body = _maybe_remat(functools.partial(_layer, m=m, cdt=cdt, mesh=mesh, attention=attention), remat,
                        prevent_cse=layers_mode != "scan")

    def step(carry, w):
        return body(carry, w, positions), None

    if layers_mode == "unroll":
        for i in range(m["layers"]):
            h = body(h, params["layers"][f"{i:03d}"], positions)
    else:
        h, _ = lax.scan(step, h, params["layers"])
    h = _rms_norm(h, params["final_norm"])
    head = params["embed"].T if m["tied"] else params["lm_head"]
    logits = h @ head.astype(cdt)  # [B, S, V] in the compute dtype, full vocab
    return _constrain(logits, mesh, P(BATCH, None, "tp"))


def _token_terms(logits, tokens):
    """Per-token log-probs (take_along_axis of a full log_softmax) and entropy (second softmax)."""
    chosen = tokens[:, 1:]
    lg = logits[:, :-1, :]
    logps = jnp.take_along_axis(jax.nn.log_softmax(lg, axis=-1), chosen[..., None], axis=-1)[..., 0]
    probs = jax.nn.softmax(lg, axis=-1)
    entropy = -jnp.sum(probs * jnp.log(probs + 1e-9), axis=-1)
    return logps.astype(jnp.float32), entropy.astype(jnp.float32)


def make_loss(m, cdt, mesh, remat, attention, beta, layers_mode="scan"):
    head_remat = remat if remat != "none" else "none"

    def loss_fn(params, batch, ref_params):
        logits = _forward_logits(params, batch["tokens"], m, cdt, mesh, remat, attention, layers_mode)
        logps, entropy = _maybe_remat(_token_terms, head_remat)(logits, batch["tokens"])
        mask = batch["mask"][:, 1:].astype(jnp.float32)
        old = lax.stop_gradient(logps)
        ratio = jnp.exp(logps - old)
        adv = batch["advantages"][:, None]
        ppo = jnp.minimum(ratio * adv, jnp.clip(ratio, 0.8, 1.28) * adv)
        per_token = -ppo - 1e-3 * entropy
        if beta:
            ref_logits = _forward_logits(lax.stop_gradient(ref_params), batch["tokens"], m, cdt, mesh, remat, attention, layers_mode)
            ref_logps, _ = _token_terms(lax.stop_gradient(ref_logits), batch["tokens"])
            d = ref_logps - logps
            per_token = per_token + beta * (jnp.exp(d) - d - 1.0)
        loss = jnp.sum(per_token * mask) / jnp.maximum(jnp.sum(mask), 1.0)
        return loss, {"per_token_logps": old, "entropy": jnp.mean(entropy)}

    return loss_fn


# -- optimizer ---------------------------------------------------------------------------------


def make_optimizer(name: str) -> optax.GradientTransformation:
    lr = 1e-6
    inner = {
        "lion": lambda: optax.lion(lr, weight_decay=1e-8),
        "adamw": lambda: optax.adamw(lr),
        "sgd": lambda: optax.sgd(lr),
        "adafactor": lambda: optax.adafactor(lr),
    }[name]()
    return optax.chain(optax.clip_by_global_norm(1.0), inner)


def _stat_spec(shape: tuple[int, ...], param_shape: tuple[int, ...], param_spec: P, n_shard: int) -> P:
    """Sharding of an optimizer-state leaf.

    A leaf shaped like its param takes the param's spec. Adafactor's factored statistics (the
    param shape with one dim dropped) are spread over all fsdp·tp devices along their largest
    dim that divides evenly, so they shard as the analytic model counts them; anything else is
    replicated.
    """
    if tuple(shape) == tuple(param_shape):
        return param_spec
    if len(shape) >= 1 and n_shard > 1:
        order = sorted(range(len(shape)), key=lambda i: -shape[i])
        for i in order:
            if shape[i] % n_shard == 0 and shape[i] >= n_shard:
                spec = [None] * len(shape)
                spec[i] = ("fsdp", "tp")
                return P(*spec)
    return P()


# -- the step ----------------------------------------------------------------------------------


def _leaf_bytes(leaf) -> int:
    shape = leaf.sharding.shard_shape(leaf.shape)
    return int(np.prod(shape, dtype=np.int64)) * jnp.dtype(leaf.dtype).itemsize


def _argument_bytes(state, batch) -> dict:
    """Per-device bytes of the arguments before TPU layout padding: state, batch, scalars."""
    leaves = jax.tree_util.tree_leaves(state)
    scalars = sum(_leaf_bytes(x) for x in leaves if x.ndim == 0)
    state_b = sum(_leaf_bytes(x) for x in leaves)
    batch_b = sum(_leaf_bytes(x) for x in jax.tree_util.tree_leaves(batch))
    return {"state_bytes": state_b - scalars, "scalar_bytes": scalars, "batch_bytes": batch_b,
            "unpadded_bytes": state_b + batch_b, "arrays": len(leaves) + 3}


def build(cfg: dict, mesh) -> tuple[Any, tuple, dict]:
    """Return (jitted step, abstract args, info) for ``cfg`` on ``mesh`` (axes dp, fsdp, tp)."""
    m = cfg["model"]
    pdt = DTYPES[cfg["param_dtype"]]
    cdt = DTYPES[cfg["compute_dtype"]]
    remat = cfg["remat"]
    accum = int(cfg["grad_accum"])
    beta = float(cfg.get("beta", 0.0))
    B, S = int(cfg["micro_batch"]), int(cfg["seq_len"])
    attention = cfg.get("attention", "auto")
    if attention == "auto":
        attention = "splash" if S % 128 == 0 else "naive"
    n_shard = mesh.shape["fsdp"] * mesh.shape["tp"]

    layers_mode = cfg.get("layers_mode", "unroll")
    layout = param_layout(m, stacked=layers_mode == "scan")
    sh = lambda spec: NamedSharding(mesh, spec)  # noqa: E731
    params = _nest({k: jax.ShapeDtypeStruct(s, pdt, sharding=sh(p)) for k, (s, p) in layout.items()})
    specs = _nest({k: p for k, (s, p) in layout.items()})
    tx = make_optimizer(cfg["optimizer"])

    opt_shapes = jax.eval_shape(tx.init, params)
    # Optimizer-state leaves: match each leaf to its param by tree path suffix where possible.
    flat_params = {jax.tree_util.keystr(path): (leaf.shape, spec) for (path, leaf), spec in zip(
        jax.tree_util.tree_flatten_with_path(params)[0], jax.tree_util.tree_leaves(specs, is_leaf=lambda x: isinstance(x, P)))}

    def opt_leaf(path, leaf):
        key = jax.tree_util.keystr(path)
        match = None
        for pk, (pshape, pspec) in flat_params.items():
            if key.endswith(pk):
                match = (pshape, pspec)
                break
        if match is None:
            spec = P()
        else:
            spec = _stat_spec(leaf.shape, match[0], match[1], n_shard)
        return jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=sh(spec))

    opt_state = jax.tree_util.tree_map_with_path(opt_leaf, opt_shapes)
    state: dict[str, Any] = {"params": params, "opt_state": opt_state,
                             "step": jax.ShapeDtypeStruct((), jnp.int32, sharding=sh(P()))}
    if accum > 1:
        state["grad_accum"] = params
        state["micro_step"] = jax.ShapeDtypeStruct((), jnp.int32, sharding=sh(P()))
    if beta:
        state["ref_params"] = params
    bspec = sh(P(BATCH, None))
    batch = {
        "tokens": jax.ShapeDtypeStruct((B, S), jnp.int32, sharding=bspec),
        "mask": jax.ShapeDtypeStruct((B, S), jnp.int32, sharding=bspec),
        "advantages": jax.ShapeDtypeStruct((B,), jnp.float32, sharding=sh(P(BATCH))),
    }
    loss_fn = make_loss(m, cdt, mesh, remat, attention, beta, layers_mode)

    def apply_update(params, opt_state, grads):
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    def training_step(state, batch):
        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state["params"], batch, state.get("ref_params"))
        new = dict(state)
        if accum == 1:
            new["params"], new["opt_state"] = apply_update(state["params"], state["opt_state"], grads)
            new["step"] = state["step"] + 1
        else:
            acc = jax.tree_util.tree_map(lambda a, g: a + g.astype(a.dtype), state["grad_accum"], grads)
            micro = state["micro_step"] + 1

            def do_update(args):
                params, opt_state, acc, step = args
                g = jax.tree_util.tree_map(lambda x: x / accum, acc)
                params, opt_state = apply_update(params, opt_state, g)
                return params, opt_state, jax.tree_util.tree_map(jnp.zeros_like, acc), step + 1

            new["params"], new["opt_state"], new["grad_accum"], new["step"] = lax.cond(
                micro == accum, do_update, lambda args: args,
                (state["params"], state["opt_state"], acc, state["step"]))
            new["micro_step"] = micro % accum
        return new, {"loss": loss, **aux}

    state_shardings = jax.tree_util.tree_map(lambda s: s.sharding, state)
    step = jax.jit(training_step, donate_argnums=(0,), out_shardings=(state_shardings, None))
    info = {"attention": attention, "layers_mode": layers_mode, "argument_extra": _argument_bytes(state, batch)}
    return step, (state, batch), info
