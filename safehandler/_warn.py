"""safehandler's own warnings: one redacted line on the ``safehandler`` logger, never a fault.

A logging handler that raises in ``emit()`` (a broken log shipper) must not turn a warning
about safehandler's own trouble into an exception in the user's handler.
"""

from __future__ import annotations

from ._constants import LOGGER_NAME
from ._redact import redact
from ._suppress import suppress

TYPE_CHECKING = False  # typing's, without importing typing: mypy knows the name
if TYPE_CHECKING:
    from typing import Any

__all__ = ["error", "warn"]


def warn(message: str, *args: Any, exc: BaseException | None = None) -> None:
    with suppress(Exception):  # never a fault
        import logging  # 4 ms of cold start: loaded with the first warning

        text = redact(message % args if args else message)
        logging.getLogger(LOGGER_NAME).warning(text, exc_info=exc)


def error(message: str, *args: Any) -> None:
    """A setting that is wrong and was replaced: an error line, the function still runs."""
    with suppress(Exception):  # never a fault
        import logging

        text = redact(message % args if args else message)
        logging.getLogger(LOGGER_NAME).error(text)
