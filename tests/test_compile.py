"""The compile check: deviceless XLA:TPU compiles of the reference step, held to the analytic plan.

Compiles use small configs (a few seconds each on a 2-core CPU); they share one cache per test
session. Tests that compile are skipped only when jax[tpu] is not installed.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from planner.cli import main
from planner.compile import compile_plan, run_compile, unavailable_reason
from planner.compile.aot import parse_oom, parse_size
from planner.errors import PlanError
from planner.plan import make_plan
from planner.request import PlanRequest
from planner.units import GiB

from conftest import write_config

ROOT = Path(__file__).resolve().parents[1]
needs_jax = pytest.mark.skipif(unavailable_reason() is not None, reason="jax[tpu] is not installed")

#: Small dense configs: real families and flags, few layers, so one compile takes seconds.
SMALL = {
    "qwen2": dict(model_type="qwen2", hidden_size=512, intermediate_size=2048, num_hidden_layers=3,
                  num_attention_heads=4, num_key_value_heads=2, head_dim=128, vocab_size=32768,
                  tie_word_embeddings=True),
    "qwen3": dict(model_type="qwen3", hidden_size=512, intermediate_size=1536, num_hidden_layers=3,
                  num_attention_heads=8, num_key_value_heads=4, head_dim=64, vocab_size=32768,
                  tie_word_embeddings=False),
    "llama": dict(model_type="llama", hidden_size=768, intermediate_size=2048, num_hidden_layers=3,
                  num_attention_heads=6, num_key_value_heads=2, head_dim=128, vocab_size=32768,
                  tie_word_embeddings=False),
}


@pytest.fixture(scope="session", autouse=True)
def compile_cache(tmp_path_factory):
    """One compile cache for the session (never the user's)."""
    path = tmp_path_factory.mktemp("compile-cache")
    old = os.environ.get("HBMPLAN_COMPILE_CACHE")
    os.environ["HBMPLAN_COMPILE_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("HBMPLAN_COMPILE_CACHE", None)
    else:
        os.environ["HBMPLAN_COMPILE_CACHE"] = old


@pytest.fixture(scope="session")
def small_models(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("models")
    return {name: str(write_config(root / name, **cfg)) for name, cfg in SMALL.items()}


def _plan(model: str, **kw):
    base = dict(tpu="v4-8", model=model, workload="train", micro_bs=4, bs=8, prompt_len=256, len=256)
    return make_plan(PlanRequest(**{**base, **kw}))


# -- no jax needed -------------------------------------------------------------------------------


def test_analytic_path_never_imports_jax():
    code = ("import sys; from planner.cli import main; "
            "rc = main(['--tpu', 'v4-8', '--model', 'Qwen2.5-7B', '--bs', '32', '--len', '1024', '--micro-bs', '4']); "
            "bad = [m for m in sys.modules if m == 'jax' or m.startswith(('jax.', 'jaxlib', 'libtpu', 'optax'))]; "
            "print('LEAK', bad) if bad else None; sys.exit(0 if not bad else 1)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_missing_jax_is_one_line_exit_2(monkeypatch, capsys):
    import planner.compile as pc

    real = pc.util.find_spec
    monkeypatch.setattr(pc.util, "find_spec", lambda name, *a: None if name == "libtpu" else real(name, *a))
    code = main(["--compile", "--workload", "train", "--model", "Qwen2.5-0.5B"])
    out = capsys.readouterr()
    assert code == 2 and out.out == ""
    assert out.err.count("\n") == 1 and "jax[tpu]" in out.err and "libtpu" in out.err


def test_compile_needs_a_training_step(capsys):
    code = main(["--compile", "--workload", "infer", "--model", "Qwen2.5-0.5B"])
    err = capsys.readouterr().err
    if unavailable_reason() is None:
        assert code == 2 and "--workload train or rl" in err
    else:
        assert code == 2 and "jax[tpu]" in err


@pytest.mark.parametrize("text,used,limit,exceeded", [
    ("RESOURCE_EXHAUSTED: XLA:TPU compile permanent error. Ran out of memory in memory space hbm. Used 40.00G of "
     "30.75G hbm. Exceeded hbm capacity by 9.25G.", 40.0, 30.75, 9.25),
    ("Ran out of memory on HBM, the total memory required for HLO temporaries (56.00G) exceeds available HBM "
     "(30.75G).", 56.0, 30.75, 25.25),
    ("Aborting compilation early because it's unlikely to have enough device memory. Requires 40.5G, has 15.75G "
     "available.", 40.5, 15.75, 24.75),
    ("RESOURCE_EXHAUSTED: Error loading program 'jit_training_step': Attempting to reserve 7.82G at the bottom of "
     "memory. That was not possible. There are 5.68G free, 0B reserved, and 5.68G reservable.", 7.82, 5.68, 2.14),
])
def test_parse_oom_wordings(text, used, limit, exceeded):
    o = parse_oom(text)
    assert abs(o["used_bytes"] / GiB - used) < 0.006
    assert abs(o["limit_bytes"] / GiB - limit) < 0.006
    assert abs(o["exceeded_bytes"] / GiB - exceeded) < 0.011
    assert parse_oom("INVALID_ARGUMENT: something else") is None


def test_parse_oom_breakdown_and_sizes():
    msg = ("RESOURCE_EXHAUSTED: XLA:TPU compile permanent error. Ran out of memory in memory space hbm. Used 35.20G "
           "of 30.75G hbm. Exceeded hbm capacity by 4.45G. Total hbm usage >= 36.45G: reserved 1.25G program "
           "13.92G arguments 21.28G Output size 21.28G; shares 21.28G with arguments. Program hbm requirement "
           "13.92G: global 624.5K scoped 5.00M HLO temp 13.91G (100.0% utilization")
    o = parse_oom(msg)
    assert o["kind"] == "compile"
    assert abs(o["program_bytes"] / GiB - 13.92) < 0.006 and abs(o["temp_bytes"] / GiB - 13.91) < 0.006
    assert abs(o["arguments_bytes"] / GiB - 21.28) < 0.006 and abs(o["reserved_bytes"] / GiB - 1.25) < 0.006
    assert parse_size("512.0K") == 512 * 1024 and parse_size("33014415360") == 33014415360
    assert parse_size("1.5GiB") == int(1.5 * GiB)


# -- compiles ------------------------------------------------------------------------------------


@needs_jax
@pytest.mark.parametrize("family", ["qwen2", "qwen3", "llama"])
def test_arguments_match_analytic_resident(small_models, family):
    plan = _plan(small_models[family], optimizer="adamw")
    rep = compile_plan(plan)
    assert rep.status == "ok", rep.result.get("error")
    args = rep.memory["argument_bytes"]
    resident = plan.training.resident_bytes
    assert abs(args - resident) / resident < 0.001
    extra = rep.result["argument_extra"]
    # Every byte of difference is explained: the state before padding is exactly the analytic
    # resident without its tiled-layout padding, which the plan predicts from the shard shapes
    # (the qwen3 q/k norms of 64, llama's 768-wide norms and its [768, 192] o shards, laid out
    # column-major); what XLA pads beyond that is the batch's and the step counters' tiles
    # (512 B per scalar).
    state_padding = next(c.bytes for c in plan.training.resident if c.name == "train.layout_padding")
    assert extra["state_bytes"] == resident - state_padding
    xla_padding = args - extra["unpadded_bytes"]
    assert 0 <= xla_padding - state_padding <= 4 * 512, (xla_padding, state_padding)
    if family != "qwen2":  # qwen2's shards and vectors here are all whole tiles
        assert state_padding > 0
    assert rep.memory["alias_bytes"] >= resident  # the whole state is donated


@needs_jax
def test_temp_agrees_with_analytic_on_test_grid(small_models):
    grid = [
        dict(model=small_models["qwen2"]),
        dict(model=small_models["qwen2"], remat="full", micro_bs=8, bs=8),
        dict(model=small_models["qwen3"], optimizer="adamw", prompt_len=512, len=512),
        dict(model=small_models["llama"], remat="none"),
        dict(model=small_models["llama"], tpu="v4-16", micro_bs=8, bs=8, optimizer="sgd"),
    ]
    errs = []
    for kw in grid:
        plan = _plan(**kw)
        rep = compile_plan(plan)
        assert rep.status == "ok", rep.result.get("error")
        errs.append(abs(plan.training.step_temp_bytes - rep.memory["temp_bytes"]) / rep.memory["temp_bytes"])
    # Issue #4's bounds: median <= 5 % and worst <= 15 %. Measured: median 3.3 %, worst 9.7 % (the
    # tiny llama with sgd on v4-16 at 512 tokens/device, where the lm_head's unreduced gradient
    # sets the backward's need; 17.7 % under before the step model counted it).
    assert statistics.median(errs) <= 0.05, errs
    assert max(errs) <= 0.15, errs


def _write_dump(root: Path) -> Path:
    """A buffer-assignment dump in XLA's text format, small enough to read by eye: a parameter, three
    temp values (two share a slot, as an in-place update does) and six program points."""
    root.mkdir()
    prefix = root / "module_0001.jit_training_step.cl_1.after_optimizations"
    Path(str(prefix) + "-buffer-assignment.txt").write_text("""BufferAssignment:
allocation 0: size 4096, parameter 0, shape |f32[1024]| at ShapeIndex {}:
 value: <0 p0 @0> (size=4096,offset=0): f32[1024]{0}
allocation 1: size 3000, preallocated-temp:
 value: <1 fwd.1 @0> (size=1000,offset=0): bf16[500]{0}
 value: <2 fwd.2 @0> (size=1000,offset=0): bf16[500]{0}
 value: <3 bwd.1 @0> (size=2000,offset=1000): bf16[2,500]{1,0}

Total bytes used: 7096
Used values:
HloLiveRange (max 5):
  InstructionSequence:
    0:p0
    1:fwd.1
    2:fwd.2
    3:bitcast.1
    4:bwd.1
    5:upd.1
  BufferLiveRange:
    p0{}:0-5
    fwd.1{}:1-3
    fwd.2{}:2-4
    bwd.1{}:3-4
  Live ranges at 4 (peak):
""")
    Path(str(prefix) + ".txt").write_text("""HloModule jit_training_step
  %p0 = f32[1024]{0} parameter(0), metadata={op_name="state"}
  %fwd.1 = bf16[500]{0} dot(%p0), metadata={op_name="jit(training_step)/jvp()/dot_general"}
  %fwd.2 = bf16[500]{0} add(%fwd.1), metadata={op_name="jit(training_step)/jvp()/add"}
  %bitcast.1 = bf16[500]{0} bitcast(%fwd.2)
  %bwd.1 = bf16[2,500]{1,0} dot(%fwd.2), metadata={op_name="jit(training_step)/transpose(jvp())/dot_general"}
  ROOT %upd.1 = f32[1024]{0} add(%p0), metadata={op_name="jit(training_step)/cond/branch_1_fun/add"}
""")
    return root


def test_live_profile_reads_the_buffer_assignment(tmp_path):
    from planner.compile.live_ranges import live_profile, phase_of

    lp = live_profile(str(_write_dump(tmp_path / "dump")))
    # the parameter is not temp; fwd.1 and fwd.2 share a slot (1000 B once); bwd.1 joins at point 3
    assert lp["points"] == 6 and lp["peak_bytes"] == 3000 and lp["peak_point"] == 3
    # point 3 is an unnamed bitcast: it takes the phase of the named point before it
    assert lp["peak_phase"] == "forward"
    assert lp["phase_max_bytes"] == {"forward": 3000, "backward": 3000, "update": 0, "other": 0}
    assert lp["at_peak"] == [
        {"op": "jit(training_step)/transpose(jvp())/dot_general", "shape": "bf16[2,500]", "buffers": 1, "bytes": 2000},
        {"op": "jit(training_step)/jvp()/dot_general", "shape": "bf16[500]", "buffers": 1, "bytes": 1000}]
    assert [phase_of(n) for n in ("jit(f)/transpose(jvp(jvp()))/checkpoint/mul", "jit(f)/cond/branch_1_fun/add",
                                  "jit(f)/jvp()/neg", "custom-call", "")] == [
        "backward", "update", "forward", "other", None]
    assert live_profile(str(tmp_path)) is None  # no dump there


def test_live_profile_lines_shorten_long_operation_names():
    from planner.compile import _render_live_profile

    long_op = "jit(training_step)/jvp()/shard_map/vmap(jit(_splash_attention))/" + "splash_mha_fwd_block_q=128_" * 8 + "pallas_call"
    lp = {"points": 10, "peak_bytes": 2 * GiB, "peak_point": 4, "peak_phase": "backward",
          "phase_max_bytes": {"forward": GiB, "backward": 2 * GiB, "update": 0, "other": 0},
          "at_peak": [{"op": long_op, "shape": "f32[16,1024,128]", "buffers": 36, "bytes": GiB}]}
    plan = make_plan(PlanRequest(tpu="v6e-8", model="Qwen2.5-3B", workload="train", bs=16, micro_bs=8))
    lines = _render_live_profile(lp, int(2.2 * GiB), plan)
    assert lines[0].endswith("peak 2.000 GiB in the backward (point 4); its temp allocation is +10.0% above that")
    assert "the analytic model's points: forward_start" in lines[1]
    last = lines[-1]
    assert "36 x f32[16,1024,128]" in last and "…" in last and last.endswith("pallas_call")
    assert len(last.split("f32[16,1024,128]  ")[1]) == 100


@needs_jax
def test_compile_explain_prints_xlas_live_temp_by_phase(small_models, capsys):
    # the small qwen3 at 1024 tokens/device: the analytic peak is the backward's start, and XLA's live
    # temp peaks there too, holding the bf16 logits [4, 256, 32768] whole
    args = ["--compile", "--explain", "--tpu", "v4-8", "--model", small_models["qwen3"], "--workload", "train",
            "--bs", "16", "--micro-bs", "16", "--prompt-len", "128", "--len", "128", "--optimizer", "adamw"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "XLA's live temp through the step" in out and "(peak at backward_start)" in out
    assert main(args + ["--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    lp, temp = doc["compile"]["live_profile"], doc["compile"]["xla"]["temp_bytes"]
    assert lp["peak_phase"] == "backward" and lp["peak_bytes"] <= temp <= 1.1 * lp["peak_bytes"]
    logits = [x for x in lp["at_peak"] if x["shape"] == "bf16[4,256,32768]"]
    assert logits and logits[0]["bytes"] == 4 * 256 * 32768 * 2
    plan = _plan(small_models["qwen3"], bs=16, micro_bs=16, prompt_len=128, len=128, optimizer="adamw")
    assert plan.training.step[0].inputs["peak_phase"] == "backward_start"
    # the analytic backward's start against XLA's live peak
    assert abs(plan.training.step_temp_bytes / lp["peak_bytes"] - 1) < 0.1


@needs_jax
def test_oversized_config_reports_oom_with_xla_figures(tmp_path, capsys):
    # One layer and a 1M-token vocab: 2.1B fp32 params + lion state overflow a v5e chip, and the
    # program stays small enough to compile in seconds.
    huge = write_config(tmp_path / "huge-vocab", model_type="qwen2", hidden_size=2048, intermediate_size=2048,
                        num_hidden_layers=1, num_attention_heads=16, num_key_value_heads=2, head_dim=128,
                        vocab_size=1_048_576, tie_word_embeddings=True)
    args = ["--compile", "--tpu", "v5e-1", "--model", str(huge), "--workload", "train",
            "--bs", "4", "--micro-bs", "4", "--prompt-len", "128", "--len", "128"]
    code = main(args)
    out = capsys.readouterr().out
    assert code == 3
    assert "oom (XLA compile): used" in out and "exceeded by" in out
    code = main(args + ["--json"])
    doc = json.loads(capsys.readouterr().out)
    c = doc["compile"]
    assert code == 3 and c["status"] == "oom" and c["verdict"] == "oom"
    o = c["oom"]
    assert o["used_bytes"] > o["limit_bytes"] and o["exceeded_bytes"] > 0
    assert abs(o["limit_bytes"] / GiB - 15.75) < 0.01  # XLA's own v5e HBM figure


@needs_jax
def test_cli_compile_json_and_cache(small_models, capsys):
    args = ["--compile", "--json", "--tpu", "v4-8", "--model", small_models["qwen3"], "--workload", "train",
            "--bs", "8", "--micro-bs", "4", "--prompt-len", "256", "--len", "256"]
    code = main(args)
    doc = json.loads(capsys.readouterr().out)
    c = doc["compile"]
    assert code == 0 and c["status"] == "ok" and c["verdict"] == "fits"
    assert set(c["xla"]) >= {"argument_bytes", "output_bytes", "alias_bytes", "temp_bytes", "peak_sum_bytes"}
    assert c["analytic"]["step_temp_bytes"] == doc["training"]["step_temp_bytes"]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["compile"]["cached"] is True


@needs_jax
def test_rl_workload_takes_engine_from_the_engine_model(small_models, capsys):
    code = main(["--compile", "--tpu", "v4-8", "--model", small_models["qwen2"], "--bs", "8", "--micro-bs", "4",
                 "--prompt-len", "256", "--len", "256"])
    out = capsys.readouterr().out
    assert code == 0
    assert "engine model" in out and "compile verdict: fits (compiled)" in out


@needs_jax
def test_multi_host_slice_compiles_on_one_machine(small_models):
    plan = _plan(small_models["qwen2"], tpu="v4-16", micro_bs=8, bs=8)
    rep = compile_plan(plan)
    assert rep.status == "ok", rep.result.get("error")
    assert rep.result["devices"] == 8 and rep.result["processes"] == 2
    assert abs(rep.memory["argument_bytes"] - plan.training.resident_bytes) / plan.training.resident_bytes < 0.001


@needs_jax
def test_every_option_changes_the_compiled_program(small_models):
    base = dict(model=small_models["qwen2"])
    temps = {}
    for name, kw in {"base": {}, "adamw": {"optimizer": "adamw"}, "full": {"remat": "full"},
                     "none": {"remat": "none"}, "longer": {"prompt_len": 512, "len": 512},
                     "accum1": {"bs": 4}, "beta": {"beta": 0.04}}.items():
        plan = _plan(**{**base, **kw})
        rep = compile_plan(plan)
        assert rep.status == "ok", (name, rep.result.get("error"))
        temps[name] = (rep.memory["argument_bytes"], rep.memory["temp_bytes"])
    assert temps["adamw"][0] > temps["base"][0]            # second moment in the state
    assert temps["beta"][0] > temps["base"][0]             # reference params in the state
    assert temps["accum1"][0] < temps["base"][0]           # no gradient accumulator
    # The remat policy changes the compiled program; on this tiny model XLA's own scheduling does
    # not keep the analytic order none > dots > full (seen: 136,483,328 vs 158,275,584 B).
    assert len({temps[k][1] for k in ("none", "base", "full")}) >= 2
    assert temps["longer"][1] > temps["base"][1]


def test_compiler_flags_from_the_environment_join_the_config_only_when_set(monkeypatch):
    """The user's LIBTPU_INIT_ARGS / XLA_FLAGS reach the worker, so they are part of the config (and
    of the cache key); dump options and other backends' flags are not, and a clean environment keeps
    the keys every cached result was stored under."""
    from planner.compile import compile_config, compiler_flags, config_key

    plan = make_plan(PlanRequest(tpu="v4-8", model="Qwen2.5-7B", workload="train", bs=32, micro_bs=4, len=1024))
    for var in ("LIBTPU_INIT_ARGS", "XLA_FLAGS"):
        monkeypatch.delenv(var, raising=False)
    clean = compile_config(plan)
    assert "compiler_flags" not in clean
    monkeypatch.setenv("XLA_FLAGS", "--xla_dump_to=/tmp/x --xla_force_host_platform_device_count=4")
    assert compiler_flags() == {} and compile_config(plan) == clean
    monkeypatch.setenv("XLA_FLAGS", "--xla_dump_to=/tmp/x  --xla_backend_optimization_level=1")
    monkeypatch.setenv("LIBTPU_INIT_ARGS", " --xla_tpu_spmd_threshold_for_allgather_cse=0 ")
    flagged = compile_config(plan)
    assert flagged["compiler_flags"] == {"LIBTPU_INIT_ARGS": "--xla_tpu_spmd_threshold_for_allgather_cse=0",
                                         "XLA_FLAGS": "--xla_backend_optimization_level=1"}
    assert config_key(flagged) != config_key(clean)


@needs_jax
def test_libtpu_flags_change_the_compile_and_are_reported(small_models, monkeypatch):
    """A libtpu flag that keeps XLA from sharing the lm_head's all-gather between the forward and the
    backward compiles a different step (this small tied config: 158,275,584 B of temp by default,
    133,109,760 B with it), under its own cache key, and the report names it."""
    from planner.compile import render_compile

    plan = _plan(small_models["qwen2"])
    monkeypatch.delenv("LIBTPU_INIT_ARGS", raising=False)
    default = compile_plan(plan)
    monkeypatch.setenv("LIBTPU_INIT_ARGS", "--xla_tpu_spmd_threshold_for_allgather_cse=0")
    flagged = compile_plan(plan)
    assert default.status == flagged.status == "ok", flagged.result.get("error")
    assert flagged.key != default.key and not flagged.cached
    assert flagged.memory["argument_bytes"] == default.memory["argument_bytes"]
    assert flagged.memory["temp_bytes"] < 0.9 * default.memory["temp_bytes"]
    text = render_compile(flagged, plan)
    assert "compiled with LIBTPU_INIT_ARGS='--xla_tpu_spmd_threshold_for_allgather_cse=0' from the environment" in text
    assert "compiled with" not in render_compile(default, plan)


def test_run_compile_reads_cache_without_jax(tmp_path, monkeypatch):
    import planner.compile as pc

    cfg = {"version": pc.REFERENCE_VERSION, "x": 1}
    monkeypatch.setenv("HBMPLAN_COMPILE_CACHE", str(tmp_path))
    (tmp_path / f"{pc.config_key(cfg)}.json").write_text(json.dumps({"config": cfg, "result": {"status": "ok"}}))
    monkeypatch.setattr(pc, "unavailable_reason", lambda: "no jax")
    result, cached, _ = run_compile(cfg)
    assert cached and result["status"] == "ok"
    with pytest.raises(PlanError):
        run_compile({**cfg, "x": 2})


def test_fallback_device_orders_walk_physical_neighbours():
    """The device orders for slices whose compile rejects collective-permutes between chips that are
    not ICI neighbours (v5e-32, a 4x8 grid without wraparound links): consecutive chips are one hop
    apart, and on 2-D grids with an even side the ring closes (XLA's ring permutes pair the last
    chip with the first)."""
    from itertools import product

    from planner.compile.aot import ring_order, snake_order

    def hops(a, b):
        return sum(abs(x - y) for x, y in zip(a, b))

    for dims in ((4, 8, 1), (2, 2, 1), (2, 4, 1), (8, 4, 1), (4, 4, 1), (2, 2, 2), (4, 4, 4), (3, 5, 2), (3, 3, 1)):
        coords = [tuple(c) for c in product(*(range(d) for d in dims))][::-1]  # scrambled start order
        for order in (snake_order, ring_order):
            idx = order(coords)
            assert sorted(idx) == list(range(len(coords)))
            path = [coords[i] for i in idx]
            assert all(hops(a, b) == 1 for a, b in zip(path, path[1:])), (order.__name__, dims)
        ring = ring_order(coords)
        if dims[2] == 1 and any(d % 2 == 0 for d in dims[:2]):
            assert hops(coords[ring[-1]], coords[ring[0]]) == 1, dims
    # a 3x3 grid has no closed ring (odd number of chips): the open snake is the fallback
    odd = [(x, y, 0) for x in range(3) for y in range(3)]
    assert ring_order(odd) == snake_order(odd)


def test_compile_errors_print_on_one_line():
    from planner.compile import _one_line

    msg = "UNIMPLEMENTED: On platforms with limited ICI routing\n\t\n\nError encountered while compiling %x"
    assert _one_line(msg, 300) == ("UNIMPLEMENTED: On platforms with limited ICI routing Error encountered while "
                                   "compiling %x")
    assert _one_line("a " * 400, 50) == "a " * 24 + "a…"
    assert len(_one_line("a " * 400, 50)) == 50


def test_ring_device_order_is_reported():
    """A compile that needed the ring device order says so (text and JSON); a failed one stays one line."""
    from planner.compile import build_report, compile_config, compile_report_json, render_compile
    from planner.plan import make_plan
    from planner.request import PlanRequest

    plan = make_plan(PlanRequest(tpu="v5e-32", model="Qwen2.5-7B", workload="train", bs=64, micro_bs=32,
                                 prompt_len=512, len=512, optimizer="sgd"))
    cfg = compile_config(plan)
    assert cfg["tpu"]["topology"] == "v5e:4x8" and cfg["tpu"]["num_hosts"] == 8
    failed = build_report(plan, cfg, {"status": "error", "device_order": "ring",
                                      "error": "UNIMPLEMENTED: limited ICI routing\n\t\nError encountered"}, False, 1.0)
    text = render_compile(failed, plan)
    assert "device order: a closed ring of neighbouring chips" in text
    assert text.splitlines()[-1] == "compile verdict: compile failed: UNIMPLEMENTED: limited ICI routing Error encountered"
    assert compile_report_json(failed)["device_order"] == "ring"


def test_rl_compile_uses_the_plans_engine_bytes_calibration_included():
    """The compiled verdict's "free" is the analytic plan's, calibrated engine residual included:
    with XLA's arguments equal to the analytic resident, the two agree to the byte."""
    from planner.calibration import load_calibration
    from planner.compile import build_report, compile_config

    records, _ = load_calibration()
    plan = make_plan(PlanRequest(tpu="v4-8", model="Qwen2.5-7B", bs=32, micro_bs=4, prompt_len=512, len=1024),
                     records)
    assert plan.calibration is not None and plan.calibration.bytes > 0
    resident = plan.training.resident_bytes
    memory = {"argument_bytes": resident, "output_bytes": resident, "alias_bytes": resident,
              # the seed's step as XLA compiled it (bench row 30)
              "temp_bytes": 8_359_301_120, "peak_sum_bytes": resident + 8_359_301_120}
    rep = build_report(plan, compile_config(plan), {"status": "ok", "memory": memory}, True, 0.0)
    assert rep.free_at_step_bytes == plan.free_at_step_bytes
    assert rep.verdict == "oom" and rep.headline.endswith(f"{plan.free_at_step_bytes / GiB:.2f} GiB free")
    assert any("calibration records" in n for n in rep.notes)
