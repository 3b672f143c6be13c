"""The hbmplan command line: exit codes, JSON keys, one-line errors, fuzzing."""

import json
import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from planner.cli import main

from conftest import TINY_QWEN2


def run(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_design_card_exit_3(capsys):
    code, out, _ = run(capsys, "--tpu", "v4-8", "--model", "Qwen2.5-7B", "--bs", "32", "--len", "1024")
    assert code == 3
    assert "jit_training_step needs" in out and "free" in out and "oom" in out


def test_infer_json_keys(capsys):
    code, out, _ = run(capsys, "--workload", "infer", "--tpu", "v4-8", "--model", "Qwen2.5-3B",
                       "--max-total-tokens", "131072", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["verdict"] == "fits"
    assert doc["limit_bytes"] == 33_014_415_360
    assert doc["engine"]["kv_bytes_total"] == 9_663_750_144
    assert doc["engine"]["max_total_tokens"] == 131072
    assert doc["engine"]["param_bytes_per_device"] == 1_562_243_072
    assert doc["per_device"]["components"]["engine.kv_cache"] == 9_663_750_144 // 4
    assert doc["per_device"]["total_bytes"] == sum(doc["per_device"]["components"].values())


def test_rl_json_training_keys(capsys):
    code, out, _ = run(capsys, "--bs", "32", "--len", "1024", "--micro-bs", "4", "--json")
    doc = json.loads(out)
    assert code == 3 and doc["verdict"] == "oom"
    t = doc["training"]
    assert t["free_bytes_at_step"] < t["step_temp_bytes"]
    assert set(t) >= {"resident_bytes", "step_temp_bytes", "free_bytes_at_step"}


def test_explain_shows_formulas(capsys):
    _, out, _ = run(capsys, "--workload", "infer", "--model", "Qwen2.5-3B", "--max-total-tokens", "32768", "--explain")
    assert "formula: L · (N + ps)" in out and "N=32768" in out


def test_engine_cannot_start_exit_3(capsys):
    code, out, _ = run(capsys, "--bs", "32", "--len", "1024", "--micro-bs", "4", "--mem-fraction-static", "0.35")
    assert code == 3 and "Not enough memory" in out


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--tpu", "v9-8"], "unknown TPU type"),
        (["--model", "NoSuchModel"], "unknown model"),
        (["--model", "~nosuchuser0/config.json"], "unknown model"),  # ~user of no user: not a path here
        (["--bs", "0"], "--bs"),
        (["--len", "-3"], "--len"),
        (["--workload", "infer", "--tp", "3"], "--tp 3"),
        (["--workload", "infer", "--tp", "8"], "--tp 8"),
        (["--mem-fraction-static", "1.5"], "mem-fraction-static"),
        (["--optimizer", "rmsprop"], "lion"),
        (["--bs", "abc"], "invalid int"),
    ],
)
def test_bad_input_one_line_exit_2(capsys, args, needle):
    code, out, err = run(capsys, *args)
    assert code == 2
    assert err.count("\n") == 1 and needle in err and out == ""


def test_malformed_config_exit_2(capsys, tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "qwen2", "hidden_size": }')
    code, _, err = run(capsys, "--model", str(tmp_path))
    assert code == 2 and "malformed JSON" in err


def test_listings(capsys):
    code, out, _ = run(capsys, "tpus")
    assert code == 0 and "v5litepod" in out and "v4-512" in out and "tpu7x-8" in out
    code, out, _ = run(capsys, "models")
    assert code == 0 and "7,615,616,512" in out and "qwen3_moe" in out


def test_analytic_path_never_imports_jax():
    code = ("import sys; from planner.cli import main; "
            "main(['--workload','infer','--json']); "
            "bad=[m for m in ('jax','numpy','pandas') if m in sys.modules]; print('IMPORTED', bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "IMPORTED []" in out


FLAGS = ["--tpu", "--model", "--workload", "--bs", "--len", "--micro-bs", "--tp", "--mem-fraction-static",
         "--max-total-tokens", "--page-size", "--mesh", "--optimizer", "--remat", "--prompt-len", "--dtype",
         "--engine-version", "--prompts", "--samples-per-prompt", "--beta", "--context-length"]
VALUES = st.one_of(
    st.sampled_from(["v4-8", "v5e-8", "v6e-8", "v4-16", "Qwen2.5-0.5B", "infer", "train", "rl", "0", "-1",
                     "1", "4", "8", "nan", "inf", "1e9", "0.5", "lion", "full", "1,-1,1", "2,2,2", "bf16", "",
                     "Qwen3-30B-A3B", "0.0.2"]),
    st.text(max_size=6),
    st.integers(-5, 10**7).map(str),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(FLAGS), VALUES), max_size=5))
def test_fuzz_arguments(capsys, pairs):
    argv = [x for pair in pairs for x in pair]
    code = main(argv)
    out = capsys.readouterr()
    assert code in (0, 2, 3)
    if code == 2:
        assert out.err.count("\n") == 1 and out.err.startswith("hbmplan: error:")
    assert "Traceback" not in out.err


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(sorted(TINY_QWEN2) + ["head_dim", "attention_bias", "num_experts"]),
                       st.one_of(st.none(), st.booleans(), st.integers(-3, 5000), st.text(max_size=4),
                                 st.floats(allow_nan=True), st.lists(st.integers(0, 3), max_size=2)),
                       max_size=4),
       st.sampled_from(["infer", "rl", "train"]))
def test_fuzz_config_mutations(capsys, tmp_path_factory, mutation, workload):
    folder = tmp_path_factory.mktemp("cfg")
    (folder / "config.json").write_text(json.dumps({**TINY_QWEN2, **mutation}))
    code = main(["--model", str(folder), "--workload", workload, "--tpu", "v4-8", "--bs", "4", "--len", "128"])
    out = capsys.readouterr()
    assert code in (0, 2, 3)
    if code == 2:
        assert out.err.count("\n") == 1
