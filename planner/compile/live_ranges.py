"""XLA's live temp bytes over the compiled step's schedule, read from its buffer-assignment dump.

XLA's buffer assignment lists every temp value with its slot (allocation, offset, size) and, under
``HloLiveRange``, the program points over which each value is live. Adding up the slots live at each
point gives the step's live temp bytes from start to end; their maximum sits a few percent under
XLA's temp allocation (the rest is the allocator's packing). Each point is named after the JAX
operation that made its instruction (``op_name`` in the optimized HLO): ``transpose(...)`` is the
backward, ``jvp(...)`` the forward, ``cond/...`` the optimizer update of the last micro-step.
Points without a name (bitcasts, tuples) take the phase of the named point before them.

This is how the step model's rules were read (which buffers are live where XLA's temp peaks, and
in which phase); ``hbmplan --compile --explain`` prints it beside the analytic phases.
"""

from __future__ import annotations

import os
import re
from collections import Counter, defaultdict

from planner.compile.breakdown import buffer_assignment_file, read_buffer_assignment

PHASES = ("forward", "backward", "update", "other")

_VALUE = re.compile(r"^ value: <\d+ (\S+) @\d+> \(size=(\d+),offset=(\d+)\): (\S+)")
_POINT = re.compile(r"^\s+(\d+):(\S+)$")
_RANGE = re.compile(r"^\s+(\S+):(\d+)-(\d+)$")
_OP_NAME = re.compile(r"^\s*(?:ROOT )?%?([\w.\-]+) = .*?op_name=\"([^\"]*)\"")


def phase_of(op_name: str) -> str | None:
    """The step phase a JAX op_name belongs to, or None for an unnamed instruction."""
    if not op_name:
        return None
    if "transpose(" in op_name:
        return "backward"
    if "/cond/" in op_name:
        return "update"
    if "jvp(" in op_name:
        return "forward"
    return "other"


def _temp_values(lines: list[str]) -> dict[str, tuple[tuple[str, int, int], str]]:
    """value name -> ((allocation, offset, size), shape) for every value outside parameter allocations."""
    values: dict[str, tuple[tuple[str, int, int], str]] = {}
    allocation, skip = "", True
    for line in lines:
        if line.startswith("allocation "):
            allocation = line.split(":", 1)[0]
            skip = "parameter" in line
            continue
        if line.startswith("Total bytes used"):
            break
        m = _VALUE.match(line)
        if m and not skip:
            name = m.group(1) if "{" in m.group(1) else m.group(1) + "{}"
            size = int(m.group(2))
            values[name] = ((allocation, int(m.group(3)), size), re.sub(r"\{[^}]*\}", "", m.group(4)))
    return values


def live_profile(dump_dir: str, top: int = 12, lines: list[str] | None = None) -> dict | None:
    """Live temp bytes through the step, from the dump in ``dump_dir``; None when there is none.

    Returns ``{"points", "peak_bytes", "peak_point", "peak_phase", "peak_op", "phase_max_bytes",
    "at_peak"}``: the schedule's length, the largest live temp (bytes) and where it is, the largest in
    each phase, and the values live there grouped by JAX operation and shape, largest first
    (``[{"op", "shape", "buffers", "bytes"}]``, at most ``top``). ``lines``: the buffer assignment
    already read (:func:`planner.compile.breakdown.read_buffer_assignment`).
    """
    assignment = buffer_assignment_file(dump_dir)
    hlo = assignment and assignment.replace("-buffer-assignment.txt", ".txt")
    if hlo is None or not os.path.isfile(hlo):
        return None
    if lines is None:
        lines = read_buffer_assignment(dump_dir)
    values = _temp_values(lines)
    ops: dict[str, str] = {}
    with open(hlo, errors="replace") as f:
        for line in f:
            m = _OP_NAME.match(line)
            if m:
                ops[m.group(1)] = m.group(2)
    try:
        seq_at = lines.index("  InstructionSequence:")
        ranges_at = lines.index("  BufferLiveRange:")
    except ValueError:
        return None
    sequence: dict[int, str] = {}
    for line in lines[seq_at + 1:ranges_at]:
        m = _POINT.match(line)
        if m:
            sequence[int(m.group(1))] = m.group(2)
    if not sequence:
        return None
    points = max(sequence) + 1
    # a slot live over overlapping ranges of several values (in-place updates, bitcasts) counts once
    by_slot: dict[tuple[str, int, int], list[tuple[int, int, str]]] = defaultdict(list)
    for line in lines[ranges_at + 1:]:
        m = _RANGE.match(line)
        if not m:
            if line.strip() and not line.startswith("    "):
                break
            continue
        name = m.group(1)
        if name in values:
            by_slot[values[name][0]].append((int(m.group(2)), int(m.group(3)), name))
    delta = [0] * (points + 2)
    merged: list[tuple[int, int, tuple[str, int, int], str]] = []
    for slot, spans in by_slot.items():
        spans.sort()
        start, end, name = spans[0]
        for a, b, n in spans[1:]:
            if a <= end + 1:
                end = max(end, b)
            else:
                merged.append((start, end, slot, name))
                start, end, name = a, b, n
        merged.append((start, end, slot, name))
    for start, end, slot, _ in merged:
        delta[start] += slot[2]
        delta[min(end, points) + 1] -= slot[2]
    live, running = [0] * points, 0
    for t in range(points):
        running += delta[t]
        live[t] = running
    phase, current = [], "other"
    for t in range(points):
        p = phase_of(ops.get(sequence.get(t, ""), ""))
        current = p or current
        phase.append(current)
    peak = max(range(points), key=live.__getitem__)
    phase_max = dict.fromkeys(PHASES, 0)
    for t in range(points):
        phase_max[phase[t]] = max(phase_max[phase[t]], live[t])
    groups: Counter = Counter()
    counts: Counter = Counter()
    for start, end, slot, name in merged:
        if start <= peak <= end:
            base = name.split("{", 1)[0]
            key = (ops.get(base, re.sub(r"\.\d+$", "", base)), values[name][1])
            groups[key] += slot[2]
            counts[key] += 1
    return {
        "points": points,
        "peak_bytes": live[peak],
        "peak_point": peak,
        "peak_phase": phase[peak],
        "peak_op": ops.get(sequence.get(peak, ""), ""),
        "phase_max_bytes": phase_max,
        "at_peak": [{"op": op, "shape": shape, "buffers": counts[(op, shape)], "bytes": b}
                    for (op, shape), b in groups.most_common(top)],
    }
