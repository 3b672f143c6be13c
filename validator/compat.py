"""Runtime compatibility fixes for sglang-jax 0.0.2 on non-TPU runtimes (CPU, GPU).

sglang-jax 0.0.2 has two defects that only show off TPU. Both are fixed here at runtime,
before the engine starts, only when the defect is actually present, and idempotently
(calling :func:`apply` twice changes nothing). Site-packages is never edited.

1. ``sgl_jax.srt.layers.attention.native_backend`` decorates ``NativeAttention`` with
   ``@register_pytree_node_class``, but its base class is a flax ``nnx.Module`` and
   flax 0.12 already registers every Module subclass as a pytree. The second registration
   raises ``ValueError: Duplicate custom PyTreeDef type registration``, so the native
   attention backend (the only one on CPU) cannot be imported. Fix: import the module with
   ``jax.tree_util.register_pytree_node_class`` temporarily wrapped so that this one
   duplicate registration is tolerated (flax's registration stays in force).

2. ``sgl_jax.srt.layers.sampler._apply_min_p_filter`` unpacks two operands, but the
   non-TPU sampling path calls it through ``lax.cond`` with three
   (``(probs_sort, min_ps, False)``), which raises "too many values to unpack" when the
   sampler is traced. Fix: replace the module global with a wrapper that passes the first
   two operands on. ``lax.cond`` looks the global up at call time, so the wrapper is used.
"""

from __future__ import annotations

import importlib
import sys

NATIVE_BACKEND = "sgl_jax.srt.layers.attention.native_backend"
SAMPLER = "sgl_jax.srt.layers.sampler"
_MARK = "_hbmvalidate_compat"


def _fix_native_backend_import() -> str:
    """Make the native attention backend importable. Returns what was done."""
    if NATIVE_BACKEND in sys.modules:
        return "native_backend: already imported"
    try:
        importlib.import_module(NATIVE_BACKEND)
        return "native_backend: imported, no fix needed"
    except ValueError as e:
        if "Duplicate custom PyTreeDef type registration" not in str(e):
            raise
    import jax.tree_util as tu

    original = tu.register_pytree_node_class

    def tolerant(cls):
        try:
            return original(cls)
        except ValueError as e:
            if "Duplicate custom PyTreeDef type registration" in str(e) and cls.__name__ == "NativeAttention":
                return cls
            raise

    tu.register_pytree_node_class = tolerant
    try:
        sys.modules.pop(NATIVE_BACKEND, None)
        importlib.import_module(NATIVE_BACKEND)
    finally:
        tu.register_pytree_node_class = original
    return "native_backend: tolerated duplicate NativeAttention pytree registration"


def _min_p_needs_fix(fn) -> bool:
    """True when ``fn`` fails on the 3-operand call the non-TPU path makes."""
    import numpy as np

    probe = (np.ones((1, 2), np.float32), np.ones((1,), np.float32), False)
    try:
        fn(probe)
    except ValueError as e:
        return "unpack" in str(e)
    return False


def _fix_min_p_filter() -> str:
    """Let ``_apply_min_p_filter`` accept ``(inputs, min_ps, extra)``. Returns what was done."""
    sampler = importlib.import_module(SAMPLER)
    fn = sampler._apply_min_p_filter
    if getattr(fn, _MARK, False):
        return "min_p_filter: already fixed"
    if not _min_p_needs_fix(fn):
        return "min_p_filter: accepts 3 operands, no fix needed"

    def _apply_min_p_filter(operands, _original=fn):
        return _original(tuple(operands[:2]))

    setattr(_apply_min_p_filter, _MARK, True)
    _apply_min_p_filter.__doc__ = fn.__doc__
    sampler._apply_min_p_filter = _apply_min_p_filter
    return "min_p_filter: wrapped to accept 3 operands"


def apply() -> list[str]:
    """Apply both fixes where needed; return one line per fix saying what happened."""
    return [_fix_native_backend_import(), _fix_min_p_filter()]
