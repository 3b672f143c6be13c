"""Compile check: ask the real XLA:TPU compiler, on a CPU machine, what the training step needs.

``compile_plan(plan)`` turns an analytic :class:`~planner.plan.Plan` into a JSON config, compiles
the reference training step (:mod:`planner.compile.reference_step`) for the slice's topology in a
subprocess (:mod:`planner.compile.worker`; libtpu's noise stays in that process's captured
stderr), and returns a :class:`CompileReport`: XLA's per-device argument / output / alias / temp /
peak bytes beside the analytic prediction, or XLA's own out-of-memory figures.

Nothing here imports jax: the analytic path stays light, and a machine without ``jax[tpu]`` gets
one clear line (:func:`unavailable_reason`).

Results are cached as JSON keyed by the sha256 of the config (which includes the reference-step
version and the jax / libtpu versions) under ``$HBMPLAN_COMPILE_CACHE`` or
``~/.cache/hbmplan/compile``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata, util
from pathlib import Path

from planner.errors import PlanError
from planner.param_layout import model_fields
from planner.units import fmt_gib, gib

#: Bump when the reference step or the compile procedure changes what XLA is asked.
REFERENCE_VERSION = "2"

#: How the layers are laid out in the reference step. ``unroll`` (one set of arrays and one
#: checkpointed block per layer, as in the seeds' flax model) is the default: a ``lax.scan``
#: compiles faster, but keeps every layer's saved residuals alive while the stacked gradients
#: already exist, which is a different program (see bench/compile_vs_analytic.md).
DEFAULT_LAYERS = os.environ.get("HBMPLAN_COMPILE_LAYERS", "unroll")
#: XLA optimisation effort. O0 roughly halves a 7B compile on a 2-core box (the seed's step: 31-45 s
#: against 65-66 s); its temp bytes were 0.2-7% from the default effort's on the configs we compared
#: (the seed's step: 7.785 GiB against 8.023 GiB, -3.0%; bench/compile_vs_analytic.md).
DEFAULT_OPT_LEVEL = os.environ.get("HBMPLAN_COMPILE_OPT_LEVEL", "O0")
DEFAULT_TIMEOUT_S = float(os.environ.get("HBMPLAN_COMPILE_TIMEOUT", "1800"))


def cache_dir() -> Path:
    return Path(os.environ.get("HBMPLAN_COMPILE_CACHE") or Path.home() / ".cache" / "hbmplan" / "compile")


def unavailable_reason() -> str | None:
    """None when jax[tpu] (jax, libtpu) and optax can be imported; else one line saying what is missing."""
    missing = [m for m in ("jax", "jaxlib", "libtpu", "optax") if util.find_spec(m) is None]
    if missing:
        return (f"--compile needs jax[tpu] and optax ({', '.join(missing)} not installed); "
                f"install with: pip install 'jax[tpu]==0.8.1' optax  (or: pip install -e '.[tpu]')")
    return None


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


# -- config ------------------------------------------------------------------------------------


def compile_config(plan, *, layers: str | None = None, optimization_level: str | None = None) -> dict:
    """The JSON config of the reference step for a training or RL plan.

    It carries the user's compiler flags (:func:`compiler_flags`) where any are set: the worker
    inherits them, so they belong to what is compiled and to the cache key.
    """
    if plan.training is None:
        raise PlanError("--compile compiles the training step; use --workload train or rl")
    spec, req, slc, t = plan.spec, plan.request, plan.slice, plan.training
    if spec.moe is not None:
        raise PlanError(f"--compile: the reference step covers dense qwen2/qwen3/llama layers; "
                        f"{spec.name} is {spec.family} (MoE)")
    if spec.heads_tp_does_not_divide(t.mesh.tp):
        raise PlanError(f"--compile: tp {t.mesh.tp} must divide heads {spec.heads} and kv_heads {spec.kv_heads}")
    from planner.units import canonical_dtype

    return {
        "version": REFERENCE_VERSION,
        "jax": _version("jax"),
        "libtpu": _version("libtpu"),
        "tpu": {
            "name": slc.name,
            "topology": slc.topology,
            "chip_config_name": slc.generation.chip_config_name,
            "chips_per_host_bounds": list(slc.chips_per_host_bounds),
            "num_devices": slc.num_devices,
            "num_hosts": slc.num_hosts,
        },
        "model": {"name": spec.name, **model_fields(spec)},
        "mesh": [t.mesh.dp, t.mesh.fsdp, t.mesh.tp],
        "micro_batch": t.shape.micro_batch,
        "seq_len": t.shape.seq_len,
        "grad_accum": t.shape.grad_accum,
        "optimizer": req.optimizer,
        "param_dtype": canonical_dtype(req.param_dtype),
        "compute_dtype": canonical_dtype(req.compute_dtype),
        "remat": req.remat,
        "beta": float(req.beta),
        "attention": "auto",
        "layers_mode": layers or DEFAULT_LAYERS,
        "optimization_level": optimization_level or DEFAULT_OPT_LEVEL,
        # only when set, so that a clean environment keeps every cached result's key
        **({"compiler_flags": flags} if (flags := compiler_flags()) else {}),
    }


#: Environment variables through which a user's compiler flags reach libtpu and XLA. The worker
#: inherits them, so they are part of what was compiled (and of the cache key).
COMPILER_FLAG_VARS = ("LIBTPU_INIT_ARGS", "XLA_FLAGS")
#: XLA_FLAGS that do not change what XLA:TPU compiles: dump options and other backends' flags.
_INERT_FLAG_PREFIXES = ("--xla_dump", "--xla_cpu_", "--xla_gpu_", "--xla_force_host_platform_device_count")


def compiler_flags(environ=None) -> dict:
    """The user's compiler flags that change an XLA:TPU compile, by variable; empty when none are set.

    ``LIBTPU_INIT_ARGS`` counts whole; from ``XLA_FLAGS`` the dump options and the CPU/GPU and
    host-device-count flags are dropped. The analytic model assumes libtpu's defaults: flags can
    move the compiled temp a long way (bench/compile_vs_analytic.md, "What sets the hoisting").
    """
    env = os.environ if environ is None else environ
    out = {}
    for var in COMPILER_FLAG_VARS:
        flags = env.get(var, "").split()
        if var == "XLA_FLAGS":
            flags = [f for f in flags if not f.startswith(_INERT_FLAG_PREFIXES)]
        if flags:
            out[var] = " ".join(flags)
    return out


def _one_line(text, limit: int) -> str:
    """``text`` on one line (whitespace runs collapsed), cut to ``limit`` characters."""
    flat = " ".join(str(text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def config_key(cfg: dict) -> str:
    canon = json.dumps(cfg, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canon.encode()).hexdigest()[:24]


# -- running the worker ------------------------------------------------------------------------


def _worker_env(cfg: dict, dump_dir: str | None) -> dict:
    env = dict(os.environ)
    env.update({
        # libtpu: name the slice, keep it off any local TPU, and quiet its logging.
        "TPU_ACCELERATOR_TYPE": cfg["tpu"]["name"],
        "TPU_WORKER_HOSTNAMES": "localhost",
        "TPU_WORKER_ID": "0",
        "TPU_SKIP_MDS_QUERY": "1",
        "JAX_PLATFORMS": "cpu",
        "ALLOW_MULTIPLE_LIBTPU_LOAD": "1",
        "TPU_STDERR_LOG_LEVEL": "3",
        "TPU_MIN_LOG_LEVEL": "3",
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "GRPC_VERBOSITY": "ERROR",
        "JAX_COMPILATION_CACHE_DIR": "",
    })
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    if dump_dir:
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + f" --xla_dump_to={dump_dir}").strip()
    return env


def run_compile(cfg: dict, *, use_cache: bool = True, timeout: float | None = None,
                breakdown: bool = False, live: bool = False) -> tuple[dict, bool, float]:
    """Compile ``cfg`` (or read the cache). Returns (result, cached, wall seconds).

    ``breakdown`` also dumps XLA's buffer assignment and keeps the largest live buffers at the
    peak, grouped by the JAX operation that made them, and the live temp bytes through the step
    (:func:`planner.compile.live_ranges.live_profile`; slower, for calibration and ``--explain``).
    ``live`` makes a cached result without that profile (compiled before it existed) compile again.
    """
    key = config_key(cfg)
    path = cache_dir() / f"{key}.json"
    if use_cache and path.is_file():
        try:
            doc = json.loads(path.read_text())
            res = doc["result"]
            if doc.get("config") == cfg and (not breakdown or res.get("status") != "ok"
                                             or (res.get("peak_breakdown") is not None
                                                 and (not live or res.get("live_profile") is not None))):
                return res, True, 0.0
        except (OSError, ValueError, KeyError):
            pass
    reason = unavailable_reason()
    if reason:
        raise PlanError(reason)
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="hbmplan-compile-") as tmp:
        src, dst = os.path.join(tmp, "in.json"), os.path.join(tmp, "out.json")
        dump = os.path.join(tmp, "dump") if breakdown else None
        Path(src).write_text(json.dumps(cfg))
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "planner.compile.worker", src, dst],
                env=_worker_env(cfg, dump), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                timeout=timeout or DEFAULT_TIMEOUT_S, cwd=tmp,
            )
            out_text = proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
            rc = proc.returncode
        except subprocess.TimeoutExpired as exc:
            out_text = (exc.stdout or b"").decode(errors="replace") + (exc.stderr or b"").decode(errors="replace")
            result = {"status": "error", "error": f"compile timed out after {timeout or DEFAULT_TIMEOUT_S:.0f} s",
                      "log_tail": out_text[-3000:]}
            return result, False, time.time() - t0
        if os.path.isfile(dst):
            result = json.loads(Path(dst).read_text())
        else:
            from planner.compile.aot import parse_oom

            oom = parse_oom(out_text)
            if oom is not None:
                result = {"status": "oom", "oom": oom}
            else:
                result = {"status": "error", "error": f"compile worker exited with code {rc} and no result",
                          "log_tail": out_text[-3000:]}
        if result.get("status") == "error" and "log_tail" not in result:
            result["log_tail"] = out_text[-3000:]
        if dump and result.get("status") == "ok":
            from planner.compile.breakdown import peak_breakdown, read_buffer_assignment
            from planner.compile.live_ranges import live_profile

            lines = read_buffer_assignment(dump)  # over 100 MB for a 7B step: read once
            result["peak_breakdown"] = peak_breakdown(dump, lines=lines)
            result["live_profile"] = live_profile(dump, lines=lines)
    wall = time.time() - t0
    result["wall_s"] = round(wall, 2)
    if result.get("status") in ("ok", "oom"):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp_path = path.with_suffix(".tmp")
            tmp_path.write_text(json.dumps({"config": cfg, "result": result}, indent=1))
            os.replace(tmp_path, path)
        except OSError:
            pass
    return result, False, wall


# -- the report --------------------------------------------------------------------------------


@dataclass
class CompileReport:
    """XLA's answer for the training step of a plan, beside the analytic one (per device).

    Attributes:
      status: ``ok`` (compiled), ``oom`` (XLA refused at compile time) or ``error``.
      verdict: ``fits`` / ``oom`` from the compile where it answered, else None.
      headline: one line.
      config: what was compiled; key: its cache key; cached: read from the cache.
      wall_s: seconds this call took (0 from the cache); compile_s: the compile itself.
      memory: XLA memory_analysis() fields (``argument_bytes`` ... ``peak_memory_bytes``).
      oom: XLA's out-of-memory figures (used / limit / exceeded ...), when status is ``oom``.
      analytic: the analytic figures compared against.
      free_at_step_bytes: what the step may use: limit − compiled arguments (− the engine's
        resident bytes from the exact engine model, in the rl workload).
      notes: where each figure came from.
    """

    status: str
    verdict: str | None
    headline: str
    config: dict
    key: str
    cached: bool
    wall_s: float
    result: dict
    memory: dict = field(default_factory=dict)
    oom: dict | None = None
    analytic: dict = field(default_factory=dict)
    free_at_step_bytes: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return self.verdict == "fits"


def _analytic(plan) -> dict:
    t = plan.training
    # the engine as the plan counts it (params + KV, and the calibrated residual where records
    # matched), derived from the plan's own "free" so the compiled verdict shares it; 0 in train
    engine = plan.limit_bytes - t.resident_bytes - plan.free_at_step_bytes
    return {
        "resident_bytes": t.resident_bytes,
        "step_temp_bytes": t.step_temp_bytes,
        "peak_bytes": t.resident_bytes + t.step_temp_bytes,
        "engine_resident_bytes": engine,
        "free_at_step_bytes": plan.free_at_step_bytes,
        "limit_bytes": plan.limit_bytes,
        "step_components": {c.name: c.bytes for c in t.step},
    }


def build_report(plan, cfg: dict, result: dict, cached: bool, wall: float) -> CompileReport:
    """Turn a worker result into a :class:`CompileReport` for ``plan``."""
    an = _analytic(plan)
    limit = plan.limit_bytes
    status = result.get("status", "error")
    rep = CompileReport(status=status, verdict=None, headline="", config=cfg, key=config_key(cfg), cached=cached,
                        wall_s=round(wall, 2), result=result, analytic=an)
    workload = plan.request.workload
    engine_note = ("engine resident bytes come from the plan: params + KV from the exact engine model, plus the "
                   "measured residual of matching calibration records where there is one; the compile answers "
                   "for jit_training_step only")
    if status == "ok":
        mem = result["memory"]
        rep.memory = mem
        free = limit - mem["argument_bytes"] - (an["engine_resident_bytes"] if workload == "rl" else 0)
        rep.free_at_step_bytes = free
        need = mem["temp_bytes"]
        if need > free:
            rep.verdict = "oom"
            rep.headline = (f"oom (compiled): jit_training_step needs {fmt_gib(need)} (XLA temp), "
                            f"{fmt_gib(max(free, 0))} free")
        else:
            rep.verdict = "fits"
            rep.headline = f"fits (compiled): jit_training_step needs {fmt_gib(need)} (XLA temp), {fmt_gib(free)} free"
        if workload == "rl":
            rep.notes.append(engine_note)
        rep.notes.append("free = limit − XLA argument bytes (training state)"
                         + (" − engine resident bytes" if workload == "rl" else ""))
    elif status == "oom":
        o = result.get("oom") or {}
        rep.oom = o
        rep.verdict = "oom"
        if o.get("used_bytes") is not None and o.get("limit_bytes") is not None:
            rep.headline = (f"oom (XLA compile): used {fmt_gib(o['used_bytes'])} of {fmt_gib(o['limit_bytes'])}, "
                            f"exceeded by {fmt_gib(o.get('exceeded_bytes') or 0)}")
        else:
            rep.headline = f"oom (XLA compile): {o.get('message', '')[:200]}"
        if workload == "rl":
            rep.notes.append("XLA's compile-time check counts the training state and the step only; "
                             "the co-located engine would need its resident bytes on top")
    else:
        rep.headline = f"compile failed: {_one_line(result.get('error', ''), 300)}"
    return rep


def compile_plan(plan, *, use_cache: bool = True, timeout: float | None = None, breakdown: bool = False,
                 layers: str | None = None, optimization_level: str | None = None) -> CompileReport:
    """Compile the plan's training step with XLA:TPU (deviceless) and compare with the analytic plan.

    Raises:
      PlanError: jax[tpu] is not installed, the workload has no training step, or the model is
        outside the reference step (MoE).
    """
    cfg = compile_config(plan, layers=layers, optimization_level=optimization_level)
    result, cached, wall = run_compile(cfg, use_cache=use_cache, timeout=timeout, breakdown=breakdown,
                                       live=breakdown)
    return build_report(plan, cfg, result, cached, wall)


# -- rendering ---------------------------------------------------------------------------------


def _pct(a: int | None, b: int | None) -> str:
    if a is None or b in (None, 0):
        return ""
    return f"{100.0 * (a - b) / b:+.1f}%"


def _render_live_profile(lp: dict, temp_bytes: int, plan) -> list[str]:
    """XLA's live temp through the step beside the analytic phases (``--compile --explain``)."""
    step = plan.training.step[0] if plan.training and plan.training.step else None
    phases = step.inputs.get("phase_bytes", {}) if step else {}
    peak = lp["peak_bytes"]
    out = [f"  XLA's live temp through the step (its buffer assignment, {lp['points']:,} program points): "
           f"peak {gib(peak):.3f} GiB in the {lp['peak_phase']} (point {lp['peak_point']:,}); its temp "
           f"allocation is {100.0 * (temp_bytes - peak) / peak:+.1f}% above that"]
    xla = ", ".join(f"{name} {gib(lp['phase_max_bytes'].get(name, 0)):.3f}" for name in ("forward", "backward", "update"))
    line = f"    largest live in each phase: {xla} GiB"
    if phases:
        line += ("; the analytic model's points: " + ", ".join(f"{k} {gib(v):.3f}" for k, v in phases.items())
                 + f" GiB (peak at {step.inputs.get('peak_phase')})")
    out.append(line)
    out.append("    live at that peak, by JAX operation and shape:")
    for item in lp["at_peak"][:8]:
        op = item["op"] if len(item["op"]) <= 100 else item["op"][:60] + "…" + item["op"][-39:]
        out.append(f"      {gib(item['bytes']):7.3f} GiB  {item['buffers']:4d} x {item['shape']}  {op}")
    return out


def render_compile(report: CompileReport, plan) -> str:
    """The compiled section printed under the analytic table."""
    cfg, r, an = report.config, report.result, report.analytic
    s = plan.slice
    src = "cache" if report.cached else f"{report.wall_s:.0f} s"
    head = (f"compile check: XLA:TPU (jax {cfg.get('jax')}, libtpu {cfg.get('libtpu')}), deviceless, topology "
            f"{s.topology} {s.generation.chip_config_name}, {r.get('devices', s.num_devices)} devices on "
            f"{r.get('processes', s.num_hosts)} host(s) compiled on this machine; reference step: "
            f"{cfg['layers_mode']}ed layers, remat {cfg['remat']}, {r.get('attention', 'auto')} attention, "
            f"{cfg['optimizer']}, grad_accum {cfg['grad_accum']}, XLA effort {cfg['optimization_level']} [{src}]")
    out = [head]
    for var, flags in cfg.get("compiler_flags", {}).items():
        out.append(f"  compiled with {var}={flags!r} from the environment; the analytic model assumes libtpu's "
                   "defaults, and flags can move XLA's temp a long way")
    if r.get("device_order") == "ring":
        out.append("  device order: a closed ring of neighbouring chips (libtpu rejected jax's default order's "
                   "collective-permutes: limited ICI routing on a slice without wraparound links)")
    if report.status == "ok":
        m = report.memory
        rows = [
            ("arguments (training state + batch)", m["argument_bytes"], an["resident_bytes"], "analytic resident"),
            ("output", m["output_bytes"], None, ""),
            ("alias (donated state)", m["alias_bytes"], None, ""),
            ("temp (jit_training_step needs)", m["temp_bytes"], an["step_temp_bytes"], "analytic step"),
            ("arguments + output − alias + temp", m["peak_sum_bytes"], an["peak_bytes"], "analytic resident + step"),
        ]
        if m.get("peak_memory_bytes"):
            rows.append(("peak live (memory_analysis)", m["peak_memory_bytes"], None, ""))
        rows.append(("generated code", m.get("generated_code_bytes", 0), None, ""))
        w = max(len(x[0]) for x in rows)
        out.append(f"  {'per device':{w}}  {'XLA':>16} {'GiB':>8}  {'analytic':>16} {'GiB':>8}  {'diff':>7}")
        for name, xb, ab, _ in rows:
            a_txt = f"{ab:>16,} {gib(ab):8.3f}" if ab is not None else f"{'':>16} {'':>8}"
            out.append(f"  {name:{w}}  {xb:>16,} {gib(xb):8.3f}  {a_txt}  {_pct(ab, xb) if ab is not None else '':>7}")
        diff = m["argument_bytes"] - an["resident_bytes"]
        extra = r.get("argument_extra") or {}
        if extra:
            xla_padding = m["argument_bytes"] - extra.get("unpadded_bytes", m["argument_bytes"])
            state_padding = next((c.bytes for c in plan.training.resident if c.name == "train.layout_padding"), 0)
            out.append(f"  arguments − analytic resident = {diff:,} B: batch {extra.get('batch_bytes', 0):,} B, "
                       f"scalars {extra.get('scalar_bytes', 0):,} B, TPU tiled-layout padding beyond the state's "
                       f"{state_padding:,} B (train.layout_padding) {xla_padding - state_padding:,} B "
                       + ("(the batch's and scalars' tiles, the splash kernel's mask tables)" if cfg.get("beta")
                          else "(the batch's and scalars' tiles)"))
        out.append(f"  free for the step: {fmt_gib(report.free_at_step_bytes)} (limit {fmt_gib(plan.limit_bytes)}"
                   f" − XLA arguments {fmt_gib(m['argument_bytes'])}"
                   + (f" − engine {fmt_gib(an['engine_resident_bytes'])} as the plan counts it" if
                      plan.request.workload == "rl" else "") + ")")
        if r.get("live_profile"):
            out.extend(_render_live_profile(r["live_profile"], m["temp_bytes"], plan))
        elif r.get("peak_breakdown"):
            out.append("  largest live buffers at XLA's peak:")
            for item in r["peak_breakdown"][:8]:
                out.append(f"    {gib(item['bytes']):7.3f} GiB  {item['name']}")
    elif report.status == "oom":
        o = report.oom or {}
        parts = []
        for k, label in (("used_bytes", "used"), ("limit_bytes", "of"), ("exceeded_bytes", "exceeded by"),
                         ("program_bytes", "program"), ("temp_bytes", "HLO temp"), ("arguments_bytes", "arguments"),
                         ("reserved_bytes", "reserved")):
            if o.get(k) is not None:
                parts.append(f"{label} {fmt_gib(o[k])}")
        out.append("  XLA: " + ", ".join(parts))
        out.append(f"  analytic: resident {fmt_gib(an['resident_bytes'])} + step {fmt_gib(an['step_temp_bytes'])} = "
                   f"{fmt_gib(an['peak_bytes'])}")
        out.append(f"  XLA says: {o.get('message', '')[:400]}")
    else:
        out.append(f"  error: {_one_line(r.get('error', ''), 1500)}")
        if r.get("log_tail"):
            out.append("  worker log (tail):")
            out.extend("    " + line for line in str(r["log_tail"]).splitlines()[-25:])
    for n in report.notes:
        out.append(f"  note: {n}")
    out.append(f"compile verdict: {report.headline}")
    return "\n".join(out)


def compile_report_json(report: CompileReport) -> dict:
    """The ``"compile"`` key of ``hbmplan --json``."""
    return {
        "status": report.status,
        "verdict": report.verdict,
        "headline": report.headline,
        "cached": report.cached,
        "wall_s": report.wall_s,
        "compile_s": report.result.get("compile_s"),
        "key": report.key,
        "config": report.config,
        "xla": report.memory or None,
        "oom": report.oom,
        "analytic": report.analytic,
        "free_at_step_bytes": report.free_at_step_bytes,
        "argument_extra": report.result.get("argument_extra"),
        "devices": report.result.get("devices"),
        "processes": report.result.get("processes"),
        "device_order": report.result.get("device_order"),
        "peak_breakdown": report.result.get("peak_breakdown"),
        "live_profile": report.result.get("live_profile"),
        "error": report.result.get("error"),
        "notes": list(report.notes),
    }
