"""Drive a real sglang-jax Engine in process: start, swap weights, generate, drop/rebuild KV.

``EngineSession`` wraps one ``sgl_jax`` Engine started with ``enable_single_process=True``
and reaches its model runner (``scheduler.tp_worker[.worker].model_runner``). It works with
the two layouts of ``model_state_leaves``: a closure cell of ``model_runner.jitted_run_model``
on 0.0.2, the attribute ``model_runner.model_state_leaves`` on later commits (bd09a87).

Everything that mutates device state first waits for the scheduler to be idle
(:meth:`EngineSession.quiesce`): the overlap scheduler may still be finishing a step, with
the KV cache donated, when ``generate()`` returns.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import signal
import sys
import time
from typing import Any

SCHEDULER_INFOS: list[dict] = []  # filled by the capture hook, one per scheduler started


class LifecycleError(RuntimeError):
    """A lifecycle step could not be carried out (the engine is not in the expected state)."""


class EngineFailure(RuntimeError):
    """The engine's scheduler failed (it signals SIGQUIT to its own process)."""


def _sigquit_to_exception(signum, frame):
    """Replace the engine's SIGQUIT handler (which kills the whole process tree): raise in
    the main thread instead, carrying the scheduler's exception when one is being handled."""
    exc = sys.exc_info()[1]
    raise EngineFailure(f"{type(exc).__name__}: {exc}" if exc else "the engine's scheduler failed")


@contextlib.contextmanager
def _capture_scheduler():
    """Record what ``run_scheduler_loop_thread_after_create`` returns while an Engine starts.

    On node ranks >= 1 the Engine itself keeps no ``scheduler_info``, so this is how every
    host reaches its own scheduler and model runner.
    """
    from sgl_jax.srt.entrypoints import engine as engine_mod

    original = engine_mod.run_scheduler_loop_thread_after_create

    def capturing(*args, **kwargs):
        # The engine installed its SIGQUIT handler just before this call.
        with contextlib.suppress(ValueError):  # not in the main thread
            signal.signal(signal.SIGQUIT, _sigquit_to_exception)
        info = original(*args, **kwargs)
        if isinstance(info, dict):
            SCHEDULER_INFOS.append(info)
        return info

    engine_mod.run_scheduler_loop_thread_after_create = capturing
    try:
        yield
    finally:
        engine_mod.run_scheduler_loop_thread_after_create = original


def output_sha256(output_ids: list[int] | None, text: str | None) -> str:
    """sha256 hex of the canonical JSON of a generation's token ids and text."""
    payload = json.dumps({"output_ids": output_ids, "text": text}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


class EngineSession:
    """One in-process Engine and the handles the validator needs."""

    def __init__(self, engine_kwargs: dict[str, Any]):
        from sgl_jax.srt.entrypoints.engine import Engine

        self.node_rank = int(engine_kwargs.get("node_rank", 0) or 0)
        if self.node_rank >= 1:
            os.environ["SGLANG_BLOCK_NONZERO_RANK_CHILDREN"] = "0"
        n_before = len(SCHEDULER_INFOS)
        with _capture_scheduler():
            self.engine = Engine(**engine_kwargs)
        if len(SCHEDULER_INFOS) <= n_before:
            raise LifecycleError("the engine started no scheduler")
        self.scheduler = SCHEDULER_INFOS[-1]["scheduler"]
        worker = self.scheduler.tp_worker
        self.model_runner = getattr(worker, "worker", worker).model_runner
        self.second_params: list | None = None
        self._kv_specs: list[tuple] | None = None

    # -- state access ------------------------------------------------------------------------

    @property
    def server_args(self):
        return self.scheduler.server_args

    def _closure_cell(self, name: str):
        fn = self.model_runner.jitted_run_model
        names = getattr(getattr(fn, "__code__", None), "co_freevars", ())
        if name in names and fn.__closure__:
            return fn.__closure__[names.index(name)]
        return None

    def param_leaves(self) -> list:
        """The flat param arrays the jitted forward reads."""
        mr = self.model_runner
        if hasattr(mr, "model_state_leaves"):
            return list(mr.model_state_leaves)
        cell = self._closure_cell("model_state_leaves")
        if cell is None:
            raise LifecycleError("cannot find model_state_leaves on this sglang-jax version")
        return list(cell.cell_contents)

    def _param_treedef(self):
        cell = self._closure_cell("model_state_def")
        if cell is not None:
            return cell.cell_contents
        import jax
        from flax import nnx

        return jax.tree_util.tree_structure(nnx.state(self.model_runner.model))

    def _set_param_leaves(self, new_leaves: list) -> None:
        mr = self.model_runner
        if hasattr(mr, "model_state_leaves"):
            mr.model_state_leaves = new_leaves
        else:
            cell = self._closure_cell("model_state_leaves")
            if cell is None:
                raise LifecycleError("cannot find model_state_leaves on this sglang-jax version")
            cell.cell_contents = new_leaves

    @property
    def kv_pool(self):
        return self.model_runner.token_to_kv_pool

    def kv_arrays(self) -> list:
        """The KV buffers that are currently allocated (deleted ones are left out)."""
        return [b for b in self.kv_pool.kv_buffer if not b.is_deleted()]

    def kv_global_bytes(self) -> int:
        """Global bytes of the allocated KV buffers (all devices; what "Fused KV size" logs)."""
        return sum(int(b.nbytes) for b in self.kv_arrays())

    # -- waiting -------------------------------------------------------------------------------

    def quiesce(self, timeout_s: float = 120.0) -> float:
        """Wait until the scheduler has no batch in flight; return the seconds waited."""
        import jax

        s = self.scheduler
        t0 = time.monotonic()
        calm = 0
        while time.monotonic() - t0 < timeout_s:
            running = getattr(s, "running_batch", None)
            busy = (
                getattr(s, "cur_batch", None) is not None
                or getattr(s, "last_batch", None) is not None
                or bool(getattr(s, "waiting_queue", []))
                or (running is not None and not running.is_empty())
            )
            calm = 0 if busy else calm + 1
            if calm >= 3:
                break
            time.sleep(0.02)
        else:
            raise LifecycleError(f"scheduler still busy after {timeout_s:.0f} s")
        jax.block_until_ready([b for b in self.kv_arrays()] + self.param_leaves())
        return time.monotonic() - t0

    # -- lifecycle steps -------------------------------------------------------------------------

    def generate(self, sampling_params: dict, input_ids: list[int] | None = None,
                 prompt: str | None = None) -> dict:
        """Generate once (node rank 0 only); return ids, text, sha256 and timing."""
        if self.node_rank != 0:
            raise LifecycleError("generate runs on node rank 0 only")
        t0 = time.monotonic()
        if input_ids is not None:
            out = self.engine.generate(input_ids=list(input_ids), sampling_params=dict(sampling_params))
        else:
            out = self.engine.generate(prompt=prompt, sampling_params=dict(sampling_params))
        if isinstance(out, list):
            out = out[0]
        wall = time.monotonic() - t0
        ids = out.get("output_ids")
        ids = [int(t) for t in ids] if ids is not None else None
        text = out.get("text")
        meta = out.get("meta_info", {}) or {}
        return {
            "output_ids": ids,
            "text": text,
            "output_sha256": output_sha256(ids, text),
            "completion_tokens": meta.get("completion_tokens"),
            "finish_reason": meta.get("finish_reason"),
            "e2e_latency_s": meta.get("e2e_latency", wall),
        }

    def flush_cache(self) -> dict:
        """Reset the allocator, request pool and radix tree (frees no device memory).

        Uses ``Engine.flush_cache()`` where the scheduler implements it (bd09a87 and later).
        0.0.2 cannot flush through its API (``FlushCacheReqInput`` lacks a ``request_id`` and
        the scheduler has no handler), so there the same reset is done directly on this host's
        idle scheduler, with its idle self-check paused so it never sees a half-reset state.
        """
        s = self.scheduler
        if hasattr(s, "flush_cache"):
            if self.node_rank != 0:
                return {"flushed": None, "method": "engine.flush_cache on node rank 0"}
            res = self.engine.flush_cache()
            return {"flushed": bool(getattr(res, "success", res)), "method": "engine.flush_cache"}
        self.quiesce()
        s.check_memory = lambda: None  # instance attribute shadows the method
        try:
            time.sleep(0.05)  # let an idle check already running finish
            if getattr(s, "tree_cache", None) is not None:
                s.tree_cache.reset()
            if getattr(s, "req_to_token_pool", None) is not None:
                s.req_to_token_pool.clear()
            if getattr(s, "token_to_kv_pool_allocator", None) is not None:
                s.token_to_kv_pool_allocator.clear()
            if hasattr(s, "init_new_token_ratio"):
                s.new_token_ratio = s.init_new_token_ratio
        finally:
            del s.check_memory
        return {"flushed": True, "method": "direct reset (0.0.2 Engine.flush_cache is broken)",
                "available_tokens": int(s.token_to_kv_pool_allocator.available_size())}

    def drop_kv(self) -> dict:
        """Delete every KV buffer (``.delete()``); remember shapes to rebuild them."""
        pool = self.kv_pool
        bufs = list(pool.kv_buffer)
        if any(b.is_deleted() for b in bufs):
            raise LifecycleError("KV cache already dropped")
        self._kv_specs = [(b.shape, b.dtype, b.sharding) for b in bufs]
        total = sum(int(b.nbytes) for b in bufs)
        deleted = missing = 0
        for b in bufs:
            if hasattr(b, "delete"):
                b.delete()
                deleted += 1
            else:
                missing += 1
        return {"deleted_buffers": deleted, "missing_delete_method": missing, "fused_bytes_total": total}

    def rebuild_kv(self) -> dict:
        """Allocate zeroed KV buffers of the same shape, dtype and sharding, in place."""
        import jax
        import jax.numpy as jnp

        if self._kv_specs is None:
            raise LifecycleError("KV cache was not dropped")
        pool = self.kv_pool
        makers: dict = {}
        new = []
        with self.model_runner.mesh:
            for shape, dtype, sharding in self._kv_specs:
                key = (tuple(shape), str(dtype), sharding)
                if key not in makers:
                    makers[key] = jax.jit(_zeros_fn(tuple(shape), dtype), out_shardings=sharding)
                new.append(makers[key]())
        for i, b in enumerate(new):
            pool.kv_buffer[i] = b
        jax.block_until_ready(new)
        self._kv_specs = None
        return {"rebuilt_buffers": len(new), "fused_bytes_total": sum(int(b.nbytes) for b in new),
                "buffer_shape": list(new[0].shape) if new else None, "dtype": str(new[0].dtype) if new else None}

    def _replace_params(self, new_leaves: list) -> dict:
        """Point the engine at ``new_leaves`` and free the old arrays."""
        import jax
        from flax import nnx

        old = self.param_leaves()
        if len(new_leaves) != len(old):
            raise LifecycleError(f"new params have {len(new_leaves)} leaves, the engine has {len(old)}")
        for a, b in zip(old, new_leaves):
            if tuple(a.shape) != tuple(b.shape) or a.dtype != b.dtype:
                raise LifecycleError(f"param leaf mismatch: {a.shape} {a.dtype} vs {b.shape} {b.dtype}")
        self._set_param_leaves(list(new_leaves))
        with contextlib.suppress(Exception):  # keep the nnx model in step (frees its references)
            nnx.update(self.model_runner.model, jax.tree_util.tree_unflatten(self._param_treedef(), list(new_leaves)))
        keep = {id(x) for x in new_leaves}
        freed = 0
        for a in old:
            if id(a) not in keep and not a.is_deleted():
                a.delete()
                freed += 1
        return {"replaced_leaves": len(new_leaves), "deleted_old_leaves": freed}

    def swap_dummy_weights(self, seed: int = 1) -> dict:
        """Swap in a second dummy set: uniform(-1e-3, 1e-3) from ``seed``, made on device with
        each leaf's own sharding (same structure, shapes, dtypes and shardings)."""
        new = random_like(self.param_leaves(), seed)
        info = self._replace_params(new)
        info["weights_source"] = f"dummy(seed={seed})"
        return info

    def swap_safetensors_weights(self, weights_dir: str) -> dict:
        """Load ``weights_dir/*.safetensors`` with the engine's own loader, then swap them in."""
        import jax
        from flax import nnx

        mr = self.model_runner
        if not hasattr(mr.model, "load_weights"):
            raise LifecycleError(f"{type(mr.model).__name__} cannot load safetensors weights")
        mc = copy.copy(mr.model_config)
        mc.model_path = weights_dir
        old = self.param_leaves()
        before = set(vars(mr.model))
        mr.model.load_weights(mc, jax.random.PRNGKey(0))
        for name in set(vars(mr.model)) - before:  # load_weights adds e.g. an `rng` (nnx.Rngs)
            with contextlib.suppress(Exception):
                delattr(mr.model, name)
        new, treedef = jax.tree_util.tree_flatten(nnx.state(mr.model))
        if treedef != self._param_treedef():
            self._set_param_leaves(old)
            raise LifecycleError("the checkpoint's param structure differs from the engine's")
        info = self._replace_params(new)
        info["weights_source"] = f"safetensors({weights_dir})"
        return info

    def make_second_params(self) -> dict:
        """A second param set: device copies of the engine's params, same shardings."""
        if self.second_params is not None:
            raise LifecycleError("second params already exist")
        self.second_params = copy_like(self.param_leaves())
        return {"second_params_leaves": len(self.second_params),
                "second_params_bytes_total": sum(int(x.nbytes) for x in self.second_params)}

    def drop_second_params(self) -> dict:
        if self.second_params is None:
            return {"second_params_deleted": 0}
        n = 0
        for x in self.second_params:
            if not x.is_deleted():
                x.delete()
                n += 1
        self.second_params = None
        return {"second_params_deleted": n}

    def shutdown(self) -> None:
        with contextlib.suppress(Exception):
            self.engine.shutdown()


def _zeros_fn(shape: tuple, dtype):
    import jax.numpy as jnp

    return lambda: jnp.zeros(shape, dtype)


def random_like(leaves: list, seed: int) -> list:
    """Dummy values in (-1e-3, 1e-3) (the engine's own dummy range), shaped, typed and sharded
    like ``leaves``, made on device by one jitted program; non-float leaves are copied.

    The values are ``1e-3 * sin(k * 0.7548776662 + 1.6180339887 * seed + i)`` over the flat
    index k of leaf i: deterministic, different per seed, and far cheaper to compile than a
    counter-based RNG (a threefry program took ~10 s to compile on CPU for the tiny model)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    specs = [(tuple(x.shape), x.dtype, bool(jnp.issubdtype(x.dtype, jnp.floating))) for x in leaves]
    others = [x for x, (_, _, f) in zip(leaves, specs) if not f]

    def make(others):
        rest = iter(others)
        out = []
        for i, (shape, dtype, floating) in enumerate(specs):
            if floating:
                k = jax.lax.iota(jnp.float32, max(1, int(np.prod(shape))))[: int(np.prod(shape))]
                vals = 1e-3 * jnp.sin(k * 0.7548776662 + 1.6180339887 * seed + i)
                out.append(vals.reshape(shape).astype(dtype))
            else:
                out.append(jnp.copy(next(rest)))
        return out

    fn = jax.jit(make, out_shardings=[x.sharding for x in leaves])
    out = fn(others)
    jax.block_until_ready(out)
    return list(out)


def copy_like(leaves: list) -> list:
    """Device copies (new buffers) of ``leaves`` with the same shardings, in one program."""
    import jax
    import jax.numpy as jnp

    fn = jax.jit(lambda xs: [jnp.copy(x) for x in xs], out_shardings=[x.sharding for x in leaves])
    out = fn(list(leaves))
    jax.block_until_ready(out)
    return list(out)
