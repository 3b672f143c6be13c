"""Sweeps: the plan over a grid of options, as one pandas DataFrame.

``sweep(tpu=["v4-8", "v4-16"], bs=[8, 16, 32], len=[512, 1024])`` plans the cartesian product
of the lists (any :class:`~planner.request.PlanRequest` field; a scalar is a one-value list;
the last option varies fastest, as in ``itertools.product``) and returns one row per config.

:func:`planner.plan.make_plan` stays the one source of truth; the sweep equals it row by row
(``tests/test_sweep.py``). It is vectorised over the grid, not a loop over plans:

* per-row arithmetic (sequences, padding to dp×fsdp, micro-batches, grad_accum, bucketed
  sequence length, tokens per device, the engine's knob defaults, free bytes, verdicts) is
  numpy column arithmetic;
* the scalar planner functions (:func:`~planner.request.validate`,
  :func:`~planner.tpu.parse_slice`, :func:`~planner.model.load_model_spec`,
  :func:`~planner.training.parse_mesh`, :func:`~planner.training.training_memory`,
  :func:`~planner.plan.rl_engine_defaults`, :func:`~planner.plan.plan_engine`) run once per
  unique value of the columns they depend on, and their results are gathered back by code.

Sweeps are uncalibrated: they equal ``make_plan(req)`` without calibration records (the exact
layout plus the labelled estimates), so a grid is comparable across TPU generations.

Rows with bad input get ``verdict == "invalid"`` and the planner's one-line message in
``error``; an unknown TPU type, model or engine version raises :class:`PlanError` up front.

``hbmplan sweep`` (:func:`cli_sweep`) takes every plan flag as a list ``a,b,c`` or a range
``start:stop[:step]`` / ``start:stop:xK`` (stop included) and writes a table, CSV or JSON.
"""

from __future__ import annotations

import argparse
import math
import sys
import typing

import numpy as np
import pandas as pd

from planner.engine import get_profile
from planner.errors import PlanError
from planner.model import load_model_spec
from planner.plan import (DEFAULT_MFS_INFER, DEFAULT_MFS_RL, default_serving_tp, plan_engine,
                          rl_engine_defaults)
from planner.request import FIELD_NAMES, PlanRequest, validate
from planner.tpu import parse_slice
from planner.training import SEQ_BUCKETS, Mesh, TrainShape, parse_mesh, train_shape, training_memory

__all__ = ["sweep", "cli_sweep", "parse_values", "OUTPUT_COLUMNS", "MAX_ROWS"]

#: Largest grid one sweep accepts.
MAX_ROWS = 5_000_000
#: Most values one range may expand to.
MAX_RANGE_VALUES = 100_000

DEFAULTS: dict[str, object] = dict(PlanRequest._field_defaults)

#: Output columns after the input knobs, in order.
OUTPUT_COLUMNS = (
    "verdict", "total_bytes", "limit_bytes", "headroom_bytes", "step_need_bytes", "free_at_step_bytes",
    "resident_bytes", "engine_param_bytes", "kv_bytes_per_device", "engine_runtime_temp_bytes",
    "max_total_tokens_effective", "engine_tp", "mem_fraction_static_effective", "context_len_effective",
    "max_running_requests_effective", "num_devices", "sequences", "micro_batch", "grad_accum", "seq_len",
    "micro_per_device", "tokens_per_device", "error",
)

_NONE = -1  # "not given" in the integer knob arrays used for arithmetic (those knobs are >= 1 when valid)


def _field_kinds() -> dict[str, tuple[type, bool]]:
    """(base type, optional) of every PlanRequest field, from its annotation."""
    hints = typing.get_type_hints(PlanRequest)
    out = {}
    for name in FIELD_NAMES:
        args = typing.get_args(hints[name]) or (hints[name],)
        base = next(a for a in args if a is not type(None))
        out[name] = (base, type(None) in args)
    return out


KINDS = _field_kinds()


# -- the grid ----------------------------------------------------------------------------------


def _py(v):
    """numpy scalars to Python scalars (validate checks ``isinstance(v, int)``)."""
    return v.item() if isinstance(v, np.generic) else v


def _as_list(name: str, values) -> list:
    if isinstance(values, (str, bytes)) or not isinstance(values, typing.Iterable):
        values = [values]
    out = [_py(v) for v in values]
    if not out:
        raise PlanError(f"sweep option {name!r} has an empty list of values")
    return out


def _obj_array(values: list) -> np.ndarray:
    arr = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        arr[i] = v
    return arr


class _Grid:
    """The cartesian product, held as per-axis value lists and per-row codes into them."""

    def __init__(self, axes: dict[str, list]):
        self.axes = axes
        sizes = [len(v) for v in axes.values()]
        self.n = math.prod(sizes)
        if self.n > MAX_ROWS:
            raise PlanError(f"the sweep has {self.n:,} configs; the most one sweep takes is {MAX_ROWS:,}")
        self._codes: dict[str, np.ndarray] = {}
        stride = self.n
        rows = np.arange(self.n, dtype=np.int64)
        for name, size in zip(axes, sizes):
            stride //= size
            self._codes[name] = (rows // stride) % size if size > 1 else np.zeros(self.n, np.int64)
        self._zeros = np.zeros(self.n, np.int64)
        self._memo: dict[tuple[str, str], np.ndarray] = {}

    def values(self, name: str) -> list:
        return self.axes[name] if name in self.axes else [DEFAULTS[name]]

    def codes(self, name: str) -> np.ndarray:
        return self._codes.get(name, self._zeros)

    def lift(self, name: str, fn=None, dtype=object) -> np.ndarray:
        """Per-row array of ``fn(value)``, computed once per value of the axis."""
        vals = [v if fn is None else fn(v) for v in self.values(name)]
        arr = _obj_array(vals) if dtype is object else np.asarray(vals, dtype=dtype)
        return arr[self.codes(name)]

    def raw(self, name: str) -> np.ndarray:
        """The knob's values per row (object array; memoised)."""
        key = ("raw", name)
        if key not in self._memo:
            self._memo[key] = self.lift(name)
        return self._memo[key]

    def ints(self, name: str) -> np.ndarray:
        """An integer knob per row; None (and, on invalid rows, anything not an int) is -1."""
        key = ("int", name)
        if key not in self._memo:
            self._memo[key] = self.lift(
                name, lambda v: v if isinstance(v, int) and not isinstance(v, bool) else _NONE, np.int64)
        return self._memo[key]

    def floats(self, name: str) -> np.ndarray:
        """A float knob per row; None (or anything not a number) is NaN."""
        key = ("float", name)
        if key not in self._memo:
            self._memo[key] = self.lift(
                name, lambda v: float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan,
                np.float64)
        return self._memo[key]


def _group(*arrays: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes (0..k-1, in order of first appearance) of the unique rows of ``arrays``, and the
    index of each key's first row."""
    m = len(arrays[0])
    acc = np.zeros(m, dtype=np.int64)
    for a in arrays:
        c, uniq = pd.factorize(a, use_na_sentinel=False)
        acc = acc * max(len(uniq), 1) + c
        acc, _ = pd.factorize(acc)
    acc = np.asarray(acc, dtype=np.int64)
    if m == 0:
        return acc, acc
    _, first = np.unique(acc, return_index=True)
    return acc, first


def _per_unique(fn, *arrays: np.ndarray, extra: tuple[np.ndarray, ...] = ()) -> tuple[np.ndarray, list]:
    """Call ``fn(*key, *extra)`` once per unique key of the row-aligned ``arrays``; ``extra``
    arrays are passed along (their values at the key's first row) but are not part of the key.

    Returns the per-row codes and the list of results; a :class:`PlanError` (or a
    TypeError/ValueError from a mistyped value) becomes the result ``PlanError(message)``.
    """
    codes, first = _group(*arrays)
    cols = [a[first].tolist() for a in (*arrays, *extra)]
    results = []
    for key in zip(*cols):
        try:
            results.append(fn(*key))
        except (PlanError, TypeError, ValueError) as exc:
            results.append(exc if isinstance(exc, PlanError) else PlanError(str(exc)))
    return codes, results


def _error_of(result) -> str | None:
    return str(result) if isinstance(result, PlanError) else None


def _bucket(n: np.ndarray) -> np.ndarray:
    """planner.training.bucket, vectorised: the first bucket >= n, multiples of the last beyond."""
    b = np.asarray(SEQ_BUCKETS, dtype=np.int64)
    i = np.searchsorted(b, n, side="left")
    last = b[-1]
    return np.where(n <= last, b[np.minimum(i, len(b) - 1)], -(-n // last) * last)


# -- the sweep ---------------------------------------------------------------------------------


def sweep(grid: dict[str, typing.Any] | None = None, /, **options) -> pd.DataFrame:
    """Plan every config of the cartesian product of ``grid`` and ``options``.

    Args:
      grid: ``{field: values}`` over :data:`planner.request.FIELD_NAMES`; a scalar is one value.
      **options: more fields, same form (they override ``grid``'s).

    Returns:
      One row per config, in ``itertools.product`` order of the given options: every input
      knob (defaults filled in), then :data:`OUTPUT_COLUMNS`. Byte counts are per device,
      nullable ``Int64`` (NA where they do not apply: no engine for ``train``, no training
      step for ``infer``, nothing for ``invalid`` rows).

    Raises:
      PlanError: an unknown option, an empty list, an unknown TPU type, model or engine
        version (with the valid choices), or a grid larger than :data:`MAX_ROWS`.
    """
    axes: dict[str, list] = {}
    for source in (grid or {}, options):
        for name, values in source.items():
            if name not in FIELD_NAMES:
                raise PlanError(f"unknown sweep option {name!r}; valid: {', '.join(FIELD_NAMES)}")
            axes[name] = _as_list(name, values)
    g = _Grid(axes)
    n = g.n

    # Names with a catalog fail the whole sweep, naming the valid choices.
    slices = [parse_slice(v) for v in g.values("tpu")]
    specs = [load_model_spec(v) for v in g.values("model")]
    for v in g.values("engine_version"):
        get_profile(v)

    error = np.full(n, None, dtype=object)
    _validate(g, error)

    tpu_c, model_c = g.codes("tpu"), g.codes("model")
    limit = np.array([s.limit_bytes for s in slices], np.int64)[tpu_c]
    ndev = np.array([s.num_devices for s in slices], np.int64)[tpu_c]
    local = np.array([s.devices_per_host for s in slices], np.int64)[tpu_c]
    workload = g.raw("workload")

    out = {name: np.full(n, _NONE, np.int64) for name in (
        "total_bytes", "step_need_bytes", "free_at_step_bytes", "resident_bytes", "engine_param_bytes",
        "kv_bytes_per_device", "engine_runtime_temp_bytes", "max_total_tokens_effective", "engine_tp",
        "context_len_effective", "max_running_requests_effective", "sequences", "micro_batch", "grad_accum",
        "seq_len", "micro_per_device", "tokens_per_device")}
    mfs_eff = np.full(n, np.nan)
    verdict = np.full(n, "fits", dtype=object)

    ok = np.equal(error, None)
    is_infer = workload == "infer"
    is_rl = workload == "rl"

    # -- training and RL: batch arithmetic, vectorised ----------------------------------------
    t = np.flatnonzero(ok & (is_rl | (workload == "train")))
    prompts, spp, bs = g.ints("prompts")[t], g.ints("samples_per_prompt")[t], g.ints("bs")[t]
    sequences = np.where(prompts != _NONE, prompts * spp, np.where(bs != _NONE, bs, 32))

    mesh_c, meshes = _per_unique(lambda text, nd: parse_mesh(text, nd), g.raw("mesh")[t], ndev[t])
    bad = _fail(error, t, [_error_of(m) for m in meshes], mesh_c)
    dims = np.array([(1, 1, 1) if isinstance(m, PlanError) else (m.dp, m.fsdp, m.tp) for m in meshes],
                    np.int64).reshape(-1, 3)[mesh_c]
    dp, fsdp, mtp = dims[:, 0], dims[:, 1], dims[:, 2]

    shards = dp * fsdp
    padded = -(-sequences // shards) * shards
    micro_bs = g.ints("micro_bs")[t]
    micro = np.where(micro_bs != _NONE, micro_bs, padded)
    shape_bad = ~bad & ((micro % shards != 0) | (padded % np.maximum(np.minimum(micro, padded), 1) != 0))
    if shape_bad.any():  # the planner's own message, once per unique bad shape
        sb = np.flatnonzero(shape_bad)
        codes, res = _per_unique(
            lambda seqs, mb, pl, gl, a, b, c: train_shape(seqs, None if mb == _NONE else mb, pl, gl, Mesh(a, b, c)),
            sequences[sb], micro_bs[sb], g.ints("prompt_len")[t][sb], g.ints("len")[t][sb], dp[sb], fsdp[sb],
            mtp[sb])
        _fail(error, t[sb], [_error_of(r) or "internal: shape expected to fail" for r in res], codes)
        bad |= shape_bad
    micro = np.minimum(micro, padded)
    grad_accum = padded // np.maximum(micro, 1)
    seq_len = _bucket(g.ints("prompt_len")[t]) + _bucket(g.ints("len")[t])
    per_dev = micro // shards
    tokens = per_dev * seq_len

    # training memory: once per unique (model, mesh, optimizer, dtypes, remat, beta≠0, grad_accum>1,
    # micro_per_device, seq_len, TPU type: its generation and HBM limit shape the step temporaries);
    # step temporaries are whatever planner.training says they are.
    def train_mem(mc, a, b, c, opt, pdt, cdt, remat, _beta_nonzero, _accumulates, mpd, sl, tc,
                  beta, seqs, pad, mb, ga, tok):
        return training_memory(specs[mc], Mesh(a, b, c), TrainShape(seqs, pad, mb, ga, sl, mpd, tok),
                               opt, pdt, cdt, remat, beta,
                               xla_limit_bytes=slices[tc].limit_bytes, generation=slices[tc].generation.step_rules_name)

    k = ~bad
    tk = t[k]
    tm_c, results = _per_unique(
        train_mem, model_c[tk], dp[k], fsdp[k], mtp[k], g.raw("optimizer")[tk], g.raw("param_dtype")[tk],
        g.raw("compute_dtype")[tk], g.raw("remat")[tk], g.floats("beta")[tk] != 0.0, grad_accum[k] > 1,
        per_dev[k], seq_len[k], tpu_c[tk],
        extra=(g.raw("beta")[tk], sequences[k], padded[k], micro[k], grad_accum[k], tokens[k]))
    tm_bad = _fail(error, tk, [_error_of(r) for r in results], tm_c)
    resident = np.array([0 if isinstance(r, PlanError) else r.resident_bytes for r in results], np.int64)[tm_c]
    step = np.array([0 if isinstance(r, PlanError) else r.step_temp_bytes for r in results], np.int64)[tm_c]

    for name, arr in (("sequences", sequences), ("micro_batch", micro), ("grad_accum", grad_accum),
                      ("seq_len", seq_len), ("micro_per_device", per_dev), ("tokens_per_device", tokens)):
        out[name][tk] = arr[k]
    good = ~tm_bad
    tg = tk[good]
    out["resident_bytes"][tg] = resident[good]
    out["step_need_bytes"][tg] = step[good]

    # -- engine knobs, vectorised: the RL runner's defaults, or sglang-jax's for infer --------
    r = tg[is_rl[tg]]
    seq_r = sequences[k][good][is_rl[tg]]
    rl_c, rl_res = _per_unique(
        lambda pl, gl, rc, seqs, loc: rl_engine_defaults(
            PlanRequest(prompt_len=pl, len=gl, rollout_chunk=None if rc == _NONE else rc), seqs, loc),
        g.ints("prompt_len")[r], g.ints("len")[r], g.ints("rollout_chunk")[r], seq_r, local[r])
    rl_def = np.array([x[:3] for x in rl_res], np.int64).reshape(-1, 3)[rl_c]
    i = np.flatnonzero(ok & is_infer)
    e = np.concatenate([r, i])
    ctx_default = np.concatenate([rl_def[:, 0], np.array([spec.max_position for spec in specs], np.int64)[model_c[i]]])
    mtt_default = np.concatenate([rl_def[:, 1], np.full(len(i), _NONE, np.int64)])
    mrr_default = np.concatenate([rl_def[:, 2], np.full(len(i), _NONE, np.int64)])
    f0 = np.concatenate([limit[r] - resident[good][is_rl[tg]], limit[i]])
    serving_tp = np.array([[default_serving_tp(sp, sl.num_devices) for sl in slices] for sp in specs], np.int64)
    tp_default = np.concatenate([local[r], serving_tp[model_c[i], tpu_c[i]]])
    e_world = np.concatenate([local[r], ndev[i]])  # engine mesh: one host (rl runner), the slice (infer)
    mfs_default = np.concatenate([np.full(len(r), DEFAULT_MFS_RL), np.full(len(i), DEFAULT_MFS_INFER)])

    tp_flag, mfs_flag = g.ints("tp")[e], g.floats("mem_fraction_static")[e]
    mtt_flag, mrr_flag, ctx_flag = g.ints("max_total_tokens")[e], g.ints("max_running_requests")[e], \
        g.ints("context_length")[e]
    e_tp = np.where(tp_flag != _NONE, tp_flag, tp_default)
    e_mfs = np.where(np.isnan(mfs_flag), mfs_default, mfs_flag)
    e_mtt = np.where(mtt_flag != _NONE, mtt_flag, mtt_default)
    e_mrr = np.where(mrr_flag != _NONE, mrr_flag, mrr_default)
    e_ctx = np.where(ctx_flag != _NONE, ctx_flag, ctx_default)

    # -- the engine: once per unique engine key -------------------------------------------------
    def engine(mc, tc, vc, dc, kc, psc, cpc, mpc, tp, f0_, mfs, mtt, mrr, ctx, world):
        req = PlanRequest(dtype=g.values("dtype")[dc], kv_dtype=g.values("kv_dtype")[kc],
                          page_size=g.values("page_size")[psc], chunked_prefill_size=g.values("chunked_prefill_size")[cpc],
                          max_prefill_tokens=g.values("max_prefill_tokens")[mpc])
        eng, _, transient = plan_engine(
            specs[mc], slices[tc], get_profile(g.values("engine_version")[vc]), req, tp=tp, f0_free_bytes=f0_,
            mem_fraction_static=mfs, max_total_tokens=None if mtt == _NONE else mtt,
            max_running_flag=None if mrr == _NONE else mrr, context_len=ctx, knobs_source="sweep", world=world)
        return eng

    eng_c, engs = _per_unique(
        engine, model_c[e], tpu_c[e], g.codes("engine_version")[e], g.codes("dtype")[e], g.codes("kv_dtype")[e],
        g.codes("page_size")[e], g.codes("chunked_prefill_size")[e], g.codes("max_prefill_tokens")[e],
        e_tp, f0, e_mfs, e_mtt, e_mrr, e_ctx, e_world)
    eng_bad = _fail(error, e, [_error_of(x) for x in engs], eng_c)

    def field(fn):
        return np.array([0 if isinstance(x, PlanError) else fn(x) for x in engs], np.int64)[eng_c]

    e_param = field(lambda x: x.param_bytes_per_device)
    e_kv = field(lambda x: x.kv_bytes_per_device)
    e_temp = field(lambda x: x.runtime_temp_bytes)
    e_n = field(lambda x: x.sizing.num_tokens)
    e_mrr_eff = field(lambda x: x.max_running_requests)
    e_cannot = np.array([not isinstance(x, PlanError) and x.sizing.error is not None for x in engs], bool)[eng_c]

    eg = ~eng_bad
    ee = e[eg]
    for name, arr in (("engine_param_bytes", e_param), ("kv_bytes_per_device", e_kv),
                      ("engine_runtime_temp_bytes", e_temp), ("max_total_tokens_effective", e_n),
                      ("engine_tp", e_tp), ("context_len_effective", e_ctx),
                      ("max_running_requests_effective", e_mrr_eff)):
        out[name][ee] = arr[eg]
    mfs_eff[ee] = e_mfs[eg]
    cannot = np.zeros(n, bool)
    cannot[ee] = e_cannot[eg]

    # -- totals and verdicts --------------------------------------------------------------------
    ok = np.equal(error, None)
    has_eng = out["engine_param_bytes"] != _NONE
    eng_hbm = np.where(has_eng, out["engine_param_bytes"] + out["kv_bytes_per_device"], 0)
    trainlike = ok & ~is_infer
    infer_ok = ok & is_infer
    res = out["resident_bytes"]
    free = limit - res - eng_hbm
    out["free_at_step_bytes"] = np.where(trainlike, free, _NONE)
    out["total_bytes"] = np.where(
        trainlike, res + eng_hbm + out["step_need_bytes"],
        np.where(infer_ok, eng_hbm + out["engine_runtime_temp_bytes"], _NONE))
    verdict[trainlike & (out["step_need_bytes"] > free)] = "oom"
    verdict[infer_ok & (out["total_bytes"] > limit)] = "oom"
    verdict[ok & cannot] = "engine_cannot_start"
    verdict[~ok] = "invalid"
    headroom = limit - out["total_bytes"]

    # -- the frame ------------------------------------------------------------------------------
    cols: dict[str, object] = {name: _input_column(g, name) for name in FIELD_NAMES}
    cols["verdict"] = verdict
    for name in OUTPUT_COLUMNS[1:-1]:
        if name == "limit_bytes":
            cols[name] = limit
        elif name in ("headroom_bytes", "total_bytes"):
            cols[name] = pd.arrays.IntegerArray(headroom if name == "headroom_bytes" else out[name], ~ok)
        elif name in ("free_at_step_bytes", "step_need_bytes"):
            cols[name] = pd.arrays.IntegerArray(out[name], ~trainlike)
        elif name == "num_devices":
            cols[name] = ndev
        elif name == "mem_fraction_static_effective":
            cols[name] = pd.arrays.FloatingArray(mfs_eff, np.isnan(mfs_eff))
        else:
            cols[name] = pd.arrays.IntegerArray(out[name], (out[name] == _NONE) | ~ok)  # these are >= 0
    cols["error"] = error
    return pd.DataFrame(cols, copy=False)


def _validate(g: _Grid, error: np.ndarray) -> None:
    """validate() once per value of each axis; rows with a bad value get validate()'s own message
    for their combination of bad values (the first check that fails, in validate's order)."""
    bad_axes = {}
    for name in g.axes:
        errs = []
        for v in g.values(name):
            try:
                validate(PlanRequest(**{name: v}))
                errs.append(None)
            except (PlanError, TypeError, ValueError) as exc:
                errs.append(str(exc))
        if any(errs):
            bad_axes[name] = np.array([x is not None for x in errs])
    if not bad_axes:
        return
    # per row: the code of each bad value, or -1 where that axis is fine
    masked = {name: np.where(flags[g.codes(name)], g.codes(name), -1) for name, flags in bad_axes.items()}
    any_bad = np.zeros(g.n, bool)
    for arr in masked.values():
        any_bad |= arr >= 0
    rows = np.flatnonzero(any_bad)
    names = list(masked)

    def message(*codes):
        changes = {nm: g.values(nm)[c] for nm, c in zip(names, codes) if c >= 0}
        try:
            validate(PlanRequest(**changes))
        except (PlanError, TypeError, ValueError) as exc:
            return PlanError(str(exc))
        return PlanError("invalid input")

    codes, msgs = _per_unique(message, *(masked[nm][rows] for nm in names))
    _fail(error, rows, [str(m) for m in msgs], codes)


def _fail(error: np.ndarray, rows: np.ndarray, messages: list, codes: np.ndarray) -> np.ndarray:
    """Record per-unique error messages on ``rows``; return the mask (over ``rows``) that failed."""
    if not len(rows):
        return np.zeros(0, bool)
    msgs = _obj_array(list(messages))
    per_row = msgs[codes] if len(msgs) else np.full(len(rows), None, dtype=object)
    failed = np.not_equal(per_row, None)
    error[rows[failed]] = per_row[failed]
    return failed


def _input_column(g: _Grid, name: str):
    """One input knob column, as a nullable integer/float array where its values allow."""
    vals = g.values(name)
    base, _ = KINDS[name]
    present = [v for v in vals if v is not None]
    is_int = all(isinstance(v, int) and not isinstance(v, bool) for v in present)
    if base is int and is_int:
        arr = g.ints(name)  # -1 is a value here (--chunked-prefill-size -1), not "not given"
        return pd.arrays.IntegerArray(arr, g.lift(name, lambda v: v is None, bool)) if None in vals else arr
    if base is float and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        arr = g.floats(name)
        return pd.arrays.FloatingArray(arr, g.lift(name, lambda v: v is None, bool)) if None in vals else arr
    if base is bool and all(isinstance(v, bool) for v in vals):
        return g.lift(name, dtype=bool)
    return g.lift(name)


# -- command line ------------------------------------------------------------------------------


def _number(text: str, base: type, flag: str):
    try:
        return base(text)
    except ValueError:
        raise PlanError(f"{flag}: {text!r} is not {'an integer' if base is int else 'a number'}") from None


def _expand_range(item: str, base: type, flag: str) -> list:
    parts = item.split(":")
    if len(parts) not in (2, 3):
        raise PlanError(f"{flag}: bad range {item!r}; use start:stop, start:stop:step or start:stop:xK")

    def bad(why: str) -> PlanError:
        return PlanError(f"{flag}: bad range {item!r}: {why}")

    start, stop = (_number(p.strip(), base, flag) for p in parts[:2])
    step_text = parts[2].strip() if len(parts) == 3 else "1"
    if start > stop:
        raise bad("start is greater than stop")
    if step_text[:1].lower() == "x":
        factor = _number(step_text[1:], float if base is float else int, flag)
        if factor <= 1:
            raise bad("the factor of xK must be greater than 1")
        if start <= 0:
            raise bad("a geometric range must start above 0")
        count = int(math.log(stop / start, factor) + 1e-9) + 1
        if count > MAX_RANGE_VALUES:
            raise bad(f"more than {MAX_RANGE_VALUES:,} values")
        values, v = [], start
        while v <= stop * (1 + 1e-12):
            values.append(round(v, 12) if base is float else v)
            v = v * factor
        return values
    step = _number(step_text, base, flag)
    if step <= 0:
        raise bad("step must be positive")
    count = int((stop - start) / step + 1e-9) + 1
    if count > MAX_RANGE_VALUES:
        raise bad(f"more than {MAX_RANGE_VALUES:,} values")
    if base is int:
        return list(range(start, stop + 1, step))
    return [round(start + j * step, 12) for j in range(count)]


def parse_values(name: str, text: str) -> list:
    """Parse one sweep flag: a list ``a,b,c`` (``;`` for --mesh, whose values hold commas) of
    values or ranges ``start:stop[:step]`` / ``start:stop:xK`` (stop included; numeric knobs),
    with ``none`` for "the default" on optional knobs."""
    base, optional = KINDS[name]
    flag = "--" + name.replace("_", "-")
    sep = ";" if name == "mesh" else ","
    out: list = []
    for raw in str(text).split(sep):
        item = raw.strip()
        if not item:
            raise PlanError(f"{flag}: empty value in {text!r}")
        if optional and item.lower() in ("none", "default"):
            out.append(None)
        elif base in (int, float):
            out.extend(_expand_range(item, base, flag) if ":" in item else [_number(item, base, flag)])
        elif base is bool:
            low = item.lower()
            if low not in ("true", "false", "1", "0", "yes", "no"):
                raise PlanError(f"{flag}: {item!r} is not true or false")
            out.append(low in ("true", "1", "yes"))
        else:
            out.append(item)
    return out


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # noqa: D401
        raise PlanError(message)


def _table_text(df: pd.DataFrame) -> str:
    shown = {}
    for name in df.columns:
        col = df[name]
        if name.endswith("_bytes"):
            gib = col.astype("Float64") / 2**30
            shown[name[: -len("_bytes")] + "_gib"] = [("-" if pd.isna(x) else f"{x:.2f}") for x in gib]
        else:
            shown[name] = ["-" if (x is None or (not isinstance(x, str) and pd.isna(x))) else x for x in col]
    return pd.DataFrame(shown).to_string(index=False)


def _default_table_columns(df: pd.DataFrame, swept: list[str]) -> list[str]:
    cols = list(swept) or ["tpu", "model", "workload"]
    trainlike = (df["workload"] != "infer").any()
    has_engine = df["max_total_tokens_effective"].notna().any()
    cols += ["verdict", "total_bytes", "limit_bytes", "headroom_bytes"]
    if trainlike:
        cols += ["step_need_bytes", "free_at_step_bytes"]
    if has_engine:
        cols += ["max_total_tokens_effective"]
    if (df["verdict"] == "invalid").any():
        cols += ["error"]
    return list(dict.fromkeys(cols))


def cli_sweep(argv: list[str]) -> int:
    """``hbmplan sweep``: plan a grid; write a table, CSV or JSON. Exit 0, or 2 for bad input."""
    from planner.cli import add_plan_arguments

    p = _Parser(prog="hbmplan sweep",
                description="Plan a grid of configs. Every plan flag takes a list a,b,c or a range "
                "start:stop[:step] / start:stop:xK (stop included; e.g. --len 512:4096:x2); --mesh values "
                "are separated by ';'; 'none' means the default. Rows are the product of the given flags in "
                "the order of `hbmplan --help`, the last varying fastest.")
    add_plan_arguments(p, typed=False)
    o = p.add_argument_group("output")
    o.add_argument("--format", choices=("table", "csv", "json"), default="table")
    o.add_argument("--out", default=None, help="write to this file instead of stdout")
    o.add_argument("--columns", default=None, help="comma-separated output columns (default: a summary for "
                   "table, every column for csv/json)")
    plan_dests = []
    for action in p._actions:  # only the flags given on the command line reach the grid
        if action.dest in FIELD_NAMES:
            action.default = argparse.SUPPRESS
            plan_dests.append(action.dest)
    args = p.parse_args(argv)

    axes = {d: parse_values(d, getattr(args, d)) for d in FIELD_NAMES if d in plan_dests and hasattr(args, d)}
    swept = list(axes)
    df = sweep(axes)

    if args.columns:
        cols = [c.strip() for c in args.columns.split(",") if c.strip()]
        unknown = [c for c in cols if c not in df.columns]
        if unknown:
            raise PlanError(f"--columns: unknown column {unknown[0]!r}; valid: {', '.join(df.columns)}")
    else:
        cols = _default_table_columns(df, swept) if args.format == "table" else list(df.columns)
    view = df[cols]
    if args.format == "csv":
        text = view.to_csv(index=False)
    elif args.format == "json":
        text = view.to_json(orient="records") + "\n"
    else:
        counts = df["verdict"].value_counts()
        summary = ", ".join(f"{counts.get(v, 0)} {v}" for v in ("fits", "oom", "engine_cannot_start", "invalid")
                            if counts.get(v, 0))
        text = _table_text(view) + f"\n\n{len(df)} configs: {summary}\n"
    if args.out:
        try:
            with open(args.out, "w", encoding="utf-8") as fh:
                fh.write(text)
        except OSError as exc:
            raise PlanError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    else:
        sys.stdout.write(text)
    return 0
