"""Units and element sizes: the one place these facts live.

All memory in the planner is an ``int`` number of bytes. GiB exists only for display.
"""

from __future__ import annotations

from planner.errors import PlanError

KiB = 1024
MiB = 1024**2
GiB = 1024**3

#: Bytes per element for every dtype name the planner accepts (HF and JAX spellings).
DTYPE_BYTES: dict[str, int] = {
    "float32": 4,
    "fp32": 4,
    "bfloat16": 2,
    "bf16": 2,
    "float16": 2,
    "fp16": 2,
    "half": 2,
    "float8_e4m3fn": 1,
    "float8_e5m2": 1,
    "fp8": 1,
    "int8": 1,
    "int32": 4,
}

#: Canonical spelling of each dtype name.
_CANONICAL = {
    "fp32": "float32",
    "bf16": "bfloat16",
    "fp16": "float16",
    "half": "float16",
    "fp8": "float8_e4m3fn",
}


def canonical_dtype(name: str) -> str:
    """Return the canonical dtype name, or raise :class:`PlanError` naming the valid ones."""
    key = str(name).strip().lower()
    if key == "auto":
        key = "bfloat16"
    if key not in DTYPE_BYTES:
        raise PlanError(f"unknown dtype {name!r}; valid: {', '.join(sorted(DTYPE_BYTES))}")
    return _CANONICAL.get(key, key)


def dtype_bytes(name: str) -> int:
    """Bytes per element of ``name``."""
    return DTYPE_BYTES[canonical_dtype(name)]


def gib(n_bytes: int | float) -> float:
    """Bytes to GiB, for display only."""
    return n_bytes / GiB


def fmt_gib(n_bytes: int | float, digits: int = 2) -> str:
    """Format bytes as ``'12.34 GiB'``."""
    return f"{gib(n_bytes):.{digits}f} GiB"


def ceil_div(a: int, b: int) -> int:
    """Integer ceiling of ``a / b`` for non-negative ints."""
    return -(-a // b)


def round_up(a: int, multiple: int) -> int:
    """Round ``a`` up to a multiple of ``multiple``."""
    return ceil_div(a, multiple) * multiple
