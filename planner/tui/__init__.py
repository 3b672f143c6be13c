"""``hbmtui``: a Textual TUI over calibration records, validator logs and the planner.

Needs the ``tui`` extra (``pip install 'hbmplan[tui]'``). Nothing here imports jax.
"""
