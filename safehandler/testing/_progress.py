"""A one-line progress bar for a soak, drawn only on a terminal."""

from __future__ import annotations

from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """A one-line progress bar, only on a terminal."""

    def __init__(self, stream: TextIO | None, total: int) -> None:
        self.stream = stream if stream is not None and stream.isatty() else None
        self.total = total
        self.step = max(1, total // 100)

    def update(self, done: int) -> None:
        if self.stream is None or (done % self.step and done != self.total):
            return
        width = 30
        filled = width * done // self.total
        self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done:,}/{self.total:,}")
        self.stream.flush()

    def close(self) -> None:
        if self.stream is not None:
            self.stream.write("\r" + " " * 60 + "\r")
            self.stream.flush()
