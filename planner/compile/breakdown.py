"""Read XLA's buffer-assignment dump: the largest live buffers at the program's peak."""

from __future__ import annotations

import glob
import os
import re

_ENTRY = re.compile(r"^      [├└]── (.*?) \(\s*[0-9.]+%, total: ([0-9 ]+) bytes")


def _group(name: str) -> str:
    if name.startswith("state["):
        m = re.match(r"state\['(\w+)'\](?:\[\d+\]\[\d+\]\.(\w+))?", name)
        if m:
            return "state." + m.group(1) + (f".{m.group(2)}" if m.group(2) else "")
    name = re.sub(r"\{\d+\}$", "", name)
    name = re.sub(r"_block_.*$", "", name)
    name = re.sub(r"\.\d+(\.remat\d*)?$", "", name)  # fusion.1105, copy.2077.remat -> fusion, copy
    return name


def buffer_assignment_file(dump_dir: str) -> str | None:
    """The training step's buffer-assignment text in an XLA dump directory, or None."""
    files = sorted(glob.glob(os.path.join(dump_dir, "*jit_training_step*buffer-assignment.txt")))
    return files[-1] if files else None


def read_buffer_assignment(dump_dir: str) -> list[str] | None:
    """The lines of the training step's buffer-assignment text in ``dump_dir``, or None.

    For a 7B step the file is over 100 MB; read it once and hand the lines to
    :func:`peak_breakdown` and :func:`planner.compile.live_ranges.live_profile`.
    """
    path = buffer_assignment_file(dump_dir)
    if path is None:
        return None
    with open(path, errors="replace") as f:
        return f.read().split("\n")


def peak_breakdown(dump_dir: str, top: int = 40, lines: list[str] | None = None) -> list[dict] | None:
    """[{"name", "bytes"}] of the top-level entries of "Stack trace breakdown for peak usage",
    merged by operation (JAX name stack), largest first; None when no dump is found.

    ``lines``: the buffer assignment already read (:func:`read_buffer_assignment`)."""
    if lines is None:
        lines = read_buffer_assignment(dump_dir)
    if lines is None:
        return None
    totals: dict[str, int] = {}
    inside = False
    for line in lines:
        if line.startswith("  Stack trace breakdown for peak usage"):
            inside = True
            continue
        if not inside:
            continue
        if not line.strip():
            break
        m = _ENTRY.match(line)
        if m:
            key = _group(m.group(1))
            totals[key] = totals.get(key, 0) + int(m.group(2).replace(" ", ""))
    items = sorted(({"name": k, "bytes": v} for k, v in totals.items()), key=lambda d: -d["bytes"])
    return items[:top]
