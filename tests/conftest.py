"""Shared test helpers: tiny config.json files written per test, never a hub."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

TINY_QWEN2 = {
    "architectures": ["Qwen2ForCausalLM"],
    "model_type": "qwen2",
    "hidden_size": 512,
    "intermediate_size": 1024,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 1024,
    "tie_word_embeddings": True,
    "max_position_embeddings": 2048,
    "torch_dtype": "bfloat16",
}


def write_config(folder: Path, **overrides) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    cfg = {**TINY_QWEN2, **overrides}
    path = folder / "config.json"
    path.write_text(json.dumps(cfg))
    return path


@pytest.fixture
def tiny_config(tmp_path) -> Path:
    return write_config(tmp_path / "tiny")
