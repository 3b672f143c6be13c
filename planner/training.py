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
from planner.param_layout import model_fields, param_arrays, shard_shape
from planner.tpu import GENERATIONS
from planner.tpu_layout import padding_bytes
from planner.units import ceil_div, dtype_bytes, fmt_gib, round_up

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

    @property
    def batch_shards(self) -> int:
        """Devices the batch is split over (dp × fsdp): a micro-batch is a multiple of it."""
        return self.dp * self.fsdp

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
    shards = mesh.batch_shards
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


def _active_intermediate(spec: ModelSpec) -> int:
    """MLP width one token passes through: the dense intermediate, or the routed experts' together."""
    return spec.intermediate if spec.moe is None else spec.moe.moe_intermediate * spec.moe.experts_per_tok


def _layer_activation_elements(spec: ModelSpec, tp: int) -> tuple[int, int]:
    """(dot outputs, other saved values) per token of one layer, per device.

    Dot outputs are what the ``dots`` policy (checkpoint_dots_with_no_batch_dims) saves: q, k, v,
    gate and up (column-parallel, split over tp) and the o and down outputs (H each). The other
    values are what a layer without remat also keeps for its backward: the two normalised inputs,
    the residual stream, the attention output and the SwiGLU product.
    """
    H = spec.hidden
    inter = _active_intermediate(spec)
    dots = ceil_div(spec.q_dim + 2 * spec.kv_dim, tp) + H + ceil_div(2 * inter, tp) + H
    elementwise = 3 * H + ceil_div(spec.q_dim + inter, tp)
    return dots, elementwise


#: Without remat the splash-attention kernel's saved values are laid out per head with the head dim
#: padded to the 128 lanes, and its float32 softmax statistics take 128 lanes per head and token.
_ATTENTION_LANES = 128


def _no_remat_saved_bytes_per_token(spec: ModelSpec, tp: int, it_c: int) -> int:
    """Bytes one layer keeps per token for its backward without remat, per device.

    Read from XLA:TPU's buffer assignment at the peaks of four compiles (bench rows 65, 75, 102, 136:
    Qwen2.5-0.5B, Qwen3-0.6B, Qwen2.5-3B and Llama-3.2-1B, to the byte): the gate and up outputs, two
    [tok, H] values (the normalised inputs), the attention kernel's q input and output (heads x padded
    head dim, bf16, twice) and the transposed q, its float32 statistics (128 lanes per head), k and v
    (kv heads x padded head dim), and with per-head q/k norms float32 copies of q and k. The o and down
    outputs, the SwiGLU product and the residual stream are not kept (recomputed or not needed).
    """
    heads, kv_heads = ceil_div(spec.heads, tp), ceil_div(spec.kv_heads, tp)
    padded_head = max(spec.head_dim, _ATTENTION_LANES)
    per_token = it_c * (2 * ceil_div(_active_intermediate(spec), tp) + 2 * spec.hidden + heads * spec.head_dim)
    per_token += 2 * it_c * (heads + kv_heads) * padded_head + 4 * _ATTENTION_LANES * heads
    if spec.qk_norm:
        per_token += 4 * (heads + kv_heads) * spec.head_dim
    return per_token


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
    *,
    xla_limit_bytes: int | None = None,
    generation: str | None = None,
) -> TrainingMemory:
    """Resident state and step temporaries of one device.

    Args:
      xla_limit_bytes: the slice's per-device HBM limit in bytes (what XLA compiles against);
        ``None`` assumes a v4 chip's (the TPU catalog's limit).
      generation: the TPU generation name (``"v5e"``); ``None`` assumes v4. Both shape the step
        temporaries: how far XLA's scheduler can hoist the fsdp all-gathers, and the logits work.
    """
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

    padding = _layout_padding(spec, mesh, optimizer, it_p, shape.grad_accum, beta)
    if padding is not None:
        resident.append(padding)

    step = _step_temporaries(spec, mesh, shape, n_dev, it_p, it_c, remat,
                             resident_bytes=sum(c.bytes for c in resident),
                             xla_limit_bytes=xla_limit_bytes, generation=generation,
                             reference_forward=beta != 0.0)
    return TrainingMemory(shape, mesh, tuple(resident), tuple(step))


def _layout_padding(spec: ModelSpec, mesh: Mesh, optimizer: str, it_p: int, grad_accum: int,
                    beta: float) -> Component | None:
    """The TPU tiled-layout padding of the training state's arrays (:mod:`planner.tpu_layout`).

    Each param shard is padded the same way in every copy the state keeps of it: the params, the
    optimizer moments shaped like them, the gradient accumulator and the KL reference params.
    None for MoE models (no per-array layout here).
    """
    if spec.moe is not None:
        return None
    moments = OPTIMIZER_STATE_COPIES.get(optimizer, 0)  # adafactor's factored statistics: not counted
    copies = 1 + moments + (grad_accum > 1) + (beta != 0.0)
    axis_sizes = {"dp": mesh.dp, "fsdp": mesh.fsdp, "tp": mesh.tp}
    per_copy = 0
    # stacked: each layer array once, with a leading (unsharded) layer axis; every layer pads alike
    for name, (shape, axes) in param_arrays(model_fields(spec), stacked=True).items():
        count = 1
        if name.startswith("layers/"):
            count, shape, axes = shape[0], shape[1:], axes[1:]
        per_copy += count * padding_bytes(shard_shape(shape, axes, axis_sizes), it_p)
    return Component(
        "train.layout_padding", copies * per_copy,
        "copies · Σ_arrays (tiled − actual elements of the shard) · it_p",
        {"copies": copies, "per_copy_bytes": per_copy, "it_p": it_p, "fsdp": mesh.fsdp, "tp": mesh.tp},
        basis=("TPU tiled layouts: 8x128 tiles on matrices (XLA picks the dim order that pads less), "
               "512-byte to 1024-element tiles on vectors; read from libtpu's argument layouts in 27 compiles"
               + ("; adafactor's factored statistics not counted" if optimizer == "adafactor" else "")),
    )


#: The share of the compile-time HBM limit up to which XLA:TPU hoists weight all-gathers beside the
#: resident state (fitted). In the seven bench compiles whose estimate this caps (rows 30, 31, 111,
#: 131, 196, 208, 219) XLA stopped at 92.0-94.5% of the limit, and in held-out row 288 (v5e-8 with a
#: dp 2 mesh) at 90.2%: the capped estimate had been 1.8% to 28.0% above XLA, never below. It is not
#: libtpu's ``xla_tpu_scheduler_percent_shared_memory_limit``:
#: compiling row 30 with that option at 20 or 60 left its temp unchanged (7.785 GiB at O0, 8.023 GiB
#: at the default effort). ``xla_tpu_user_reserved_hbm_bytes`` does move it: with 1, 2 and 3 GB
#: reserved row 30 compiled to 6.875, 6.381 and 6.089 GiB, and to 6.089 GiB with 4-6 GB (a floor,
#: presumably the step without hoisting; bench/compile_vs_analytic.md).
SCHEDULER_MEMORY_SHARE = 0.95
#: Generations whose capped steps stopped lower: v5e at 92.0% (bench row 111, v5e-4 Llama-3.2-3B, +19.0%
#: against the 95% cap, +0.2% against this one) and 90.2% (row 288, held out, which prompted it: +28.0%,
#: +10.5%); v4 and v6e stopped at 93.2-94.5%.
_SCHEDULER_MEMORY_SHARE_BY_GENERATION = {"v5e": 0.92}


#: Generations on which the scheduler kept to that share only up to this many tokens per device. On
#: v5e it did at 512 and 1024 (bench rows 111, 288, 469); at 1536 and 2048 it hoisted past it and ran
#: out of memory at compile time in all three such compiles (rows 470-472 of the forty-ninth batch, fitted
#: since: 102-112% of the HBM limit, with 0.82-0.91x the uncapped hoisting's bytes as temp). Above it the
#: estimate is the uncapped hoisting, an upper bound. Held out after it (fiftieth batch, rows 476-482):
#: all seven verdicts as predicted, three compile OOMs and four capped steps that fit. v4 and v6e kept
#: to theirs up to 1536 and 2560 tokens/device (rows 30, 31, 208, 473, 475).
SCHEDULER_SHARE_MAX_TOKENS = {"v5e": 1024}
#: Past the share, XLA's attempted programs held 0.82-0.91x the uncapped hoisting (rows 470-472 and
#: 476-478); the estimate counts the largest of those shares, in percent, and never less than the share
#: itself, so it stays at or above all six. Held out after it (fifty-first batch, rows 483-486): four
#: more compile OOMs, the estimate 2.0-9.6% above their programs.
PAST_SHARE_HOISTED_PCT = 91


def past_share_note(train: TrainingMemory) -> str | None:
    """A note where the estimate counts hoisting past the scheduler's share (v5e above 1024 tokens/device)."""
    step = train.step[0].inputs if train.step else {}
    if not step.get("hoisted_past_share"):
        return None
    return ("the layers' hoisted gathers do not fit under XLA:TPU's scheduler share here, and above "
            f"{SCHEDULER_SHARE_MAX_TOKENS['v5e']} tokens/device on v5e XLA hoisted past it: all ten such compiles "
            "(bench rows 470-472, 476-478, 483-486) ran out of memory at compile time, their programs 0.82-0.91x "
            f"the uncapped hoisting; the estimate counts {PAST_SHARE_HOISTED_PCT}% of it, at or above all ten; "
            "check it with --compile")


def scheduler_memory_share(generation: str | None) -> float:
    """The share of the HBM limit up to which XLA:TPU hoists gathers beside the resident state."""
    return _SCHEDULER_MEMORY_SHARE_BY_GENERATION.get(generation or "", SCHEDULER_MEMORY_SHARE)
#: The HBM limit per device assumed when the caller passes no slice: a v4 chip's (the catalog's).
_FALLBACK_XLA_LIMIT = GENERATIONS["v4"].limit_bytes
#: Extra bytes per logits element that XLA:TPU keeps beside the bf16 logits gradient while it
#: back-propagates log_softmax + entropy over the full vocabulary (fitted: v4 4.0, within 4.07-4.23
#: on its 11 backward-peak configs; v5e/v6e 0.9, fitted together with the factor below).
_LOGITS_EXTRA_BYTES = {"v4": 4.0, "v5e": 0.9, "v6e": 0.9}
_LOGITS_EXTRA_DEFAULT = 4.0
#: With the vocabulary split over tp > 1 the backward's start holds, per element of the split
#: logits [tok, V/tp]: the split bf16 logits (it_c), the logits all-gathered over tp to the full
#: vocabulary (tok · V · it_c, i.e. it_c · tp per split element) and this many bytes more. The buffer
#: assignments of bench rows 331 (v4, tp 2), 378 (v4, tp 4), 375 (v6e, tp 4) and 382 (v5e, tp 4)
#: hold the split and the gathered logits at their peaks, to the byte (bf16[·, V/tp] and bf16[·, V]),
#: with the saved activations unscaled: XLA's temp was 0.8-10% above those live bytes. Over the 14
#: dots compiles with tp 2, 4 and 8 on v4, v5e and v6e outside the exception below the rest came to
#: 2.15-2.74 bytes, but for row 387 (v4-32, fsdp 4 x tp 4: 17.4, its backward held every layer's
#: activation gradients at once, as below); 2.15 is v4's tp 2 value (6.15-6.2 extra in all three
#: configs). History: fitted at tp 2 on v4 (rows 39-41, 48); the gathered term was read at tp 4
#: (thirty-seventh batch: rows 374, 375, 378 and 379 from 8.6-18.2% below XLA to within 2.6%); the
#: thirty-eighth batch (rows 381-388) held it out: v4 within 0.5%, but v5e and v6e 10.3-13.9% above
#: XLA while they still scaled the saved activations by their tp 1 factor (4/3, below), which the
#: live bytes do not show at tp > 1.
_LOGITS_EXTRA_TP_BYTES = 2.15
#: On v5e with an fsdp ring of 4+ chips beside tp the backward held more: row 18's buffer assignment
#: (v5e-8, fsdp 4 x tp 2) shows 1,009,254,400 B of the backward's [tok, I/tp] cotangents of every
#: layer (55 buffers) live at its peak, beside the saved activations. Those steps keep the fit they
#: had before the rule above: saved activations x 4/3 and 0.9 + this many bytes + it_c · (tp - 2) per
#: split element (v5e tp 2: a least-squares value over three configs that leaves +-12%; rows 18,
#: 42, 43, 49, 374 and 388 at -9.1% to +11.3%; with the rule above -22.5% to -4.0%). Value:
#: (the smallest fsdp it applies to, extra bytes per element).
_TP_COTANGENTS_HELD = {"v5e": (4, 5.0)}
#: On v5e and v6e (tp 1) the backward's temp allocation holds about 4/3 of the saved activations;
#: fitted by least squares on the nine v5e/v6e backward-peak configs of bench/compile_vs_analytic
#: (leave-one-out worst 9.5%). It is not the allocator's packing: at row 165's peak (v5e-8,
#: Llama-3.2-1B, read from its live ranges) XLA's temp was 5.8% above the live bytes, which held the
#: saved activations unscaled beside the gathered head, the bf16 logits and log_softmax's bf16
#: shifted logits; the factor and the logits' 0.9 bytes per element share what that leaves. It applies
#: to the dots policy; without remat the saved values are counted as XLA lays them out
#: (``_no_remat_saved_bytes_per_token``).
_SAVED_FACTOR = {"v5e": (4, 3), "v6e": (4, 3)}
#: With full remat on v5e/v6e the backward holds more next to the (small) saved layer inputs:
#: (saved factor, logits extra bytes per element) fitted on four grad_accum = 1 configs (Qwen3-1.7B on
#: v5e and v6e, Qwen2.5-1.5B and Llama-3.2-1B on v5e: -11% to +5%), where the dots policy's
#: constants left them 18-31% under.
_FULL_REMAT_BACKWARD = {"v5e": ((2, 1), 2.0), "v6e": ((2, 1), 2.0)}
#: Without remat, XLA hoisted the backward's copies of the gathered weights too. On v4 only for
#: layers of 94 MB (Qwen2.5-1.5B) and 121 MB (Llama-3.2-1B), not for 30 MB (Qwen2.5-0.5B); on v6e
#: also for Qwen2.5-0.5B's 30 MB layers (two configs), and on v5e (the same 0.5B config as on
#: v6e-4 compiled to within 0.2% of its bytes: bench rows 65 and 87).
_NO_REMAT_SECOND_COPY_MIN_LAYER_BYTES = {"v4": 64 * 1024**2, "v5e": 0, "v6e": 0}
_NO_REMAT_SECOND_COPY_MIN_DEFAULT = 64 * 1024**2
#: Generations on which, without remat, that second (backward) copy is still live beside the saved
#: activations when the backward starts (v6e: Qwen2.5-0.5B twice, Llama-3.2-1B; v5e: Qwen2.5-0.5B;
#: with the saved values counted exactly, bench rows 11, 52, 65, 75, 87, 102, 117 and 136 within 1.2%).
#: There XLA gathers it layer by layer through the forward, not at the step's start: row 102 (v6e-8,
#: Qwen2.5-3B) would need 1.17x its temp with both copies hoisted there. On v4 (Qwen2.5-1.5B,
#: Qwen3-1.7B) counting it at the backward's start overshot by 12-14%: both copies at the forward
#: start set the need.
_BACKWARD_COPIES_AT_BACKWARD_START = frozenset({"v5e", "v6e"})
#: Under the dots policy (grad_accum > 1), XLA hoisted the layers' all-gathers only where the resident
#: state (params, optimizer state, accumulator) was large next to the saved activations (unscaled,
#: bf16): at 2.67-2.70x and above on v6e and v4-16 (Qwen2.5-7B with lion, bench rows 33, 35, 37; with
#: adamw, row 141; Llama-3.2-3B with adamw, row 121), never at 2.37x or below where hoisting would
#: have raised the step (rows 28, 36, 38, 56, 57, 95, 104, 124, 125, 139). The same model and tokens
#: flip with the optimizer: Llama-3.2-3B on v6e-8 hoisted with adamw (2.70x) and not with lion (2.03x),
#: Qwen2.5-7B on v4-16 at 2048 tokens/device hoisted with adamw (2.67x). An earlier line on gathered
#: weights per saved activations (2.45x) missed rows 121, 139 and 141. v5e follows the same line:
#: Llama-3.2-3B and Qwen3-4B hoisted at 2.70x and 2.66x (rows 151, 152, compiled while the v5e line
#: stood at 3.0x to fit row 86: -32.6% and -45.2% then), Llama-3.2-3B at 3.04x (row 80); Qwen3-1.7B
#: with adamw prefetched only 7 of its 28 layers at 2.93x (row 86, +32%). The line applies on fsdp
#: rings of 8+ chips, and on v6e only to steps XLA runs as windowed-einsum rings
#: (``windowed_einsum_expected``). Below it, plain all-gather steps hoisted on v6e-8 (rows 149, 161,
#: 233 at 2.34x, 2.20x and 2.19x) and on 4-chip rings (v4-8 at 1.94x, row 63; v5e-4 at 2.03x and
#: v6e-4 at 2.37x, rows 237 and 238), but not on v4-16 and v5e-8 (rows 234-236 at 1.95-2.37x,
#: row 239 at 2.34x: the nineteenth batch, compiled to test a rule that exempted every plain step,
#: which they refuted). Every ring step below the line kept its gathers. The twentieth batch, seven
#: such steps held out after this rule (rows 240-246), came within 10% (six of seven as predicted; row
#: 246, v5e-4, landed between the two outcomes). When the line was set, of the 95 dots compiles with
#: grad_accum > 1 whose two outcomes differ by more than 5%, the rule got 92 right (not rows 162, 86 and
#: 246); today XLA's temp is nearer the predicted outcome in 205 of 219 (the rest are flagged steps, rows
#: near the line such as 162, 336 and 503, and tp 2 ring steps between the outcomes). With
#: full remat the saved activations are small and the gathers were hoisted (see
#: LOW_RESIDENT_PER_GATHERS for v6e's exception). On v6e the line sits at 2.43x, midway between the
#: bracketing ring compiles: held-out row 407 (v6e-32, Qwen2.5-7B, adamw, fsdp 8 x tp 4) ran its rings
#: hoisted at 2.49x (-19.8% on the estimate without hoisting, +2.7% with it), and row 56 (v6e-8,
#: Qwen3-4B, adamw) kept its gathers at 2.37x; no other compile on record lay between. Held out after it
#: (fifty-fourth batch), row 502 (row 407's step as two sequences of 768 tokens) hoisted at 2.49x (+2.7%)
#: and row 504 (row 56's as two of 768) kept its gathers at 2.37x (-5.6%), but row 503 (v6e-8,
#: Qwen2.5-7B, adamw, 2304 tokens/device) hoisted at 2.38x, below the line (-32.1%; its hoisted outcome
#: +3.5%): on v6e, as on v4-16, the ratio alone does not separate the two outcomes near the line.
#: Then Qwen2.5-7B with adamw at 2304 tokens/device hoisted at 2.378x on v4-16 too (diagnosis row 517,
#: 14.79 GiB where the line said 9.30; its plan's note had said the verdict turned on it), while Qwen3-4B
#: with adamw kept its gathers at 2.369x on v4-16 and v6e-8 (rows 154, 272, 56, 504): v4's and v6e's line
#: now sits between them, at 2.375x (no compile on record changes but row 503: -32.1% -> +3.5%).
#: The fifty-seventh batch, held out after, found no line there: between 2.375x and 2.5x rows 520 and 522
#: hoisted (-1.7%, +0.3%), rows 518, 519 and 521 kept their gathers (+37% to +50%), and below it
#: Qwen2.5-7B hoisted at 2.34x (row 525, -29.3%). It stays at 2.375x so that through that band the
#: estimate is the larger outcome (the old lines would have put rows 520 and 522 32-39% below XLA); the
#: plan prints the other.
#: In a ring step the decision is where XLA's scheduler places the windowed-einsum loops' buffer
#: allocations (in the forward, or just before each loop). Compiled with libtpu flags, it did not move
#: with HBM size (row 162 at 64 GiB) or the scheduler's memory settings (rows 162, 86). It did move with
#: the lm_head all-gather's sharing on row 334, but not on row 503 (bench/compile_vs_analytic.md, "What
#: sets the hoisting"). No memory ratio can be sharper than this line.
_HOIST_MIN_RESIDENT_PER_SAVED = {"v4": 2.375, "v5e": 2.5, "v6e": 2.375}
#: The smallest fsdp ring (chips) on which the line above applies. It applies only without a dp axis:
#: with dp 2 beside an 8-chip fsdp ring the dots steps below it hoisted every layer's plain gathers
#: (bench rows 308, 312 and 317 on v5e-16 and v4-32, at 2.19x, 2.19x and 2.40x: 36 x 154,140,672 B
#: and 16 x 121,634,816 B at their peaks, to the byte; -32.4%, -31.0%, -9.1% with the line,
#: -2.3%, -2.5%, -5.5% without).
_HOIST_LINE_MIN_FSDP = 8
#: The line for ring steps of models whose lm_head is its own weight (untied), on v4 and v6e. Set first
#: at 2.17x on Qwen2.5-7B alone (kept its gathers at 2.01x, bench row 145; hoisted at every ratio from
#: 2.34x: rows 525, 503, 517, 407, 502 and 14 more up to 5.35x), where the tied models went both ways
#: from 2.40x to 2.93x. The fifty-eighth batch, held out after it, brought Llama-3.1-8B and Qwen3-8B: at
#: 2.28x and 2.285x they kept their gathers (rows 526, 527: no ring buffer at their peaks, whose
#: backward held the SwiGLU products of :func:`untied_ring_swiglu_bytes`), at 2.336x and 2.36x (rows 529, 528,
#: tp 4 and 2) they hoisted, as Qwen2.5-7B at 2.339x (row 525, tp 2 on v6e). The line sits at 2.31x,
#: between 2.285x and 2.336x. It misses row 530 (Qwen2.5-7B with lion on v4-32, tp 2, kept its gathers at
#: 2.339x) and row 535 (Llama-3.1-8B on v6e-16, tp 2, hoisted at 2.13x). Held out after it (fifty-ninth
#: batch): rows 542 and 543 hoisted at 2.54x and 2.53x (-5.6%, -3.2%), row 544 (tp 2, v6e-16) at 2.36x
#: (+4.6%), rows 536-541 kept their gathers at 1.71x-2.28x (-5.3% to +4.5%), and row 545 (row 535's
#: Llama-3.1-8B step on v4-32) hoisted at 2.13x too (-23.9%; +2.7% for its hoisted outcome). v5e has no
#: untied ring step near its line on record; it keeps the line above.
_HOIST_MIN_RESIDENT_PER_SAVED_UNTIED = {"v4": 2.31, "v6e": 2.31}
#: The untied models' line for ring steps with tp 2, where they hoisted lower: with adamw at every ratio
#: from 1.89x (rows 547 and 549-551 of the sixtieth batch, compiled with no model change, 1.89x-2.10x on
#: v4-32 and v6e-16, -14.5% to -25.6% against the 2.31x line; rows 535 and 545 at 2.13x), where lion
#: kept its gathers at 1.75x and 1.80x (rows 548, 552: -2.0%, -2.3%) and 1.17x (row 509). The line sits
#: at 1.85x, between 1.796x and 1.888x. It misses row 530 (Qwen2.5-7B with lion on v4-32, kept its
#: gathers at 2.339x), where Qwen3-8B with lion hoisted at 2.36x on v4-32 and v6e-16 (rows 528, 544).
#: With tp 4 the 2.31x line holds (row 416 kept its gathers at 1.87x, row 529 hoisted at 2.34x).
_HOIST_MIN_RESIDENT_PER_SAVED_UNTIED_TP2 = {"v4": 1.85, "v6e": 1.85}
#: With an untied lm_head, a dots ring step without hoisting (tp 1: no recomputation model) holds every
#: layer's SwiGLU product at its backward's start beside the saved dot outputs: L · tok · I in bf16 more.
#: Read from the live ranges of bench rows 532 (v6e-8, Qwen3-8B: 108 = 3 x 36 bf16[2,1024,12288]
#: "rematted_computation/mul" values at the peak, where the saved-activations estimate has two per
#: layer) and 533 (v4-32, Qwen2.5-7B: 84 = 3 x 28 bf16[1,1280,18944]), and settled by flipping
#: ``tie_word_embeddings`` alone (diagnosis compiles, bench "Untied lm_heads"): row 533's step with a tied
#: Qwen2.5-7B came to 6,573,508,608 B of temp (-0.8% on the estimate without the term; untied
#: 7,775,799,808 B), and rows 144's and 430's steps with an untied Qwen2.5-3B to 6,693,108,736 and
#: 6,559,338,784 B (-1.9% and +2.8% with the term, -20.1% and -15.7% without). Over the ten untied ring
#: steps on record that peak there without hoisting (rows 58, 107-109, 113, 145, 348 and 531-533, four of
#: them flagged) it takes the median error from 14.1% to 4.3%; rows 58 and 348 go from -9.7% and -3.9% to
#: +11.6% and +12.5%, row 113 (v5e-32, sgd, flagged) from -1.3% to +18.8%. Steps with plain all-gathers
#: (v4-8: rows 106, 247, 269, 301) do not hold it: within 11% without. Held out after it (fifty-ninth
#: batch): six such steps on v4-16, v4-32, v6e-8 and v6e-16 (rows 536-541) from -5.3% to +4.5% (-22% to
#: -16% without); diagnosis row 546 (v4-32, grad_accum 1, the design card's smallest-slice suggestion)
#: -1.1% (-21.4% without).
def untied_ring_swiglu_bytes(spec, L: int, tok: int, it_c: int) -> int:
    """Bytes per device of every layer's SwiGLU product (L · tok · I · it_c) that a dots ring step of a
    dense model with an untied lm_head holds at its backward's start when its gathers are not hoisted."""
    return 0 if spec.tied or spec.moe is not None else L * tok * spec.intermediate * it_c
#: On 8+ chip fsdp rings the plain-gather dots steps kept their gathers where the resident state came
#: to less than this share of the gathered layer weights. With a dp axis beside the ring, where the
#: line above does not apply, it decides: lion and adamw hoisted at 0.83-1.22x (bench rows 299, 308,
#: 309, 312, 317-319, 322, 323), sgd kept its gathers at 0.57x and 0.59x (rows 320 and 321, +121% and
#: +83% against the hoisted estimate; fitted on those two), then rows 324-328, held out, went the
#: predicted way. Without a dp axis it holds above that line too: it was set from row 336 (v4-16
#: Llama-3.2-3B, sgd, 2.70x the saved activations, 0.57x the gathers: kept them), and the nine plain
#: steps held out after it (rows 337-341, 343-345 and 349: v4, v5e and v6e, 2.67x to 5.35x the saved
#: activations and 0.42x to 0.58x the gathers) all kept their gathers (-4.3% to +30.1%; the v4 steps at
#: 512 tokens/device high by the lm_head weight-gradient sub-phase). Ring steps hold 4/fsdp of the
#: gathered weights, not all of them, and the share does not decide them: row 342 (Qwen2.5-7B, sgd,
#: 0.58x, 3.57x the saved activations) and row 347 (lion on v4-32, 0.44x, 2.68x) ran and hoisted
#: rings; row 336, a ring step by v4's 768-token line since, kept its gathers at 2.70x, near the line.
_HOIST_MIN_RESIDENT_PER_GATHERS = 0.7
#: Generations on which the line applies only to windowed-einsum (ring) steps.
_HOIST_LINE_RING_STEPS_ONLY = frozenset({"v6e"})
#: Where the master params are already in the compute dtype (bf16 params: the layers' weights reach
#: their all-gathers with no cast), XLA:TPU on v4 hoisted none of the gathers in the accumulating
#: step: bench rows 247 and 249 (v4-8, Qwen2.5-7B lion dots and Qwen3-4B adamw full: 6.34 and 2.34
#: GiB of temp where hoisting would need 12.41 and 6.95 GiB), then rows 258-261 of the next held-out
#: batch (all four within 2% without the lm_head's weight-gradient sub-phase, which such steps lack:
#: ``_HEAD_GRAD_EXTRA_BYTES``). On v6e-4 the same kind of step hoisted every layer's gathers and the
#: lm_head's whole gather with them (rows 256 and 257: the peak's gathered buffers are
#: L · layer_weights · 2 B + V · H · 2 B to the byte; then rows 262-264, one of them an untied head,
#: within 2.7%), as ``_UNCAST_HEAD_HOISTED`` has it; so did v5e, which keeps the fp32 hoisting rules
#: (row 265, v5e-4, -2.9%; row 273, v5e-8, 6,171,394,048 B of gathers at its peak, layers and head to
#: the byte). Rows 268-276, held out after the v4 and v6e rules, came within 10% (median 1.6%). Where
#: the gathers run as windowed-einsum rings no generation hoisted them (rows 250, 266, 267, 277,
#: between the two outcomes; row 304, v4-16 at 768 tokens/device, at the lower one): those steps are
#: flagged (``unpredicted_step_reason``).
_UNCAST_HOISTS = {"v4": False}
#: Generations on which, with master params in the compute dtype, the lm_head's (tied embedding's)
#: all-gather is hoisted with the layers' in place of the embedding shard's cast.
_UNCAST_HEAD_HOISTED = frozenset({"v5e", "v6e"})
#: With GRPO's KL term (beta != 0) the step also runs a no-grad forward of the reference params. On
#: 4-chip slices XLA hoisted its layers' all-gathers beside the policy's in 6 of 7 compiles: at the
#: peaks of bench rows 279, 284 and 292 two sets of every layer's gathers (2 x 5,549,064,192 B on v4;
#: 5,637,144,576 + 6,425,149,440 B on v6e and 1,946,157,056 + 2,996,830,208 B on v5e, the reference
#: forward's with the tied head's whole gather, once on v6e, twice on v5e; on v4 only the shard's
#: cast). On 8-chip slices it hoisted none (rows 20, 281, 283, 285, 295, 296). The estimate counts
#: both sets, and such plans are flagged with both outcomes (``unpredicted_step_reason``).
_REFERENCE_HEAD_GATHERED = frozenset({"v5e", "v6e"})
#: XLA hoisted the layers' all-gathers only where all of them (bf16, split over tp) came to at most
#: half of the compile-time HBM limit. Above it, Qwen2.5-7B on v5e (13.05 GB of gathers, 77% of the
#: limit; weights 4.6x the saved activations) hoisted none in five compiles: v5e-8 with sgd and with
#: adafactor, v5e-16 with sgd at 1024 tokens/device, v5e-8 with sgd at 512 (bench rows 107-110;
#: the step peaked at the backward's start) and v5e-32 (row 113, compiled after this rule: -1.3%).
#: Below it every generation hoisted them: up to 40% of the limit (Qwen2.5-7B on v4-8 and v6e-8;
#: Llama-3.2-3B on v5e, 33%).
_HOIST_MAX_LIMIT_SHARE = 0.5
#: On v6e, in the accumulating step with checkpointed layers, XLA hoisted every layer's all-gathers
#: (as the step model does) in 15 configs whose resident state (params, optimizer state, accumulator)
#: came to 0.83-1.27x the gathered weights (lion, adamw, sgd; bench rows 33, 34, 45, 50, 51, 59, 60,
#: 61, 76, 79, 89, 103, 122, 123, 128). Below 0.7x (sgd, adafactor: 0.56-0.61x) it hoisted all, part
#: or none of them: Qwen2.5-7B and Llama-3.2-3B none (rows 119, 55, 70), Qwen2.5-3B and Qwen3-1.7B
#: part (rows 62, 69, 126, 127). There the estimate (all hoisted) is an upper bound; the plan says so.
LOW_RESIDENT_PER_GATHERS = {"v6e": 0.7}
#: Where XLA hoisted the tied embedding's all-gather (for the lm_head) with the layers': v5e on
#: 4-chip rings (Llama-3.2-1B, bench rows 9 and 135: -7.0% and -5.7% with it, -22% and -21% without).
#: On v5e's 8+ chip rings the peak held plain gathers without it (rows 159 and 178: every layer's
#: gathers, 1.00x, and no head; +15.5% and +19.5% with it). Of the 13 v5e compiles on 8+ chip rings
#: whose estimate it changes, leaving it out is closer in 9 (rows 80, 86, 118, 130, 158, 159, 177,
#: 178, 181) and further in 4 (rows 25, 73, 151, 152: to -10.5%, -17.1%, -14.6%, -5.0%). On v4
#: (6 configs) and v6e (5 Qwen configs; Llama-3.2-3B was the exception, and Qwen3-4B/-1.7B with full
#: remat at grad_accum 4 kept more than all layers' gathers: bench rows 89, 103, not modelled) it
#: kept only the embedding shard's bf16 cast, which untied models also keep. Value: the largest fsdp
#: ring (chips) on which the head is hoisted.
_TIED_HEAD_MAX_FSDP = {"v5e": 4}
#: XLA:TPU ran the fsdp all-gather + matmul as a windowed-einsum ring (collective-permutes into an
#: ``AllocateBuffer`` custom-call) where the fsdp ring spans 8+ chips and a micro-batch holds at least
#: this many tokens per device. Observed in every one of the 13 compiles whose peak holds the hoisted
#: gathers and that cross the line (bench rows 118, 121, 130, 133, 141, 142, 147, 151-153, 158, 171,
#: 173), and in none below it (v6e at 768-1024 tokens: rows 122, 123, 148, 150, 160, 167, 170, 172;
#: v5e at 512: 159; v4-16 at 512: 140) nor on 4-chip rings (v4-8 up to 4096 tokens, v5e-4, v6e-4
#: up to 2048). Held out after this line (rows 174-181): right in all six compiles whose peak held
#: the gathers (rings in 174, 177, 179; plain in 176, 178, 180). The lines sit at the smallest count
#: seen windowed (above the largest seen plain): v4 768 (512), v5e 768 (512), v6e 1536 (1024). v4's
#: stood at 1024 until the thirty-first and thirty-second batches: at 768 tokens/device every one of
#: the six v4 compiles whose peak held gathers ran rings (rows 342, 346, 347, 350-352: Qwen2.5-7B and
#: Llama-3.2-3B, v4-16 and v4-32, dots and full remat, tp 1 and 2), while the 768-token steps before
#: them had kept their gathers and showed neither kind.
#: What the rings hold is modelled by ``RING_WEIGHT_CHUNKS`` and ``_ring_output_width`` below; full
#: remat and dots compile to the same rings. With data parallelism beside the fsdp ring (dp 2) XLA ran
#: plain all-gathers above the line: held-out rows 308 and 309 (v5e-16 and v4-32, fsdp 8, 1024
#: tokens/device) held every layer's gathers at their peaks, 36 x 154,140,672 and 28 x 466,092,032 B
#: to the byte; the step model expects rings only with dp 1 (``_rings_expected``).
WINDOWED_EINSUM_MIN_TOKENS = {"v4": 768, "v5e": 768, "v6e": 1536}
WINDOWED_EINSUM_MIN_FSDP = 8
#: What a windowed-einsum step holds at its peak, read from XLA's buffer assignment at the peak of
#: three compiles (bench rows 151 and 203: Llama-3.2-3B on v5e-8 at 1536 and 768 tokens/device;
#: row 153: Qwen2.5-7B on v4-16 at 1024), the same in all three for every layer: of each weight matrix
#: (bf16, 1/fsdp of its rows per chunk) two ``AllocateBuffer`` chunks, one chunk in a
#: collective-permute and one converted chunk (4 chunks), and the ring matmuls' outputs, bf16
#: [tok, width] with width 3·I (gate, up and a third) + q (heads·head_dim) + H + 2·kv (kv_heads·head_dim);
#: beside them the embedding shard's bf16 cast and the embedded inputs gathered over fsdp.
RING_WEIGHT_CHUNKS = 4
#: With tp = 2 beside the fsdp ring the peak held six such chunks of every tp-split weight matrix: two
#: ``AllocateBuffer`` chunks per matrix (beside the ring outputs, split over tp, in the same custom-calls)
#: and four chunks' worth in dot outputs (bench row 352: Qwen2.5-7B on v4-32, 1,631,322,112 B of chunks
#: + 1,398,276,096 B of outputs in custom-calls and 3,326,869,720 B of dot outputs, 64 MB above four
#: chunks of every layer; diagnosis row 358: Llama-3.2-3B, 704,643,072 + 939,524,096 B and
#: 1,431,306,528 B, 22 MB above). With 4 chunks the estimate was 22.8% and 22.1% below XLA, with 6 it
#: is 3.5% and 0.3% above. No ring step has been compiled with tp > 2 (the tp 4 and 8 compiles of rows
#: 372-388 ran none).
RING_WEIGHT_CHUNKS_TP = 6
#: XLA's temp allocation over the bytes live at those peaks: 6.2%, 15.3% and 3.1% (rows 203, 151,
#: 153; the allocator's packing). Fitted over the 35 compiles whose estimate the rings set, leaving
#: out rows 78, 86, 162 and 185, which they do not fit: at 7% their mean error is +0.3%, the median
#: 3.8% and the worst 11.0% (row 80). In percent.
RING_ALLOCATION_FACTOR_PCT = 107
#: Generations whose full-remat ring steps, peaking at the forward's start, took no more than the ring
#: bytes themselves: on v4 XLA's temp over the unscaled estimate was 0.994 at the median of the 13
#: fitted compiles (bench rows 90-97, 133, 215-217, 229-232; 0.97-1.03 but for row 217, which peaked in
#: the rematerialised backward; row 215's temp is 1.025x its live peak: 7,766,655,528 B live,
#: 7,964,594,176 B of temp), where v4's dots ring steps took 1.03-1.13x and v5e/v6e's full-remat ones
#: 0.97-1.23x. In percent, in place of ``RING_ALLOCATION_FACTOR_PCT`` for those rings.
RING_FULL_REMAT_ALLOCATION_PCT = {"v4": 100}


#: From this tp, a dots ring step whose gathers are not hoisted peaks where the forward meets the
#: backward, holding the backward's recomputation of every layer at once: per token and layer three
#: [I/tp] values (gate, up and their SwiGLU product), four [H] (the o and down outputs after their
#: tp all-reduce, and both residual sums), q/tp and kv/tp twice each (the attention kernel's inputs
#: and their bf16 copies), beside the full-vocabulary bf16 logits; no gathered head. Read from the
#: live ranges of bench rows 408 (v6e-32, Llama-3.2-3B, fsdp 8 x tp 4) and 410 (v6e-64, Qwen3-4B,
#: fsdp 8 x tp 8), to within 1% of their live bytes; with ``RING_ALLOCATION_FACTOR_PCT`` -0.7% and
#: -4.5% of XLA's temp (1.30x and 1.50x the earlier estimate). Row 401 (v4-64, Qwen3-4B, fsdp 8 x
#: tp 4), compiled a batch before and not read for the rule: -2.6% (1.39x before). Held out after it
#: (forty-third batch, rows 415-420): 3B and 7B on v6e-32, v6e-64 (tp 8; fsdp 16) and v4-64 within
#: 9.8%, Qwen3-1.7B -11.0% and Llama-3.2-1B -20.8% (-16.8% to -32.9% before the rule). tp 2 ring steps
#: (rows 352-365, 411, 412, 425-427) all hoisted.
RING_RECOMPUTE_MIN_TP = 4
#: From this tp the same holds where the gathers are not hoisted (the hoisted tp 2 ring steps peak
#: with their rings instead). The first tp 2 ring step compiled without hoisting, held-out row 431
#: (v6e-16, Qwen3-4B, fsdp 8 x tp 2, resident state 2.03x the saved activations), came to -20.6% on
#: the plain backward's estimate and to -3.3% on the recomputation's; its live ranges peak where the
#: forward meets the backward with 36 layers x (three [1536, 4864], four [1536, 2560], two q and two kv
#: per tp) and the full-vocabulary bf16 logits, 3,873,313,952 B live. Held out after it (forty-sixth
#: batch, rows 437-443, v6e-16, v5e-16 and v4-32): all seven unhoisted, -11.7% to +0.7% (median 3.53%);
#: -16.2% to +3.3% on the plain backward's estimate.
RING_RECOMPUTE_UNHOISTED_MIN_TP = 2
#: Where the full-vocabulary bf16 logits are a large share of that recomputation's estimate (small
#: models on a wide mesh), XLA's temp on v5e and v6e stood further above the bytes live at its peak. At
#: bench row 417 (v6e-32, Llama-3.2-1B, fsdp 8 x tp 4, logits 0.34 of the estimate) the live bytes were
#: 1,224,838,240 B, 1.5% under the estimate, and the temp 1.28x them: 164,870,592 B of holes in the heap at
#: the peak (where the embedding's 131 MB all-gather had sat) and 169,363,984 B of temp outside the buffer
#: assignment; row 415 (Qwen3-1.7B, 0.27) 1.19x (147,620,480 B and 154,998,800 B); row 408 (Llama-3.2-3B,
#: the same mesh and logits, 0.18) 1.06x. On v4 the packing stayed tight: held-out row 489 (v4-64,
#: Llama-3.2-1B, fsdp 8 x tp 4, 0.27) 1.09x its live bytes (69,401,088 B of holes, 71,324,656 B outside),
#: +15.9% with the term, -6.4% without. Per generation, the share above which the estimate adds
#: ``RING_RECOMPUTE_PACKING_PER_SHARE`` times the share's excess, in percent of itself: fitted on rows 415
#: and 417 (-11.0% and -20.8% before, +1.6% and -1.9% after); of the other v5e and v6e ring recomputation
#: steps on record rows 410, 419, 439 and 440 (0.20-0.22) move by 3.0-5.5 points, each closer (row 440
#: -11.7% to -8.7%), and row 408 (0.18) by 0.4. Held out after it (fifty-second batch) on v6e: rows 487
#: (v6e-64, Llama-3.2-1B, tp 8) -2.6% and 491 (v6e-16, Qwen2.5-0.5B, tp 2) +4.4%, -27.0% and -16.5% without.
RING_RECOMPUTE_PACKING_MIN_LOGITS_SHARE = {"v5e": 0.18, "v6e": 0.18}
RING_RECOMPUTE_PACKING_PER_SHARE = 1.5
#: With full remat, XLA ran the rings at the step's start only where their bytes (the forward start's
#: estimate) came to at most about this many times the resident state; above it no ring was live at
#: the start, and the step peaked inside the rematerialised backward on the recomputation of every
#: layer (the rule above, at any tp). On v4 the rings were hoisted at up to 1.21x (bench row 232,
#: Llama-3.2-3B with lion at 1536 tokens/device); rows 78 (1.32x), 214 (1.38x), 434 (1.43x), 217
#: (1.53x) and 453 (1.66x) peaked at 1.00, 0.98, 0.96, 1.00 and 0.98 of the recomputation's estimate,
#: where the rings' said 1.25, 1.05, 1.08, 1.19 and 1.37 (rows 229-231 and 455, at 1.37x-1.88x, come
#: within 7.5% either way). On v5e and v6e the rings were hoisted at 1.31x (row 25) and 1.38x (row 213,
#: its outcomes 2% apart); above 1.4x rows 181, 209, 212, 436 and 175 (1.41x-1.86x) come to -7.6% to
#: -0.2% on the recomputation (on the rings: -12.7% to +10.1%), and so do the two tp 2 full-remat ring
#: steps (rows 361 and 362, 1.65x and 1.75x, flagged before: -4.2% and -0.9%). Where the two outcomes lie
#: close the line is no sharper than they are: rows 212 and 455 held their rings at their peaks above it
#: (-7.6% and +7.5% on the recomputation). Held out after it (forty-eighth batch, rows 456-468): nine
#: steps above it peaked with no ring live, -5.1% to +1.5%; four below it, -0.8% to +8.3%. Steps with master params
#: in the compute dtype keep their flag (``unpredicted_step_reason``), rings as the upper bound.
RING_FULL_REMAT_HOIST_MAX_PER_RESIDENT = {"v4": 1.25, "v5e": 1.4, "v6e": 1.4}


#: Where the rings are hoisted, the backward's own ring chunks are live at its start too: two chunks of
#: every layer's weight shard (bf16, 1/fsdp of each tp-split matrix; with tp = 1 and tp = 2 alike) and
#: two of the embedding shard's bf16 cast, beside the saved activations, the gathered head and the
#: logits. Read at the backward-start peaks of held-out rows 185 (v5e-8, Llama-3.2-1B, fsdp 8: 16 x 2
#: chunks, 486,539,264 B, and 2 x 65,667,072 B) and 364 (v5e-16, Qwen3-1.7B, fsdp 8 x tp 2: 28 x 2
#: chunks, 352,321,536 B, and 2 x 38,895,616 B). Small models peak there rather than at the forward's
#: start: with ``RING_ALLOCATION_FACTOR_PCT`` on the chunks rows 185 and 364 come to -9.6% and -8.9%
#: (-22.3% and -16.8% with the forward's peak alone); of the other hoisted ring steps only rows 179,
#: 335 and 350 moved, each closer (-6.8% to -2.3%, -7.3% to -3.6%, -3.5% to +0.6%).
RING_BACKWARD_WEIGHT_CHUNKS = 2
RING_BACKWARD_EMBED_CHUNKS = 2


def ring_recompute_packing(generation: str | None, saved: int, logits: int) -> int:
    """Bytes XLA's packing adds above a ring recomputation's live bytes where the full-vocabulary logits
    take more than the generation's ``RING_RECOMPUTE_PACKING_MIN_LOGITS_SHARE`` of the estimate
    (``saved`` + ``logits``, bytes): the estimate times ``RING_RECOMPUTE_PACKING_PER_SHARE`` times the
    share's excess; else (and on generations without a share) 0."""
    line = RING_RECOMPUTE_PACKING_MIN_LOGITS_SHARE.get(generation)
    total = saved + logits
    excess = logits / total - line if total and line is not None else 0.0
    return int(total * RING_RECOMPUTE_PACKING_PER_SHARE * excess) if excess > 0 else 0


def _ring_recompute_elements(spec, tp: int) -> int:
    """Elements per token of one layer's recomputation live at a tp > 1 ring step's backward start."""
    inter = _active_intermediate(spec)
    return 3 * ceil_div(inter, tp) + 4 * spec.hidden + 2 * ceil_div(spec.q_dim, tp) + 2 * ceil_div(spec.kv_dim, tp)


def _ring_output_width(spec, tp: int) -> int:
    """Elements per token of the ring matmul outputs live at a windowed-einsum peak, per layer."""
    q = spec.heads * spec.head_dim
    kv = spec.kv_heads * spec.head_dim
    return ceil_div(3 * spec.intermediate + q + spec.hidden + 2 * kv, tp)




def runs_rings(train: TrainingMemory) -> bool:
    """Whether the step estimate expects the fsdp all-gathers to run as windowed-einsum rings (with remat)."""
    inputs = train.step[0].inputs if train.step else {}
    return bool(inputs.get("windowed_einsum") and inputs.get("remat") != "none")


def runs_hoisted_rings(train: TrainingMemory) -> bool:
    """Whether the step estimate expects every layer's gathers hoisted as windowed-einsum rings."""
    return runs_rings(train) and bool(train.step[0].inputs.get("hoisted"))


def windowed_einsum_expected(generation: str | None, fsdp: int, tokens_per_device: int) -> bool:
    """Whether XLA:TPU is expected to run the fsdp all-gather + matmuls as windowed-einsum rings."""
    line = WINDOWED_EINSUM_MIN_TOKENS.get(generation or "")
    return line is not None and fsdp >= WINDOWED_EINSUM_MIN_FSDP and tokens_per_device >= line


def _rings_expected(generation: str | None, mesh: Mesh, tokens_per_device: int) -> bool:
    """Whether the step model expects windowed-einsum rings: the fsdp/token line, and no dp axis."""
    return mesh.dp == 1 and windowed_einsum_expected(generation, mesh.fsdp, tokens_per_device)


#: Bytes per logits element beside the bf16 logits gradient while the lm_head's weight gradient
#: (V·H/tp, bf16, before its reduce-scatter) is live: on v4 this sub-phase set the need of a small
#: micro-batch (512 tokens/device, H 768: the test grid's tiny Llama on v4-16, 17.7% under before)
#: and of none of the bench's v4 configs. v5e/v6e (None) are fitted as a whole by the factors above.
#: With master params in the compute dtype no plain-gather v4 step held it: the four bf16 steps whose
#: backward it would have set (bench rows 247, 249, 259, 260: Qwen2.5-7B, Qwen3-4B, Llama-3.2-3B on
#: v4-8) came to -0.7% to -2.0% of XLA's temp without it, +8.5% to +32.5% with it. A bf16 ring step
#: did (row 251, v4-16: -2.7% with it, -10.3% without), so ring steps keep it.
_HEAD_GRAD_EXTRA_BYTES = {"v4": 2.0, "v5e": None, "v6e": None}
_HEAD_GRAD_EXTRA_DEFAULT = 2.0
#: Nor did plain (non-ring) steps whose hidden size is at least this many times their tokens per device,
#: where the unreduced head gradient (V·H/tp) would dwarf the logits gradient (tok·V/tp): at 512
#: tokens/device Qwen3-4B, Llama-3.2-3B and Qwen2.5-7B on v4-16 and v4-32 (bench rows 337, 340, 349:
#: H/tok 5.0, 6.0, 7.0) and Llama-3.2-1B on v4-8 (row 72, 4.0), and Llama-3.2-3B at 768 with dp 2 (row
#: 320, 4.0) came within 7.6% without the sub-phase and 10-30% above XLA with it (row 337's peak: the
#: saved activations and the gathered head to the byte, the bf16 logits gradient, no head gradient).
#: Below it the sub-phase stays (row 324, Qwen3-4B at 768 with dp 2, 3.33: +2.2% with it, -12.8%
#: without; the test grid's tiny Llama at 512, 1.5). Fitted on those five rows.
_HEAD_GRAD_MAX_HIDDEN_PER_TOKEN = 4


#: (fsdp, tp) from which v4 steps are flagged: on v4-32 with fsdp 4 x tp 4 every compile needed more
#: than the estimate (rows 372, 373, 387 of the thirty-seventh and thirty-eighth batches, then 397,
#: 398 and 400 of the fortieth, chosen to probe it: 1.30-1.49x at backward peaks, whose live ranges
#: held every layer's [tok, H] activation gradients and their tp all-reduce results, and the
#: [tok, I/tp] cotangents, at once). fsdp 4 x tp 2 (rows 332, 399) and fsdp 2 x tp 4 (rows 378, 381)
#: were within 1.6%. Held out after the flag (forty-first batch): v4-64 with fsdp 8 x tp 4 (row 401)
#: needed 1.39x; it runs rings, which ``RING_RECOMPUTE_MIN_TP`` has predicted since (-2.6%), and ring
#: steps are no longer flagged.
V4_HELD_COTANGENTS_MIN = (4, 4)
#: The largest ratio of XLA's temp to the estimate among those compiles (row 400).
V4_HELD_COTANGENTS_MAX_RATIO = 1.49


#: Generations (by the slice's own name) whose steps without remat the step model does not predict:
#: on tpu7x, on v6e's rules otherwise, XLA held no gathered layer weights at the peak of two such
#: steps (bench rows 583, 586: Qwen3-4B with sgd and Llama-3.2-1B with adamw, grad_accum 2) and one
#: copy without the saved activations beside it at the third's (row 590, grad_accum 1): 0.46x, 0.64x
#: and 0.69x of the estimate, which holds one copy beside them as on v6e.
NO_REMAT_UNPREDICTED = frozenset({"tpu7x"})


def unpredicted_step_reason(generation: str | None, optimizer: str, remat: str,
                            train: TrainingMemory, slice_generation: str | None = None) -> str | None:
    """Why the step model does not predict XLA:TPU's schedule of this step, or None where it does.

    ``generation`` names the rules the step was estimated by, ``slice_generation`` the slice's own
    generation where it borrows another's (:attr:`planner.tpu.TpuGeneration.step_rules`).
    Nine settings compiled to schedules the step model does not capture (bench/compile_vs_analytic):

    * adafactor on v6e: Llama-3.2-3B hoisted no weight all-gathers (1.44 GiB of temp), Qwen2.5-3B
      the backward's (4.41 GiB); the estimate assumes the forward start's, above both (its small
      state is below the v6e resident-per-gathers line of the third setting);
    * full remat with grad_accum 1 on v5e/v6e: Qwen2.5-3B and Qwen3-4B at 2048 tokens/device needed
      5.0-6.3 GiB, 48-63% above the estimate, while 0.6B-1.7B models, and Qwen3-4B at 1024
      tokens/device, were within 11%;
    * on v6e, where the estimate hoists every layer's all-gathers beside resident state below
      ``LOW_RESIDENT_PER_GATHERS`` times the gathered weights (sgd): XLA hoisted all, part or none
      of them; the estimate is the upper bound and the step without hoisting the lower one;
    * layer gathers above half of the HBM limit (``_HOIST_MAX_LIMIT_SHARE``; Qwen2.5-7B on v5e): XLA
      hoisted none with dots, but with full remat it ran windowed-einsum rings after all (v5e-16:
      6.69 GiB of temp where the estimate says 1.98) or ran out of memory (v5e-8, lion and sgd).
      The ring model comes within 7% of v5e-16 and says oom for both v5e-8 steps only without the
      scheduler-budget cap, which another ring step kept to (bench row 208, +2.0% capped, +9.1%
      without), so these steps stay flagged;
    * GRPO's KL term (beta != 0) in an accumulating step that hoists: XLA hoisted the reference
      forward's gathers beside the policy's on 4-chip slices in 6 of 7 compiles (the estimate counts
      both; XLA 1.5-3.6% above it) and on 8-chip slices in none of 6 (0.27-0.80x of it);
    * master params in the compute dtype where XLA is expected to run the gathers as windowed-einsum
      rings: on v4-16, v5e-8 and v5e-16 (bench rows 250, 266, 267, 277, 304) XLA hoisted no rings,
      and needed 0.87-2.2x the step without hoisting and 0.54-0.84x the ring estimate, which stays as
      the upper bound;
    * full remat where the gathers run as hoisted windowed-einsum rings beside tp > 1 (below
      ``RING_FULL_REMAT_HOIST_MAX_PER_RESIDENT``): no such compile; the three tp 2 ones (bench rows
      361, 362 and 464) were above that line and peaked on the recomputation, as it predicts;
    * an fsdp ring of 4+ chips beside tp >= 4 on v4 without rings (``V4_HELD_COTANGENTS_MIN``): XLA needed 1.11-1.49x
      the estimate in all six such compiles, which is a lower bound there;
    * no remat on tpu7x (``NO_REMAT_UNPREDICTED``): XLA needed 0.46-0.69x the estimate, an upper bound.
    """
    grad_accum = train.shape.grad_accum
    step = train.step[0].inputs if train.step else {}
    if remat == "none" and slice_generation in NO_REMAT_UNPREDICTED:
        return (f"no remat on {slice_generation}: in the three such compiles (bench rows 583, 586, 590) XLA held no "
                "gathered layer weights at the peak, or one copy without the saved activations, and needed 0.46-0.69x "
                f"the estimate ({fmt_gib(train.step_temp_bytes)} here), which holds one copy beside them as on v6e: "
                "an upper bound; check it with --compile")
    if generation == "v6e" and optimizer == "adafactor":
        return ("adafactor on v6e: XLA scheduled the weight all-gathers differently for Llama-3.2-3B (none "
                "hoisted, 1.44 GiB of temp) and Qwen2.5-3B (the backward's hoisted, 4.41 GiB); the step "
                "estimate assumes the forward-start hoisting, above both (+19% and +272%); check it with --compile")
    if step.get("hoist_limited") and remat != "none":
        return (f"the layers' gathered weights come to {step['gathers_share_of_limit']:.0%} of the HBM limit (above half): "
                "in such compiles (Qwen2.5-7B on v5e) XLA hoisted none of the all-gathers; with dots the "
                "step was -16% to +12.5% of this estimate, but a lion step with 0.9% estimated headroom ran out "
                "of memory, and with full remat XLA ran the gathers as windowed-einsum rings after all "
                "(v5e-16: 6.69 GiB where this estimate says 1.98 GiB; v5e-8 ran out of memory with lion and "
                "with sgd); check it with --compile")
    low = LOW_RESIDENT_PER_GATHERS.get(generation)
    per_gathers = step.get("resident_per_gathers")
    if (low is not None and step.get("hoisted") and remat != "none" and grad_accum > 1 and per_gathers is not None
            and per_gathers < low):
        no_hoist_bytes = step["outcomes"]["not_hoisted_bytes"]
        lower = f"; without hoisting the step needs {fmt_gib(no_hoist_bytes)}" if no_hoist_bytes else ""
        return (f"resident state {per_gathers:.2f}x the gathered layer weights on {generation} (below "
                f"{low}x): in such compiles (sgd, adafactor) XLA hoisted all, part or none of the weight "
                "all-gathers (Qwen2.5-3B and Qwen3-1.7B part: -16% and -18% against this estimate; Qwen2.5-7B "
                f"and Llama-3.2-3B none: 1.4-1.8 GiB); the estimate, which hoists them all, is an upper bound{lower}; "
                "check it with --compile")
    out = step.get("outcomes") or {}
    if (step.get("reference_forward") and step.get("hoisted")
            and out["hoisted_bytes"] > 1.05 * out["not_hoisted_bytes"]):
        return ("KL reference forward (beta != 0) in an accumulating step: on 4-chip slices XLA hoisted both "
                "forwards' weight all-gathers in 6 of 7 compiles (bench rows 279, 280, 284, 291, 292, 294: 1.5-3.6% "
                "above this estimate, which counts both; row 282 at 0.78x of it), on 8-chip slices in none of 6 "
                "(rows 20, 281, 283, 285, 295, 296: 0.27-0.80x of it, 0.94-1.69x the step without hoisting); "
                f"this step needs {fmt_gib(out['hoisted_bytes'])} with both hoisted and "
                f"{fmt_gib(out['not_hoisted_bytes'])} without; check it with --compile")
    if step.get("uncast_rings"):
        return (f"master params in the compute dtype on a ring of {step['fsdp']} chips where XLA is expected to "
                "run windowed-einsum rings: in the five such compiles (bench rows 250, 266, 267, 277, 304: "
                "Qwen2.5-7B and Llama-3.2-3B on v4-16, Qwen2.5-1.5B and Qwen3-4B on v5e-8, Qwen2.5-1.5B on v5e-16) "
                "XLA hoisted no rings, and needed 0.87-2.2x the step without hoisting and 0.54-0.84x the one with "
                f"it; the estimate, which hoists them, is an upper bound ({fmt_gib(out['hoisted_bytes'])}); "
                "without hoisting the step needs "
                f"{fmt_gib(out['not_hoisted_bytes'])}; check it with --compile")
    if step.get("windowed_einsum") and step.get("hoisted") and remat == "full" and step.get("tp", 1) > 1:
        return (f"full remat on an fsdp ring with tp = {step['tp']}, where XLA is expected to hoist windowed-einsum "
                "rings: no such compile is on record (the three tp 2 ones, bench rows 361, 362 and 464, were above "
                "the full-remat rings line and peaked on the backward's recomputation of every layer, -4.2%, -0.9% "
                "and -0.7%); the ring "
                f"estimate ({fmt_gib(out['hoisted_bytes'])}) is the upper bound, the recomputation "
                f"({fmt_gib(out['not_hoisted_bytes'])}) the other outcome; check it with --compile")
    if generation in ("v5e", "v6e") and remat == "full" and grad_accum == 1:
        return (f"full remat with grad_accum 1 on {generation}: XLA needed 48-63% more than the step estimate "
                "for 3B-4B models at 2048 tokens/device (3 of 10 such compiles; the others within 11%); "
                "check it with --compile")
    fsdp, tp = step.get("fsdp", 1), step.get("tp", 1)
    if (generation == "v4" and fsdp >= V4_HELD_COTANGENTS_MIN[0] and tp >= V4_HELD_COTANGENTS_MIN[1]
            and not step.get("ring_recompute")):
        need = train.step_temp_bytes
        return (f"an fsdp ring of {fsdp} chips beside tp = {tp} on v4: in all six such compiles without rings XLA "
                f"needed more than the step estimate, 1.30-{V4_HELD_COTANGENTS_MAX_RATIO}x where the backward sets it "
                "(bench rows 387, 397, 398, 400: late in the backward XLA held every layer's activation "
                "gradients and their tp all-reduce results at once) and 1.11x and 1.18x where the hoisted gathers do "
                "(rows 372, 373); the estimate is a lower "
                f"bound ({fmt_gib(need)}; {fmt_gib(int(V4_HELD_COTANGENTS_MAX_RATIO * need))} at the largest ratio "
                "seen); check it with "
                "--compile")
    return None



#: Plans whose resident-per-saved ratio lies within this share of the hoisting line get both bounds:
#: near it XLA went both ways. Not hoisted above it: Llama-3.2-3B with adamw and with sgd on v4-16 at
#: 2.70x (bench rows 162 and 336), where Qwen2.5-7B with adamw hoisted at 2.67x (row 141) and Qwen3-4B
#: with lion at 2.665x (row 334); Qwen3-1.7B on v5e prefetched 7 of
#: 28 layers at 2.93x (row 86), where Qwen2.5-3B hoisted at 2.92x (rows 190, 211).
HOIST_LINE_BAND = 0.15
#: The band of the untied models' tp 2 line (1.85x): their steps went both ways from 1.87x to 2.39x
#: (kept their gathers: rows 553, 554 at 1.87x and 530, 557, 558 at 2.34x-2.39x; hoisted: rows 550 and 555,
#: 556 at 1.89x-1.92x, 528 and 544 at 2.36x), up to 29% above the line.
HOIST_LINE_BAND_UNTIED_TP2 = 0.3


def _near_line(train: TrainingMemory, key: str, ratio: str, band: float) -> tuple[dict, int, int] | None:
    """(position, hoisted bytes, not-hoisted bytes) where the step's ``key`` position (``ratio`` over its
    ``line``) lies within ``band`` of its line (or the position's own ``band``), else None."""
    step = train.step[0].inputs if train.step else {}
    near = step.get(key)
    if not near or abs(near[ratio] / near["line"] - 1) > near.get("band", band):
        return None
    return near, step["outcomes"]["hoisted_bytes"], step["outcomes"]["not_hoisted_bytes"]


def _near_hoisting_line(train: TrainingMemory) -> tuple[dict, int, int] | None:
    """:func:`_near_line` for the hoisting line, where hoisting would raise the need by over 5%."""
    found = _near_line(train, "hoisting_line", "resident_per_saved", HOIST_LINE_BAND)
    return found if found is not None and found[1] > found[2] * 1.05 else None


def hoisting_line_note(train: TrainingMemory) -> str | None:
    """A note with both bounds where the dots step sits near the hoisting line, else None."""
    found = _near_hoisting_line(train)
    if found is None:
        return None
    near, hi, lo = found
    if near.get("untied"):
        seen = ("the lines for untied lm_heads on v4 and v6e (2.31x; 1.85x with tp 2): with tp 1 Llama-3.1-8B and "
                "Qwen3-8B kept their gathers at 2.28x and Qwen2.5-7B hoisted at 2.38x; with tp 2 adamw steps "
                "hoisted from 1.89x but Qwen2.5-7B's kept them at 1.87x, and lion steps kept them at 2.34x-2.39x "
                "but Qwen3-8B's at 2.36x")
    else:
        seen = ("compiles near it went both ways (Llama-3.2-3B not at 2.70x on v4-16, twice, where Qwen3-4B "
                "hoisted at 2.665x; Qwen3-1.7B in part at 2.93x on v5e; between 2.375x and 2.5x on v4, 2 of 5)")
    return (f"resident state {near['resident_per_saved']:.2f}x the saved activations, within "
            f"{near.get('band', HOIST_LINE_BAND):.0%} of the {near['line']}x line above which XLA hoists the layers' all-gathers: "
            f"{seen}; the step needs "
            f"{fmt_gib(lo)} without hoisting and {fmt_gib(hi)} with it; check it with --compile")


#: Full-remat ring plans within this share of ``RING_FULL_REMAT_HOIST_MAX_PER_RESIDENT`` print both
#: outcomes; the nearest compiles on either side of each generation's line (bench rows).
RINGS_LINE_BAND = 0.15
_RINGS_LINE_NEAREST = {"v4": "rings at 1.20x and 1.21x (bench rows 465, 232), none at 1.32x (row 78)",
                       "v5e": "rings at 1.31x (bench row 25), none at 1.41x and 1.47x (rows 181, 461)",
                       "v6e": "rings at 1.29x (bench row 467), none at 1.47x (rows 436, 463)"}


def _near_rings_line(train: TrainingMemory) -> tuple[dict, int, int] | None:
    """:func:`_near_line` for the full-remat rings line, where the two outcomes differ by over 5%."""
    found = _near_line(train, "rings_line", "rings_per_resident", RINGS_LINE_BAND)
    return found if found is not None and max(found[1:]) > 1.05 * min(found[1:]) else None


def rings_line_note(generation: str | None, train: TrainingMemory) -> str | None:
    """A note with both outcomes where a full-remat ring step sits near the rings line, else None."""
    found = _near_rings_line(train)
    if found is None:
        return None
    near, rings, recompute = found
    return (f"full-remat rings {near['rings_per_resident']:.2f}x the resident state, within {RINGS_LINE_BAND:.0%} "
            f"of the {near['line']}x line above which XLA ran no rings and peaked on the backward's recomputation "
            f"({_RINGS_LINE_NEAREST.get(generation or '', 'no compile on this generation')}); the step needs "
            f"{fmt_gib(rings)} with the rings and {fmt_gib(recompute)} without; check it with --compile")


def near_line_other_outcome(train: TrainingMemory) -> tuple[str, int] | None:
    """(which line, bytes): what the step would need had XLA decided the other way, where a line note
    prints both outcomes (:func:`hoisting_line_note`, :func:`rings_line_note`); else None."""
    for line, found in (("hoisting line", _near_hoisting_line(train)), ("rings line", _near_rings_line(train))):
        if found is not None:
            _, hoisted, not_hoisted = found
            return line, not_hoisted if train.step[0].inputs["hoisted"] else hoisted
    return None


class _Hoisting(NamedTuple):
    """The step model's decision on the layers' fsdp all-gathers, and why (see :func:`_hoisting`)."""

    hoists: bool  # every layer's gathers are live together at the step's start (or its rings are)
    if_cast: bool  # the decision were the params cast before their gathers (the bf16 flags read it)
    limited: bool  # the gathers exceed ``_HOIST_MAX_LIMIT_SHARE`` of the HBM limit: none hoisted
    uncast_skips: bool  # params in the compute dtype on a generation that then hoists none
    line: float | None  # the resident-per-saved line that decides this dots step, else None
    line_fields: dict  # the line's own fields for the step's inputs: ``untied`` (and its ``band`` with tp 2)
    reason: str  # one line, printed by --explain


def _hoisting(generation, mesh, remat, grad_accum, *, crosses_ring_line, uncast, tied, resident_bytes,
              saved_unscaled, gathered_layers, xla_limit_bytes) -> _Hoisting:
    """Whether XLA:TPU is expected to hoist every layer's fsdp all-gather to the step's start.

    The rules, in the order they decide (each fitted to and held out against compiles; the constants
    above name the bench rows): none where the gathers exceed half of the HBM limit; all without
    remat; none with grad_accum 1; on 8+ chip fsdp rings without a dp axis, dots steps only where the
    resident state reaches ``_HOIST_MIN_RESIDENT_PER_SAVED`` of the saved activations (on v6e only for
    ring steps; ring steps of untied models on v4 and v6e at ``_HOIST_MIN_RESIDENT_PER_SAVED_UNTIED``, ``_TP2`` with tp 2); on 8+ chip fsdp rings, dp axis or not, plain-gather dots steps only where it reaches
    ``_HOIST_MIN_RESIDENT_PER_GATHERS`` of the gathered weights; none on v4 with master params in the
    compute dtype (plain gathers); otherwise all. Byte counts are per device.
    """
    fsdp = mesh.fsdp
    windowed = remat != "none" and crosses_ring_line  # with remat, ring steps run as rings
    limited = gathered_layers > _HOIST_MAX_LIMIT_SHARE * xla_limit_bytes
    line_applies = (mesh.dp == 1 and fsdp >= _HOIST_LINE_MIN_FSDP
                    and (crosses_ring_line or generation not in _HOIST_LINE_RING_STEPS_ONLY))
    untied_rings = crosses_ring_line and not tied and generation in _HOIST_MIN_RESIDENT_PER_SAVED_UNTIED
    untied_tp2 = untied_rings and mesh.tp == 2
    lines = (_HOIST_MIN_RESIDENT_PER_SAVED_UNTIED_TP2 if untied_tp2 else
             _HOIST_MIN_RESIDENT_PER_SAVED_UNTIED if untied_rings else _HOIST_MIN_RESIDENT_PER_SAVED)
    min_per_saved = lines.get(generation) if line_applies else None
    which = (" for untied models' rings" + (" with tp 2" if untied_tp2 else "")) if untied_rings else ""
    below_line = (min_per_saved is not None and remat != "full"
                  and resident_bytes < min_per_saved * saved_unscaled)
    # ring steps hold 4/fsdp of the gathered weights, not all of them: the share decides plain steps only
    low_resident = (fsdp >= _HOIST_LINE_MIN_FSDP and remat == "dots" and not windowed
                    and resident_bytes < _HOIST_MIN_RESIDENT_PER_GATHERS * gathered_layers)
    # ring steps with uncast params keep the (upper-bound) ring estimate: they are flagged instead
    uncast_skips = uncast and not windowed and not _UNCAST_HOISTS.get(generation or "", True)
    checkpointed = grad_accum > 1 and not low_resident and not below_line
    hoists = (remat == "none" or (checkpointed and not uncast_skips)) and not limited
    line = min_per_saved if remat == "dots" and grad_accum > 1 and not limited and not uncast_skips else None

    per_saved = resident_bytes / saved_unscaled if saved_unscaled else 0.0
    per_gathers = resident_bytes / gathered_layers if gathered_layers else 0.0
    ring = (f"fsdp ring of {fsdp} chips" if fsdp > 1 else "no fsdp axis") + (f" beside dp {mesh.dp}" if mesh.dp > 1 else "")
    how = " as windowed-einsum rings" if windowed else ""
    if limited:
        reason = (f"none hoisted: the layers' gathers come to {gathered_layers / xla_limit_bytes:.0%} of the "
                  f"HBM limit, above {_HOIST_MAX_LIMIT_SHARE:.0%}")
    elif remat == "none":
        reason = "hoisted: without remat every layer's gathers are hoisted to the step's start"
    elif grad_accum == 1:
        reason = "not hoisted: with grad_accum 1 each layer's gathers stay beside the layer"
    elif below_line:
        reason = (f"not hoisted: resident state {per_saved:.2f}x the saved activations, below the "
                  f"{min_per_saved}x line{which} ({generation}, {ring})")
    elif low_resident:
        reason = (f"not hoisted: resident state {per_gathers:.2f}x the gathered weights, below "
                  f"{_HOIST_MIN_RESIDENT_PER_GATHERS}x ({ring})")
    elif uncast_skips:
        reason = (f"not hoisted: master params in the compute dtype on {generation} (no cast before the "
                  "gathers)")
    elif min_per_saved is not None and remat == "dots":
        share = (f", and {per_gathers:.2f}x the gathered weights, at or above {_HOIST_MIN_RESIDENT_PER_GATHERS}x"
                 if not windowed else "")
        reason = (f"hoisted{how}: resident state {per_saved:.2f}x the saved activations, at or above the "
                  f"{min_per_saved}x line{which}{share}")
    elif remat == "dots" and fsdp >= _HOIST_LINE_MIN_FSDP:
        no_line = ("the saved-activations line applies without a dp axis" if mesh.dp > 1 else
                   f"on {generation} the saved-activations line applies to rings only"
                   if generation in _HOIST_LINE_RING_STEPS_ONLY else
                   f"no saved-activations line fitted for {generation or 'this TPU'}")
        reason = (f"hoisted{how}: resident state {per_gathers:.2f}x the gathered weights, at or above "
                  f"{_HOIST_MIN_RESIDENT_PER_GATHERS}x ({ring}; {no_line})")
    elif remat == "dots":
        reason = (f"hoisted{how}: accumulating step{' on an ' if fsdp > 1 else ', '}{ring} (the resident-state "
                  f"lines apply from {_HOIST_LINE_MIN_FSDP})")
    else:
        reason = f"hoisted{how}: accumulating step with {remat} remat"
    return _Hoisting(hoists=hoists, if_cast=checkpointed and not limited, limited=limited,
                     uncast_skips=uncast_skips, line=line,
                     line_fields=({"untied": True, **({"band": HOIST_LINE_BAND_UNTIED_TP2} if untied_tp2 else {})}
                                  if line is not None and untied_rings else {}),
                     reason=reason)


def _step_temporaries(spec, mesh, shape, n_dev, it_p, it_c, remat, *, resident_bytes,
                      xla_limit_bytes=None, generation=None, reference_forward=False) -> list[Component]:
    """What XLA:TPU keeps live at the step's peak (its temp allocation), per device.

    Three phases of the compiled step compete; the largest is the step's need:

    * ``forward_start``: the scheduler hoists every layer's fsdp all-gather (bf16 weights, split
      over tp) to the start of the step when memory allows, capped by what its memory limit
      (95% of the HBM limit, 92% on v5e) leaves beside the resident state (not on v4 where the master params
      are already in the compute dtype; with the KL term the reference forward's gathers too);
      where XLA runs those gathers as
      windowed-einsum rings (:func:`windowed_einsum_expected`, with remat), the rings' weight chunks
      and matmul outputs of every layer instead (``RING_WEIGHT_CHUNKS``, ``_ring_output_width``);
    * ``backward_start``: the saved activations of every layer (per the remat policy), the
      gathered lm_head/embedding, the logits and the fp32 work of the log_softmax/entropy backward
      (on v4, where larger, the logits beside the lm_head's unreduced weight gradient instead);
      without remat on v5e/v6e also the backward's hoisted weight copies;
    * ``update`` (grad_accum == 1 only): the full gradients before clip + optimizer.

    With grad_accum > 1 each layer's gradients are added into the (donated) accumulator as the
    backward produces them, so no full gradient copy is ever live.
    """
    tok = shape.tokens_per_device
    tp, fsdp = mesh.tp, mesh.fsdp
    L, H, V = spec.layers, spec.hidden, spec.vocab
    dots, other = _layer_activation_elements(spec, tp)
    est = "estimate fitted to XLA:TPU by bench/compile_vs_analytic (see bench/compile_vs_analytic.md)"
    t = "transient"
    naive = shape.seq_len % 128 != 0
    scores = shape.micro_per_device * ceil_div(spec.heads, tp) * shape.seq_len**2 * 4 if naive else 0

    if remat == "full":
        saved = L * tok * H * it_c
        saved_formula = "L · tok · H · it_c   (nothing_saveable: each layer's input)"
    elif remat == "dots":
        saved = L * tok * dots * it_c
        saved_formula = "L · tok · dots · it_c   (dot outputs: q,k,v,gate,up /tp + o,down)"
    else:
        saved = L * tok * _no_remat_saved_bytes_per_token(spec, tp, it_c) + L * scores // 2
        saved_formula = ("L · tok · (it_c · (2·I + 2·H + q) + 2 · it_c · (heads + kv_heads) · max(hd, 128) "
                         "+ 4 · 128 · heads (+ 4 · (q + kv) with q/k norms)), per tp   (no remat: the values "
                         "XLA keeps for the backward)")
    saved_unscaled = saved
    extra = _LOGITS_EXTRA_BYTES.get(generation, _LOGITS_EXTRA_DEFAULT)
    held = _TP_COTANGENTS_HELD.get(generation or "")
    logits_gathered = tp > 1 and (held is None or fsdp < held[0])
    if logits_gathered:
        # the split and the tp-gathered logits, beside the unscaled saved activations
        (num, den), extra = (1, 1), _LOGITS_EXTRA_TP_BYTES + it_c * tp
    elif remat == "full" and generation in _FULL_REMAT_BACKWARD:
        (num, den), extra = _FULL_REMAT_BACKWARD[generation]
    elif remat == "none":
        # no remat: the step peaks where the loss is formed, beside the bf16 logits and log_softmax's
        # bf16 shifted logits (bench rows 65, 75, 102, 136), before any float32 work
        (num, den), extra = (1, 1), it_c
    else:
        num, den = _SAVED_FACTOR.get(generation, (1, 1))
    if num != den:
        saved = saved * num // den
        saved_formula += f"   · {num}/{den} on {generation}"
    layer_weights = spec.layer_params(0) - spec.norm_params() - spec.bias_params()
    layer_gathered = ceil_div(layer_weights, tp) * it_c
    gathered_layers = L * layer_gathered
    head_gathered = ceil_div(V * H, tp) * it_c
    embed_cast = ceil_div(V * H, fsdp * tp) * it_c
    if tp > 1 and not logits_gathered:
        extra += held[1] + it_c * (tp - 2)
    logits_elements = tok * ceil_div(V, tp)
    logits = int(logits_elements * (it_c + extra))
    logits_formula = (f"tok · V/tp · (it_c + {_LOGITS_EXTRA_TP_BYTES} + it_c · tp)   (the bf16 logits split over "
                      "tp, their all-gather over tp to the full vocabulary and XLA's work of log_softmax/entropy, "
                      "one micro-batch)" if logits_gathered else
                      f"tok · V/tp · (it_c + {extra})   (bf16 logits gradient + XLA's fp32 work of "
                      "log_softmax/entropy, full vocab, one micro-batch)")
    uncast = it_p == it_c  # master params in the compute dtype: no cast before the all-gathers
    # with uncast params, or a hidden size 4x the tokens, no plain (non-ring) v4 step held the lm_head's
    # unreduced weight gradient
    crosses_ring_line = _rings_expected(generation, mesh, tok)
    no_head_grad = not crosses_ring_line and (uncast or H >= _HEAD_GRAD_MAX_HIDDEN_PER_TOKEN * tok)
    head_grad_extra = None if no_head_grad else _HEAD_GRAD_EXTRA_BYTES.get(generation, _HEAD_GRAD_EXTRA_DEFAULT)
    head_grad = head_gathered  # the lm_head's bf16 weight gradient, V·H/tp, before its reduce-scatter
    with_head_grad = (int(logits_elements * (it_c + head_grad_extra)) + head_grad
                      if head_grad_extra is not None else 0)
    if with_head_grad > logits:
        # the lm_head's weight gradient (unreduced over fsdp) is formed beside the logits gradient;
        # it sets the need where the vocabulary is large next to the tokens (small micro-batches)
        logits = with_head_grad
        logits_formula = (f"tok · V/tp · (it_c + {head_grad_extra}) + V · H / tp · it_c   (bf16 logits and "
                          "logits gradient + the lm_head's weight gradient before its reduce-scatter)")
    grads = n_dev * it_p

    if xla_limit_bytes is None:
        xla_limit_bytes = _FALLBACK_XLA_LIMIT
    share = scheduler_memory_share(generation)
    share_budget = max(0, int(share * xla_limit_bytes) - resident_bytes)
    budget = share_budget
    cap_text = f"{share} · XLA limit − resident"
    cap_tokens = SCHEDULER_SHARE_MAX_TOKENS.get(generation or "")
    if cap_tokens is not None and tok > cap_tokens:
        budget = None  # the scheduler hoisted past its share (and ran out of memory)
        cap_text = (f"past the share: above {cap_tokens} tokens/device on {generation} XLA hoisted past it, "
                    f"{PAST_SHARE_HOISTED_PCT}% of the hoisting where it does not fit under {cap_text}")
    # Seen on v4, v5e and v6e: with checkpointed layers the hoisting happens in the accumulating step
    # (grad_accum > 1; the program is the same for every grad_accum > 1); with grad_accum == 1 the
    # gathers stay next to their layers. On v5e/v6e (and v4 from 8 chips), under the dots policy, only
    # where the resident state is large next to the saved activations; nowhere gathers above half of
    # the HBM limit.
    second_copy_min = _NO_REMAT_SECOND_COPY_MIN_LAYER_BYTES.get(generation, _NO_REMAT_SECOND_COPY_MIN_DEFAULT)
    copies = 2 if remat == "none" and layer_gathered >= second_copy_min else 1
    # where the backward's copies are counted at its start, XLA gathered them layer by layer through the
    # forward (bench row 102's live ranges rise by one layer's copy and its saved values per layer up to
    # the forward's end), not all at the step's start
    forward_copies = 1 if generation in _BACKWARD_COPIES_AT_BACKWARD_START else copies
    windowed = remat != "none" and crosses_ring_line
    hoisting = _hoisting(generation, mesh, remat, shape.grad_accum, crosses_ring_line=crosses_ring_line,
                         uncast=uncast, tied=spec.tied, resident_bytes=resident_bytes,
                         saved_unscaled=saved_unscaled, gathered_layers=gathered_layers,
                         xla_limit_bytes=xla_limit_bytes)
    hoists, hoist_limited, uncast_skips = hoisting.hoists, hoisting.limited, hoisting.uncast_skips
    head_prefetch = (head_gathered if ((spec.tied and fsdp <= _TIED_HEAD_MAX_FSDP.get(generation or "", 0))
                                       or (uncast and generation in _UNCAST_HEAD_HOISTED))
                     else embed_cast)
    ring_backward_weights = ring_backward_embed = 0
    if windowed:
        ring_width = _ring_output_width(spec, tp)
        chunks = RING_WEIGHT_CHUNKS if tp == 1 else RING_WEIGHT_CHUNKS_TP
        ring_weights = L * chunks * ceil_div(layer_gathered, fsdp)
        ring_outputs = L * tok * ring_width * it_c
        embed_input = fsdp * tok * H * it_c
        ring_factor_pct = (RING_FULL_REMAT_ALLOCATION_PCT.get(generation or "", RING_ALLOCATION_FACTOR_PCT)
                           if remat == "full" else RING_ALLOCATION_FACTOR_PCT)
        hoisted_want = (ring_weights + ring_outputs + embed_cast + embed_input) * ring_factor_pct // 100
        ring_backward_weights = (L * RING_BACKWARD_WEIGHT_CHUNKS * ceil_div(layer_gathered, fsdp)
                                 * RING_ALLOCATION_FACTOR_PCT // 100)
        ring_backward_embed = RING_BACKWARD_EMBED_CHUNKS * embed_cast
    else:
        hoisted_want = forward_copies * gathered_layers + head_prefetch
        if reference_forward:
            # the KL reference forward's gathers, hoisted beside the policy's (flagged: 8-chip slices
            # hoisted neither)
            hoisted_want += gathered_layers + (head_gathered if generation in _REFERENCE_HEAD_GATHERED
                                               else embed_cast)
    hoist_reason = hoisting.reason
    # the full-remat rings line decides cast full-remat ring steps that the rules above hoist
    rings_line = RING_FULL_REMAT_HOIST_MAX_PER_RESIDENT.get(generation or "")
    rings_line_position = None
    full_rings_unhoisted = False
    if windowed and remat == "full" and hoists and not uncast and rings_line is not None:
        rings_per_resident = hoisted_want / max(resident_bytes, 1)
        rings_line_position = {"rings_per_resident": round(rings_per_resident, 3), "line": rings_line}
        full_rings_unhoisted = rings_per_resident > rings_line
    if full_rings_unhoisted:
        hoists = False
        hoist_reason = (f"not hoisted: the full-remat rings come to {rings_per_resident:.2f}x the "
                        f"resident state, above the {rings_line}x line on {generation}; the backward's recomputation "
                        "of every layer sets the peak")
    prefetch_want = hoisted_want if hoists else 0
    def hoisted_under_budget(want: int) -> int:
        if budget is not None:
            return min(want, budget)
        return want if want <= share_budget else max(share_budget, want * PAST_SHARE_HOISTED_PCT // 100)

    prefetch = hoisted_under_budget(prefetch_want)
    # without remat, on v5e/v6e, the backward's hoisted weight copies are live beside the saved activations
    backward_gathers = (gathered_layers if hoists and copies == 2 and generation in _BACKWARD_COPIES_AT_BACKWARD_START
                        else 0)
    backward = saved + head_gathered + logits + scores + backward_gathers
    # hoisted rings: the backward's own ring chunks, live at its start beside the saved activations
    ring_backward = ring_backward_weights + ring_backward_embed
    backward_if_hoisted = backward + ring_backward
    ring_recompute = windowed and ((remat == "dots" and (tp >= RING_RECOMPUTE_MIN_TP
                                                        or (tp >= RING_RECOMPUTE_UNHOISTED_MIN_TP and not hoists)))
                                   or full_rings_unhoisted)
    packing = 0
    recompute_per_token = _ring_recompute_elements(spec, tp) if ring_recompute else None
    if ring_recompute:
        saved = L * tok * recompute_per_token * it_c * RING_ALLOCATION_FACTOR_PCT // 100
        saved_formula = (f"L · tok · (3·I/tp + 4·H + 2·q/tp + 2·kv/tp) · it_c · {RING_ALLOCATION_FACTOR_PCT}%   "
                         "(ring step with tp >= 4, or tp 2 or full remat without hoisting: the backward's "
                         "recomputation of every layer, live at its start)")
        head_gathered = 0
        logits = tok * V * it_c * RING_ALLOCATION_FACTOR_PCT // 100
        logits_formula = (f"tok · V · it_c · {RING_ALLOCATION_FACTOR_PCT}%   (the bf16 logits gathered over tp "
                          "to the full vocabulary)")
        packing = ring_recompute_packing(generation, saved, logits + scores)
        saved += packing
        if packing:
            saved_formula += (f"   + {RING_RECOMPUTE_PACKING_PER_SHARE} · (share − "
                              f"{RING_RECOMPUTE_PACKING_MIN_LOGITS_SHARE[generation]}) · (that + logits), share = logits / "
                              "(that + logits)   (XLA's packing where the logits are a large share)")
        backward = saved + logits + scores
        if tp >= RING_RECOMPUTE_MIN_TP:  # hoisted or not (no ring chunks read at these steps' peaks)
            backward_if_hoisted = backward
    # an untied lm_head: without hoisting, a dots ring step (no recomputation model) holds every layer's
    # SwiGLU product at the backward's start too
    swiglu = (untied_ring_swiglu_bytes(spec, L, tok, it_c)
              if windowed and remat == "dots" and not ring_recompute else 0)
    backward_unhoisted = backward + swiglu
    update = grads if shape.grad_accum == 1 else 0
    phases = {"forward_start": prefetch, "backward_start": backward_if_hoisted if hoists else backward_unhoisted,
              "update": update}
    peak = max(phases, key=phases.get)
    # the step's need either way the hoisting decision goes (the notes print both where it is uncertain)
    outcomes = {"hoisted_bytes": max(hoisted_under_budget(hoisted_want), backward_if_hoisted, update),
                "not_hoisted_bytes": max(backward_unhoisted, update)}
    hoisting_line = ({"resident_per_saved": round(resident_bytes / saved_unscaled, 3), "line": hoisting.line,
                      **hoisting.line_fields}
                     if hoisting.line is not None and saved_unscaled else None)
    common = {"tok": tok, "L": L, "H": H, "V": V, "tp": tp, "fsdp": fsdp, "it_c": it_c, "remat": remat,
              "peak_phase": peak, "phase_bytes": phases, "hoisted": hoists, "hoist_reason": hoist_reason,
              "hoist_limited": hoist_limited,
              "outcomes": outcomes, "hoisting_line": hoisting_line, "rings_line": rings_line_position,
              "resident_per_gathers": round(resident_bytes / gathered_layers, 3) if gathered_layers else None,
              "windowed_einsum": crosses_ring_line,
              "gathers_share_of_limit": round(gathered_layers / xla_limit_bytes, 3),
              "params_in_compute_dtype": uncast,
              "uncast_skips_hoisting": uncast_skips and hoisting.if_cast,
              "uncast_rings": uncast and windowed and hoisting.if_cast,
              "reference_forward": reference_forward, "ring_recompute": ring_recompute,
              "hoisted_past_share": budget is None and hoists and hoisted_want > share_budget}
    if peak == "forward_start" and windowed:
        return [Component(
            "step.windowed_einsum_rings", prefetch,
            f"min((L · {chunks} · layer_weights/(tp · fsdp) · it_c + L · tok · (3·I + q + H + 2·kv)/tp · it_c "
            f"+ V·H/(fsdp·tp) · it_c + fsdp · tok · H · it_c) · {ring_factor_pct}%, "
            f"{cap_text})   "
            "(every layer's ring weight chunks and ring matmul outputs, live together at the step's peak)",
            {**common, "layer_weights": layer_weights, "ring_weight_chunks": chunks,
             "ring_weight_bytes": ring_weights, "ring_output_width": ring_width,
             "ring_output_bytes": ring_outputs, "embed_cast_bytes": embed_cast, "embed_input_bytes": embed_input,
             "allocation_factor_pct": ring_factor_pct, "budget": budget,
             "capped_by_budget": prefetch < prefetch_want, "resident_bytes": resident_bytes,
             "xla_limit_bytes": xla_limit_bytes},
            exact=False, phase=t,
            basis="XLA:TPU's buffer assignment of windowed-einsum steps (bench rows 151, 153, 203): per layer two "
                  "AllocateBuffer chunks, one collective-permute and one converted chunk of every weight matrix "
                  "(1/fsdp each; six chunks with tp = 2: rows 352, 358), and the ring matmuls' outputs; " + est)]
    if peak == "forward_start":
        capped = prefetch < prefetch_want
        comps = [Component(
            "step.fsdp_gather", prefetch,
            "min(copies · L · layer_weights/tp · it_c + head (+ the same + the reference head with beta != 0), "
            f"{cap_text})   "
            "(all-gathers hoisted to the start; copies 2 without remat, but on v5e/v6e: the backward's too; "
            "with the KL term the "
            "reference forward's too; head: the "
            "tied embedding's gather on v5e 4-chip rings and the lm_head's on v5e/v6e with params in the "
            "compute dtype, else the embedding shard's bf16 cast V·H/(fsdp·tp)·it_c)",
            {**common, "layer_weights": layer_weights, "gathered_layers": gathered_layers, "copies": forward_copies,
             "head": head_prefetch, "budget": budget, "capped_by_budget": capped,
             "resident_bytes": resident_bytes, "xla_limit_bytes": xla_limit_bytes,
             "scheduler_memory_share": share},
            exact=False, phase=t,
            basis="XLA's scheduler prefetches every layer's fsdp all-gather while the step stays under about 95% "
                  "of the HBM limit, 92% on v5e (fitted: capped compiles stopped at 93.2-94.5% on v4 and v6e, "
                  "90.2-92.0% on v5e); " + est)]
        return comps
    if peak == "backward_start":
        gathers = [Component(
            "step.backward_gathers", backward_gathers, "L · layer_weights/tp · it_c   (without remat: the "
            "backward's all-gathered weights, hoisted to the start of the step)",
            {**common, "layer_weights": layer_weights, "copies": copies}, exact=False, phase=t,
            basis=est)] if backward_gathers else []
        if hoists and ring_backward and not ring_recompute:
            gathers.append(Component(
                "step.backward_ring_chunks", ring_backward,
                f"L · {RING_BACKWARD_WEIGHT_CHUNKS} · layer_weights/(tp · fsdp) · it_c · {RING_ALLOCATION_FACTOR_PCT}% "
                f"+ {RING_BACKWARD_EMBED_CHUNKS} · V·H/(fsdp·tp) · it_c   (hoisted rings: the backward's ring "
                "chunks of every layer and of the embedding, live at its start)",
                {**common, "layer_weights": layer_weights, "ring_weight_chunks": RING_BACKWARD_WEIGHT_CHUNKS,
                 "ring_weight_bytes": ring_backward_weights, "embed_chunks": RING_BACKWARD_EMBED_CHUNKS,
                 "embed_chunk_bytes": ring_backward_embed,
                 "allocation_factor_pct": RING_ALLOCATION_FACTOR_PCT}, exact=False, phase=t,
                basis="XLA:TPU's buffer assignment at the backward-start peaks of bench rows 185 and 364; " + est))
        if swiglu and not hoists:
            gathers.append(Component(
                "step.swiglu_products", swiglu,
                "L · tok · I · it_c   (untied lm_head, ring step without hoisting: every layer's SwiGLU product, "
                "live at the backward's start beside the saved dot outputs)",
                {**common, "I": spec.intermediate, "tied": False}, exact=False, phase=t,
                basis="XLA:TPU's buffer assignment at the backward-start peaks of bench rows 532 and 533, and "
                      "compiles of the same steps with tie_word_embeddings flipped alone; " + est))
        return gathers + [
            Component("step.saved_activations", saved, saved_formula,
                      {**common, "dots_per_token": dots, "other_per_token": other,
                       **({"recompute_per_token": recompute_per_token, "packing_bytes": packing}
                          if ring_recompute else {})},
                      exact=False, phase=t, basis=est),
            *([Component("step.lm_head_gather", head_gathered, "V · H / tp · it_c   (lm_head / tied embedding, "
                         "all-gathered over fsdp)", common, exact=False, phase=t, basis=est)]
              if head_gathered else []),
            Component("step.logits", logits + scores, logits_formula
                      + ("  + naive attention scores" if naive else ""),
                      {**common, "extra_bytes_per_element": None if ring_recompute else extra,
                       "head_grad_extra_bytes": None if ring_recompute else head_grad_extra,
                       "attention_scores": scores}, exact=False,
                      phase=t, basis=est),
        ]
    return [
        Component("step.gradients", grads, "P_dev · it_p   (full gradients of one micro-step, before clip + update)",
                  {**common, "P_dev": n_dev, "it_p": it_p}, exact=True, phase=t,
                  basis="value_and_grad output, sharded like the params (grad_accum == 1)"),
    ]
