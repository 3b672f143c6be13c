"""Atomic file writes: a reader sees either the old file (or none) or the whole new one."""

from __future__ import annotations

import os
from pathlib import Path


def write_text_atomic(path: str | os.PathLike, text: str, *, prefix: str = ".tmp-", mode: int | None = None) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same folder (``prefix``), fsynced
    and renamed with ``os.replace``; the temporary file is removed if anything fails. ``mode``
    sets the file's permissions (``mkstemp`` creates it 0600). Returns ``path``."""
    import tempfile  # imported here: plans that write nothing skip its import (bench/cli_latency.py)

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=prefix, suffix=p.suffix)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p
