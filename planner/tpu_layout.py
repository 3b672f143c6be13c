"""TPU tiled layouts: how many elements an array really occupies in HBM.

XLA:TPU stores arrays in tiles, so a shard whose dims are not tile multiples occupies more bytes
than its element count. The rules below are the layouts libtpu 0.0.30 gave the training step's
arguments (``entry_computation_layout`` of the optimized HLO: 124 distinct float32 and bfloat16
array layouts in 27 compiles on v4, v5e and v6e, every one reproduced by these rules):

* rank 2, float32 and bfloat16 alike: tiles of 8 rows x 128 columns (``T(8,128)``; bfloat16 adds a
  ``(2,1)`` sub-tile, which packs rows without changing the count); an array of 1, 2 or 4 rows
  takes a tile of that many rows (``T(2,128)``, the batch's token arrays). XLA chooses the dim order: the
  one with fewer padded elements, row-major on a tie. A float32 [1216, 320] shard (Qwen3-4B's
  down_proj at fsdp 8 x tp 8) is laid out column-major as 1280 x 320, not 1216 x 384.
* rank 1: one tile of the next power of two of the length, from 512 bytes (128 float32 or 256
  bfloat16 elements) up to 1024 elements, then whole 1024-element tiles (a float32 [1536] norm
  occupies 2048 elements, a bfloat16 [128] q_norm 256).

Over the 283 bench compiles without the KL term in the compile cache, these rules gave XLA's argument
bytes minus the unpadded state, batch and step counters to within the counters' own tiles (about
2 KB; each scalar occupies 512 bytes); with the KL term the splash kernel's mask tables add 16-36 KB.
"""

from __future__ import annotations

import math

from planner.units import round_up

TILE_ROWS = 8
TILE_COLUMNS = 128
#: Rank-1 tiles: from this many bytes up to this many elements.
VECTOR_TILE_MIN_BYTES = 512
VECTOR_TILE_MAX_ELEMENTS = 1024


def tiled_elements(shape: tuple[int, ...], itemsize: int) -> int:
    """Elements an array of ``shape`` occupies in TPU HBM under the tiled layout (see module doc).

    Ranks above 2 tile their last two dims (as a stacked [layers, rows, cols] array does).
    """
    if len(shape) == 0:
        return max(1, VECTOR_TILE_MIN_BYTES // itemsize)
    if len(shape) == 1:
        n = shape[0]
        if n >= VECTOR_TILE_MAX_ELEMENTS:
            return round_up(n, VECTOR_TILE_MAX_ELEMENTS)
        return max(VECTOR_TILE_MIN_BYTES // itemsize, _next_power_of_two(n))
    *lead, a, b = shape
    row_major = _tile_rows(a) * round_up(b, TILE_COLUMNS)
    column_major = _tile_rows(b) * round_up(a, TILE_COLUMNS)
    return math.prod(lead) * min(row_major, column_major)


def _tile_rows(rows: int) -> int:
    """Rows a rank-2 array occupies: whole 8-row tiles; fewer rows take a 1-, 2- or 4-row tile."""
    if rows < TILE_ROWS:
        return _next_power_of_two(rows)
    return round_up(rows, TILE_ROWS)


def _next_power_of_two(n: int) -> int:
    """The smallest power of two at or above ``n`` (1 for n <= 1)."""
    return 1 << max(0, n - 1).bit_length()


def padding_bytes(shape: tuple[int, ...], itemsize: int) -> int:
    """Bytes the tiled layout adds to an array of ``shape`` (0 where every dim is a tile multiple)."""
    return (tiled_elements(shape, itemsize) - math.prod(shape)) * itemsize
