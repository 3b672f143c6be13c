"""hbmvalidate pieces without the engine: CLI input errors, the multi-host gather (two real
local jax processes), compat fixes, live-array measuring, W&B failure handling, checks."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from validator import multihost
from validator.cli import main
from validator.report import change_check, format_table
from validator.wandb_log import WandbLogger, phase_metrics

ROOT = Path(__file__).resolve().parents[1]
CPU4 = {"JAX_PLATFORMS": "cpu", "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}


def _py(code: str, env_extra: dict | None = None, timeout: int = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, **CPU4, **(env_extra or {})}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


# -- CLI: bad input is one line and exit 2 ---------------------------------------------------------


@pytest.fixture
def model_dir(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    return d


@pytest.mark.parametrize("args, needle", [
    (["--model-path", "/nonexistent/model"], "no config.json"),
    (["--tp", "0"], "--tp must be >= 1"),
    (["--second-params"], "--second-params needs --kv-drop-rebuild"),
    (["--assert-same-output"], "--assert-same-output needs --kv-drop-rebuild"),
    (["--input-ids", "1,x,3"], "--input-ids must be comma-separated integers"),
    (["--input-ids", "1,-2"], "non-negative"),
    (["--prompt", "hi"], "has no tokenizer"),
    (["--prompt", "hi", "--input-ids", "1"], "not allowed with argument"),
    (["--weights", "/nonexistent"], "not a folder with *.safetensors"),
    (["--nnodes", "2"], "needs --dist-init-addr"),
    (["--nnodes", "2", "--dist-init-addr", "h:1", "--node-rank", "2"], "--node-rank 2 must be in [0, 2)"),
    (["--nnodes", "3", "--dist-init-addr", "h:1", "--tp", "4"], "divisible by --nnodes"),
    (["--mem-fraction-static", "1.5"], "--mem-fraction-static must be in (0, 1]"),
    (["--max-total-tokens", "0"], "--max-total-tokens must be >= 1"),
    (["--device", "npu"], "invalid choice"),
    (["--bogus"], "unrecognized arguments"),
    (["--jsonl", "/nonexistent/dir/x.jsonl"], "does not exist"),
    (["--prompt-file", "/nonexistent/prompt.txt"], "--prompt-file"),
    (["--engine-version", "9.9.9"], "--engine-version: unknown engine version"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, model_dir, args, needle):
    argv = args if args[:1] == ["--model-path"] else ["--model-path", str(model_dir), *args]
    assert main(argv) == 2
    out = capsys.readouterr()
    assert out.out == ""
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hbmvalidate: error: ")
    assert needle in lines[0]


def test_missing_model_path_is_exit_2(capsys):
    assert main([]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_tp_larger_than_the_devices_is_exit_2(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 512,
        "intermediate_size": 1024, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "vocab_size": 1024}))
    code = ("import sys; from validator.cli import main; "
            f"sys.exit(main(['--model-path', {str(tmp_path)!r}, '--tp', '4', '--device', 'cpu']))")
    p = _py(code, {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"})
    assert p.returncode == 2, p.stderr[-2000:]
    assert p.stderr.strip().splitlines()[-1] == (
        "hbmvalidate: error: --tp 4 does not fit the 2 devices (the engine's mesh is devices/tp x tp)")
    assert "Traceback" not in p.stderr


def test_console_script_exit_2(model_dir):
    exe = Path(sys.executable).with_name("hbmvalidate")
    if not exe.exists():
        pytest.skip("console script not installed")
    p = subprocess.run([str(exe), "--model-path", str(model_dir), "--tp", "-1"], capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and p.stdout == ""


# -- multi-host packing and gathering -------------------------------------------------------------


def _phase(devices, params, kv, rss):
    return {"memory": {"devices": devices, "process_rss_bytes": rss},
            "components": {"params": params, "kv": kv, "second_params": [0] * len(devices),
                           "other": [d["bytes_in_use"] - p - k for d, p, k in zip(devices, params, kv)]}}


def test_pack_unpack_round_trip_in_global_order():
    big = 9_663_750_144  # > 2**31
    host = lambda pi, idx: [{"index": i, "id": 2048 * pi + i, "process_index": pi, "bytes_in_use": big + i,
                             "peak_bytes_in_use": None, "bytes_limit": 33_014_415_360,
                             "largest_free_block_bytes": None} for i in idx]
    h0 = multihost.pack_phases([_phase(host(0, [0, 1]), [7, 7], [5, 5], 111)])
    h1 = multihost.pack_phases([_phase(host(1, [2, 3]), [7, 7], [5, 5], 222)])
    assert h0.shape == (1, 2, len(multihost.FIELDS)) and h0.dtype == np.int64
    out = multihost.unpack_phases(np.stack([h1, h0]))  # process order does not matter
    g = out[0]
    assert g["index"] == [0, 1, 2, 3]
    assert g["bytes_in_use"] == [big, big + 1, big + 2, big + 3]
    assert g["peak_bytes_in_use"] == [None] * 4
    assert g["bytes_limit"] == [33_014_415_360] * 4
    assert g["params"] == [7] * 4 and g["other"] == [big - 12 + i for i in range(4)]
    assert sorted(g["process_rss_bytes"]) == [111, 222]


GATHER_WORKER = r"""
import json, sys
from validator import multihost
rank, port = int(sys.argv[1]), sys.argv[2]
multihost.initialize(f"127.0.0.1:{port}", 2, rank, cpu_collectives=True)
import jax, numpy as np
assert jax.process_count() == 2 and jax.local_device_count() == 2 and jax.device_count() == 4
local = np.array([[[rank, 2**40 + rank, -1, 9_663_750_144 * (rank + 1)]]], dtype=np.int64)
multihost.barrier("test/before")
g = multihost.gather_int64(local)
multihost.barrier("test/after")
print("RESULT " + json.dumps({"rank": rank, "shape": list(g.shape), "dtype": str(g.dtype), "data": g.tolist()}))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_gather_across_two_local_cpu_processes():
    port = str(_free_port())
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    procs = [subprocess.Popen([sys.executable, "-c", GATHER_WORKER, str(r), port], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in (0, 1)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    results = [json.loads(next(l for l in o[0].splitlines() if l.startswith("RESULT "))[7:]) for o in outs]
    expected = [[[[r, 2**40 + r, -1, 9_663_750_144 * (r + 1)]]] for r in (0, 1)]
    for res in results:
        assert res["shape"] == [2, 1, 1, 4] and res["dtype"] == "int64"
        assert res["data"] == expected  # exact above 2**31, in process order, on both hosts


# -- compat fixes and live-array measuring (fresh processes with 4 CPU devices) -------------------


COMPAT = r"""
import json
from validator import compat
first = compat.apply()
second = compat.apply()
import jax, jax.numpy as jnp
from sgl_jax.srt.layers.attention.native_backend import NativeAttention
from sgl_jax.srt.layers import sampler
probs = jnp.array([[0.6, 0.3, 0.1]], jnp.float32)
out = jax.jit(lambda p, m: jax.lax.cond(True, sampler._apply_min_p_filter, lambda o: o[0], (p, m, False)))(probs, jnp.array([0.4]))
print("RESULT " + json.dumps({"first": first, "second": second, "out": out.tolist(),
                              "native": NativeAttention.__name__}))
"""


def test_compat_fixes_are_applied_once_and_work():
    p = _py(COMPAT)
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads(next(l for l in p.stdout.splitlines() if l.startswith("RESULT "))[7:])
    assert res["first"] == ["native_backend: tolerated duplicate NativeAttention pytree registration",
                            "min_p_filter: wrapped to accept 3 operands"]
    assert res["second"] == ["native_backend: already imported", "min_p_filter: already fixed"]
    assert res["native"] == "NativeAttention"
    # min_p 0.4 on CPU: threshold = first (largest sorted) prob * 0.4 = 0.24 -> 0.1 is zeroed
    assert np.allclose(res["out"], [[0.6, 0.3, 0.0]])


MEASURE = r"""
import json
import jax, jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from validator import measure
devs = jax.devices()
mesh = Mesh(devs, ("tensor",))
a = jax.device_put(jnp.zeros((8, 1024), jnp.bfloat16), NamedSharding(mesh, P("tensor")))    # 4096 B/device
b = jax.device_put(jnp.zeros((256,), jnp.float32), NamedSharding(mesh, P()))                # 1024 B/device, replicated
views = [s.data for s in a.addressable_shards]  # single-device views of a's buffers: not new memory
snap = measure.snapshot()
comp = measure.arrays_bytes_per_device([a, b, a], devs)
b.delete()
after = measure.snapshot()
print("RESULT " + json.dumps({"source": snap.source, "used": snap.bytes_in_use, "comp": comp,
                              "after": after.bytes_in_use, "rss": snap.process_rss_bytes,
                              "type": measure.accelerator_type()}))
"""


def test_live_array_measure_dedupes_views_and_sees_deletes():
    p = _py(MEASURE)
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads(next(l for l in p.stdout.splitlines() if l.startswith("RESULT "))[7:])
    assert res["source"] == "live_arrays"
    assert res["used"] == [4096 + 1024] * 4
    assert res["comp"] == [4096 + 1024] * 4  # an array listed twice counts once
    assert res["after"] == [4096] * 4
    assert res["rss"] > 0 and res["type"] == "cpu-4"


GARBAGE = r"""
import gc, json
import jax, jax.numpy as jnp
from validator import measure
dev = jax.local_devices()[:1]
base = measure.snapshot(dev)
gc.disable()
holder = {"a": jax.device_put(jnp.zeros((1 << 14,), jnp.float32), dev[0])}  # 65,536 B
holder["self"] = holder  # a cycle: unreachable after the del, freed only by the collector
del holder
raw = measure.snapshot(dev, settle=False)
settled = measure.snapshot(dev)
print("RESULT " + json.dumps({"base": base.bytes_in_use, "raw": raw.bytes_in_use, "settled": settled.bytes_in_use,
                              "info": settled.as_dict()}))
"""


def test_snapshot_collects_cyclic_garbage_and_settles():
    p = _py(GARBAGE)
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads(next(l for l in p.stdout.splitlines() if l.startswith("RESULT "))[7:])
    # an unreachable array in a reference cycle still holds its buffer until the collector runs
    assert res["raw"][0] - res["base"][0] == 65_536
    assert res["settled"] == res["base"]
    assert res["info"]["settled"] is True and res["info"]["settle_reads"] == 2


def test_tpu_type_from_device_kind():
    from validator.measure import _tpu_type_from_kind as f

    assert f("TPU v4", 4) == "v4-8" and f("TPU v4", 8) == "v4-16"
    assert f("TPU v5 lite", 8) == "v5litepod-8" and f("TPU v6 lite", 4) == "v6e-4"
    assert f("TPU v5p", 4) == "v5p-8" and f("cpu", 4) is None


# -- W&B never kills a run -------------------------------------------------------------------------


def test_wandb_import_failure_warns_once_and_continues(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb -> ImportError
    w = WandbLogger(True, "p", "n")
    assert w.start() is None
    w.log({"a": 1})
    w.table("t", ["a"], [[1]])
    w.finish(0)
    err = capsys.readouterr().err
    assert err.count("hbmvalidate: warning: W&B import failed") == 1 and err.count("\n") == 1


def _fake_wandb(init=None, log=None):
    calls = {"log": [], "finish": [], "teardown": []}

    class Run:
        id, url, dir = "r1", None, "/tmp"
        settings = types.SimpleNamespace(mode="offline")
        summary = {}

        def log(self, m):
            if log:
                raise log
            calls["log"].append(m)

        def finish(self, exit_code=0):
            calls["finish"].append(exit_code)

    def _init(**kw):
        if init:
            raise init
        return Run()

    mod = types.SimpleNamespace(init=_init, Table=lambda columns, data: ("T", columns, data),
                                teardown=lambda code=0: calls["teardown"].append(code))
    return mod, calls


def test_wandb_init_and_log_failures_warn_once(monkeypatch, capsys):
    mod, calls = _fake_wandb(init=RuntimeError("no network"))
    monkeypatch.setitem(sys.modules, "wandb", mod)
    w = WandbLogger(True, "p", "n")
    assert w.start() is None and not w.active
    w.log({"a": 1})
    assert capsys.readouterr().err.count("W&B init failed (RuntimeError: no network)") == 1

    mod, calls = _fake_wandb(log=BrokenPipeError("pipe"))
    monkeypatch.setitem(sys.modules, "wandb", mod)
    w = WandbLogger(True, "p", "n")
    assert w.start()["run_id"] == "r1"
    w.log({"a": 1})
    w.log({"a": 2})
    w.finish(0)
    err = capsys.readouterr().err
    assert err.count("warning") == 1 and "W&B log failed (BrokenPipeError" in err
    assert calls["finish"] == [0] and calls["teardown"] == [0]  # teardown is explicit


def test_wandb_disabled_never_imports(monkeypatch):
    monkeypatch.delitem(sys.modules, "wandb", raising=False)
    w = WandbLogger(False)
    assert w.start() is None
    w.log({"a": 1})
    w.finish()
    assert "wandb" not in sys.modules


def test_phase_metrics_names():
    ph = {"phase": "kv_cache_rebuilt", "phase_idx": 7, "phase_elapsed_s": 0.2,
          "memory": {"devices": [{"index": 0, "bytes_in_use": 110, "peak_bytes_in_use": 150},
                                 {"index": 1, "bytes_in_use": 100, "peak_bytes_in_use": None}],
                     "bytes_in_use_sum": 210, "peak_bytes_in_use_max": 150, "process_rss_bytes": 9},
          "components": {"params": [60, 60], "kv": [40, 40], "second_params": [0, 0], "other": [10, 0]},
          "kv_fused_bytes_total": 80,
          "predicted": {"components": {"params": 60, "kv": 40}, "total": 100},
          "delta": {"bytes_per_device": [10, 0], "pct_per_device": [10.0, 0.0],
                    "components": {"params": [0, 0], "kv": [0, 0]}},
          "info": {"same_output": True}}
    m = phase_metrics(ph)
    assert m["phase/idx"] == 7 and m["phase/name"] == "kv_cache_rebuilt"
    assert m["mem/jax/bytes_in_use_sum"] == 210 and m["mem/jax/device1/bytes_in_use"] == 100
    assert m["mem/jax/device0/peak_bytes_in_use"] == 150 and "mem/jax/device1/peak_bytes_in_use" not in m
    assert m["mem/jax/peak_bytes_in_use_max"] == 150 and m["mem/process/rss_bytes"] == 9
    assert m["kv/fused_bytes_total"] == 80 and m["pred/bytes_per_device"] == 100
    assert m["pred/params_bytes"] == 60 and m["delta/bytes_max_abs"] == 10 and m["delta/pct_max_abs"] == 10.0
    assert m["delta/kv_bytes_max_abs"] == 0 and m["determinism/same_output"] == 1


# -- checks and the summary table ------------------------------------------------------------------


def _mem(*used):
    return {"memory": {"devices": [{"bytes_in_use": u} for u in used]}}


def test_change_check_reports_mismatch_per_device():
    ok = change_check("kv_drop", _mem(100, 100), _mem(60, 60), [40, 40], -1)
    assert ok["ok"] and ok["observed"] == [40, 40] and ok["mismatch_bytes"] == [0, 0]
    bad = change_check("kv_rebuild", _mem(600, 600), _mem(1000, 900), [400, 400], +1)
    assert not bad["ok"] and bad["observed"] == [400, 300] and bad["mismatch_bytes"] == [0, -100]
    # a runtime scalar of 4 B is within the tolerance, and still reported to the byte
    drift = change_check("kv_rebuild", _mem(60, 60), _mem(104, 100), [40, 40], +1)
    assert drift["ok"] and drift["mismatch_bytes"] == [4, 0] and drift["tolerance_bytes"] == 64
    assert not change_check("x", _mem(0), _mem(105), [40], +1, tolerance_bytes=64)["ok"]


def test_format_table():
    t = format_table(["phase", "bytes", "ok"], [["a", 1234567, True], ["bb", None, False]])
    lines = t.splitlines()
    assert lines[0].split() == ["phase", "bytes", "ok"]
    assert lines[1].split() == ["a", "1,234,567", "yes"] and lines[2].split() == ["bb", "-", "NO"]
