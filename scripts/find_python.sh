#!/usr/bin/env bash
# Print the path of a Python >= 3.12 interpreter, or fail with one clear line.
# Order: $HBMPLAN_PYTHON, python3.12/python3.13 on PATH, pyenv-installed 3.12/3.13, /usr/bin.
set -u
ok() { "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; }
cands=()
[ -n "${HBMPLAN_PYTHON:-}" ] && cands+=("$HBMPLAN_PYTHON")
for n in python3.12 python3.13 python3; do
  p=$(command -v "$n" 2>/dev/null) && cands+=("$p")
done
if command -v pyenv >/dev/null 2>&1; then
  root=$(pyenv root)
  for d in "$root"/versions/3.12* "$root"/versions/3.13*; do
    for b in "$d"/bin/python3.12 "$d"/bin/python3.13; do [ -x "$b" ] && cands+=("$b"); done
  done
fi
for d in "$HOME"/.pyenv/versions/3.12* /usr/bin /usr/local/bin; do
  for b in "$d"/bin/python3.12 "$d"/python3.12; do [ -x "$b" ] && cands+=("$b"); done
done
for c in "${cands[@]}"; do
  if ok "$c"; then echo "$c"; exit 0; fi
done
echo "error: no Python >= 3.12 found (tried PATH, pyenv, /usr/bin); install one or set HBMPLAN_PYTHON=/path/to/python3.12" >&2
exit 1
