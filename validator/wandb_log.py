"""Optional Weights & Biases logging that can never kill a run.

wandb is imported only when logging is enabled (``--wandb``). Any failure (import, init,
log, table, finish) prints one warning line to stderr, disables further W&B calls and lets
the run go on; the local JSONL is written regardless. ``WANDB_MODE`` (online / offline /
disabled) is honoured by wandb itself.

Teardown: :meth:`WandbLogger.finish` finishes the run and then calls ``wandb.teardown()``
explicitly, before the process exits. Left to atexit, the wandb service can be torn down
after the engine's own atexit hook has killed child processes, which prints an
"Exception ignored in atexit callback ... BrokenPipeError" traceback.

Metric names (per phase, bytes unless noted): ``phase/idx``, ``phase/name``,
``mem/jax/bytes_in_use_sum``, ``mem/jax/device{i}/bytes_in_use``,
``mem/jax/device{i}/peak_bytes_in_use``, ``mem/jax/peak_bytes_in_use_max``,
``mem/process/rss_bytes``, ``mem/components/{params,kv,second_params,other}_bytes_max``,
``kv/fused_bytes_total``, ``pred/bytes_per_device``, ``pred/{component}_bytes``,
``delta/bytes_max_abs``, ``delta/bytes_device{i}``, ``delta/pct_max_abs``,
``delta/{component}_bytes_max_abs``, ``determinism/same_output`` (0/1), ``time/phase_s``.
"""

from __future__ import annotations

import sys
from typing import Any


class WandbLogger:
    """Thin, failure-proof wrapper over a wandb run."""

    def __init__(self, enabled: bool, project: str | None = None, name: str | None = None,
                 entity: str | None = None, directory: str | None = None,
                 config: dict | None = None, stream=None):
        self.enabled = enabled
        self.project, self.name, self.entity, self.directory = project, name, entity, directory
        self.config = config or {}
        self.stream = stream or sys.stderr
        self.run = None
        self._wandb = None
        self._warned = False

    def _fail(self, what: str, exc: BaseException) -> None:
        if not self._warned:
            print(f"hbmvalidate: warning: W&B {what} failed ({type(exc).__name__}: {exc}); "
                  "continuing without W&B, the local JSONL is unaffected", file=self.stream, flush=True)
            self._warned = True
        self.enabled = False

    @property
    def active(self) -> bool:
        return self.enabled and self.run is not None

    def start(self) -> dict | None:
        """Import wandb and init the run. Returns {run_id, url, mode, dir} or None."""
        if not self.enabled:
            return None
        try:
            import wandb
        except Exception as e:  # ImportError or a broken install
            self._fail("import", e)
            return None
        self._wandb = wandb
        try:
            kwargs: dict[str, Any] = {"project": self.project, "name": self.name, "config": self.config}
            if self.entity:
                kwargs["entity"] = self.entity
            if self.directory:
                kwargs["dir"] = self.directory
            self.run = wandb.init(**kwargs)
        except BaseException as e:  # wandb raises its own errors, sometimes SystemExit-like
            if isinstance(e, KeyboardInterrupt):
                raise
            self._fail("init", e)
            return None
        try:
            url = getattr(self.run, "url", None)
        except Exception:
            url = None
        return {
            "run_id": getattr(self.run, "id", None),
            "url": url,
            "mode": getattr(getattr(self.run, "settings", None), "mode", None),
            "dir": getattr(self.run, "dir", None),
        }

    def log(self, metrics: dict) -> None:
        if not self.active:
            return
        try:
            self.run.log(metrics)
        except Exception as e:
            self._fail("log", e)

    def table(self, key: str, columns: list[str], rows: list[list]) -> None:
        if not self.active:
            return
        try:
            self.run.log({key: self._wandb.Table(columns=columns, data=rows)})
        except Exception as e:
            self._fail("table", e)

    def summary(self, values: dict) -> None:
        if not self.active:
            return
        try:
            for k, v in values.items():
                self.run.summary[k] = v
        except Exception as e:
            self._fail("summary", e)

    def finish(self, exit_code: int = 0) -> None:
        """Finish the run and tear the wandb service down now (not at atexit)."""
        wandb, run = self._wandb, self.run
        self.run = None
        if run is not None:
            try:
                run.finish(exit_code=exit_code)
            except Exception as e:
                self._fail("finish", e)
        if wandb is not None:
            try:
                teardown = getattr(wandb, "teardown", None)
                if teardown is not None:
                    teardown(exit_code)
            except Exception as e:
                self._fail("teardown", e)


def phase_metrics(phase: dict) -> dict:
    """W&B metrics for one phase object (see cli.build_phase)."""
    mem = phase["memory"]
    m: dict[str, Any] = {
        "phase/idx": phase["phase_idx"],
        "phase/name": phase["phase"],
        "mem/jax/bytes_in_use_sum": mem["bytes_in_use_sum"],
        "time/phase_s": phase["phase_elapsed_s"],
    }
    for d in mem["devices"]:
        i = d["index"]
        m[f"mem/jax/device{i}/bytes_in_use"] = d["bytes_in_use"]
        if d.get("peak_bytes_in_use") is not None:
            m[f"mem/jax/device{i}/peak_bytes_in_use"] = d["peak_bytes_in_use"]
    if mem.get("peak_bytes_in_use_max") is not None:
        m["mem/jax/peak_bytes_in_use_max"] = mem["peak_bytes_in_use_max"]
    if mem.get("process_rss_bytes") is not None:
        m["mem/process/rss_bytes"] = mem["process_rss_bytes"]
    for name, vals in phase.get("components", {}).items():
        if vals:
            m[f"mem/components/{name}_bytes_max"] = max(vals)
    if phase.get("kv_fused_bytes_total") is not None:
        m["kv/fused_bytes_total"] = phase["kv_fused_bytes_total"]
    pred = phase.get("predicted") or {}
    if pred.get("total") is not None:
        m["pred/bytes_per_device"] = pred["total"]
    for name, v in (pred.get("components") or {}).items():
        if v is not None:
            m[f"pred/{name}_bytes"] = v
    delta = phase.get("delta") or {}
    if delta.get("bytes_per_device"):
        vals = delta["bytes_per_device"]
        m["delta/bytes_max_abs"] = max(vals, key=abs)
        for d, v in zip(mem["devices"], vals):
            m[f"delta/bytes_device{d['index']}"] = v
    if delta.get("pct_per_device"):
        pcts = [p for p in delta["pct_per_device"] if p is not None]
        if pcts:
            m["delta/pct_max_abs"] = max(pcts, key=abs)
    for name, vals in (delta.get("components") or {}).items():
        if vals:
            m[f"delta/{name}_bytes_max_abs"] = max(vals, key=abs)
    same = (phase.get("info") or {}).get("same_output")
    if same is not None:
        m["determinism/same_output"] = int(bool(same))
    return m
