#!/usr/bin/env bash
# Install everything (core + TPU stack + TUI + test tools) into ./.venv and run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --full
exec .venv/bin/python -m pytest -q "$@"
