"""Training-step memory: resident state and the step's temporaries, per device.

Resident state (between steps) is a known layout: master params, optimizer state, the
gradient accumulator and reference params, sharded over fsdp × tp. The step's temporaries are
an estimate of what XLA keeps live at the step's peak; each term names its basis, and
``bench/compile_vs_analytic`` holds them to the real XLA:TPU compiler.

Sequence and batch arithmetic follow the seeds' GRPO runner (see
``shared/notes/rl-training-memory.md``).
"""

from __future__ import annotations

from typing import NamedTuple

from planner.components import Component
from planner.errors import PlanError
from planner.model import ModelSpec
from planner.units import ceil_div, dtype_bytes, round_up

#: Sequence buckets of the runner: a length is rounded up to the first bucket that holds it.
SEQ_BUCKETS = (128, 256, 512, 1024, 2048, 4096, 8192)

#: Optimizer state, in copies of the params (the dtype of each copy given separately).
OPTIMIZER_STATE_COPIES = {"sgd": 0, "lion": 1, "adamw": 2}


def bucket(n: int) -> int:
    """Round a sequence length up to the runner's bucket (multiples of 8192 beyond the last)."""
    for b in SEQ_BUCKETS:
        if n <= b:
            return b
    return round_up(n, SEQ_BUCKETS[-1])


def train_seq_len(prompt_len: int, gen_len: int) -> int:
    """Training sequence: bucket(prompt) + bucket(generation)."""
    return bucket(prompt_len) + bucket(gen_len)


class Mesh(NamedTuple):
    """Training mesh axes; the batch is split over dp × fsdp, params over fsdp × tp."""

    dp: int
    fsdp: int
    tp: int

    @property
    def size(self) -> int:
        return self.dp * self.fsdp * self.tp

    def __str__(self) -> str:
        return f"{self.dp},{self.fsdp},{self.tp}"


def parse_mesh(text: str | None, num_devices: int) -> Mesh:
    """Parse ``"dp,fsdp,tp"`` (one axis may be -1); default all devices on fsdp."""
    if text is None:
        return Mesh(1, num_devices, 1)
    parts = str(text).replace("x", ",").split(",")
    try:
        dims = [int(p) for p in parts]
    except ValueError:
        raise PlanError(f"--mesh must be three integers dp,fsdp,tp (one may be -1), got {text!r}") from None
    if len(dims) != 3 or dims.count(-1) > 1 or any(d == 0 or d < -1 for d in dims):
        raise PlanError(f"--mesh must be three integers dp,fsdp,tp (one may be -1), got {text!r}")
    if -1 in dims:
        known = -1 * dims[0] * dims[1] * dims[2]
        if num_devices % known:
            raise PlanError(f"--mesh {text} does not divide the slice's {num_devices} devices")
        dims[dims.index(-1)] = num_devices // known
    mesh = Mesh(*dims)
    if mesh.size != num_devices:
        raise PlanError(f"--mesh {text} has {mesh.size} devices; the slice has {num_devices}")
    return mesh


class TrainShape(NamedTuple):
    """The batch and sequence shape of one training step.

    Attributes:
      sequences: sequences per step (prompts × samples per prompt).
      padded_sequences: padded to a multiple of dp × fsdp.
      micro_batch: sequences per micro-step (global).
      grad_accum: micro-steps per step.
      seq_len: tokens per training sequence (bucketed).
      micro_per_device: sequences per device per micro-step.
      tokens_per_device: micro_per_device × seq_len.
    """

    sequences: int
    padded_sequences: int
    micro_batch: int
    grad_accum: int
    seq_len: int
    micro_per_device: int
    tokens_per_device: int


def train_shape(sequences: int, micro_bs: int | None, prompt_len: int, gen_len: int, mesh: Mesh) -> TrainShape:
    """Batch arithmetic of the runner: pad, split into micro-batches, bucket the sequence."""
    shards = mesh.dp * mesh.fsdp
    padded = round_up(sequences, shards)
    micro = padded if micro_bs is None else micro_bs
    if micro % shards:
        raise PlanError(
            f"--micro-bs {micro} cannot be sharded over dp×fsdp = {shards} devices; use a multiple of {shards}"
        )
    if micro > padded:
        micro = padded
    if padded % micro:
        raise PlanError(f"--micro-bs {micro} does not divide the {padded} sequences per step")
    seq = train_seq_len(prompt_len, gen_len)
    per_dev = micro // shards
    return TrainShape(sequences, padded, micro, padded // micro, seq, per_dev, per_dev * seq)


# -- element counts of the sharded training params ----------------------------------------------


def sharded_param_elements(spec: ModelSpec, mesh: Mesh) -> int:
    """Param elements per device under P('fsdp','tp') for matrices, replicated vectors."""
    shard = mesh.fsdp * mesh.tp
    matrices = spec.param_count() - replicated_param_elements(spec)
    return ceil_div(matrices, shard) + replicated_param_elements(spec)


def replicated_param_elements(spec: ModelSpec) -> int:
    """Norms and biases: replicated on every device."""
    per_layer = spec.norm_params() + spec.bias_params()
    return spec.layers * per_layer + spec.hidden


def _layer_activation_elements(spec: ModelSpec, tp: int) -> tuple[int, int]:
    """(dot outputs, other elementwise outputs) per token of one layer, per device."""
    H = spec.hidden
    inter = spec.intermediate if spec.moe is None else spec.moe.moe_intermediate * spec.moe.experts_per_tok
    dots = ceil_div(spec.q_dim + 2 * spec.kv_dim, tp) + H + ceil_div(2 * inter, tp) + H
    elementwise = 2 * H + ceil_div(inter, tp)
    return dots, elementwise


class TrainingMemory(NamedTuple):
    """Per-device training memory.

    Attributes:
      shape: the batch/sequence shape.
      mesh: the mesh.
      resident: components that live across steps.
      step: the step's temporaries (what ``jit_training_step`` reserves).
    """

    shape: TrainShape
    mesh: Mesh
    resident: tuple[Component, ...]
    step: tuple[Component, ...]

    @property
    def resident_bytes(self) -> int:
        return sum(c.bytes for c in self.resident)

    @property
    def step_temp_bytes(self) -> int:
        return sum(c.bytes for c in self.step)


def training_memory(
    spec: ModelSpec,
    mesh: Mesh,
    shape: TrainShape,
    optimizer: str = "lion",
    param_dtype: str = "float32",
    compute_dtype: str = "bfloat16",
    remat: str = "dots",
    beta: float = 0.0,
) -> TrainingMemory:
    """Resident state and step temporaries of one device."""
    it_p = dtype_bytes(param_dtype)
    it_c = dtype_bytes(compute_dtype)
    n_dev = sharded_param_elements(spec, mesh)
    shard = mesh.fsdp * mesh.tp
    common = {"P": spec.param_count(), "fsdp": mesh.fsdp, "tp": mesh.tp, "P_dev": n_dev}
    resident = [
        Component("train.master_params", n_dev * it_p, "P_dev · it_p   (P_dev = matrices/(fsdp·tp) + norms/biases)",
                  {**common, "it_p": it_p}, basis="P('fsdp','tp') on matrices; norms and biases replicated"),
    ]
    if optimizer == "adafactor":
        factored = 0
        for _ in range(spec.layers):
            H = spec.hidden
            inter = spec.intermediate
            mats = [(H, spec.q_dim), (H, spec.kv_dim), (H, spec.kv_dim), (spec.q_dim, H), (H, inter), (H, inter), (inter, H)]
            factored += sum(r + c for r, c in mats)
        factored += 2 * (spec.vocab + spec.hidden) * (1 if spec.tied else 2) // 2
        opt = (ceil_div(factored, shard) + replicated_param_elements(spec)) * 4
        resident.append(Component(
            "train.optimizer_state", opt, "Σ_matrices (rows + cols) · 4 / (fsdp·tp) + vectors · 4",
            {**common, "factored_elements": factored}, exact=False,
            basis="optax adafactor factored second moments (fp32); MoE expert matrices counted as dense MLP",
        ))
    else:
        copies = OPTIMIZER_STATE_COPIES[optimizer]
        if copies:
            resident.append(Component(
                "train.optimizer_state", copies * n_dev * it_p, f"{copies} · P_dev · it_p   ({optimizer})",
                {**common, "copies": copies, "it_p": it_p},
                basis=f"optax {optimizer} state in the param dtype, sharded like the params",
            ))
    if shape.grad_accum > 1:
        resident.append(Component(
            "train.grad_accumulator", n_dev * it_p, "P_dev · it_p   (zeros_like(params), grad_accum > 1)",
            {**common, "it_p": it_p, "grad_accum": shape.grad_accum},
            basis="present only when grad_accum > 1",
        ))
    if beta != 0.0:
        resident.append(Component(
            "train.reference_params", n_dev * it_p, "P_dev · it_p   (KL reference copy, beta != 0)",
            {**common, "it_p": it_p, "beta": beta},
        ))

    step = _step_temporaries(spec, mesh, shape, n_dev, it_p, it_c, remat)
    return TrainingMemory(shape, mesh, tuple(resident), tuple(step))


def _step_temporaries(spec, mesh, shape, n_dev, it_p, it_c, remat) -> list[Component]:
    tok = shape.tokens_per_device
    tp = mesh.tp
    dots, elementwise = _layer_activation_elements(spec, tp)
    L, H = spec.layers, spec.hidden
    naive_attention = shape.seq_len % 128 != 0
    scores = shape.micro_per_device * ceil_div(spec.heads, tp) * shape.seq_len**2 * 4 if naive_attention else 0
    est = "estimate; held to XLA:TPU by bench/compile_vs_analytic"
    inputs = {"tok": tok, "L": L, "H": H, "tp": tp, "it_c": it_c, "remat": remat}

    if remat == "full":
        saved = L * tok * H * it_c
        saved_formula = "L · tok · H · it_c   (nothing_saveable: layer inputs only)"
    elif remat == "dots":
        saved = L * tok * H * it_c
        saved_formula = "L · tok · H · it_c   (dots policy inside each scanned layer: only the carry crosses layers)"
    else:
        saved = L * tok * (H + dots + elementwise) * it_c + (L * scores // 2 if naive_attention else 0)
        saved_formula = "L · tok · (H + dots + elementwise) · it_c  (+ L · bf16 scores if naive)"
    working = tok * (dots + elementwise) * it_c + scores
    layer_weights = spec.layer_params(0) - spec.norm_params() - spec.bias_params()
    gather = ceil_div(layer_weights, tp) * it_c
    logits = tok * ceil_div(spec.vocab, tp) * (it_c + 4)
    head_params = spec.embedding_params() + spec.lm_head_params()
    head_grads = ceil_div(head_params, mesh.fsdp * mesh.tp) * it_p
    saved_one = saved // max(L, 1)
    # The backward has two candidate peaks. At its start: every saved activation, the logits
    # and their fp32 gradient, and the embedding/lm_head gradients. At its end: every gradient,
    # plus the first layer's recomputed working set, its gathered weights and its saved inputs.
    start_phase = saved + logits + head_grads
    end_phase = n_dev * it_p + working + gather + saved_one
    phases = {"backward_start": start_phase, "backward_end": end_phase}
    peak = max(phases, key=phases.get)
    common = {**inputs, "peak_phase": peak, "phase_bytes": phases}
    t = "transient"
    if peak == "backward_start":
        return [
            Component("step.gradients", head_grads, "(V·H · (2 if untied else 1))/(fsdp·tp) · it_p   "
                      "(embedding and lm_head gradients, produced first)",
                      {**common, "head_params": head_params, "it_p": it_p}, exact=False, phase=t, basis=est),
            Component("step.saved_activations", saved, saved_formula, common, exact=False, phase=t, basis=est),
            Component("step.logits", logits, "tok · V/tp · (it_c + 4)   (bf16 logits + fp32 gradient of "
                      "log-softmax/entropy, full vocab, one micro-batch)",
                      {**common, "V": spec.vocab}, exact=False, phase=t, basis=est),
        ]
    return [
        Component("step.gradients", n_dev * it_p, "P_dev · it_p   (full gradients of one micro-step)",
                  {**common, "P_dev": n_dev, "it_p": it_p}, exact=True, phase=t,
                  basis="value_and_grad output, sharded like the params"),
        Component("step.layer_working_set", working, "tok · (dots + elementwise) · it_c + naive scores",
                  {**common, "dots_per_token": dots, "elementwise_per_token": elementwise,
                   "attention_scores": scores, "naive_attention": naive_attention},
                  exact=False, phase=t,
                  basis="one layer's recomputed activations; naive attention (seq % 128 != 0) adds "
                  "mb · nH/tp · s² · 4; " + est),
        Component("step.fsdp_gather", gather, "layer weights / tp · it_c   (one layer all-gathered over fsdp)",
                  {**common, "layer_weights": layer_weights}, exact=False, phase=t, basis=est),
        Component("step.saved_activations", saved_one, "saved activations of the first layer", common,
                  exact=False, phase=t, basis=est),
    ]
