"""Compile worker: ``python -m planner.compile.worker IN.json OUT.json``.

Runs one deviceless XLA:TPU compile of the reference step and writes the JSON result. It is
started by :func:`planner.compile.run_compile` with libtpu's logging turned down and its stderr
captured, so libtpu's start-up noise never reaches the user's terminal.
"""

from __future__ import annotations

import json
import os
import sys
import traceback


def main(argv: list[str]) -> int:
    src, dst = argv[0], argv[1]
    cfg = json.loads(open(src).read())
    try:
        from planner.compile.aot import compile_config

        result = compile_config(cfg)
    except Exception as exc:  # noqa: BLE001 - everything goes back as JSON
        from planner.compile.aot import parse_oom

        msg = f"{type(exc).__name__}: {exc}"
        oom = parse_oom(str(exc))
        if oom is not None:
            result = {"status": "oom", "oom": oom}
        else:
            result = {"status": "error", "error": msg[-4000:], "traceback": traceback.format_exc()[-4000:]}
    tmp = dst + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f)
    os.replace(tmp, dst)
    sys.stdout.flush()
    sys.stderr.flush()
    # libtpu's teardown can be slow or noisy; the result is on disk.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
