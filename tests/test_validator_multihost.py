"""hbmvalidate as a two-host job on one machine: two processes with 2 CPU devices each,
jax.distributed on localhost (the engine's nnodes / node_rank / dist_init_addr), tp 4 over the
4 global devices. Each host measures its own devices; host 0 gathers them and writes the one
calibration record. (~50 s on 2 cores: two engines.)"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from validator.report import CHANGE_TOLERANCE_BYTES

pytest.importorskip("sgl_jax")

from test_validator_e2e import KV, PARAMS_DUMMY, PHASES, TINY  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MH_PHASES = PHASES[:6] + PHASES[7:9]  # no --second-params here


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_hosts(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mh")
    (tmp / "model").mkdir()
    (tmp / "model" / "config.json").write_text(json.dumps(TINY))
    port = _free_port()
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    procs = []
    for rank in (0, 1):
        cmd = [sys.executable, "-c", "import sys; from validator.cli import main; sys.exit(main())",
               "--model-path", str(tmp / "model"), "--tp", "4", "--device", "cpu", "--nnodes", "2",
               "--node-rank", str(rank), "--dist-init-addr", f"127.0.0.1:{port}", "--max-total-tokens", "256",
               "--context-length", "256", "--max-running-requests", "8", "--disable-precompile",
               "--input-ids", "1,2,3,4", "--max-new-tokens", "8", "--kv-drop-rebuild", "--assert-same-output",
               "--strict", "--jsonl", str(tmp / f"r{rank}.jsonl"), "--save-calibration", str(tmp / "cal")]
        procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True))
    outs = [p.communicate(timeout=500) for p in procs]
    jsonl = [[json.loads(l) for l in (tmp / f"r{r}.jsonl").read_text().splitlines()] for r in (0, 1)]
    return {"tmp": tmp, "rc": [p.returncode for p in procs], "err": [o[1] for o in outs], "jsonl": jsonl}


def test_both_hosts_finish_cleanly(two_hosts):
    assert two_hosts["rc"] == [0, 0], [e[-2000:] for e in two_hosts["err"]]
    assert all("Traceback" not in e for e in two_hosts["err"])


def test_each_host_measures_its_own_devices(two_hosts):
    for rank, objs in enumerate(two_hosts["jsonl"]):
        phases = [o for o in objs if "memory" in o]
        assert [p["phase"] for p in phases] == MH_PHASES
        for p in phases:
            assert p["process_index"] == rank
            assert [d["index"] for d in p["memory"]["devices"]] == [2 * rank, 2 * rank + 1]
            assert all(d["process_index"] == rank for d in p["memory"]["devices"])
        ready = next(p for p in phases if p["phase"] == "engine_ready_dummy")
        assert ready["components"]["params"] == [PARAMS_DUMMY] * 2 and ready["components"]["kv"] == [KV] * 2
        flushed = next(p for p in phases if p["phase"] == "flush_cache_before_kv_drop")
        dropped = next(p for p in phases if p["phase"] == "kv_cache_dropped")
        freed = [a["bytes_in_use"] - b["bytes_in_use"] for a, b in
                 zip(flushed["memory"]["devices"], dropped["memory"]["devices"])]
        # the engine's own scalars may come and go (4 B seen on host 1): report's tolerance
        assert all(abs(f - KV) <= CHANGE_TOLERANCE_BYTES for f in freed), freed
        assert objs[-1]["ok"] is True and objs[-1]["num_hosts"] == 2 and objs[-1]["num_devices"] == 4
    gen0 = next(o for o in two_hosts["jsonl"][0] if o.get("phase") == "generate_result_after_kv_rebuild")
    assert gen0["info"]["same_output"] is True  # host 0 generates
    gen1 = next(o for o in two_hosts["jsonl"][1] if o.get("phase") == "generate_result")
    assert gen1["info"]["generated_on_node_rank"] == 0


def test_host_0_writes_one_record_with_every_device(two_hosts):
    from planner.records import load_records

    records, warnings = load_records(two_hosts["tmp"] / "cal")
    assert warnings == [] and len(records) == 1
    rec = records[0]
    assert rec.num_devices == 4 and rec.num_hosts == 2 and rec.tpu_type == "cpu-4"
    local = {r: {o["phase"]: o for o in objs if "memory" in o} for r, objs in enumerate(two_hosts["jsonl"])}
    for p in rec.phases:
        expect = [d["bytes_in_use"] for r in (0, 1) for d in local[r][p.name]["memory"]["devices"]]
        assert list(p.measured_per_device) == expect, p.name
        assert list(p.measured_components["params"]) == [c for r in (0, 1)
                                                         for c in local[r][p.name]["components"]["params"]]
        assert len(p.extra["process_rss_bytes"]) == 2
    assert rec.phase("engine_ready_dummy").predicted_components == {"params": PARAMS_DUMMY, "kv": KV}
