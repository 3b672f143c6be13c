"""The trainable arrays of a dense decoder: global shapes and how the training mesh shards them.

One table for both sides: the analytic plan walks it to count the TPU tiled-layout padding of the
training state (:mod:`planner.tpu_layout`), and the compile check's reference step
(:mod:`planner.compile.reference_step`) builds its ``PartitionSpec`` s from it, so the two cannot
drift apart.

Sharding (mesh axes ``dp``, ``fsdp``, ``tp``): q/k/v/gate/up, the embedding and an untied lm_head
are column-parallel (dim 0 over ``fsdp``, dim 1 over ``tp``), o/down row-parallel (dim 0 over
``tp``, dim 1 over ``fsdp``); norms and biases are replicated.
"""

from __future__ import annotations

from collections.abc import Mapping

from planner.units import ceil_div

#: The model fields the layout (and the compile config) reads, as :class:`planner.model.ModelSpec` names them.
MODEL_FIELDS = ("hidden", "intermediate", "layers", "heads", "kv_heads", "head_dim", "vocab", "tied",
                "qkv_bias", "o_bias", "qk_norm")

#: Mesh axis names per array dim; ``()`` is replicated.
COLUMN = ("fsdp", "tp")
ROW = ("tp", "fsdp")
REPLICATED: tuple = ()

Axes = tuple  # of mesh axis names (or None) per dim


def model_fields(spec) -> dict:
    """The :data:`MODEL_FIELDS` of a :class:`~planner.model.ModelSpec` as a plain dict."""
    return {k: getattr(spec, k) for k in MODEL_FIELDS}


def param_arrays(m: Mapping, stacked: bool = False) -> dict[str, tuple[tuple[int, ...], Axes]]:
    """name -> (global shape, mesh axes per dim) of every trainable array.

    ``m``: the :data:`MODEL_FIELDS`. ``stacked``: the layer arrays carry a leading layer axis (for
    ``lax.scan``, unsharded); otherwise each layer has its own arrays (``layers/<i>/wq``), as in an
    unrolled flax model.
    """
    H, I, L = m["hidden"], m["intermediate"], m["layers"]
    hd, nh, nkv, V = m["head_dim"], m["heads"], m["kv_heads"], m["vocab"]
    qd, kvd = nh * hd, nkv * hd
    layer: dict[str, tuple[tuple[int, ...], Axes]] = {
        "ln1": ((H,), REPLICATED),
        "ln2": ((H,), REPLICATED),
        "wq": ((H, qd), COLUMN),
        "wk": ((H, kvd), COLUMN),
        "wv": ((H, kvd), COLUMN),
        "wo": ((qd, H), ROW),
        "w_gate": ((H, I), COLUMN),
        "w_up": ((H, I), COLUMN),
        "w_down": ((I, H), ROW),
    }
    if m["qkv_bias"]:
        layer.update(bq=((qd,), REPLICATED), bk=((kvd,), REPLICATED), bv=((kvd,), REPLICATED))
    if m.get("o_bias"):
        layer["bo"] = ((H,), REPLICATED)
    if m["qk_norm"]:
        layer.update(q_norm=((hd,), REPLICATED), k_norm=((hd,), REPLICATED))
    out: dict[str, tuple[tuple[int, ...], Axes]] = {
        "embed": ((V, H), COLUMN),
        "final_norm": ((H,), REPLICATED),
    }
    if not m["tied"]:
        out["lm_head"] = ((H, V), COLUMN)
    for name, (shape, axes) in layer.items():
        if stacked:
            out[f"layers/{name}"] = ((L, *shape), (None, *axes))
        else:
            for i in range(L):
                out[f"layers/{i:03d}/{name}"] = (shape, axes)
    return out


def shard_shape(shape: tuple[int, ...], axes: Axes, axis_sizes: Mapping[str, int]) -> tuple[int, ...]:
    """One device's shard of an array: each sharded dim divided (rounded up) by its mesh axis size."""
    dims = list(shape)
    for i, axis in enumerate(axes):
        if axis is not None:
            dims[i] = ceil_div(dims[i], axis_sizes[axis])
    return tuple(dims)
