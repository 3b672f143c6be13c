"""The Textual app and its screens: Runs, Run (phases, bars, devices, explain), Plan, Help.

Every number shown comes from :mod:`planner.tui.data` (records and logs) or from the same
planner functions ``hbmplan`` uses (:func:`planner.plan.make_plan`, ``planner.suggest``).
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.suggester import SuggestFromList
from textual.widgets import (
    DataTable,
    Footer,
    Header,
    Input,
    Label,
    OptionList,
    Static,
    TabbedContent,
    TabPane,
)
from textual.widgets.option_list import Option

from planner.errors import PlanError
from planner.tui.data import (
    COMPONENT_TO_PLAN,
    PhaseView,
    RunView,
    TableData,
    fmt_bytes,
    fmt_gib3,
    fmt_pct,
    fmt_signed,
    limit_for_run,
    load_runs,
    plan_for_run,
    request_for_run,
    severity,
)
from planner.units import GiB, fmt_gib

DARK, LIGHT = "textual-dark", "textual-light"

# -- colours (from the active theme, so light and dark both read) ------------------------------------


def _theme_colors(app: App) -> dict[str, str]:
    t = app.current_theme
    dark = bool(getattr(t, "dark", True))
    return {
        "ok": t.success or "green",
        "warn": (t.warning or "yellow") if dark else "#9a5b00",
        "bad": t.error or "red",
        "none": "grey50",
        "params": t.primary or "blue",
        "second_params": t.secondary or "cyan",
        "kv": (t.accent or "magenta") if dark else "#b35c00",
        "other": "grey62",
        "excess": t.error or "red",
    }


def _sev_text(text: str, sev: str, colors: dict[str, str]) -> Text:
    style = colors.get(sev, "")
    if sev == "bad":
        style = f"bold {style}"
    return Text(text, style=style, justify="right")


def _r(text: str) -> Text:
    return Text(text, justify="right")


def explain_text(comp, extra: str = "") -> Text:
    """Formula, inputs and basis of one planner Component, as Rich text."""
    t = Text()
    t.append(f"{comp.name}", style="bold")
    t.append(f" = {comp.bytes:,} B ({fmt_gib(comp.bytes, 3)})  [{'exact' if comp.exact else 'estimate'}, "
             f"{comp.where}, {comp.phase}]\n")
    t.append("formula: ", style="bold")
    t.append(f"{comp.formula}\n")
    t.append("inputs:  ", style="bold")
    t.append(", ".join(f"{k}={v}" for k, v in comp.inputs.items()) + "\n")
    if comp.basis:
        t.append("basis:   ", style="bold")
        t.append(comp.basis + "\n")
    if extra:
        t.append(extra + "\n", style="italic")
    return t


# -- modal screens ----------------------------------------------------------------------------------


HELP_TEXT = """\
[b]hbmtui[/b]: predicted vs measured HBM per device, and an interactive planner.

[b]Everywhere[/b]
  ?  / F1     this help            ctrl+t   light / dark theme
  ctrl+o      export view as .md   ctrl+b   export view as .csv  (written to the cwd)
  esc         back                 ctrl+q   quit
  tab         next widget          ctrl+p   command palette

[b]Runs[/b]  one row per calibration record or validator log
  /  filter (tpu, model, engine, date…)   enter  open run   p  plan screen   q  quit

[b]Run[/b]   1 phases  2 bars  3 devices  4 explain   p  plan this run's config
  phases:  measured = the largest device (mean of the sum for transcribed logs);
           Δ = measured − predicted per device, coloured: [green]< 1 %[/]  [yellow]< 5 %[/]  [red]≥ 5 %[/]
  bars:    predicted components stacked against the per-device limit; ▒ = measured beyond them
  devices: min / max / spread per phase; the highlighted phase's devices below
  explain: the planner's components for the run's config (enter: full formula)

[b]Plan[/b]  type in the form: the breakdown, verdict and suggestions follow (debounced)
  empty field = the default; up/down or tab move between fields
  enter on a breakdown row: explain it    enter on a suggestion: apply it to the form
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark,f1", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box", classes="modal-box"):
            yield Static(HELP_TEXT, id="help-text")

    def action_dismiss(self, result=None) -> None:  # type: ignore[override]
        self.dismiss(None)


class ExplainScreen(ModalScreen[None]):
    """The full explanation of one planner Component."""

    BINDINGS = [Binding("escape,q,enter", "dismiss", "Close")]

    def __init__(self, comp, extra: str = "") -> None:
        super().__init__()
        self.comp = comp
        self.extra = extra

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="explain-box", classes="modal-box"):
            yield Static(explain_text(self.comp, self.extra), id="explain-text")

    def action_dismiss(self, result=None) -> None:  # type: ignore[override]
        self.dismiss(None)

    def export_table(self) -> TableData:
        c = self.comp
        rows = [["bytes", c.bytes], ["formula", c.formula]] + [[f"input {k}", v] for k, v in c.inputs.items()]
        rows += [["exact", c.exact], ["basis", c.basis]]
        return TableData(f"explain {c.name}", ["field", "value"], rows)


# -- runs -------------------------------------------------------------------------------------------


class RunsScreen(Screen):
    """One row per run; the Input filters rows."""

    BINDINGS = [
        Binding("slash", "focus_filter", "Filter", key_display="/"),
        Binding("p", "plan", "Plan"),
        Binding("escape", "clear_filter", "Clear", show=False),
        Binding("q", "app.quit", "Quit", show=False),
    ]
    COLUMNS = ("TPU", "model", "engine", "date", "src", "ph", "worst Δ", "Δ %")

    def __init__(self, runs: list[RunView], warnings: list[str], where: str) -> None:
        super().__init__()
        self.runs = runs
        self.load_warnings = warnings
        self.where = where
        self.shown: list[RunView] = []

    def compose(self) -> ComposeResult:
        yield Header()
        f = Input(placeholder="filter: tpu, model, engine, date…  (/ focuses, esc clears)", id="filter",
                  compact=True)
        f.cursor_blink = False
        yield f
        if self.load_warnings:
            n = len(self.load_warnings)
            text = f"⚠ {n} problem{'s' if n > 1 else ''} reading files:\n" + "\n".join(self.load_warnings)
            yield Static(text, id="warnings", markup=False)
        yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)
        yield Static("", id="runs-status")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.sub_title = f"runs · {self.where}"
        t = self.query_one("#runs", DataTable)
        for c in self.COLUMNS:
            t.add_column(c, key=c)
        self.fill()
        t.focus()

    def restyle(self) -> None:
        self.fill()

    def fill(self, query: str = "") -> None:
        t = self.query_one("#runs", DataTable)
        t.clear()
        words = query.lower().split()
        self.shown = [r for r in self.runs if all(w in r.search_text() for w in words)]
        colors = _theme_colors(self.app)
        seen: set[str] = set()
        for r in self.shown:
            w = r.worst()
            key = r.key
            while key in seen:
                key += "'"
            seen.add(key)
            t.add_row(
                r.tpu, r.model, r.engine_label, r.date,
                "log" if r.kind == "log" else "transcr" if r.transcribed else "measured", str(len(r.phases)),
                _sev_text(fmt_signed(w.delta) if w else "—", severity(w.delta_pct) if w else "none", colors),
                _sev_text(fmt_pct(w.delta_pct) if w else "—", severity(w.delta_pct) if w else "none", colors),
                key=key,
            )
        status = self.query_one("#runs-status", Static)
        if not self.runs:
            status.update(f"No calibration records or validator logs in {self.where}.  "
                          "Press p to plan, ? for help.")
        else:
            status.update(f"{len(self.shown)} of {len(self.runs)} runs · enter opens · p plans · ? help")

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.fill(event.value)

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        self.query_one("#runs", DataTable).focus()

    @on(DataTable.RowSelected, "#runs")
    def _open(self, event: DataTable.RowSelected) -> None:
        self.open_row(event.cursor_row)

    def open_row(self, index: int) -> None:
        if 0 <= index < len(self.shown):
            self.app.push_screen(RunScreen(self.shown[index]))

    def action_focus_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_clear_filter(self) -> None:
        f = self.query_one("#filter", Input)
        f.value = ""
        self.query_one("#runs", DataTable).focus()

    def action_plan(self) -> None:
        self.app.push_screen(PlanScreen())

    def export_table(self) -> TableData:
        rows = []
        for r in self.shown:
            w = r.worst()
            rows.append([r.key, r.path.name, r.tpu, r.model, r.engine_profile, r.engine_version, r.created,
                         len(r.phases), w.name if w else "", w.delta if w else "",
                         f"{w.delta_pct:.4f}" if w and w.delta_pct is not None else ""])
        return TableData("hbmtui runs", ["run", "file", "tpu", "model", "engine_profile", "engine_version",
                                         "created", "phases", "worst_phase", "worst_delta_bytes",
                                         "worst_delta_pct"], rows)


# -- one run ----------------------------------------------------------------------------------------


class BarChart(Static):
    """Per phase: the predicted components stacked against the per-device limit."""

    def __init__(self, run: RunView, limit: int | None, **kw) -> None:
        super().__init__("", **kw)
        self.run = run
        self.limit = limit

    def render(self) -> Text:
        colors = _theme_colors(self.app)
        width = max(20, self.size.width - 2)
        run = self.run
        scale_to = self.limit or max([max(p.measured or 0, p.predicted or 0) for p in run.phases] + [1])
        out = Text(no_wrap=True, overflow="ellipsis")
        keys = []
        for p in run.phases:
            for k in p.predicted_components:
                if k not in keys:
                    keys.append(k)
        for k in keys:
            out.append("█ ", style=colors.get(k, colors["other"]))
            out.append(f"{k}  ")
        out.append("▒ ", style=colors["excess"])
        out.append("measured beyond  ")
        out.append("│ " + (f"limit {fmt_gib(self.limit)}/device" if self.limit else "scale: largest phase"))
        out.append("\n")
        for p in run.phases:
            out.append(f"{p.name}", style="bold")
            out.append(f"  pred {fmt_gib3(p.predicted)} · meas {fmt_gib3(p.measured)} GiB")
            if self.limit and p.measured is not None:
                out.append(f" · {100 * p.measured / self.limit:.1f}% of limit")
            out.append("\n")
            out.append_text(self.bar(p, width, scale_to, colors))
            out.append("\n")
        out.rstrip()
        return out

    @staticmethod
    def bar(p: PhaseView, width: int, scale_to: int, colors: dict[str, str]) -> Text:
        cells = width - 1
        t = Text(no_wrap=True)
        used = 0
        pos = 0.0
        for k, b in p.predicted_components.items():
            if not b:
                continue
            pos += b / scale_to * cells
            n = min(cells, round(pos)) - used
            if n > 0:
                t.append("█" * n, style=colors.get(k, colors["other"]))
                used += n
        if p.measured is not None:
            m = min(cells, round(p.measured / scale_to * cells))
            if m > used:
                t.append("▒" * (m - used), style=colors["excess"])
                used = m
        if used < cells:
            t.append("·" * (cells - used), style="dim")
        over = (p.measured or 0) > scale_to or (p.predicted or 0) > scale_to
        t.append("▶" if over else "│", style=colors["bad"] if over else "")
        return t


class RunScreen(Screen):
    """One run: per-phase table, bar chart, per-device drill-down and the explain view."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("1", "tab('tab-phases')", "Phases", show=False),
        Binding("2", "tab('tab-bars')", "Bars", show=False),
        Binding("3", "tab('tab-devices')", "Devices", show=False),
        Binding("4", "tab('tab-explain')", "Explain", show=False),
        Binding("p", "plan", "Plan it"),
    ]

    def __init__(self, run: RunView) -> None:
        super().__init__()
        self.run = run
        self.plan, self.plan_error = plan_for_run(run)
        self.limit = limit_for_run(run, self.plan)
        self.explain_rows: list = []
        self.device_phase: PhaseView | None = run.phases[0] if run.phases else None

    def compose(self) -> ComposeResult:
        r = self.run
        yield Header()
        version = f" ({r.engine_version})" if r.engine_version and r.engine_version != r.engine_label else ""
        meta = (f"{r.model} on {r.tpu} · {r.num_devices} device{'s' if r.num_devices != 1 else ''} · engine "
                f"{r.engine_label}{version} · {r.date} · {'transcribed ' if r.transcribed else ''}{r.kind} "
                f"{r.path.name}")
        yield Static(meta, id="run-meta", markup=False)
        with TabbedContent(initial="tab-phases", id="run-tabs"):
            with TabPane("1 Phases", id="tab-phases"):
                yield DataTable(id="phases", cursor_type="row", zebra_stripes=True)
                yield Static("", id="phases-legend")
            with TabPane("2 Bars", id="tab-bars"):
                with VerticalScroll(id="bars-scroll"):
                    yield BarChart(self.run, self.limit, id="bars")
            with TabPane("3 Devices", id="tab-devices"):
                yield DataTable(id="dev-summary", cursor_type="row")
                yield Static("", id="dev-title")
                yield DataTable(id="dev-detail", cursor_type="row")
            with TabPane("4 Explain", id="tab-explain"):
                yield DataTable(id="explain", cursor_type="row")
                yield Static("", id="explain-detail")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.sub_title = f"run {self.run.key}"
        t = self.query_one("#phases", DataTable)
        for c in ("phase", "pred GiB", "meas GiB", "Δ", "Δ %"):
            t.add_column(c, key=c)
        s = self.query_one("#dev-summary", DataTable)
        for c in ("phase", "min GiB", "max GiB", "spread", "max dev"):
            s.add_column(c, key=c)
        d = self.query_one("#dev-detail", DataTable)
        for c in ("device", "measured B", "Δ vs pred", "peak GiB", "limit GiB"):
            d.add_column(c, key=c)
        e = self.query_one("#explain", DataTable)
        for c in ("component", "bytes", "kind", "record"):
            e.add_column(c, key=c)
        self.fill()
        t.focus()

    def restyle(self) -> None:
        self.fill()
        self.query_one("#bars", BarChart).refresh()

    # tables ---------------------------------------------------------------------------------------

    def fill(self) -> None:
        colors = _theme_colors(self.app)
        legend = Text()
        legend.append("pred: the record's prediction per device (* = filled in by the planner now)\n"
                      "meas: the largest device (~ = the sum ÷ devices, transcribed logs)\n"
                      "Δ = meas − pred: ")
        for sev, label in (("ok", "< 1 %"), ("warn", "< 5 %"), ("bad", "≥ 5 %")):
            legend.append(label, style=colors[sev])
            legend.append("  ")
        legend.append("· enter: that phase's devices")
        self.query_one("#phases-legend", Static).update(legend)
        t = self.query_one("#phases", DataTable)
        t.clear()
        for i, p in enumerate(self.run.phases):
            sev = severity(p.delta_pct)
            mark = "" if p.predicted_by in ("record", "log") else "*" if p.predicted_by == "hbmtui" else ""
            t.add_row(p.name, _r(fmt_gib3(p.predicted) + mark),
                      _r(fmt_gib3(p.measured) + ("~" if p.sum_only else "")),
                      _sev_text(fmt_signed(p.delta), sev, colors), _sev_text(fmt_pct(p.delta_pct), sev, colors),
                      key=f"{i}")
        s = self.query_one("#dev-summary", DataTable)
        s.clear()
        for i, p in enumerate(self.run.phases):
            pd = p.per_device
            if pd:
                lo, hi = min(pd), max(pd)
                s.add_row(p.name, _r(fmt_gib3(lo)), _r(fmt_gib3(hi)), _r(fmt_signed(hi - lo).lstrip("+")),
                          _r(str(pd.index(hi))), key=f"{i}")
            else:
                s.add_row(p.name, _r("—"), _r("—"), _r("sum only" if p.sum_only else "—"), _r("—"), key=f"{i}")
        self.fill_devices(self.device_phase)
        self.fill_explain()

    def fill_devices(self, p: PhaseView | None) -> None:
        self.device_phase = p
        d = self.query_one("#dev-detail", DataTable)
        d.clear()
        title = self.query_one("#dev-title", Static)
        if p is None:
            title.update("")
            return
        colors = _theme_colors(self.app)
        title.update(Text.assemble((p.name, "bold"), (f": predicted {fmt_bytes(p.predicted)} B/device"
                                                      + (" (sum only)" if p.sum_only else ""), "")))
        if p.sum_only:
            mean = p.measured
            d.add_row("mean", _r(fmt_bytes(mean)), _r(fmt_signed(p.delta)), _r("—"), _r("—"), key="mean")
            return
        for dev, m, delta, peak, lim in p.device_rows():
            pct = None if delta is None or not p.predicted else 100.0 * delta / p.predicted
            d.add_row(str(dev), _r(fmt_bytes(m)), _sev_text(fmt_signed(delta), severity(pct), colors),
                      _r(fmt_gib3(peak)), _r(fmt_gib3(lim)), key=str(dev))

    def _record_value(self, comp_name: str) -> int | None:
        for p in self.run.phases:
            for k, v in p.predicted_components.items():
                if COMPONENT_TO_PLAN.get(k) == comp_name and v is not None:
                    return v
        return None

    def fill_explain(self) -> None:
        e = self.query_one("#explain", DataTable)
        e.clear()
        detail = self.query_one("#explain-detail", Static)
        self.explain_rows = []
        if self.plan is None:
            detail.update(Text(f"cannot rebuild the planner's view of this run: {self.plan_error}",
                               style=_theme_colors(self.app)["bad"]))
            return
        for c in self.plan.components + self.plan.host:
            rec = self._record_value(c.name)
            rec_s = "—" if rec is None else "=" if rec == c.bytes else fmt_signed(rec - c.bytes)
            e.add_row(c.name, _r(fmt_bytes(c.bytes)), "exact" if c.exact else "estimate",
                      _r(rec_s), key=c.name)
            self.explain_rows.append(c)
        self.show_explain(0)

    def show_explain(self, i: int) -> None:
        if 0 <= i < len(self.explain_rows):
            c = self.explain_rows[i]
            self.query_one("#explain-detail", Static).update(explain_text(c, self._explain_extra(c)))

    def _explain_extra(self, c) -> str:
        if self.plan is None:
            return ""
        req = self.plan.request
        flags = [f"--workload infer --tpu {req.tpu} --model {req.model}"]
        for name in ("tp", "max_total_tokens", "mem_fraction_static", "dtype", "kv_dtype", "page_size",
                     "context_length", "max_running_requests"):
            v = getattr(req, name)
            if v is not None and v != getattr(type(req)(), name):
                flags.append(f"--{name.replace('_', '-')} {v}")
        flags.append(f"--engine-version {self.plan.profile.version}")
        return "rebuilt with hbmplan " + " ".join(flags)

    # events -----------------------------------------------------------------------------------

    @on(DataTable.RowHighlighted, "#dev-summary")
    def _dev_phase(self, event: DataTable.RowHighlighted) -> None:
        i = event.cursor_row
        if 0 <= i < len(self.run.phases):
            self.fill_devices(self.run.phases[i])

    @on(DataTable.RowHighlighted, "#explain")
    def _explain_row(self, event: DataTable.RowHighlighted) -> None:
        self.show_explain(event.cursor_row)

    @on(DataTable.RowSelected, "#explain")
    def _explain_open(self, event: DataTable.RowSelected) -> None:
        i = event.cursor_row
        if 0 <= i < len(self.explain_rows):
            c = self.explain_rows[i]
            self.app.push_screen(ExplainScreen(c, self._explain_extra(c)))

    @on(DataTable.RowSelected, "#phases")
    def _phase_open(self, event: DataTable.RowSelected) -> None:
        i = event.cursor_row
        if 0 <= i < len(self.run.phases):
            self.action_tab("tab-devices")
            self.query_one("#dev-summary", DataTable).move_cursor(row=i)
            self.fill_devices(self.run.phases[i])

    @on(TabbedContent.TabActivated)
    def _tab_activated(self, event: TabbedContent.TabActivated) -> None:
        target = {"tab-phases": "#phases", "tab-devices": "#dev-summary", "tab-explain": "#explain",
                  "tab-bars": "#bars-scroll"}.get(event.pane.id or "")
        if target:
            self.query_one(target).focus()

    def action_tab(self, tab: str) -> None:
        self.query_one("#run-tabs", TabbedContent).active = tab
        target = {"tab-phases": "#phases", "tab-devices": "#dev-summary", "tab-explain": "#explain",
                  "tab-bars": "#bars-scroll"}[tab]
        self.query_one(target).focus()

    def action_plan(self) -> None:
        try:
            req = request_for_run(self.run)
        except Exception:
            req = None
        self.app.push_screen(PlanScreen(req))

    # export --------------------------------------------------------------------------------------

    def export_table(self) -> TableData:
        tab = self.query_one("#run-tabs", TabbedContent).active
        r = self.run
        title = f"{r.model} on {r.tpu}, engine {r.engine_label}, {r.date}, run {r.key}"
        if tab == "tab-bars":
            keys = sorted({k for p in r.phases for k in p.predicted_components})
            rows = [[p.name] + [p.predicted_components.get(k) for k in keys] + [p.predicted, p.measured, self.limit]
                    for p in r.phases]
            return TableData(f"{title}: components per phase (bytes per device)",
                             ["phase"] + [f"pred_{k}" for k in keys] + ["predicted", "measured", "limit"], rows)
        if tab == "tab-devices":
            n = max([r.num_devices] + [len(p.measured_per_device or ()) for p in r.phases])
            rows = []
            for p in r.phases:
                pd = p.per_device
                rows.append([p.name, p.predicted, min(pd) if pd else None, max(pd) if pd else None,
                             (max(pd) - min(pd)) if pd else None, p.measured_sum]
                            + [(p.measured_per_device[i] if p.measured_per_device and i < len(p.measured_per_device)
                                else None) for i in range(n)])
            return TableData(f"{title}: per-device bytes", ["phase", "predicted", "min", "max", "spread", "sum"]
                             + [f"dev{i}" for i in range(n)], rows)
        if tab == "tab-explain":
            rows = [[c.name, c.bytes, "exact" if c.exact else "estimate", c.formula,
                     "; ".join(f"{k}={v}" for k, v in c.inputs.items())] for c in self.explain_rows]
            return TableData(f"{title}: planner components", ["component", "bytes", "kind", "formula", "inputs"],
                             rows, notes=[] if self.plan else [f"cannot rebuild: {self.plan_error}"])
        rows = [[p.name, p.predicted, p.measured, p.delta,
                 f"{p.delta_pct:.4f}" if p.delta_pct is not None else None, p.source, p.predicted_by]
                for p in r.phases]
        return TableData(f"{title}: phases (bytes per device)",
                         ["phase", "predicted", "measured", "delta", "delta_pct", "source", "predicted_by"], rows)


# -- plan -------------------------------------------------------------------------------------------


FORM_FIELDS: tuple[tuple[str, str, str, str], ...] = (
    # (PlanRequest field, label, kind, placeholder)
    ("tpu", "TPU", "str", "v4-8"),
    ("model", "model", "str", "Qwen2.5-7B"),
    ("workload", "workload", "str", "rl | train | infer"),
    ("bs", "bs", "int", "32"),
    ("len", "len", "int", "1024"),
    ("micro_bs", "micro-bs", "int", "whole batch"),
    ("mem_fraction_static", "mfs", "float", "0.5 rl / 0.88 infer"),
    ("max_total_tokens", "max-tok", "int", "engine default"),
    ("tp", "tp", "int", "default"),
    ("engine_version", "engine", "str", "bd09a87"),
)
REQUIRED = {"tpu", "model", "workload"}


def parse_form(values: dict[str, str], base) -> Any:
    """The PlanRequest for the form's text values on top of ``base``; PlanError for bad text."""
    from planner.request import PlanRequest

    defaults = PlanRequest()
    changes: dict[str, Any] = {}
    for name, _label, kind, _ in FORM_FIELDS:
        raw = (values.get(name) or "").strip()
        flag = "--" + name.replace("_", "-")
        if not raw:
            if name in REQUIRED:
                raise PlanError(f"{flag} is required")
            changes[name] = getattr(defaults, name) if name == "len" else None
            continue
        if kind == "int":
            try:
                changes[name] = int(raw.replace("_", "").replace(",", ""))
            except ValueError:
                raise PlanError(f"{flag} must be an integer, got {raw!r}") from None
        elif kind == "float":
            try:
                changes[name] = float(raw)
            except ValueError:
                raise PlanError(f"{flag} must be a number, got {raw!r}") from None
        else:
            changes[name] = raw
    return base.with_(**changes)


def hidden_knobs(req) -> dict[str, Any]:
    """Request fields outside the form that differ from the defaults (from a run or a suggestion)."""
    from planner.request import DEFAULTS, FIELD_NAMES

    shown = {name for name, *_ in FORM_FIELDS}
    return {name: getattr(req, name) for name in FIELD_NAMES
            if name not in shown and getattr(req, name) != DEFAULTS[name]}


def _form_value(req, name: str) -> str:
    v = getattr(req, name)
    return "" if v is None else str(v)


class PlanScreen(Screen):
    """The planner, live: a form on the left, breakdown / verdict / suggestions on the right."""

    DEBOUNCE_S = 0.3
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("f1", "app.help", "Help"),
        Binding("down", "app.focus_next", "Next", show=False),
        Binding("up", "app.focus_previous", "Prev", show=False),
    ]

    def __init__(self, base=None) -> None:
        super().__init__()
        from planner.request import PlanRequest

        self.base = base if base is not None else PlanRequest(bs=32)
        self.plan = None
        self.error: str | None = None
        self.suggestions: list = []
        self._timer = None
        self._gen = 0
        self._planned_for = None  # (form values, base request) of the plan on screen

    def compose(self) -> ComposeResult:
        from planner.engine import PROFILES
        from planner.model import catalog_names
        from planner.request import WORKLOADS
        from planner.tpu import GENERATIONS

        tpus = [f"{g.name}-{n}" for g in GENERATIONS.values() for n in g.valid_sizes]
        sugg = {"tpu": tpus, "model": list(catalog_names()), "workload": list(WORKLOADS),
                "engine_version": list(PROFILES)}
        yield Header()
        with Horizontal(id="plan-body"):
            with Vertical(id="form"):
                for name, label, _kind, placeholder in FORM_FIELDS:
                    with Horizontal(classes="field"):
                        yield Label(label, classes="field-label")
                        s = SuggestFromList(sugg[name], case_sensitive=False) if name in sugg else None
                        inp = Input(_form_value(self.base, name), placeholder=placeholder, id=f"f-{name}",
                                    compact=True, suggester=s, select_on_focus=False)
                        inp.cursor_blink = False
                        yield inp
                yield Static("", id="plan-error", markup=False)
                yield Label("suggestions (enter applies)", id="sugg-title")
                yield OptionList(id="suggestions")
            with Vertical(id="result"):
                yield Static("", id="verdict")
                yield DataTable(id="breakdown", cursor_type="row")
                yield Static("", id="plan-notes", markup=False)
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.sub_title = "plan"
        t = self.query_one("#breakdown", DataTable)
        for c in ("component (per device)", "GiB", "% lim"):
            t.add_column(c, key=c)
        self.update_plan()
        self.query_one("#f-tpu", Input).focus()

    def form_values(self) -> dict[str, str]:
        return {name: self.query_one(f"#f-{name}", Input).value for name, *_ in FORM_FIELDS}

    def set_form(self, req) -> None:
        self.base = req
        for name, *_ in FORM_FIELDS:
            self.query_one(f"#f-{name}", Input).value = _form_value(req, name)
        self.update_plan()

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        if not (event.input.id or "").startswith("f-"):
            return
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(self.DEBOUNCE_S, self.update_plan)

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        if self._timer is not None:
            self._timer.stop()
        self.update_plan()
        self.focus_next()

    def update_plan(self) -> None:
        """Plan from the form now; a bad field shows its PlanError line, never raises."""
        from planner.plan import make_plan

        self._timer = None
        key = (self.form_values(), self.base)
        if self.plan is not None and self.error is None and key == self._planned_for:
            return  # the form is back to what is planned (or a change event came late): nothing to redo
        err = self.query_one("#plan-error", Static)
        try:
            req = parse_form(key[0], self.base)
            plan = make_plan(req)
        except PlanError as e:
            self.error = str(e)
            err.update(f"✘ {self.error}")
            self.query_one("#result").add_class("stale")
            return
        except Exception as e:  # a planner bug must not take the TUI down
            self.error = f"{type(e).__name__}: {e}"
            err.update(f"✘ {self.error}")
            self.query_one("#result").add_class("stale")
            return
        self.error = None
        err.update("")
        self.query_one("#result").remove_class("stale")
        self.plan = plan
        self._planned_for = key
        self.show_plan()
        self._gen += 1
        self.compute_suggestions(plan, self._gen)

    def restyle(self) -> None:
        if self.plan is not None:
            self.show_plan()

    def show_plan(self) -> None:
        plan = self.plan
        colors = _theme_colors(self.app)
        sev = {"fits": "ok", "oom": "bad", "engine_cannot_start": "bad"}.get(plan.verdict, "warn")
        badge = {"fits": " FITS ", "oom": " OOM ", "engine_cannot_start": " ENGINE CANNOT START "}.get(
            plan.verdict, plan.verdict)
        v = Text()
        v.append(badge, style=f"bold reverse {colors[sev]}")
        headline = plan.headline
        for prefix in ("fits: ", "oom: ", "engine cannot start: "):
            if headline.startswith(prefix):
                headline = headline[len(prefix):]
        v.append(" " + headline)
        self.query_one("#verdict", Static).update(v)
        t = self.query_one("#breakdown", DataTable)
        t.clear()
        limit = plan.limit_bytes
        for c in plan.components:
            t.add_row(c.name, _r(f"{c.bytes / GiB:.3f}" + ("" if c.exact else "≈")),
                      _r(f"{100 * c.bytes / limit:.1f}"), key=c.name)
        t.add_row(Text("total", style="bold"), _r(f"{plan.total_bytes / GiB:.3f}"),
                  _r(f"{100 * plan.total_bytes / limit:.1f}"), key="total")
        t.add_row("limit", _r(f"{limit / GiB:.3f}"), _r("100.0"), key="limit")
        hs = "ok" if plan.headroom_bytes >= 0 else "bad"
        t.add_row("headroom", _sev_text(f"{plan.headroom_bytes / GiB:.3f}", hs, colors),
                  _sev_text(f"{100 * plan.headroom_bytes / limit:.1f}", hs, colors), key="headroom")
        notes = [f"host: {c.name} {fmt_gib(c.bytes)}/host" for c in plan.host]
        if plan.engine is not None:
            e = plan.engine
            notes.append(f"engine: tp {e.tp}, mfs {e.mem_fraction_static}, max_total_tokens "
                         f"{e.sizing.num_tokens:,}, max_running {e.max_running_requests}")
        if plan.training is not None:
            sh = plan.training.shape
            notes.append(f"train: {sh.sequences} seq × {sh.seq_len}, micro {sh.micro_batch}, accum {sh.grad_accum}")
        notes += [f"note: {n}" for n in plan.notes]
        hidden = hidden_knobs(plan.request)
        if hidden:
            notes.append("other knobs: " + ", ".join(f"{k}={v}" for k, v in hidden.items()))
        notes.append("≈ estimate · enter explains a row")
        self.query_one("#plan-notes", Static).update("\n".join(notes))

    @work(thread=True, exclusive=True, group="suggest")
    def compute_suggestions(self, plan, gen: int) -> None:
        try:
            from planner import suggest  # written alongside; absent means "no suggestions yet"
        except ImportError:
            items, note = [], "(planner.suggest not available)"
        else:
            try:
                items, note = list(suggest.suggestions(plan)), ""
            except Exception as e:
                items, note = [], f"(suggestions failed: {type(e).__name__}: {e})"
        self.app.call_from_thread(self._show_suggestions, items, note, gen)

    def _show_suggestions(self, items: list, note: str, gen: int) -> None:
        if gen != self._gen:
            return
        self.suggestions = items
        ol = self.query_one("#suggestions", OptionList)
        ol.clear_options()
        colors = _theme_colors(self.app)
        if not items:
            ol.add_option(Option(note or "(none)", disabled=True))
            return
        for i, s in enumerate(items):
            verdict = str(getattr(s, "verdict", None) or "")
            usable = getattr(s, "request", None) is not None
            p = Text()
            p.append(str(getattr(s, "title", s)), style="" if usable else "dim")
            if usable and verdict:
                p.append(f" → {verdict}", style=colors["ok"] if verdict == "fits" else colors["bad"])
            detail = getattr(s, "detail", "")
            if detail:
                p.append("\n  " + str(detail), style="dim")
            ol.add_option(Option(p, id=f"s{i}", disabled=not usable))

    @on(OptionList.OptionSelected, "#suggestions")
    def _apply_suggestion(self, event: OptionList.OptionSelected) -> None:
        i = event.option_index
        if 0 <= i < len(self.suggestions):
            req = getattr(self.suggestions[i], "request", None)
            if req is not None:
                self.set_form(req)
                self.app.notify(f"applied: {getattr(self.suggestions[i], 'title', '')}")

    @on(DataTable.RowSelected, "#breakdown")
    def _explain(self, event: DataTable.RowSelected) -> None:
        if self.plan is None:
            return
        i = event.cursor_row
        if 0 <= i < len(self.plan.components):
            self.app.push_screen(ExplainScreen(self.plan.components[i]))

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 2:
            self.app.pop_screen()
        else:
            self.app.notify("this is the first screen: ctrl+q quits")

    def export_table(self) -> TableData:
        plan = self.plan
        if plan is None:
            return TableData("plan", ["error"], [[self.error or "no plan"]])
        limit = plan.limit_bytes
        rows = [[c.name, c.bytes, f"{c.bytes / GiB:.3f}", f"{100 * c.bytes / limit:.2f}",
                 "exact" if c.exact else "estimate", c.formula] for c in plan.components]
        rows += [["total", plan.total_bytes, f"{plan.total_bytes / GiB:.3f}",
                  f"{100 * plan.total_bytes / limit:.2f}", "", ""],
                 ["limit", limit, f"{limit / GiB:.3f}", "100.00", plan.slice.generation.name, ""],
                 ["headroom", plan.headroom_bytes, f"{plan.headroom_bytes / GiB:.3f}",
                  f"{100 * plan.headroom_bytes / limit:.2f}", "", ""]]
        r = plan.request
        title = (f"hbmplan --tpu {r.tpu} --model {r.model} --workload {r.workload}"
                 + (f" --bs {r.bs}" if r.bs else "") + f" --len {r.len}"
                 + (f" --micro-bs {r.micro_bs}" if r.micro_bs else ""))
        notes = [f"verdict: {plan.headline}"] + [f"note: {n}" for n in plan.notes]
        notes += [f"suggestion: {getattr(s, 'title', s)}" for s in self.suggestions]
        return TableData(title, ["component", "bytes", "GiB", "pct_of_limit", "kind", "formula"], rows, notes)


# -- the app ----------------------------------------------------------------------------------------


APP_CSS = """
Screen { layout: vertical; }
#filter { margin: 0 1; }
#warnings { color: $warning; height: auto; max-height: 5; padding: 0 1; }
#runs { height: 1fr; }
#runs-status, #run-meta { height: auto; padding: 0 1; color: $text-muted; }
#run-tabs { height: 1fr; }
TabPane { padding: 0; }
#phases { height: auto; max-height: 1fr; }
#phases-legend { height: auto; padding: 1 1 0 1; color: $text-muted; }
#dev-summary { height: 1fr; }
#dev-title { height: 1; padding: 0 1; }
#dev-detail { height: 1fr; }
#explain { height: auto; max-height: 8; }
#explain-detail { height: 1fr; padding: 0 1; overflow-y: auto; }
#bars-scroll { height: 1fr; }
#bars { width: 100%; padding: 0 1; }
#plan-body { height: 1fr; }
#form { width: 36; height: 1fr; padding: 0 1 0 0; }
.field { height: 1; }
.field-label { width: 9; padding: 0 1 0 0; text-align: right; color: $text-muted; }
.field Input { width: 1fr; }
#plan-error { color: $error; height: auto; min-height: 1; padding: 0 1; text-style: bold; }
#sugg-title { padding: 0 1; color: $text-muted; }
#suggestions { height: 1fr; border: none; padding: 0; }
#result { width: 1fr; height: 1fr; }
#result.stale { opacity: 60%; }
#verdict { height: auto; padding: 0 1; }
#breakdown { height: auto; max-height: 14; }
#plan-notes { height: auto; padding: 0 1; color: $text-muted; }
ModalScreen { align: center middle; }
.modal-box { width: 90%; height: auto; max-height: 90%; border: round $primary; background: $surface;
             padding: 0 1; }
"""


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", s).strip("-")[:60] or "view"


class HbmTui(App):
    """``hbmtui``: runs (predicted vs measured) and the live planner.

    Input cursors do not blink: over SSH a blinking cursor is a redraw twice a second.
    """

    TITLE = "hbmtui"
    CSS = APP_CSS
    BINDINGS = [
        Binding("question_mark", "help", "Help", key_display="?", priority=True),
        Binding("f1", "help", "Help", show=False),
        Binding("ctrl+t", "toggle_theme", "Theme", priority=True),
        Binding("ctrl+o", "export('md')", "Export md", priority=True),
        Binding("ctrl+b", "export('csv')", "csv", priority=True),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    def __init__(self, paths: list[str | Path] | None = None, *, start: str = "runs", light: bool = False,
                 export_dir: str | Path | None = None) -> None:
        super().__init__()
        from planner.tui.data import default_paths

        self.paths = [Path(p) for p in paths] if paths else default_paths()
        self.start = start
        self.export_dir = Path(export_dir) if export_dir else None
        self.runs: list[RunView] = []
        self.load_warnings: list[str] = []
        self.last_export: Path | None = None
        self.messages: list[str] = []
        self.theme = LIGHT if light else DARK

    def on_mount(self) -> None:
        self.runs, self.load_warnings = load_runs(self.paths)
        where = ", ".join(_display_path(p) for p in self.paths)
        self.push_screen(RunsScreen(self.runs, self.load_warnings, where))
        for w in self.load_warnings:
            self.notify(w, severity="warning", timeout=8, markup=False)
        if self.start == "plan":
            self.push_screen(PlanScreen())

    def notify(self, message: str, **kw) -> None:  # type: ignore[override]
        self.messages.append(message)
        super().notify(message, **kw)

    def watch_theme(self, theme: str) -> None:
        for screen in self.screen_stack:
            restyle = getattr(screen, "restyle", None)
            if restyle is not None and screen.is_mounted:
                restyle()

    def action_toggle_theme(self) -> None:
        self.theme = LIGHT if self.current_theme.dark else DARK

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            self.pop_screen()
        else:
            self.push_screen(HelpScreen())

    def action_export(self, fmt: str = "md") -> Path | None:
        screen = self.screen
        make = getattr(screen, "export_table", None)
        if make is None:
            self.notify("nothing to export on this screen", severity="warning")
            return None
        table = make()
        text = table.to_markdown() if fmt == "md" else table.to_csv()
        folder = self.export_dir or Path.cwd()
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        base = f"hbmtui-{_slug(type(screen).__name__.replace('Screen', '').lower())}-{stamp}"
        path = folder / f"{base}.{fmt}"
        k = 1
        while path.exists():
            path = folder / f"{base}-{k}.{fmt}"
            k += 1
        try:
            path.write_text(text, encoding="utf-8")
        except OSError as e:
            self.notify(f"export failed: {e}", severity="error", markup=False)
            return None
        self.last_export = path
        self.notify(f"exported {len(table.rows)} rows to {path}", markup=False)
        return path


def _display_path(p: Path) -> str:
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve())) or "."
    except ValueError:
        return str(p)
