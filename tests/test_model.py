import json
from pathlib import Path

import pytest

from planner.errors import PlanError
from planner.model import catalog_names, load_model_spec, spec_from_config

from conftest import TINY_QWEN2, write_config

PUBLISHED = json.loads((Path(__file__).parent / "data" / "published_param_counts.json").read_text())


def test_issue_param_counts():
    assert load_model_spec("Qwen2.5-0.5B").param_count() == 494_032_768
    assert load_model_spec("Qwen2.5-3B").param_count() == 3_085_938_688
    assert load_model_spec("Qwen2.5-7B").param_count() == 7_615_616_512
    assert load_model_spec("Qwen3-4B").param_count() == 4_022_468_096
    assert load_model_spec("Llama-3.1-8B").param_count() == 8_030_261_248


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_counts(name):
    assert load_model_spec(name).param_count() == PUBLISHED[name]


def test_catalog_covers_families():
    names = catalog_names()
    for want in ["Qwen2.5-0.5B", "Qwen2.5-72B", "Qwen3-0.6B", "Qwen3-32B", "Qwen3-30B-A3B", "Qwen3-235B-A22B",
                 "Llama-3.2-1B", "Llama-3.1-70B"]:
        assert want in names
    assert {load_model_spec(n).family for n in names} == {"qwen2", "qwen3", "qwen3_moe", "llama"}


def test_hub_style_names_resolve():
    assert load_model_spec("Qwen/Qwen2.5-7B-Instruct").name == "Qwen2.5-7B"


def test_fields():
    s = load_model_spec("Qwen3-4B")
    assert (s.head_dim, s.qk_norm, s.tied, s.qkv_bias) == (128, True, True, False)
    q = load_model_spec("Qwen2.5-7B")
    assert (q.qkv_bias, q.tied, q.kv_heads, q.vocab) == (True, False, 4, 152064)
    m = load_model_spec("Qwen3-30B-A3B")
    assert m.moe.num_experts == 128 and m.moe.experts_per_tok == 8 and len(m.moe.sparse_layers) == 48
    assert 3.0e9 < m.active_param_count() < 3.5e9


def test_tiny_config_hand_count(tiny_config):
    s = load_model_spec(str(tiny_config))
    # embed 1024*512 + final norm 512 + 2 * (q,o 2*512*512 + k,v 2*512*256 + bias 512+2*256 + norms 1024 + mlp 3*512*1024)
    per_layer = 2 * 512 * 512 + 2 * 512 * 256 + (512 + 512) + 1024 + 3 * 512 * 1024
    assert s.param_count() == 1024 * 512 + 512 + 2 * per_layer
    assert load_model_spec(str(tiny_config.parent)).param_count() == s.param_count()


@pytest.mark.parametrize(
    "mutation,field",
    [
        ({"hidden_size": "512"}, "hidden_size"),
        ({"num_hidden_layers": 0}, "num_hidden_layers"),
        ({"num_key_value_heads": 3}, "num_key_value_heads"),
        ({"model_type": "gpt2"}, "model_type"),
        ({"vocab_size": -5}, "vocab_size"),
        ({"tie_word_embeddings": "yes"}, "tie_word_embeddings"),
    ],
)
def test_bad_configs_name_the_field(mutation, field):
    with pytest.raises(PlanError) as err:
        spec_from_config({**TINY_QWEN2, **mutation}, "bad")
    assert field in str(err.value)


def test_missing_field(tmp_path):
    cfg = dict(TINY_QWEN2)
    del cfg["hidden_size"]
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(PlanError, match="hidden_size"):
        load_model_spec(str(tmp_path))


def test_malformed_json(tmp_path):
    p = tmp_path / "config.json"
    p.write_text("{not json")
    with pytest.raises(PlanError, match="malformed JSON"):
        load_model_spec(str(p))


def test_unknown_model_lists_catalog():
    with pytest.raises(PlanError) as err:
        load_model_spec("Mistral-7B")
    assert "Qwen2.5-7B" in str(err.value)
