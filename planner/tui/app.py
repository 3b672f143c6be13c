"""``hbmtui [RECORD_OR_DIR ...]``: the entry point.

Opens calibration records (``*.json``) and validator logs (``*.jsonl``), files or folders.
With no argument it opens ``calibrations/`` in the current folder, else the repository's.
Textual is imported only when the app is built, so a missing ``tui`` extra is one clear line.
"""

from __future__ import annotations

import argparse
import sys


def __getattr__(name: str):
    if name in ("HbmTui", "RunsScreen", "RunScreen", "PlanScreen", "HelpScreen", "ExplainScreen"):
        from planner.tui import screens

        return getattr(screens, name)
    raise AttributeError(name)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hbmtui",
        description="Compare predicted and measured HBM per device (calibration records, validator logs) "
        "and plan interactively.",
    )
    p.add_argument("paths", nargs="*", metavar="RECORD_OR_DIR",
                   help="calibration record .json, validator log .jsonl, or a folder of them "
                   "(default: ./calibrations, else the repository's calibrations/)")
    p.add_argument("--plan", action="store_true", help="start on the Plan screen")
    p.add_argument("--light", action="store_true", help="start with the light theme (ctrl+t toggles)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        from planner.tui.screens import HbmTui
    except ImportError as e:  # pragma: no cover - depends on the install
        print(f"hbmtui: error: needs textual ({e}); install the tui extra: pip install 'hbmplan[tui]'",
              file=sys.stderr)
        return 2
    HbmTui(args.paths or None, start="plan" if args.plan else "runs", light=args.light).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
