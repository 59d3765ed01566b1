"""``contextlib.suppress`` without importing ``contextlib`` (1.4 ms of cold start)."""

from __future__ import annotations

__all__ = ["suppress"]


class suppress:  # noqa: N801 - contextlib's name, for contextlib's job
    """``with suppress(OSError): ...``: an exception of those types ends the block silently."""

    __slots__ = ("_exceptions",)

    def __init__(self, *exceptions: type[BaseException]) -> None:
        self._exceptions = exceptions

    def __enter__(self) -> None:
        pass

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> bool:
        # as contextlib's: a subclass is suppressed too; no exception, nothing to do
        return exc_type is not None and issubclass(exc_type, self._exceptions)
