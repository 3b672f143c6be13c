"""Deviceless ahead-of-time compile for a TPU slice: topology, mesh, compile, memory analysis.

Runs inside the worker process (it imports jax). ``parse_oom`` and ``parse_size`` are pure and
importable without jax.
"""

from __future__ import annotations

import re
import time

_UNITS = {"": 1, "B": 1, "K": 1024, "KB": 1024, "KIB": 1024, "M": 1024**2, "MB": 1024**2, "MIB": 1024**2,
          "G": 1024**3, "GB": 1024**3, "GIB": 1024**3, "T": 1024**4, "TB": 1024**4, "TIB": 1024**4}
_SIZE = r"([0-9][0-9,]*(?:\.[0-9]+)?)\s*([KMGT]i?B?|B)?"


def parse_size(text: str) -> int | None:
    """``'40.00G'``, ``'9.25GiB'``, ``'512.0K'``, ``'33014415360'`` -> bytes (XLA prints 1024-based units)."""
    m = re.fullmatch(r"\s*" + _SIZE + r"\s*", text or "", flags=re.I)
    if not m:
        return None
    value = float(m.group(1).replace(",", ""))
    unit = (m.group(2) or "").upper()
    return int(round(value * _UNITS.get(unit, 1)))


def parse_oom(message: str) -> dict | None:
    """Pull XLA's own figures out of an out-of-memory error, for each wording libtpu uses.

    Returns ``{"kind", "used_bytes", "limit_bytes", "exceeded_bytes", "message"}`` (figures that the
    wording does not carry are None), or None when ``message`` is not an out-of-memory error.
    """
    if not message:
        return None
    text = " ".join(message.split())
    S = _SIZE
    patterns = [
        # "Ran out of memory in memory space hbm. Used 40.00G of 30.75G hbm. Exceeded hbm capacity by 9.25G."
        ("compile", rf"Used {S} of {S} hbm\.?\s*Exceeded hbm capacity by {S}", ("used", "limit", "exceeded")),
        ("compile", rf"Used {S} of {S} hbm", ("used", "limit")),
        # "the total memory required for HLO temporaries (56.00G) exceeds available HBM (30.75G)"
        ("compile", rf"memory required for HLO temporaries \({S}\) exceeds available HBM \({S}\)", ("used", "limit")),
        # "Aborting compilation early because it's unlikely to have enough device memory. Requires 40.00G, has 30.75G available."
        ("compile", rf"Requires {S}, has {S} available", ("used", "limit")),
        # load time: "Attempting to reserve 7.82G at the bottom of memory. That was not possible. There are 5.68G free"
        ("load", rf"Attempting to reserve {S}.*?(?:There are|with) {S} free", ("used", "free")),
    ]
    for kind, pat, names in patterns:
        m = re.search(pat, text, flags=re.I)
        if not m:
            continue
        values = {}
        for i, name in enumerate(names):
            values[name] = parse_size(m.group(2 * i + 1) + (m.group(2 * i + 2) or ""))
        used = values.get("used")
        limit = values.get("limit")
        exceeded = values.get("exceeded")
        if kind == "load":
            limit = values.get("free")
        if exceeded is None and used is not None and limit is not None:
            exceeded = used - limit
        out = {"kind": kind, "used_bytes": used, "limit_bytes": limit, "exceeded_bytes": exceeded,
               "message": _oom_line(text)}
        out.update(_oom_details(text))
        return out
    if re.search(r"RESOURCE_EXHAUSTED|Ran out of memory|out of memory", text, flags=re.I):
        return {"kind": "compile", "used_bytes": None, "limit_bytes": None, "exceeded_bytes": None,
                "message": _oom_line(text)}
    return None


def _oom_details(text: str) -> dict:
    """The breakdown XLA:TPU appends: "reserved 1.25G program 13.92G arguments 21.28G ... HLO temp 13.91G"."""
    out = {}
    for key, pat in (("reserved_bytes", r"reserved " + _SIZE), ("program_bytes", r"program " + _SIZE),
                     ("arguments_bytes", r"arguments " + _SIZE), ("temp_bytes", r"HLO temp " + _SIZE),
                     ("output_bytes", r"Output size " + _SIZE)):
        m = re.search(pat, text)
        if m:
            out[key] = parse_size(m.group(1) + (m.group(2) or ""))
    return out


def _oom_line(text: str) -> str:
    m = re.search(r"(RESOURCE_EXHAUSTED[^\n]{0,400}|Ran out of memory[^\n]{0,400})", text)
    return (m.group(1) if m else text[:400]).strip()


# -- jax side ----------------------------------------------------------------------------------


def get_topology(tpu: dict):
    from jax.experimental import topologies

    return topologies.get_topology_desc(
        topology_name=tpu["topology"],
        platform="tpu",
        chip_config_name=tpu["chip_config_name"],
        chips_per_host_bounds=tuple(tpu["chips_per_host_bounds"]),
        num_slices=1,
    )


def _grid_dims(coords: list[tuple[int, ...]]) -> list[int]:
    """The extent of each axis of a grid of chip coordinates (0-based)."""
    return [max(c[k] for c in coords) + 1 for k in range(len(coords[0]))]


def snake_order(coords: list[tuple[int, ...]]) -> list[int]:
    """Indices of ``coords`` (chip coordinates) in boustrophedon order.

    Consecutive entries are physical neighbours (one hop along one axis, no wraparound link
    needed): a reflected mixed-radix Gray code over the topology's axes, the outer axis first.
    """
    dims = _grid_dims(coords)
    rank = len(dims)

    def key(c):
        out, odd = [], 0
        for k in range(rank):
            v = dims[k] - 1 - c[k] if odd else c[k]
            out.append(v)
            odd = (odd * dims[k] + v) % 2
        return out

    return sorted(range(len(coords)), key=lambda i: key(coords[i]))


def ring_order(coords: list[tuple[int, ...]]) -> list[int]:
    """Indices of ``coords`` along a closed ring of physical neighbours where one exists.

    On a 2-D grid with an even side (v5e/v6e slices: 2x4, 4x4, 4x8, ...) the ring runs along the
    first row, snakes back through the other rows without their first column, and returns up
    that column, so the last chip neighbours the first too (XLA's ring collective-permutes
    include that pair). Elsewhere: ``snake_order`` (an open path).
    """
    dims = _grid_dims(coords)
    axes = [k for k, d in enumerate(dims) if d > 1]
    if len(axes) != 2 or all(dims[k] % 2 for k in axes):
        return snake_order(coords)
    rows, cols = (axes[0], axes[1]) if dims[axes[0]] % 2 == 0 else (axes[1], axes[0])
    m, n = dims[rows], dims[cols]
    path = [(0, c) for c in range(n)]
    for r in range(1, m):
        span = range(n - 1, 0, -1) if r % 2 else range(1, n)
        path += [(r, c) for c in span]
    path += [(r, 0) for r in range(m - 1, 0, -1)]
    where = {(c[rows], c[cols]): i for i, c in enumerate(coords)}
    return [where[p] for p in path]


def make_mesh(devices, shape: tuple[int, int, int], order: str = "mesh_utils"):
    """A (dp, fsdp, tp) mesh over ``devices``.

    ``order``: ``"mesh_utils"`` (jax's topology-aware ``create_device_mesh``, plain device order
    where it fails) or ``"ring"`` (devices along a closed ring of physical neighbours, ``ring_order``;
    used where the compiler rejects the first order's collective-permutes on slices without
    wraparound links).
    """
    import numpy as np
    from jax.sharding import Mesh

    if order == "ring":
        idx = ring_order([tuple(d.coords) for d in devices])
        arr = np.array([devices[i] for i in idx]).reshape(shape)
        return Mesh(arr, ("dp", "fsdp", "tp"))
    try:
        from jax.experimental import mesh_utils

        arr = mesh_utils.create_device_mesh(shape, devices=devices, allow_split_physical_axes=True)
    except Exception:  # noqa: BLE001 - fall back to plain device order
        arr = np.array(devices).reshape(shape)
    return Mesh(arr, ("dp", "fsdp", "tp"))


#: libtpu's error for collective-permutes between chips that are not ICI neighbours on slices
#: without wraparound links (seen for v5e-32, a 4x8 torus, with a 32-way fsdp ring).
_ROUTING_ERROR = "limited ICI routing"


def memory_fields(compiled) -> dict:
    ma = compiled.memory_analysis()
    out = {}
    for name in ("argument_size_in_bytes", "output_size_in_bytes", "alias_size_in_bytes", "temp_size_in_bytes",
                 "generated_code_size_in_bytes", "host_argument_size_in_bytes", "host_output_size_in_bytes",
                 "host_alias_size_in_bytes", "host_temp_size_in_bytes", "peak_memory_in_bytes"):
        value = getattr(ma, name, None)
        if value is not None:
            out[name.replace("_size_in_bytes", "_bytes").replace("_in_bytes", "_bytes")] = int(value)
    if "peak_memory_bytes" not in out:
        out["peak_memory_bytes"] = None
    out["peak_sum_bytes"] = (out["argument_bytes"] + out["output_bytes"] - out["alias_bytes"] + out["temp_bytes"])
    return out


def compile_config(cfg: dict) -> dict:
    """Compile the reference step for ``cfg``; return a JSON-able result (never raises on OOM)."""
    import jax

    from planner.compile.reference_step import build

    t0 = time.time()
    level = cfg.get("optimization_level")
    if level:
        jax.config.update("jax_optimization_level", level)
    topo = get_topology(cfg["tpu"])
    devices = list(topo.devices)
    result: dict = {
        "devices": len(devices),
        "processes": len({d.process_index for d in devices}),
        "device_kind": devices[0].device_kind,
        "jax_version": jax.__version__,
    }
    try:
        import libtpu  # noqa: F401
        from importlib.metadata import version

        result["libtpu_version"] = version("libtpu")
    except Exception:  # noqa: BLE001
        result["libtpu_version"] = None
    want = cfg["tpu"]["num_devices"]
    if len(devices) != want:
        result.update(status="error", error=f"libtpu topology {cfg['tpu']['topology']} has {len(devices)} devices; "
                      f"the catalog says {want}")
        return result
    compiled = None
    for order in ("mesh_utils", "ring"):
        mesh = make_mesh(devices, tuple(cfg["mesh"]), order=order)
        step, args, info = build(cfg, mesh)
        result.update(info)
        t1 = time.time()
        lowered = step.lower(*args)
        t2 = time.time()
        result["lower_s"] = round(t2 - t1, 2)
        try:
            compiled = lowered.compile()
            result["device_order"] = order
            break
        except Exception as exc:  # noqa: BLE001 - XLA raises XlaRuntimeError/JaxRuntimeError
            msg = str(exc)
            if order == "mesh_utils" and _ROUTING_ERROR in msg:
                result["device_order_retry"] = msg.strip().splitlines()[0][:200]
                continue
            oom = parse_oom(msg)
            result["compile_s"] = round(time.time() - t2, 2)
            result["total_s"] = round(time.time() - t0, 2)
            result["device_order"] = order
            if oom is not None:
                result.update(status="oom", oom=oom)
            else:
                result.update(status="error", error=msg[-4000:])
            return result
    result["compile_s"] = round(time.time() - t2, 2)
    result["memory"] = memory_fields(compiled)
    result["status"] = "ok"
    result["total_s"] = round(time.time() - t0, 2)
    return result
