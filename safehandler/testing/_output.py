"""Report files written whole or not at all: a temporary file beside the target, renamed.

The temporary file is opened before the soak starts, so that a handler that leaks every
descriptor cannot leave none to write the report with; it is renamed over the target only
once complete (``os.replace`` is atomic within a directory). A soak killed meanwhile leaves
the target as it was: never empty, never half written.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from types import TracebackType

__all__ = ["AtomicOutput"]


class AtomicOutput:
    """``path``, reserved now and written by ``commit(text)``; discarded if never committed."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        directory = self.path.parent
        fd, temporary = tempfile.mkstemp(
            prefix=f".{self.path.name}.", suffix=".tmp", dir=directory if str(directory) else "."
        )
        os.fchmod(fd, 0o644)  # mkstemp's 0600 is for secrets; a report is for reading
        self._fd: int | None = fd
        self._temporary = temporary

    def commit(self, text: str) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            raise ValueError(f"{self.path}: already written")
        with open(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(self._temporary, self.path)

    def discard(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
            with contextlib.suppress(OSError):
                os.unlink(self._temporary)

    def __enter__(self) -> AtomicOutput:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.discard()
