"""Model specs built from a Hugging Face ``config.json``.

A :class:`ModelSpec` holds every field memory depends on, for the families sglang-jax 0.0.2
serves: ``qwen2``, ``qwen3``, ``qwen3_moe`` and ``llama``. Parameter counts are exact element
counts of the Hugging Face checkpoint.
"""

from __future__ import annotations

import json
from typing import NamedTuple
from functools import cache
from pathlib import Path

from planner.errors import PlanError

SUPPORTED_FAMILIES = ("qwen2", "qwen3", "qwen3_moe", "llama")
CATALOG_DIR = Path(__file__).with_name("model_configs")


class MoESpec(NamedTuple):
    """Mixture-of-experts fields (``qwen3_moe``).

    Attributes:
      num_experts: routed experts per MoE layer.
      experts_per_tok: experts each token is routed to.
      moe_intermediate: intermediate size of one expert.
      sparse_layers: indices of the layers whose MLP is the MoE block.
    """

    num_experts: int
    experts_per_tok: int
    moe_intermediate: int
    sparse_layers: tuple[int, ...]


class ModelSpec(NamedTuple):
    """The memory-relevant shape of a decoder-only transformer.

    Attributes:
      name: short name or path it was loaded from.
      family: HF ``model_type``.
      hidden: hidden size H.
      intermediate: dense MLP intermediate size I.
      layers: decoder layers L.
      heads: attention (query) heads nH.
      kv_heads: key/value heads.
      head_dim: per-head dim hd.
      vocab: vocabulary size V.
      tied: the lm_head shares the embedding table.
      qkv_bias: q/k/v projections have biases (always for qwen2).
      o_bias: the output projection has a bias (llama/qwen3 with ``attention_bias``).
      qk_norm: per-head RMSNorm on q and k (qwen3, qwen3_moe).
      max_position: ``max_position_embeddings``.
      dtype: checkpoint dtype (``torch_dtype``).
      moe: MoE fields, or None for a dense model.
      config_json: the canonical JSON text of the config (``config_hash`` is its sha256).
    """

    name: str
    family: str
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied: bool
    qkv_bias: bool
    o_bias: bool
    qk_norm: bool
    max_position: int
    dtype: str
    moe: MoESpec | None
    config_json: str

    @property
    def config_hash(self) -> str:
        """sha256 hex digest of the canonical JSON of the config."""
        import hashlib

        return hashlib.sha256(self.config_json.encode("utf-8")).hexdigest()

    # -- element counts (exact, HF checkpoint layout) ------------------------------------------
    @property
    def q_dim(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    def heads_tp_does_not_divide(self, tp: int) -> list[tuple[int, str]]:
        """(count, kind) of the attention and KV head counts that ``tp`` does not divide: a head-sharded
        attention kernel (and the reference step of ``--compile``) needs both divided."""
        return [(n, kind) for n, kind in ((self.heads, "attention heads"), (self.kv_heads, "KV heads")) if n % tp]

    def attention_params(self) -> int:
        """q, k, v, o weights of one layer (no biases)."""
        H = self.hidden
        return 2 * H * self.q_dim + 2 * H * self.kv_dim

    def bias_params(self) -> int:
        """Attention biases of one layer."""
        n = (self.q_dim + 2 * self.kv_dim) if self.qkv_bias else 0
        return n + (self.hidden if self.o_bias else 0)

    def norm_params(self) -> int:
        """RMSNorm weights of one layer: input and post-attention norms, plus q/k norms."""
        return 2 * self.hidden + (2 * self.head_dim if self.qk_norm else 0)

    def is_moe_layer(self, i: int) -> bool:
        return self.moe is not None and i in self.moe.sparse_layers

    def mlp_params(self, i: int) -> int:
        """MLP of layer ``i``: dense gate/up/down, or router plus all experts."""
        H = self.hidden
        if self.is_moe_layer(i):
            m = self.moe
            return H * m.num_experts + m.num_experts * 3 * H * m.moe_intermediate
        return 3 * H * self.intermediate

    def embedding_params(self) -> int:
        return self.vocab * self.hidden

    def lm_head_params(self) -> int:
        return 0 if self.tied else self.vocab * self.hidden

    def layer_params(self, i: int) -> int:
        return self.attention_params() + self.bias_params() + self.norm_params() + self.mlp_params(i)

    def param_count(self) -> int:
        """Exact parameter count of the checkpoint."""
        body = sum(self.layer_params(i) for i in range(self.layers))
        return self.embedding_params() + self.lm_head_params() + self.hidden + body

    def active_param_count(self) -> int:
        """Parameters a token touches (MoE: only ``experts_per_tok`` experts)."""
        if self.moe is None:
            return self.param_count()
        m = self.moe
        inactive = len(m.sparse_layers) * (m.num_experts - m.experts_per_tok) * 3 * self.hidden * m.moe_intermediate
        return self.param_count() - inactive


# -- parsing ------------------------------------------------------------------------------------


def canonical_config_json(config: dict) -> str:
    """The canonical JSON text of a config dict: sorted keys, no spaces, UTF-8 kept."""
    return json.dumps(config, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def config_hash(config: dict) -> str:
    """sha256 hex digest of the canonical JSON of a config dict."""
    import hashlib

    return hashlib.sha256(canonical_config_json(config).encode("utf-8")).hexdigest()


def _int_field(cfg: dict, key: str, *, default: int | None = None, minimum: int = 1) -> int:
    if key not in cfg or cfg[key] is None:
        if default is None:
            raise PlanError(f"config.json: missing required field {key!r}")
        return default
    value = cfg[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise PlanError(f"config.json: field {key!r} must be an integer, got {value!r}")
    if value < minimum:
        raise PlanError(f"config.json: field {key!r} must be >= {minimum}, got {value}")
    return value


def _bool_field(cfg: dict, key: str, default: bool) -> bool:
    value = cfg.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise PlanError(f"config.json: field {key!r} must be true or false, got {value!r}")
    return value


def spec_from_config(cfg: dict, name: str) -> ModelSpec:
    """Build a :class:`ModelSpec` from a parsed config.json dict.

    Raises:
      PlanError: naming the field, for a missing, mistyped or inconsistent field, or an
        unsupported ``model_type``.
    """
    if not isinstance(cfg, dict):
        raise PlanError("config.json: top level must be a JSON object")
    family = cfg.get("model_type")
    if family not in SUPPORTED_FAMILIES:
        raise PlanError(
            f"config.json: unsupported model_type {family!r}; supported: {', '.join(SUPPORTED_FAMILIES)}"
        )
    hidden = _int_field(cfg, "hidden_size")
    heads = _int_field(cfg, "num_attention_heads")
    kv_heads = _int_field(cfg, "num_key_value_heads", default=heads)
    layers = _int_field(cfg, "num_hidden_layers")
    vocab = _int_field(cfg, "vocab_size")
    if "head_dim" in cfg and cfg["head_dim"] is not None:
        head_dim = _int_field(cfg, "head_dim")
    else:
        if hidden % heads:
            raise PlanError(
                f"config.json: hidden_size {hidden} is not divisible by num_attention_heads {heads} "
                "and no head_dim is given"
            )
        head_dim = hidden // heads
    if heads % kv_heads:
        raise PlanError(
            f"config.json: num_attention_heads {heads} is not a multiple of num_key_value_heads {kv_heads}"
        )
    attention_bias = _bool_field(cfg, "attention_bias", False)
    qkv_bias = family == "qwen2" or attention_bias
    o_bias = family in ("llama", "qwen3", "qwen3_moe") and attention_bias
    moe = None
    if family == "qwen3_moe":
        num_experts = _int_field(cfg, "num_experts")
        step = _int_field(cfg, "decoder_sparse_step", default=1)
        mlp_only = cfg.get("mlp_only_layers") or []
        if not isinstance(mlp_only, list) or not all(isinstance(i, int) for i in mlp_only):
            raise PlanError(f"config.json: field 'mlp_only_layers' must be a list of ints, got {mlp_only!r}")
        sparse = tuple(i for i in range(layers) if i not in mlp_only and (i + 1) % step == 0)
        moe = MoESpec(
            num_experts=num_experts,
            experts_per_tok=_int_field(cfg, "num_experts_per_tok"),
            moe_intermediate=_int_field(cfg, "moe_intermediate_size"),
            sparse_layers=sparse,
        )
        if moe.experts_per_tok > num_experts:
            raise PlanError(
                f"config.json: num_experts_per_tok {moe.experts_per_tok} exceeds num_experts {num_experts}"
            )
        intermediate = _int_field(cfg, "intermediate_size", default=moe.moe_intermediate)
    else:
        intermediate = _int_field(cfg, "intermediate_size")
    dtype = cfg.get("torch_dtype") or cfg.get("dtype") or "bfloat16"
    if not isinstance(dtype, str):
        raise PlanError(f"config.json: field 'torch_dtype' must be a string, got {dtype!r}")
    return ModelSpec(
        name=name,
        family=family,
        hidden=hidden,
        intermediate=intermediate,
        layers=layers,
        heads=heads,
        kv_heads=kv_heads,
        head_dim=head_dim,
        vocab=vocab,
        tied=_bool_field(cfg, "tie_word_embeddings", False),
        qkv_bias=qkv_bias,
        o_bias=o_bias,
        qk_norm=family in ("qwen3", "qwen3_moe"),
        max_position=_int_field(cfg, "max_position_embeddings", default=32768),
        dtype=dtype,
        moe=moe,
        config_json=canonical_config_json(cfg),
    )


# -- catalog ------------------------------------------------------------------------------------


@cache
def catalog_names() -> tuple[str, ...]:
    """Short names of the shipped configs, e.g. ``('Llama-3.1-8B', ..., 'Qwen3-4B')``."""
    return tuple(sorted(p.stem for p in CATALOG_DIR.glob("*.json")))


def _catalog_key(name: str) -> str | None:
    key = name.strip().split("/")[-1].lower()
    for suffix in ("-instruct", "-base", "-chat"):
        if key.endswith(suffix):
            key = key[: -len(suffix)]
    for known in catalog_names():
        if known.lower() == key or known.lower().replace("-", "") == key.replace("-", ""):
            return known
    return None


def read_config(path: Path) -> dict:
    """Read a config.json, raising :class:`PlanError` on unreadable or malformed JSON."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise PlanError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise PlanError(f"{path}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None


def load_model_spec(name_or_path: str) -> ModelSpec:
    """Load a model by catalog short name (``Qwen2.5-7B``, ``Qwen/Qwen2.5-7B-Instruct``), by a
    path to a ``config.json``, or by a folder that holds one."""
    path = Path(name_or_path)
    try:
        path = path.expanduser()
    except RuntimeError:  # "~user" for a user this machine does not have: not a path here
        pass
    if path.is_dir():
        path = path / "config.json"
        if not path.is_file():
            raise PlanError(f"{name_or_path}: folder has no config.json")
    if path.is_file():
        return spec_from_config(read_config(path), str(name_or_path))
    known = _catalog_key(str(name_or_path))
    if known is None:
        raise PlanError(
            f"unknown model {name_or_path!r}: not a config.json path; catalog: {', '.join(catalog_names())}"
        )
    return spec_from_config(read_config(CATALOG_DIR / f"{known}.json"), known)
