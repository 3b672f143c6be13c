#!/usr/bin/env bash
# Create ./.venv with a Python >= 3.12 found on this machine and install the project.
#   scripts/setup.sh          core planner only (numpy, pandas, tabulate): enough for `hbmplan`
#   scripts/setup.sh --full   plus the TPU stack (jax[tpu], sglang-jax, flax), textual and test tools
# Idempotent: a stamp keyed on pyproject.toml skips a finished install.
set -euo pipefail
cd "$(dirname "$0")/.."
extras=""
[ "${1:-}" = "--full" ] && extras="[tpu,tui,dev]"
py=$(bash scripts/find_python.sh)
if [ ! -x .venv/bin/python ]; then
  "$py" -m venv .venv
fi
stamp=".venv/.hbmplan-installed"
if [ -n "$extras" ]; then stamp="$stamp-full"; fi
want=$(cat pyproject.toml | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".${extras}"
echo "$want" > "$stamp"
