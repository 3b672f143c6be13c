"""One validator run: the phase sequence, its checks, the summary, W&B and the record."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from pathlib import Path

from validator.report import SUMMARY_COLUMNS, PhaseWriter, change_check, format_table, summary_rows


class BadInput(Exception):
    """Input found bad once jax is up (e.g. tp vs. the device count): one line, exit 2."""


def _err(msg: str) -> None:
    print(f"hbmvalidate: error: {msg}", file=sys.stderr, flush=True)


def _check_detail(phase: str, check: dict, node_rank: int) -> str:
    """One line for a failed check: per-device observed, expected and mismatch (bytes)."""
    parts = [f"{phase}:{check['name']} on node rank {node_rank}:"]
    for key in ("observed", "expected", "mismatch_bytes", "tolerance_bytes"):
        if key in check:
            parts.append(f"{key}={check[key]}")
    return " ".join(parts)


class Run:
    """Executes the lifecycle for parsed, validated ``args`` (see validator.cli)."""

    def __init__(self, args, derived: dict):
        self.args, self.derived = args, derived
        self.engine_started = False
        self.session = None
        self.writer: PhaseWriter | None = None
        self.wandb = None
        self.jsonl = None
        self.failed_checks: list[str] = []
        self.failed_details: list[str] = []
        self.assert_failed = False
        self.knobs: dict = {}
        self.engine_info: dict = {}

    # -- helpers ---------------------------------------------------------------------------------

    def _rank0(self) -> bool:
        return self.args.node_rank == 0

    def _sync(self, name: str) -> None:
        if self.args.nnodes > 1:
            from validator import multihost

            multihost.barrier(f"hbmvalidate/{name}")

    def _phase(self, name: str, info: dict | None = None, check_fn=None) -> dict:
        self._sync(name)
        if self.session is not None:
            info = dict(info or {})
            info["quiesce_s"] = round(self.session.quiesce(), 3)
        ph = self.writer.phase(name, self.session, info, check_fn=check_fn)
        # no host moves on (node rank 0 to its next generate, whose batch the followers' schedulers
        # would then run) until every host has measured this phase
        self._sync(f"{name}/measured")
        for c in ph["checks"]:
            if not c["ok"]:
                self.failed_checks.append(f"{name}:{c['name']}")
                self.failed_details.append(_check_detail(name, c, self.args.node_rank))
        return ph

    def _gen(self, sampling: dict) -> dict:
        if not self._rank0():
            return {"generated_on_node_rank": 0}
        return self.session.generate(sampling, input_ids=self.derived["input_ids"], prompt=self.derived["prompt"])

    # -- the run ---------------------------------------------------------------------------------

    def execute(self) -> int:
        a = self.args
        code = 1
        try:
            if a.jsonl:
                self.jsonl = open(a.jsonl, "a", encoding="utf-8")
            self.writer = PhaseWriter(sys.stdout, self.jsonl, process_index=a.node_rank)
            if a.wandb and self._rank0():
                from validator.wandb_log import WandbLogger

                self.wandb = WandbLogger(True, a.wandb_project, a.wandb_name, a.wandb_entity, a.wandb_dir,
                                         config=dict(vars(a)))
                info = self.wandb.start()
                self.writer.emit({"event": "wandb_init", **(info or {"run_id": None, "url": None})})
                self.writer.wandb = self.wandb
            code = self._lifecycle()
        except BadInput as e:
            _err(str(e))
            code = 2
        except KeyboardInterrupt:
            _err("interrupted")
            code = 130
        except Exception as e:  # engine or lifecycle failure: one line, keep what was written
            _err(f"{type(e).__name__}: {e}")
            code = 1
        finally:
            if self.wandb is not None:
                # The engine reaps every child on SIGCHLD; wandb's teardown must wait for its
                # own service process, so give SIGCHLD its default back first.
                with contextlib.suppress(Exception):
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                self.wandb.finish(code)
            if self.jsonl is not None:
                with contextlib.suppress(Exception):
                    self.jsonl.flush()
                    os.fsync(self.jsonl.fileno())
                    self.jsonl.close()
        return code

    def _lifecycle(self) -> int:
        a = self.args
        if a.nnodes > 1:
            from validator import multihost

            multihost.initialize(a.dist_init_addr, a.nnodes, a.node_rank, cpu_collectives=(a.device == "cpu"))
        from validator import compat

        fixes = compat.apply()
        import jax

        from validator import measure

        devices = jax.devices()
        if a.tp > len(devices) or len(devices) % a.tp:
            raise BadInput(f"--tp {a.tp} does not fit the {len(devices)} devices "
                           f"(the engine's mesh is devices/tp x tp)")
        self.tpu_type = measure.accelerator_type(devices)
        self._phase("jax_ready", {
            "compat": fixes, "jax_version": jax.__version__, "backend": jax.default_backend(),
            "device_count": jax.device_count(), "local_device_count": jax.local_device_count(),
            "process_count": jax.process_count(), "accelerator_type": self.tpu_type,
        })

        ready = self._start_engine()
        self._swap_and_generate(ready)
        if a.kv_drop_rebuild:
            self._kv_cycle()
        return self._finish()

    def _start_engine(self) -> dict:
        """Start the engine, fix the prediction from its actual token count, phase engine_ready_dummy."""
        import jax

        from validator.cli import engine_kwargs
        from validator.lifecycle import EngineSession
        from validator.predict import predict

        a = self.args
        kw = engine_kwargs(a, self.derived)
        self.engine_started = True
        if a.nnodes > 1:
            from validator import multihost

            with multihost.engine_initialize_guard():
                self.session = EngineSession(kw)
        else:
            self.session = EngineSession(kw)
        s = self.session
        mr = s.model_runner
        sa = s.server_args
        try:
            from sgl_jax.version import __version__ as sgl_version
        except Exception:
            sgl_version = "unknown"
        profile = a.engine_version or sgl_version
        n_tokens = int(mr.max_total_num_tokens)

        def prediction(load_format: str):
            return predict(a.model_path, a.tp, n_tokens, profile, mr.dtype, mr.kv_cache_dtype,
                           a.page_size, load_format=load_format, num_devices=jax.device_count())

        self._prediction = prediction
        self.writer.prediction = prediction(a.load_format)
        self.writer.has_second_params = False
        pool = s.kv_pool
        self.engine_info = {"profile": self.writer.prediction.profile, "version": sgl_version,
                            "jax_version": jax.__version__}
        self.knobs = {
            "tp": a.tp, "dtype": str(jax.numpy.dtype(mr.dtype).name),
            "kv_dtype": str(jax.numpy.dtype(mr.kv_cache_dtype).name), "page_size": a.page_size,
            "max_total_tokens_requested": a.max_total_tokens, "max_total_tokens": n_tokens,
            "mem_fraction_static": getattr(sa, "mem_fraction_static", None),
            "context_length": getattr(mr.model_config, "context_len", a.context_length),
            "max_running_requests": getattr(s.scheduler, "max_running_requests", a.max_running_requests),
            "device": getattr(sa, "device", a.device), "nnodes": a.nnodes, "load_format": a.load_format,
            "max_new_tokens": a.max_new_tokens, "weights": "safetensors" if a.weights else "dummy",
            "precompile": not a.disable_precompile,
        }
        return self._phase("engine_ready_dummy", {
            "max_total_tokens_requested": a.max_total_tokens, "max_total_tokens": n_tokens,
            "kv_buffer_shape": list(pool.kv_buffer[0].shape), "kv_layers": len(pool.kv_buffer),
            "kv_head_num": int(pool.head_num), "kv_head_dim": int(pool.head_dim),
            "kv_sharding": str(getattr(pool, "kv_sharding", "")), "param_leaves": len(s.param_leaves()),
            "mem_fraction_static": self.knobs["mem_fraction_static"], "engine_version": sgl_version,
            "prediction_error": self.writer.prediction.error,
        })

    def _swap_and_generate(self, ready: dict) -> None:
        """Phases weights_swapped and generate_result."""
        a, s = self.args, self.session
        s.quiesce()
        if a.weights:  # the engine's safetensors loader lays params out as a real checkpoint
            info = s.swap_safetensors_weights(a.weights)
            self.writer.prediction = self._prediction("safetensors")
        else:
            info = s.swap_dummy_weights(seed=a.random_seed + 1)
        zeros = [0] * len(ready["components"]["params"])
        self._phase("weights_swapped", info, None if a.weights else (
            # same structure, same layout: the device bytes must not move
            lambda ph: [change_check("swap_keeps_device_bytes", ready, ph, zeros, +1)]))

        self._out1 = self._gen(self._sampling())
        self._phase("generate_result", self._out1)

    def _sampling(self) -> dict:
        return {"temperature": 0.0, "max_new_tokens": self.args.max_new_tokens}

    def _kv_cycle(self) -> None:
        """Flush, drop KV, (second params), rebuild KV, generate again, (drop second params)."""
        a, s, out1 = self.args, self.session, self._out1
        flushed = self._phase("flush_cache_before_kv_drop", s.flush_cache())
        kv_before = flushed["components"]["kv"]
        s.quiesce()
        dropped = self._phase("kv_cache_dropped", s.drop_kv(), lambda ph: [
            change_check("kv_drop_frees_kv_bytes", flushed, ph, kv_before, -1),
            {"name": "kv_components_zero_after_drop", "ok": not any(ph["components"]["kv"]),
             "expected": 0, "observed": ph["components"]["kv"]},
        ])
        before_rebuild = dropped
        if a.second_params:
            self.writer.has_second_params = True
            before_rebuild = self._phase("second_params_ready", s.make_second_params(), lambda ph: [
                change_check("second_params_add_param_bytes", dropped, ph, dropped["components"]["params"], +1)])
        self._phase("kv_cache_rebuilt", s.rebuild_kv(), lambda ph: [
            change_check("kv_rebuild_restores_kv_bytes", before_rebuild, ph, kv_before, +1)])
        out2 = self._gen(self._sampling())
        if self._rank0():
            out2["same_output"] = out2["output_sha256"] == out1["output_sha256"]
            out2["output_1_sha256"] = out1["output_sha256"]
        same_check = (lambda ph: [{"name": "same_output", "ok": out2["same_output"],
                                   "expected": out1["output_sha256"], "observed": out2["output_sha256"]}]
                      ) if a.assert_same_output and self._rank0() else None
        after = self._phase("generate_result_after_kv_rebuild", out2, same_check)
        if a.assert_same_output and self._rank0() and not out2["same_output"]:
            self.assert_failed = True
            _err(f"outputs differ after the KV rebuild: {out1['output_sha256']} != {out2['output_sha256']}")
        if a.second_params:
            s.quiesce()
            self.writer.has_second_params = False
            second_bytes = after["components"]["second_params"]
            self._phase("second_params_dropped", s.drop_second_params(), lambda ph: [
                change_check("second_params_drop_frees_param_bytes", after, ph, second_bytes, -1)])

    def _finish(self) -> int:
        a = self.args
        import jax

        from validator import multihost

        phases = self.writer.phases
        self._sync("gather")
        gathered = multihost.gather_int64(multihost.pack_phases(phases))
        global_phases = multihost.unpack_phases(gathered)
        rows = summary_rows(phases)
        ok = not self.failed_checks and not self.assert_failed
        record_path = None
        if self._rank0():
            print(format_table(SUMMARY_COLUMNS, rows), file=sys.stderr, flush=True)
            if a.save_calibration is not None:
                record_path = self._save_record(phases, global_phases)
            if self.wandb is not None:
                self.wandb.table("predicted_vs_measured", SUMMARY_COLUMNS, rows)
                self.wandb.summary({"checks/failed": len(self.failed_checks), "checks/ok": int(ok)})
        self.writer.emit({
            "summary": {"columns": SUMMARY_COLUMNS, "rows": rows},
            "ok": ok, "failed_checks": self.failed_checks, "assert_same_output_failed": self.assert_failed,
            "calibration_record": str(record_path) if record_path else None,
            "global_bytes_in_use": [g["bytes_in_use"] for g in global_phases],
            "num_devices": jax.device_count(), "num_hosts": jax.process_count(),
        })
        if self.assert_failed:
            return 1
        if a.strict and self.failed_checks:
            _err(f"{len(self.failed_checks)} check(s) failed: {', '.join(self.failed_checks)}")
            for line in self.failed_details:
                print(f"hbmvalidate:   {line}", file=sys.stderr, flush=True)
            return 1
        return 0

    def _save_record(self, phases, global_phases) -> Path:
        import jax

        from planner.records import config_hash, write_record_atomic
        from validator.calibration import build_record
        from validator.cli import _model_name

        rec = build_record(
            phases=phases, global_phases=global_phases, tpu_type=self.tpu_type,
            num_devices=jax.device_count(), num_hosts=jax.process_count(),
            model={"name": _model_name(self.args), "config_hash": config_hash(self.args.model_path)},
            engine=self.engine_info, knobs=self.knobs,
            notes="measured by hbmvalidate; components from live arrays (params = model_state_leaves, "
                  "kv = kv_buffer)",
        )
        path = write_record_atomic(rec, self.args.save_calibration)
        self.writer.emit({"event": "calibration_saved", "path": str(path), "record_id": rec.record_id})
        return path
