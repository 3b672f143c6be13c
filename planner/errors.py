"""Errors the planner raises for bad input.

The CLI turns a :class:`PlanError` into one line on stderr and exit code 2.
"""


class PlanError(ValueError):
    """Bad or impossible input: an unknown name, a malformed config, a size that cannot be."""
