"""Find the line a marker comment is on, so tests never hard-code line numbers."""

from __future__ import annotations

import inspect
from pathlib import Path


def line_of(marker: str, path: str | Path | None = None) -> int:
    """The number of the one line in ``path`` (default: the caller's file) ending in ``marker``."""
    if path is None:
        path = inspect.stack()[1].filename
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    found = [n for n, text in enumerate(lines, 1) if text.rstrip().endswith(f"# {marker}")]
    assert len(found) == 1, f"marker {marker!r} found {len(found)} times in {path}"
    return found[0]
