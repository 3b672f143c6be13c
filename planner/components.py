"""The traceable unit of every plan: one memory component with the formula that produced it."""

from __future__ import annotations

from typing import NamedTuple


class Component(NamedTuple):
    """Bytes of one thing, per device unless ``where == "host"``.

    Attributes:
      name: dotted name, e.g. ``"engine.kv_cache"``.
      bytes: int bytes (per device for HBM components, per host for host components).
      formula: the symbolic formula, e.g. ``"L · (N + ps) · 2 · kv_dev · hd_a · it"``.
      inputs: the values the formula was evaluated with.
      exact: True where the layout is known to the byte; False for estimates.
      basis: where the formula comes from, or how good an estimate has been.
      where: ``"hbm"`` or ``"host"``.
      phase: ``"resident"`` (lives across steps) or ``"transient"`` (temporaries of one program).
    """

    name: str
    bytes: int
    formula: str
    inputs: dict = {}  # never mutated; shared default is safe
    exact: bool = True
    basis: str = ""
    where: str = "hbm"
    phase: str = "resident"

    def to_json(self) -> dict:
        return {
            "bytes": int(self.bytes),
            "formula": self.formula,
            "inputs": dict(self.inputs),
            "exact": self.exact,
            "basis": self.basis,
            "where": self.where,
            "phase": self.phase,
        }
