"""Measure device and host memory. Every byte count is an ``int`` number of bytes.

Two sources for a device's bytes in use:

* ``"memory_stats"``: the allocator's own counters (TPU, GPU): ``bytes_in_use``,
  ``peak_bytes_in_use``, ``bytes_limit``, ``largest_free_block_bytes``.
* ``"live_arrays"``: where ``memory_stats()`` is None (CPU): the bytes of every live jax
  array's shards on that device. ``jax.live_arrays()`` also lists the single-device views that
  ``addressable_shards[i].data`` creates, which share the parent's buffer, so shards are
  deduplicated by ``(device, buffer pointer)``. Peak, limit and largest free block are None.

Components (params, KV, ...) are measured the same way on both sources: the sum of the
addressable shard bytes of a given list of arrays, per device.

A snapshot is a settled reading: Python's cyclic garbage is collected first (an unreachable
array still holds its buffer, and ``jax.live_arrays()`` still lists it, until the collector
runs), then the devices are read until two readings in a row agree (at most
``SETTLE_READS``, ``SETTLE_WAIT_S`` apart), so a scalar the engine's threads create and drop in
the moment of reading does not land in one phase and not the next. ``settle_reads`` says how
many readings it took; a snapshot that never settled keeps the last one and says so.
"""

from __future__ import annotations

import gc
import os
import time
from dataclasses import dataclass, field
from typing import Iterable, Sequence

#: Readings a snapshot takes at most while waiting for two in a row to agree, and the wait between.
SETTLE_READS = 5
SETTLE_WAIT_S = 0.05

STATS_FIELDS = ("bytes_in_use", "peak_bytes_in_use", "bytes_limit", "largest_free_block_bytes")


@dataclass
class DeviceMemory:
    """One device at one moment. ``index`` is the position in ``jax.devices()`` (global)."""

    index: int
    id: int
    process_index: int
    kind: str
    bytes_in_use: int
    peak_bytes_in_use: int | None = None
    bytes_limit: int | None = None
    largest_free_block_bytes: int | None = None

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class MemorySnapshot:
    """Local devices of this process, plus host RSS. ``source`` labels how devices were read."""

    source: str
    devices: list[DeviceMemory]
    process_rss_bytes: int | None
    extra: dict = field(default_factory=dict)

    @property
    def bytes_in_use(self) -> list[int]:
        return [d.bytes_in_use for d in self.devices]

    @property
    def bytes_in_use_sum(self) -> int:
        return sum(self.bytes_in_use)

    @property
    def peak_bytes_in_use_max(self) -> int | None:
        peaks = [d.peak_bytes_in_use for d in self.devices if d.peak_bytes_in_use is not None]
        return max(peaks) if peaks else None

    def as_dict(self) -> dict:
        return {
            "source": self.source,
            "devices": [d.as_dict() for d in self.devices],
            "bytes_in_use_sum": self.bytes_in_use_sum,
            "peak_bytes_in_use_max": self.peak_bytes_in_use_max,
            "process_rss_bytes": self.process_rss_bytes,
            **({"settle_reads": self.extra["settle_reads"], "settled": self.extra["settled"]}
               if "settle_reads" in self.extra else {}),
        }


def process_rss_bytes() -> int | None:
    """Resident set size of this process (psutil), or None if psutil is missing."""
    try:
        import psutil
    except ImportError:
        return None
    return int(psutil.Process(os.getpid()).memory_info().rss)


def _stats(device) -> dict | None:
    try:
        s = device.memory_stats()
    except Exception:  # some backends raise instead of returning None
        return None
    return s or None


def live_array_bytes(devices: Sequence) -> dict[int, int]:
    """Bytes of live jax arrays per device id, each buffer counted once."""
    import jax

    want = {d.id for d in devices}
    seen: set[tuple[int, int]] = set()
    out = {i: 0 for i in want}
    for arr in jax.live_arrays():
        try:
            if arr.is_deleted():
                continue
            shards = arr.addressable_shards
        except Exception:
            continue
        for s in shards:
            dev_id = s.device.id
            if dev_id not in want:
                continue
            data = s.data
            try:
                key = (dev_id, int(data.unsafe_buffer_pointer()))
            except Exception:
                key = (dev_id, id(data))
            if key in seen:
                continue
            seen.add(key)
            out[dev_id] += int(data.nbytes)
    return out


def arrays_bytes_per_device(arrays: Iterable, devices: Sequence) -> list[int]:
    """Per device (in ``devices`` order): bytes of the given arrays' addressable shards.

    Deleted arrays and non-arrays count 0; a buffer shared by two arrays counts once.
    """
    pos = {d.id: i for i, d in enumerate(devices)}
    out = [0] * len(devices)
    seen: set[tuple[int, int]] = set()
    for arr in arrays:
        try:
            if arr.is_deleted():
                continue
            shards = arr.addressable_shards
        except AttributeError:
            continue
        for s in shards:
            i = pos.get(s.device.id)
            if i is None:
                continue
            data = s.data
            try:
                key = (s.device.id, int(data.unsafe_buffer_pointer()))
            except Exception:
                key = (s.device.id, id(data))
            if key in seen:
                continue
            seen.add(key)
            out[i] += int(data.nbytes)
    return out


def snapshot(devices: Sequence | None = None, settle: bool = True) -> MemorySnapshot:
    """A settled reading of every local device (see the module docstring); ``settle=False``: one
    reading, no garbage collection. Uses memory_stats where all devices have them."""
    if not settle:
        return _read(devices)
    gc.collect()
    snap = _read(devices)
    reads, settled = 1, False
    while reads < SETTLE_READS:
        time.sleep(SETTLE_WAIT_S)
        again = _read(devices)
        reads += 1
        if again.bytes_in_use == snap.bytes_in_use:
            settled = True
            break
        snap = again
    snap.extra.update(settle_reads=reads, settled=settled)
    return snap


def _read(devices: Sequence | None) -> MemorySnapshot:
    """One reading of every local device."""
    import jax

    all_devices = jax.devices()
    index = {d.id: i for i, d in enumerate(all_devices)}
    local = list(devices) if devices is not None else list(jax.local_devices())
    stats = [_stats(d) for d in local]
    if all(s is not None and "bytes_in_use" in s for s in stats):
        mems = [
            DeviceMemory(
                index=index.get(d.id, -1), id=d.id, process_index=d.process_index, kind=d.device_kind,
                **{k: (int(s[k]) if s.get(k) is not None else None) for k in STATS_FIELDS},
            )
            for d, s in zip(local, stats)
        ]
        source = "memory_stats"
    else:
        live = live_array_bytes(local)
        mems = [
            DeviceMemory(index=index.get(d.id, -1), id=d.id, process_index=d.process_index,
                         kind=d.device_kind, bytes_in_use=live[d.id])
            for d in local
        ]
        source = "live_arrays"
    return MemorySnapshot(source=source, devices=mems, process_rss_bytes=process_rss_bytes())


def accelerator_type(devices: Sequence | None = None) -> str:
    """TPU accelerator type ("v4-8") when known, else "<platform>-<global device count>"."""
    import jax

    devs = list(devices) if devices is not None else jax.devices()
    platform = devs[0].platform if devs else "unknown"
    if platform == "tpu":
        env = os.environ.get("TPU_ACCELERATOR_TYPE") or os.environ.get("ACCELERATOR_TYPE")
        if env:
            return env
        try:  # the GCE metadata server knows it; short timeout, no failure if absent
            import urllib.request

            req = urllib.request.Request(
                "http://metadata.google.internal/computeMetadata/v1/instance/attributes/accelerator-type",
                headers={"Metadata-Flavor": "Google"},
            )
            with urllib.request.urlopen(req, timeout=1.0) as r:
                return r.read().decode().strip()
        except Exception:
            pass
        guessed = _tpu_type_from_kind(devs[0].device_kind, len(devs))
        return guessed or f"tpu-{len(devs)}"
    return f"{platform}-{len(devs)}"


_KIND_TO_GENERATION = (("v5 lite", "v5e"), ("v5e", "v5e"), ("v6 lite", "v6e"), ("v6e", "v6e"),
                       ("v5p", "v5p"), ("v5", "v5p"), ("7x", "tpu7x"), ("v4", "v4"), ("v3", "v3"),
                       ("v2", "v2"))


def _tpu_type_from_kind(device_kind: str, num_devices: int) -> str | None:
    """Accelerator type from the device kind and count, using the planner's TPU catalog."""
    kind = device_kind.lower()
    gen_name = next((g for k, g in _KIND_TO_GENERATION if k in kind), None)
    if gen_name is None:
        return None
    try:
        from planner.tpu import GENERATIONS
    except ImportError:
        return None
    g = GENERATIONS.get(gen_name)
    if g is None:
        return None
    chips = num_devices // g.devices_per_chip
    suffix = chips * g.cores_per_chip if g.suffix_counts == "cores" else chips
    prefix = "v5litepod" if gen_name == "v5e" else gen_name
    return f"{prefix}-{suffix}"
