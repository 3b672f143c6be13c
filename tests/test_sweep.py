"""planner.sweep / hbmplan sweep: equal to make_plan row by row; list and range parsing; the CLI."""

import io
import itertools
import json

import pandas as pd
import pytest

import planner
from planner.cli import main
from planner.errors import PlanError
from planner.plan import make_plan
from planner.request import FIELD_NAMES, PlanRequest
from planner.grid import OUTPUT_COLUMNS, parse_values, sweep

# A mixed grid: rl / train / infer, single- and multi-host TPUs (v4-16 has 2 hosts), a micro-bs
# that cannot be sharded (3), an mfs that starves the engine (0.35), long generations that OOM.
MIXED = {
    "tpu": ["v4-8", "v4-16", "v5litepod-8"],
    "workload": ["rl", "train", "infer"],
    "model": ["Qwen2.5-7B", "Qwen2.5-1.5B"],
    "bs": [8, 32],
    "len": [64, 1024, 3000],
    "micro_bs": [None, 3, 8],
    "mem_fraction_static": [None, 0.35],
}


def _requests(grid: dict) -> list[PlanRequest]:
    keys = list(grid)
    return [PlanRequest(**dict(zip(keys, combo))) for combo in itertools.product(*grid.values())]


def _expect(req: PlanRequest) -> dict:
    try:
        p = make_plan(req)
    except PlanError as exc:
        return {"verdict": "invalid", "error": str(exc)}
    return {
        "verdict": p.verdict,
        "total_bytes": p.total_bytes,
        "limit_bytes": p.limit_bytes,
        "headroom_bytes": p.headroom_bytes,
        "step_need_bytes": p.step_need_bytes,
        "free_at_step_bytes": p.free_at_step_bytes,
        "resident_bytes": p.training.resident_bytes if p.training else None,
        "grad_accum": p.training.shape.grad_accum if p.training else None,
        "seq_len": p.training.shape.seq_len if p.training else None,
        "engine_param_bytes": p.engine.param_bytes_per_device if p.engine else None,
        "kv_bytes_per_device": p.engine.kv_bytes_per_device if p.engine else None,
        "max_total_tokens_effective": p.engine.sizing.num_tokens if p.engine else None,
        "max_running_requests_effective": p.engine.max_running_requests if p.engine else None,
        "engine_runtime_temp_bytes": p.engine.runtime_temp_bytes if p.engine else None,
        "error": None,
    }


def _na(v):
    return None if v is None or (not isinstance(v, str) and pd.isna(v)) else v


def _assert_equal_to_make_plan(df: pd.DataFrame, reqs: list[PlanRequest]) -> None:
    assert len(df) == len(reqs)
    for i, (req, row) in enumerate(zip(reqs, df.to_dict("records"))):
        for name in FIELD_NAMES:
            assert _na(row[name]) == getattr(req, name), (i, name)
        exp = _expect(req)
        got = {k: _na(row[k]) for k in exp}
        if exp["verdict"] == "invalid":
            got = {k: got[k] for k in ("verdict", "error")}
        assert got == exp, f"row {i}: {req}"


@pytest.fixture(scope="module")
def mixed():
    return sweep(MIXED)


def test_sweep_equals_make_plan_row_by_row(mixed):
    _assert_equal_to_make_plan(mixed, _requests(MIXED))


def test_mixed_grid_covers_every_verdict(mixed):
    assert len(mixed) == 3 * 3 * 2 * 2 * 3 * 3 * 2
    assert set(mixed["verdict"]) == {"fits", "oom", "engine_cannot_start", "invalid"}
    assert list(mixed.columns) == list(FIELD_NAMES) + list(OUTPUT_COLUMNS)
    bad = mixed[mixed["verdict"] == "invalid"]
    micro3 = bad["error"].str.contains("--micro-bs 3 cannot be sharded")
    assert (bad.loc[micro3, "micro_bs"] == 3).all() and (bad.loc[micro3, "workload"] != "infer").all()
    # 12 and 28 attention heads: the infer engine cannot take tp 8 on a v5litepod-8
    assert bad.loc[~micro3, "error"].str.startswith("tp 8 does not divide the ").all()
    assert mixed.loc[mixed["verdict"] != "invalid", "error"].isna().all()
    # the multi-host slice: the RL engine runs on one host's devices
    assert set(mixed.loc[(mixed["tpu"] == "v4-16") & (mixed["workload"] == "rl") & (mixed["verdict"] != "invalid"),
                         "engine_tp"]) == {4}


def test_engine_knobs_and_validation_errors():
    grid = {
        "workload": ["rl", "infer"],
        "tpu": ["v4-8", "v6e-8"],
        "model": ["Qwen3-8B", "Qwen3-30B-A3B"],
        "tp": [None, 3, 4],
        "max_total_tokens": [None, 4096],
        "max_running_requests": [None, 0],
        "chunked_prefill_size": [None, -1],
        "engine_version": [None, "0.0.2"],
    }
    df = sweep(grid)
    _assert_equal_to_make_plan(df, _requests(grid))
    assert set(df["verdict"]) >= {"invalid", "fits"}
    assert df["error"].str.contains("--max-running-requests must be a positive integer").any()
    assert (df["chunked_prefill_size"] == -1).sum() == len(df) // 2  # -1 is a value, not "not given"


def test_training_knobs_and_mesh_errors():
    grid = {
        "workload": ["rl", "train"],
        "tpu": ["v4-8", "v4-16"],
        "mesh": [None, "2,-1,1", "3,-1,1"],
        "beta": [0.0, 0.04],
        "optimizer": ["adamw", "adafactor"],
        "page_size": [1, 64],
        "context_length": [None, 8192],
    }
    df = sweep(grid)
    _assert_equal_to_make_plan(df, _requests(grid))
    assert df["error"].str.contains("--mesh 3,-1,1").any()


def test_prompts_samples_chunk_and_dtypes():
    grid = {
        "prompts": [None, 2],
        "samples_per_prompt": [1, 8],
        "bs": [None, 16],
        "rollout_chunk": [None, 16],
        "prompt_len": [100],
        "len": [9000],
        "param_dtype": ["float32", "bfloat16", "nonsense"],
        "remat": ["dots", "none"],
        "tpu": ["v5p-8", "v4-32"],
    }
    df = sweep(grid)
    _assert_equal_to_make_plan(df, _requests(grid))
    assert df["error"].str.contains("nonsense").any()


def test_scalar_options_and_api():
    df = sweep({"bs": [8, 16]}, tpu="v4-8", len=range(512, 1025, 512))
    assert len(df) == 4 and (df["tpu"] == "v4-8").all()
    assert list(df["len"]) == [512, 1024, 512, 1024]
    assert planner.sweep(bs=8).shape[0] == 1
    from planner import sweep as lazy

    assert lazy(bs=[8, 16]).shape[0] == 2


def test_unknown_names_raise_up_front():
    with pytest.raises(PlanError, match="valid generations"):
        sweep(tpu=["v4-8", "v9-8"])
    with pytest.raises(PlanError, match="catalog"):
        sweep(model=["Qwen2.5-7B", "NoSuchModel-1B"])
    with pytest.raises(PlanError, match="valid:"):
        sweep(engine_version=["nope"])
    with pytest.raises(PlanError, match="unknown sweep option"):
        sweep(batch=[1])
    with pytest.raises(PlanError, match="empty"):
        sweep(bs=[])


def test_plain_import_does_not_load_pandas():
    import subprocess
    import sys

    code = "import sys, planner, planner.cli; print('pandas' in sys.modules, 'numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


# -- value parsing ---------------------------------------------------------------------------


@pytest.mark.parametrize("name,text,values", [
    ("len", "512:4096:x2", [512, 1024, 2048, 4096]),
    ("bs", "1:9:2", [1, 3, 5, 7, 9]),
    ("bs", "8,16,32", [8, 16, 32]),
    ("bs", "4:6", [4, 5, 6]),
    ("micro_bs", "none,1:4:x2", [None, 1, 2, 4]),
    ("mem_fraction_static", "0.3:0.6:0.1", [0.3, 0.4, 0.5, 0.6]),
    ("mem_fraction_static", "0.35,0.5", [0.35, 0.5]),
    ("len", "100:1000:x3", [100, 300, 900]),
    ("tpu", "v4-8,v4-16", ["v4-8", "v4-16"]),
    ("mesh", "1,-1,1;2,-1,1", ["1,-1,1", "2,-1,1"]),
    ("mesh", "1,-1,1", ["1,-1,1"]),
])
def test_parse_values(name, text, values):
    assert parse_values(name, text) == values


@pytest.mark.parametrize("name,text", [
    ("len", "4096:512:x2"), ("len", "512:4096:x1"), ("bs", "1:9:0"), ("bs", "1:9:-2"), ("bs", "a:9"),
    ("bs", "1:2:3:4"), ("bs", "8,,16"), ("bs", "8.5"), ("len", "0:64:x2"), ("bs", "1:10000000"),
])
def test_bad_values_raise(name, text):
    with pytest.raises(PlanError):
        parse_values(name, text)


# -- the command line ------------------------------------------------------------------------


def _cli(capsys, *args):
    code = main(["sweep", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_csv_reads_back(capsys, tmp_path):
    path = tmp_path / "s.csv"
    code, out, err = _cli(capsys, "--tpu", "v4-8,v4-16", "--bs", "8,16", "--len", "512:2048:x2",
                          "--micro-bs", "none,3", "--format", "csv", "--out", str(path))
    assert code == 0 and out == "" and err == ""
    df = pd.read_csv(path)
    assert len(df) == 2 * 2 * 3 * 2
    assert list(df.columns) == list(FIELD_NAMES) + list(OUTPUT_COLUMNS)
    ref = sweep(tpu=["v4-8", "v4-16"], bs=[8, 16], len=[512, 1024, 2048], micro_bs=[None, 3])
    assert list(df["verdict"]) == list(ref["verdict"])
    assert df["total_bytes"].fillna(-1).astype("int64").tolist() == ref["total_bytes"].fillna(-1).tolist()


def test_cli_json_reads_back(capsys):
    code, out, _ = _cli(capsys, "--workload", "infer,rl", "--mesh", "1,-1,1;2,-1,1", "--mem-fraction-static",
                        "0.35,0.88", "--format", "json", "--columns", "workload,mesh,verdict,kv_bytes_per_device")
    assert code == 0
    doc = json.loads(out)
    assert len(doc) == 8 and set(doc[0]) == {"workload", "mesh", "verdict", "kv_bytes_per_device"}
    df = pd.read_json(io.StringIO(out), orient="records")
    assert list(df.columns) == ["workload", "mesh", "verdict", "kv_bytes_per_device"]
    # rows: the product in PlanRequest field order (workload, mem_fraction_static, mesh)
    ref = sweep(workload=["infer", "rl"], mem_fraction_static=[0.35, 0.88], mesh=["1,-1,1", "2,-1,1"])
    assert [d["verdict"] for d in doc] == list(ref["verdict"])
    assert [d["kv_bytes_per_device"] for d in doc] == [int(x) for x in ref["kv_bytes_per_device"]]


def test_cli_table(capsys):
    code, out, _ = _cli(capsys, "--bs", "8,32", "--micro-bs", "4", "--mem-fraction-static", "0.35,0.5")
    assert code == 0
    assert "verdict" in out and "total_gib" in out and "engine_cannot_start" in out
    assert out.rstrip().splitlines()[-1].startswith("4 configs: ")


@pytest.mark.parametrize("args", [
    ("--len", "4096:512:x2"), ("--bs", "1:9:0"), ("--bs", "eight"), ("--tpu", "v9-8"),
    ("--format", "xml"), ("--columns", "nope"), ("--bogus", "1"),
])
def test_cli_bad_input_exit_2_one_line(capsys, args):
    code, out, err = _cli(capsys, *args)
    assert code == 2 and out == ""
    assert err.startswith("hbmplan: error: ") and err.count("\n") == 1
