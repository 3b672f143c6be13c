"""hbmvalidate end to end on CPU: the real sglang-jax 0.0.2 engine, tp 4 on four forced host
devices, a tiny Qwen2 written here, dummy weights, KV drop/rebuild, a second param set, W&B
offline. The engine runs once per scenario (module fixtures, one subprocess each); the tests
assert on its stdout, JSONL, offline W&B files and calibration record.

Expected bytes are computed by hand for the tiny model (bf16, it = 2, tp T = 4, 0.0.2 layout):

* params per device = 2 * [V*H (replicated, tied) + H
  + L * ((2*nH*hd*H + 2*Hkv*hd*H + 3*H*I)/T + 2H + B/T)], Hkv = T = 4, hd = 128,
  B = nH*hd + 2*Hkv*hd (dummy biases sharded /T)
  = 2 * [524,288 + 512 + 2 * (655,360 + 1,024 + 384)] = 3,676,672
  (safetensors load replicates the biases: + 2 * 2 * 1,152 = 3,681,280)
* KV per device = L * (N + 1) * 2 * Hkv * hd * 2 / T = 2 * 257 * 8 * 128 * 2 / 4 = 263,168
"""

from __future__ import annotations

import glob
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sgl_jax")
pytest.importorskip("wandb")

ROOT = Path(__file__).resolve().parents[1]
TINY = {
    "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 512,
    "intermediate_size": 1024, "num_hidden_layers": 2, "num_attention_heads": 4,
    "num_key_value_heads": 2, "vocab_size": 1024, "tie_word_embeddings": True,
    "max_position_embeddings": 2048, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
    "torch_dtype": "bfloat16", "hidden_act": "silu",
}
PARAMS_DUMMY = 3_676_672
PARAMS_SAFETENSORS = 3_681_280
KV = 263_168
N_DEV = 4
PHASES = [
    "jax_ready", "engine_ready_dummy", "weights_swapped", "generate_result",
    "flush_cache_before_kv_drop", "kv_cache_dropped", "second_params_ready", "kv_cache_rebuilt",
    "generate_result_after_kv_rebuild", "second_params_dropped",
]


def _env(tmp: Path) -> dict:
    env = dict(os.environ)
    env.update({
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
        "WANDB_MODE": "offline",
        "WANDB_DIR": str(tmp / "wandb"),
        "WANDB_CACHE_DIR": str(tmp / "wandb-cache"),
        "WANDB_CONFIG_DIR": str(tmp / "wandb-config"),
        "WANDB_SILENT": "true",
        "PYTHONUNBUFFERED": "1",
    })
    return env


def _hbmvalidate(tmp: Path, *extra: str) -> subprocess.CompletedProcess:
    model = tmp / "model"
    model.mkdir(parents=True, exist_ok=True)
    (model / "config.json").write_text(json.dumps(TINY))
    cmd = [
        sys.executable, "-c", "import sys; from validator.cli import main; sys.exit(main())",
        "--model-path", str(model), "--tp", "4", "--device", "cpu", "--max-total-tokens", "256",
        "--context-length", "256", "--max-running-requests", "8", "--disable-precompile",
        "--input-ids", "1,2,3,4", "--max-new-tokens", "8", "--kv-drop-rebuild", "--assert-same-output",
        "--jsonl", str(tmp / "phases.jsonl"), "--strict", *extra,
    ]
    return subprocess.run(cmd, cwd=ROOT, env=_env(tmp), capture_output=True, text=True, timeout=500)


def _lines(text: str) -> list[dict]:
    return [json.loads(l) for l in text.splitlines() if l.startswith("{")]


@pytest.fixture(scope="module")
def main_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    proc = _hbmvalidate(tmp, "--second-params", "--wandb", "--wandb-project", "hbmvalidate-test",
                        "--wandb-name", "tiny-e2e", "--wandb-dir", str(tmp / "wandb"),
                        "--save-calibration", str(tmp / "cal"))
    jsonl = [json.loads(l) for l in (tmp / "phases.jsonl").read_text().splitlines()] \
        if (tmp / "phases.jsonl").exists() else []
    phases = {o["phase"]: o for o in jsonl if "phase" in o and "memory" in o}
    return {"tmp": tmp, "proc": proc, "jsonl": jsonl, "phases": phases, "stdout": _lines(proc.stdout)}


def _used(ph) -> list[int]:
    return [d["bytes_in_use"] for d in ph["memory"]["devices"]]


def test_exit_zero_and_clean_teardown(main_run):
    p = main_run["proc"]
    assert p.returncode == 0, p.stderr[-3000:]
    assert "Traceback" not in p.stderr and "BrokenPipe" not in p.stderr
    assert "Exception ignored" not in p.stderr
    assert "warning: W&B" not in p.stderr  # no W&B trouble in this run


def test_every_phase_present_in_order_on_stdout_and_jsonl(main_run):
    order = [o["phase"] for o in main_run["jsonl"] if "phase" in o and "memory" in o]
    assert order == PHASES
    assert [o["phase_idx"] for o in main_run["phases"].values()] == list(range(len(PHASES)))
    assert main_run["stdout"] == main_run["jsonl"]  # stdout carries the same objects
    elapsed = [main_run["phases"][n]["elapsed_s"] for n in PHASES]
    assert elapsed == sorted(elapsed)
    summary = main_run["jsonl"][-1]
    assert summary["ok"] is True and summary["failed_checks"] == []
    assert [r[0] for r in summary["summary"]["rows"]] == PHASES


def test_measurement_source_devices_and_rss(main_run):
    for ph in main_run["phases"].values():
        mem = ph["memory"]
        assert mem["source"] == "live_arrays"  # CPU: memory_stats() is None
        assert [d["index"] for d in mem["devices"]] == list(range(N_DEV))
        assert mem["bytes_in_use_sum"] == sum(_used(ph))
        assert mem["process_rss_bytes"] > 100 * 2**20
        assert all(d["peak_bytes_in_use"] is None for d in mem["devices"])
    assert _used(main_run["phases"]["jax_ready"]) == [0] * N_DEV


def test_params_and_kv_equal_prediction_exactly(main_run):
    ph = main_run["phases"]
    for name in ("engine_ready_dummy", "weights_swapped", "generate_result", "flush_cache_before_kv_drop",
                 "kv_cache_rebuilt", "generate_result_after_kv_rebuild", "second_params_dropped"):
        assert ph[name]["components"]["params"] == [PARAMS_DUMMY] * N_DEV, name
        assert ph[name]["components"]["kv"] == [KV] * N_DEV, name
        pred = ph[name]["predicted"]["components"]
        assert pred["params"] == PARAMS_DUMMY and pred["kv"] == KV, name
        assert ph[name]["delta"]["components"]["params"] == [0] * N_DEV
        assert ph[name]["delta"]["components"]["kv"] == [0] * N_DEV
        assert ph[name]["predicted"]["profile"] == "0.0.2"
    ready = ph["engine_ready_dummy"]
    assert ready["info"]["max_total_tokens"] == ready["info"]["max_total_tokens_requested"] == 256
    assert ready["info"]["kv_buffer_shape"] == [257, 8, 128]
    assert ready["kv_fused_bytes_total"] == KV * N_DEV
    # The residual beyond params + KV is reported, small, and not hidden.
    for p in ph.values():
        total = p["predicted"]["total"]
        assert [u - total for u in _used(p)] == p["delta"]["bytes_per_device"]
        assert p["components"]["other"] == [
            u - sum(p["components"][c][i] for c in ("params", "kv", "second_params")) for i, u in enumerate(_used(p))]
        assert all(0 <= o < 64 * 1024 for o in p["components"]["other"])


def test_kv_drop_and_rebuild_move_exactly_the_kv_bytes(main_run):
    ph = main_run["phases"]
    flushed, dropped = _used(ph["flush_cache_before_kv_drop"]), _used(ph["kv_cache_dropped"])
    second, rebuilt = _used(ph["second_params_ready"]), _used(ph["kv_cache_rebuilt"])
    assert [a - b for a, b in zip(flushed, dropped)] == [KV] * N_DEV
    assert [a - b for a, b in zip(rebuilt, second)] == [KV] * N_DEV
    assert [a - b for a, b in zip(second, dropped)] == [PARAMS_DUMMY] * N_DEV
    assert ph["kv_cache_dropped"]["components"]["kv"] == [0] * N_DEV
    assert ph["kv_cache_dropped"]["info"]["deleted_buffers"] == 2
    assert ph["kv_cache_dropped"]["info"]["fused_bytes_total"] == KV * N_DEV
    assert ph["kv_cache_rebuilt"]["info"]["fused_bytes_total"] == KV * N_DEV
    assert ph["second_params_ready"]["components"]["second_params"] == [PARAMS_DUMMY] * N_DEV
    assert [a - b for a, b in zip(_used(ph["generate_result_after_kv_rebuild"]),
                                  _used(ph["second_params_dropped"]))] == [PARAMS_DUMMY] * N_DEV
    checks = {(n, c["name"]): c for n, p in ph.items() for c in p["checks"]}
    for key in [("kv_cache_dropped", "kv_drop_frees_kv_bytes"),
                ("kv_cache_rebuilt", "kv_rebuild_restores_kv_bytes"),
                ("second_params_ready", "second_params_add_param_bytes"),
                ("weights_swapped", "swap_keeps_device_bytes"),
                ("engine_ready_dummy", "params_match_prediction"),
                ("engine_ready_dummy", "kv_match_prediction")]:
        assert checks[key]["ok"] is True, key
    assert checks[("kv_cache_dropped", "kv_drop_frees_kv_bytes")]["observed"] == [KV] * N_DEV


def test_greedy_outputs_match_after_rebuild(main_run):
    first = main_run["phases"]["generate_result"]["info"]
    second = main_run["phases"]["generate_result_after_kv_rebuild"]["info"]
    assert len(first["output_ids"]) == 8 and first["completion_tokens"] == 8
    assert first["output_ids"] == second["output_ids"]
    assert first["output_sha256"] == second["output_sha256"] == second["output_1_sha256"]
    assert second["same_output"] is True


def _wandb_records(path: str) -> list:
    """Records of a .wandb file (LevelDB-style log: 7-byte header, 32 KiB blocks)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B"
    pos, block, buf, out = 7, 32768, b"", []
    while pos + 7 <= len(data):
        if block - pos % block < 7:
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == 1:
            out.append(chunk)
        elif kind == 2:
            buf = chunk
        elif kind == 3:
            buf += chunk
        elif kind == 4:
            out.append(buf + chunk)
    return [pb.Record.FromString(c) for c in out]


def test_offline_wandb_run_holds_the_metrics(main_run):
    tmp = main_run["tmp"]
    files = glob.glob(str(tmp / "wandb" / "wandb" / "offline-run-*" / "run-*.wandb"))
    assert len(files) == 1
    history = []
    for r in _wandb_records(files[0]):
        if r.WhichOneof("record_type") == "history":
            history.append({(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in r.history.item})
    by_phase = {h["phase/name"]: h for h in history if "phase/name" in h}
    assert list(by_phase) == PHASES
    for name, ph in main_run["phases"].items():
        h = by_phase[name]
        assert h["phase/idx"] == ph["phase_idx"]
        assert h["mem/jax/bytes_in_use_sum"] == ph["memory"]["bytes_in_use_sum"]
        for i in range(N_DEV):
            assert h[f"mem/jax/device{i}/bytes_in_use"] == ph["memory"]["devices"][i]["bytes_in_use"]
        assert h["mem/process/rss_bytes"] == ph["memory"]["process_rss_bytes"]
        assert h["pred/bytes_per_device"] == ph["predicted"]["total"]
        assert h["delta/bytes_max_abs"] == max(ph["delta"]["bytes_per_device"], key=abs)
    assert by_phase["engine_ready_dummy"]["pred/params_bytes"] == PARAMS_DUMMY
    assert by_phase["engine_ready_dummy"]["pred/kv_bytes"] == KV
    assert by_phase["engine_ready_dummy"]["delta/params_bytes_max_abs"] == 0
    assert by_phase["flush_cache_before_kv_drop"]["kv/fused_bytes_total"] == KV * N_DEV
    assert by_phase["generate_result_after_kv_rebuild"]["determinism/same_output"] == 1
    tables = glob.glob(str(tmp / "wandb" / "wandb" / "offline-run-*" / "files" / "media" / "table" / "**" /
                           "predicted_vs_measured*.table.json"), recursive=True)
    assert len(tables) == 1
    table = json.loads(Path(tables[0]).read_text())
    assert [row[0] for row in table["data"]] == PHASES
    assert "predicted" in table["columns"] and "measured_max" in table["columns"]


def test_calibration_record_written_and_reloads(main_run):
    from planner.records import config_hash, load_records

    tmp = main_run["tmp"]
    records, warnings = load_records(tmp / "cal")
    assert warnings == [] and len(records) == 1
    rec = records[0]
    assert rec.transcribed is False and rec.source == "hbmvalidate"
    assert rec.tpu_type == "cpu-4" and rec.num_devices == 4 and rec.num_hosts == 1
    assert rec.engine_profile == "0.0.2" and rec.engine["version"] == "0.0.2"
    assert rec.engine["jax_version"] == "0.8.1"
    assert rec.model["config_hash"] == config_hash(tmp / "model")
    assert rec.knobs["max_total_tokens"] == 256 and rec.knobs["tp"] == 4 and rec.knobs["dtype"] == "bfloat16"
    assert [p.name for p in rec.phases] == PHASES
    for p in rec.phases:
        ph = main_run["phases"][p.name]
        assert list(p.measured_per_device) == _used(ph)
        assert p.measured_sum == ph["memory"]["bytes_in_use_sum"]
        assert p.predicted_per_device == ph["predicted"]["total"]
        assert p.residual_per_device(rec.num_devices) == ph["delta"]["bytes_per_device"]
        assert list(p.measured_components["params"]) == ph["components"]["params"]
    ready = rec.phase("engine_ready_dummy")
    assert ready.predicted_components == {"params": PARAMS_DUMMY, "kv": KV}
    saved = [o for o in main_run["jsonl"] if o.get("event") == "calibration_saved"]
    assert len(saved) == 1 and Path(saved[0]["path"]).name.endswith(".json")


@pytest.fixture(scope="module")
def safetensors_run(tmp_path_factory):
    """Swap in a real (tiny, random) safetensors checkpoint through the engine's own loader."""
    import numpy as np
    from safetensors.numpy import save_file

    tmp = tmp_path_factory.mktemp("weights")
    ckpt = tmp / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text(json.dumps(TINY))
    H, I, L, nH, kv, V = 512, 1024, 2, 4, 2, 1024
    hd = H // nH
    rng = np.random.default_rng(0)

    def w(*shape):
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    t = {"model.embed_tokens.weight": w(V, H), "model.norm.weight": np.ones(H, np.float32)}
    for i in range(L):
        p = f"model.layers.{i}"
        t |= {f"{p}.self_attn.q_proj.weight": w(nH * hd, H), f"{p}.self_attn.q_proj.bias": w(nH * hd),
              f"{p}.self_attn.k_proj.weight": w(kv * hd, H), f"{p}.self_attn.k_proj.bias": w(kv * hd),
              f"{p}.self_attn.v_proj.weight": w(kv * hd, H), f"{p}.self_attn.v_proj.bias": w(kv * hd),
              f"{p}.self_attn.o_proj.weight": w(H, nH * hd), f"{p}.mlp.gate_proj.weight": w(I, H),
              f"{p}.mlp.up_proj.weight": w(I, H), f"{p}.mlp.down_proj.weight": w(H, I),
              f"{p}.input_layernorm.weight": np.ones(H, np.float32),
              f"{p}.post_attention_layernorm.weight": np.ones(H, np.float32)}
    save_file(t, str(ckpt / "model.safetensors"))
    proc = _hbmvalidate(tmp, "--weights", str(ckpt))
    objs = [json.loads(l) for l in (tmp / "phases.jsonl").read_text().splitlines()]
    return {"proc": proc, "phases": {o["phase"]: o for o in objs if "memory" in o}, "jsonl": objs}


def test_safetensors_swap_changes_layout_as_predicted(safetensors_run):
    p = safetensors_run["proc"]
    assert p.returncode == 0, p.stderr[-3000:]
    ph = safetensors_run["phases"]
    assert list(ph) == PHASES[:6] + PHASES[7:9]  # no second param set in this run
    assert ph["engine_ready_dummy"]["components"]["params"] == [PARAMS_DUMMY] * N_DEV
    # The engine's safetensors loader replicates the q/k/v biases; the prediction follows.
    for name in PHASES[2:6] + PHASES[7:9]:
        assert ph[name]["components"]["params"] == [PARAMS_SAFETENSORS] * N_DEV, name
        assert ph[name]["predicted"]["components"]["params"] == PARAMS_SAFETENSORS, name
    assert ph["weights_swapped"]["info"]["weights_source"].startswith("safetensors(")
    assert ph["weights_swapped"]["info"]["deleted_old_leaves"] == 26
    out1, out2 = ph["generate_result"]["info"], ph["generate_result_after_kv_rebuild"]["info"]
    assert out1["output_sha256"] == out2["output_sha256"] and out2["same_output"] is True
    assert safetensors_run["jsonl"][-1]["ok"] is True
