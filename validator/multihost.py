"""Multi-host runs: one validator per host under ``jax.distributed``.

* :func:`initialize` starts ``jax.distributed`` before the engine (the validator measures the
  devices before the engine exists), and :func:`engine_initialize_guard` turns the engine's own
  ``jax.distributed.initialize(dist_init_addr, nnodes, node_rank)`` into a no-op for the same
  job, so the engine still takes nnodes / node_rank / dist_init_addr as usual.
* :func:`barrier` waits for every host, through the coordination service (not a device
  collective, so it cannot interleave with the scheduler threads' collectives).
* :func:`gather_int64` gathers a fixed-size int64 array from every process with
  ``multihost_utils.process_allgather``. jax without x64 would truncate int64 to int32, so
  each int64 travels as two int32 words and is put back together after the gather.

Per-phase measurements are packed with :func:`pack_phases` into an int64 array of shape
(phases, local devices, len(FIELDS)) with -1 for "not measured", gathered, and turned back
into global per-device lists with :func:`unpack_phases`.
"""

from __future__ import annotations

import contextlib

import numpy as np

FIELDS = (
    "index", "id", "process_index", "bytes_in_use", "peak_bytes_in_use", "bytes_limit",
    "largest_free_block_bytes", "params", "kv", "second_params", "other", "process_rss_bytes",
)
MISSING = -1


def initialize(coordinator_address: str, num_processes: int, process_id: int,
               cpu_collectives: bool = False) -> None:
    """``jax.distributed.initialize`` once; on CPU also select gloo cross-process collectives."""
    import jax

    if cpu_collectives:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if is_initialized():
        return
    jax.distributed.initialize(coordinator_address, num_processes, process_id)


def is_initialized() -> bool:
    try:
        from jax._src import distributed

        return distributed.global_state.client is not None
    except Exception:
        return False


@contextlib.contextmanager
def engine_initialize_guard():
    """While the engine starts, make ``jax.distributed.initialize`` a no-op if already up."""
    import jax

    original = jax.distributed.initialize

    def once(*args, **kwargs):
        if is_initialized():
            return None
        return original(*args, **kwargs)

    jax.distributed.initialize = once
    try:
        yield
    finally:
        jax.distributed.initialize = original


def barrier(name: str, timeout_s: float = 1800.0) -> None:
    """Wait until every process reaches ``name``. No-op with one process."""
    import jax

    if jax.process_count() == 1:
        return
    try:
        from jax._src import distributed

        client = distributed.global_state.client
    except Exception:
        client = None
    if client is not None:
        client.wait_at_barrier(name, int(timeout_s * 1000))
        return
    from jax.experimental import multihost_utils

    multihost_utils.sync_global_devices(name)


def gather_int64(local: np.ndarray) -> np.ndarray:
    """Stack ``local`` (int64, same shape on every process) from all processes: shape
    (process_count, *local.shape), in process order. Exact for the full int64 range."""
    import jax

    local = np.ascontiguousarray(local, dtype=np.int64)
    if jax.process_count() == 1:
        return local[None].copy()
    from jax.experimental import multihost_utils

    words = local.view(np.int32).reshape(local.shape + (2,))
    gathered = np.asarray(multihost_utils.process_allgather(words))
    gathered = np.ascontiguousarray(gathered.astype(np.int32))
    return gathered.reshape(gathered.shape[:-1] + (2,)).view(np.int64).reshape(gathered.shape[:-1])


def _v(x) -> int:
    return MISSING if x is None else int(x)


def pack_phases(phases: list[dict]) -> np.ndarray:
    """(phases, local devices, FIELDS) int64 from this host's phase objects (see cli)."""
    if not phases:
        return np.zeros((0, 0, len(FIELDS)), np.int64)
    n_dev = len(phases[0]["memory"]["devices"])
    out = np.full((len(phases), n_dev, len(FIELDS)), MISSING, np.int64)
    for p, ph in enumerate(phases):
        comps = ph.get("components", {})
        for j, d in enumerate(ph["memory"]["devices"]):
            row = {k: d.get(k) for k in FIELDS}
            for c in ("params", "kv", "second_params", "other"):
                vals = comps.get(c)
                row[c] = vals[j] if vals is not None else None
            row["process_rss_bytes"] = ph["memory"].get("process_rss_bytes")
            out[p, j] = [_v(row[k]) for k in FIELDS]
    return out


def unpack_phases(gathered: np.ndarray) -> list[dict[str, list[int | None]]]:
    """Per phase: {field: [value per global device, sorted by global index]}; -1 -> None.

    ``process_rss_bytes`` becomes one value per process instead of per device.
    """
    n_proc, n_phase, n_dev, _ = gathered.shape
    result = []
    idx = {k: i for i, k in enumerate(FIELDS)}
    for p in range(n_phase):
        rows = gathered[:, p, :, :].reshape(n_proc * n_dev, len(FIELDS))
        rows = rows[np.argsort(rows[:, idx["index"]], kind="stable")]
        entry: dict[str, list[int | None]] = {}
        for k in FIELDS:
            if k == "process_rss_bytes":
                continue
            entry[k] = [None if int(v) == MISSING else int(v) for v in rows[:, idx[k]]]
        entry["process_rss_bytes"] = [
            None if int(v) == MISSING else int(v) for v in gathered[:, p, 0, idx["process_rss_bytes"]]
        ] if n_dev else []
        result.append(entry)
    return result
