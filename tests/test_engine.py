"""Engine memory against measured seed runs and hand-computed layouts."""

import pytest

from planner.engine import (
    NOT_ENOUGH_MEMORY,
    engine_memory_reading,
    get_profile,
    kv_heads_per_device,
    kv_layout,
    max_num_reqs,
    max_running_requests,
    param_bytes_per_device,
    replicated_kv_heads,
    req_to_token_bytes,
    size_kv,
)
from planner.errors import PlanError
from planner.model import load_model_spec, spec_from_config

from conftest import TINY_QWEN2

BD = get_profile("bd09a87")
V002 = get_profile("0.0.2")


def test_seed_fused_kv_bytes_exact():
    s = load_model_spec("Qwen2.5-3B")
    assert kv_layout(s, 4, 32768, BD).total_bytes == 2_415_992_832
    assert kv_layout(s, 4, 131072, BD).total_bytes == 9_663_750_144
    kv = kv_layout(s, 4, 131072, BD)
    assert kv.buffer_shape == (131073, 8, 128)
    assert kv.per_device_bytes * 4 == kv.total_bytes


def test_seed_second_param_set_per_device():
    # seeds 002/003: second_params_ready − kv_cache_dropped = 6,248,972,288 B over 4 devices
    s = load_model_spec("Qwen2.5-3B")
    assert param_bytes_per_device(s, 4, BD) == 6_248_972_288 // 4 == 1_562_243_072


def test_0_0_2_replicates_embedding():
    s = load_model_spec("Qwen2.5-3B")
    assert param_bytes_per_device(s, 4, V002) == 2_028_990_464


@pytest.mark.parametrize(
    "kv,tp,hkv,per_dev",
    [(2, 1, 2, 2), (2, 2, 2, 1), (2, 4, 4, 1), (2, 8, 8, 1), (8, 4, 8, 2), (8, 2, 8, 4), (4, 4, 4, 1)],
)
def test_kv_head_replication(kv, tp, hkv, per_dev):
    assert replicated_kv_heads(kv, tp) == hkv
    assert kv_heads_per_device(kv, tp) == per_dev


@pytest.mark.parametrize("tp", [1, 2, 4, 8])
def test_params_per_device_hand_computed_kv_below_tp(tp):
    # Qwen2.5-3B: V 151936, H 2048, L 36, nH 16, kv 2, hd 128, I 11008, tied, qkv bias.
    # tp 1: kv > tp; tp 2: kv == tp; tp 4 and 8: kv < tp, k/v copied up to tp heads.
    s = load_model_spec("Qwen2.5-3B")
    H, V, L, hd, I, nH, kv = 2048, 151936, 36, 128, 11008, 16, 2
    hkv = tp if tp > kv else kv
    layer = (2 * nH * hd * H + 2 * hkv * hd * H + 3 * H * I) // tp + 2 * H + (nH * hd + 2 * hkv * hd)
    elements = V * H // tp + H + L * layer
    assert param_bytes_per_device(s, tp, BD) == 2 * elements
    if tp == 4:
        assert 2 * elements == 1_562_243_072


@pytest.mark.parametrize("tp", [1, 2, 4, 8])
def test_params_per_device_hand_computed_kv_above_tp(tp):
    # Llama-3.1-8B: V 128256, H 4096, L 32, nH 32, kv 8, hd 128, I 14336, untied, no bias.
    s = load_model_spec("Llama-3.1-8B")
    H, V, L, hd, I, nH, kv = 4096, 128256, 32, 128, 14336, 32, 8
    layer = (2 * nH * hd * H + 2 * kv * hd * H + 3 * H * I) // tp + 2 * H
    assert param_bytes_per_device(s, tp, BD) == 2 * (2 * V * H // tp + H + L * layer)


def test_params_tp1_equal_param_count():
    for name in ["Qwen2.5-0.5B", "Qwen3-4B", "Llama-3.1-8B"]:
        s = load_model_spec(name)
        assert param_bytes_per_device(s, 1, BD) == 2 * s.param_count()


def test_0_0_2_dummy_layout_measured_on_cpu():
    # Per-device bytes measured on the real 0.0.2 engine on CPU (validator/NOTES-engine-layout.md).
    tiny = spec_from_config(TINY_QWEN2, "tiny")
    assert param_bytes_per_device(tiny, 4, V002, load_format="dummy") == 3_676_672
    kv4 = spec_from_config({**TINY_QWEN2, "num_key_value_heads": 4}, "kv4")
    assert param_bytes_per_device(kv4, 2, V002, load_format="dummy") == 6_299_648
    untied = spec_from_config({**TINY_QWEN2, "tie_word_embeddings": False}, "untied")
    assert param_bytes_per_device(untied, 4, V002, load_format="dummy") == 4_725_248
    moe = spec_from_config({**TINY_QWEN2, "model_type": "qwen3_moe", "head_dim": 128, "num_experts": 16,
                            "num_experts_per_tok": 2, "moe_intermediate_size": 256}, "moe")
    assert param_bytes_per_device(moe, 4, V002, load_format="dummy", num_devices=4) == 3_692_544
    assert kv_layout(tiny, 4, 256, V002).per_device_bytes == 263_168


def test_head_dim_alignment_differs_by_profile():
    s = spec_from_config({**TINY_QWEN2, "hidden_size": 320, "num_attention_heads": 4, "num_key_value_heads": 4}, "hd80")
    assert s.head_dim == 80
    assert kv_layout(s, 4, 100, BD).buffer_shape[2] == 128
    assert kv_layout(s, 4, 100, V002).buffer_shape[2] == 80


def test_sizing_design_card_inference():
    # Qwen2.5-3B on a v4-8 at mfs 0.88: memory allows ~1.49M tokens, the flag caps at 131072.
    s = load_model_spec("Qwen2.5-3B")
    params = param_bytes_per_device(s, 4, BD)
    cell = kv_layout(s, 4, 1, BD).cell_bytes
    assert cell == 1 * 128 * 36 * 2 * 2
    z = size_kv(33_014_415_360, params, cell, 0.88, 131072, 1)
    assert z.error is None and z.num_tokens == 131072 and z.capped_by == "max_total_tokens"
    f0 = engine_memory_reading(33_014_415_360)
    f1 = engine_memory_reading(33_014_415_360 - params)
    assert z.profiled_tokens == int((f1 - f0 * (1 - 0.88)) // cell)


def test_not_enough_memory_condition():
    z = size_kv(10 * 2**30, 6 * 2**30, 14336, 0.35, 1536, 1)
    assert z.error == NOT_ENOUGH_MEMORY and z.num_tokens == 0
    z = size_kv(10 * 2**30, 6 * 2**30, 14336, 0.7, 1536, 1)
    assert z.error is None and z.num_tokens == 1536


def test_page_rounding():
    z = size_kv(10 * 2**30, 1 * 2**30, 1000, 0.5, 1000, 64)
    assert z.num_tokens == 960


def test_float32_kib_reading():
    # float32 has 24 bits of mantissa: 33,014,415,360 B = 32,240,640 KiB is exact, odd values round
    assert engine_memory_reading(33_014_415_360) == 33_014_415_360
    assert engine_memory_reading(33_014_415_360 + 1000) == 33_014_415_360


def test_derived_host_numbers():
    assert max_num_reqs(1_491_451, 32768, None) == 4096  # int(1491451 / 32768 · 512) = 23303, capped
    assert max_num_reqs(10_000, 32768, None) == 2048
    assert max_num_reqs(10_000, 32768, 7) == 7
    assert max_running_requests(131072, 4096, 32768, 1, None) == 4  # FlashAttention: 131072 // 32768
    assert max_running_requests(8192, 4, 2048, 1, 4) == 4
    assert req_to_token_bytes(4, 2048) == 5 * 2052 * 4


def test_bad_tp():
    s = load_model_spec("Qwen2.5-7B")
    with pytest.raises(PlanError, match="valid tp"):
        param_bytes_per_device(s, 3, BD)


def test_unknown_profile():
    with pytest.raises(PlanError, match="0.0.2"):
        get_profile("9.9.9")
