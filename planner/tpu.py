"""Cloud TPU catalog: HBM per JAX device, chips, hosts, and deviceless-compile topologies.

Accelerator types are read the way Cloud TPU names them:

* v2, v3, v4, v5p and tpu7x: the suffix counts TensorCores (``v4-8`` = 4 chips, 8 cores).
* v5e (``v5litepod``) and v6e: the suffix counts chips (``v6e-8`` = 8 chips).

A JAX device is one TensorCore on v2, v3 and tpu7x, and one chip (megacore) on v4 and v5p.
"""

from __future__ import annotations

from typing import NamedTuple

from planner.errors import PlanError
from planner.units import GiB


class TpuGeneration(NamedTuple):
    """Facts about one TPU generation.

    Attributes:
      name: canonical generation name (``"v4"``).
      aliases: other prefixes accepted in accelerator types (``"v5litepod"``).
      limit_bytes: usable HBM per JAX device in bytes, as the runtime or XLA reports it.
      limit_source: where ``limit_bytes`` comes from.
      cores_per_chip: TensorCores per chip.
      devices_per_chip: JAX devices per chip.
      suffix_counts: ``"cores"`` or ``"chips"``: what the number in ``v4-8`` counts.
      chips_per_host: chips per host on multi-host slices.
      single_host_chips: slice sizes (chips) served by a single host.
      topology_prefix: generation prefix of the libtpu topology name (``"v4"`` in ``v4:2x2x1``).
      torus_dims: 2 or 3 (topology shape rank).
      chip_config_name: libtpu chip config for a deviceless compile.
      valid_sizes: accelerator-type suffixes Cloud TPU offers, for error messages and listing.
      step_rules: the generation whose fitted training-step rules (:mod:`planner.training`) this one
        follows, where XLA compiles both as one TPU family; None: its own (:attr:`step_rules_name`).
    """

    name: str
    aliases: tuple[str, ...]
    limit_bytes: int
    limit_source: str
    cores_per_chip: int
    devices_per_chip: int
    suffix_counts: str
    chips_per_host: int
    single_host_chips: tuple[int, ...]
    topology_prefix: str
    torus_dims: int
    chip_config_name: str
    valid_sizes: tuple[int, ...]
    step_rules: str | None = None

    @property
    def step_rules_name(self) -> str:
        """The generation name the training-step rules are looked up by (``step_rules`` or ``name``)."""
        return self.step_rules or self.name


def _gib_bytes(gib_value: float) -> int:
    return int(round(gib_value * GiB))


_XLA = "XLA:TPU compile-time limit reported by a deviceless compile (libtpu 0.0.30), 0.01 GiB precision"

GENERATIONS: dict[str, TpuGeneration] = {
    g.name: g
    for g in (
        TpuGeneration(
            "v2", (), _gib_bytes(7.48), _XLA, 2, 2, "cores", 4, (4,), "v2", 2, "default",
            (8, 32, 128, 256, 512),
        ),
        TpuGeneration(
            "v3", (), _gib_bytes(15.48), _XLA, 2, 2, "cores", 4, (4,), "v3", 2, "default",
            (8, 32, 64, 128, 256, 512, 1024, 2048),
        ),
        TpuGeneration(
            "v4", (), 33_014_415_360,
            "runtime bytes_limit measured on a v4-8 (XLA's compile limit is 30.75 GiB)",
            2, 1, "cores", 4, (4,), "v4", 3, "megacore",
            (8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096),
        ),
        TpuGeneration(
            "v5e", ("v5litepod",), _gib_bytes(15.75), _XLA, 1, 1, "chips", 4, (1, 4, 8), "v5e", 2,
            "default", (1, 4, 8, 16, 32, 64, 128, 256),
        ),
        TpuGeneration(
            "v5p", (), _gib_bytes(95.74), _XLA, 2, 1, "cores", 4, (4,), "v5", 3, "megacore",
            tuple(2**k for k in range(3, 14)),
            # XLA compiles v5p and v5e as one family ("TPU v5", "TPU v5 lite"): v5p's first seven
            # compiles (bench rows 561-567) came within 10% on v5e's rules, -15.1% to +24.9% on v4's
            # defaults; held out after, rows 573-580 from -4.8% to +15.0% (median 6.6%; 24.3% on v4's)
            step_rules="v5e",
        ),
        TpuGeneration(
            "v6e", (), _gib_bytes(31.25), _XLA, 1, 1, "chips", 4, (1, 4, 8), "v6e", 2, "default",
            (1, 4, 8, 16, 32, 64, 128, 256),
        ),
        TpuGeneration(
            "tpu7x", ("v7x",), _gib_bytes(94.75), _XLA, 2, 2, "cores", 4, (4,), "tpu7x", 3,
            "default", tuple(2**k for k in range(3, 14)),
            # its nine compiles (bench rows 568-572, 581-584), held out on the default rules, went from
            # -48.3% to +169% there (median 9.5%), -7.9% to +13.4% but for row 583 on v6e's (median
            # 3.6%): windowed-einsum rings from 1536 tokens/device, as on v6e (rows 572, 581, 584)
            step_rules="v6e",
        ),
    )
}


class TpuSlice(NamedTuple):
    """One accelerator type, e.g. ``v4-8``.

    Attributes:
      name: the accelerator type as given (canonical prefix).
      generation: its :class:`TpuGeneration`.
      num_chips: chips in the slice.
      num_devices: JAX devices in the slice.
      num_hosts: TPU VM hosts.
      topology: libtpu topology name for a deviceless compile (``"v4:2x2x1"``).
      chips_per_host_bounds: libtpu ``chips_per_host_bounds`` for a deviceless compile.
    """

    name: str
    generation: TpuGeneration
    num_chips: int
    num_devices: int
    num_hosts: int
    topology: str
    chips_per_host_bounds: tuple[int, int, int]

    @property
    def limit_bytes(self) -> int:
        """Usable HBM per JAX device, bytes."""
        return self.generation.limit_bytes

    @property
    def devices_per_host(self) -> int:
        return self.num_devices // self.num_hosts

    @property
    def total_hbm_bytes(self) -> int:
        return self.limit_bytes * self.num_devices


def _prefix_table() -> dict[str, TpuGeneration]:
    table: dict[str, TpuGeneration] = {}
    for gen in GENERATIONS.values():
        table[gen.name] = gen
        for alias in gen.aliases:
            table[alias] = gen
    return table


def valid_types() -> list[str]:
    """Every accelerator type the catalog knows, e.g. ``['v2-8', ..., 'tpu7x-8192']``."""
    return [f"{g.name}-{n}" for g in GENERATIONS.values() for n in g.valid_sizes]


def _torus_shape(num_chips: int, dims: int) -> tuple[int, ...]:
    """Physical chip grid of a slice: powers of two, grown by doubling the smallest axis."""
    if dims == 2:
        if num_chips == 1:
            return (1, 1)
        shape = [1, 1]
        while shape[0] * shape[1] < num_chips:
            i = 0 if shape[0] < shape[1] else 1
            shape[i] *= 2
        return (shape[0], shape[1])
    if num_chips < 4:
        raise PlanError(f"a 3-D torus slice has at least 4 chips, got {num_chips}")
    shape = [2, 2, 1]
    while shape[0] * shape[1] * shape[2] < num_chips:
        smallest = min(shape)
        i = max(j for j in range(3) if shape[j] == smallest)
        shape[i] *= 2
    return (shape[0], shape[1], shape[2])


def parse_slice(name: str) -> TpuSlice:
    """Parse an accelerator type such as ``v4-8``, ``v5litepod-16`` or ``tpu7x-8``.

    Raises:
      PlanError: with the valid generations and sizes, for an unknown or malformed type.
    """
    raw = str(name).strip().lower()
    prefix, sep, suffix = raw.rpartition("-")
    table = _prefix_table()
    if not sep or prefix not in table or not suffix.isdigit():
        raise PlanError(
            f"unknown TPU type {name!r}; valid generations: {', '.join(sorted(table))} "
            f"with a size suffix, e.g. v4-8, v5litepod-16, v6e-8 (see `hbmplan tpus`)"
        )
    gen = table[prefix]
    size = int(suffix)
    if size not in gen.valid_sizes:
        raise PlanError(
            f"unknown TPU type {name!r}: {gen.name} comes in sizes "
            f"{', '.join(str(s) for s in gen.valid_sizes)}"
        )
    num_chips = size // gen.cores_per_chip if gen.suffix_counts == "cores" else size
    num_devices = num_chips * gen.devices_per_chip
    if num_chips in gen.single_host_chips:
        num_hosts = 1
    else:
        num_hosts = num_chips // gen.chips_per_host
    shape = _torus_shape(num_chips, gen.torus_dims)
    topology = f"{gen.topology_prefix}:{'x'.join(str(d) for d in shape)}"
    host_chips = num_chips // num_hosts
    if gen.torus_dims == 3:
        bounds = (2, 2, 1)
    elif host_chips == 8:
        bounds = (2, 4, 1)
    elif host_chips == 1:
        bounds = (1, 1, 1)
    else:
        bounds = (2, 2, 1)
    return TpuSlice(
        name=f"{gen.name}-{size}",
        generation=gen,
        num_chips=num_chips,
        num_devices=num_devices,
        num_hosts=num_hosts,
        topology=topology,
        chips_per_host_bounds=bounds,
    )
