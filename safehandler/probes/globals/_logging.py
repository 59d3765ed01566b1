"""The handlers of the loggers: read, diff and restore."""

from __future__ import annotations

from collections.abc import Callable

from ..._records import LOGGING_HANDLER, Resource, global_change
from .._describe import describe_handler, describe_logger

TYPE_CHECKING = False  # typing's, without importing typing: mypy knows the name
if TYPE_CHECKING:
    import logging
    from typing import Any

    LoggingData = dict[str, tuple[logging.Logger, tuple[Any, ...]]]

__all__ = ["LoggingData", "diff_logging", "handler_ids", "read_logging", "restore_logging"]

Wanted = Callable[[tuple[str, str]], bool]


def _loggers() -> list[logging.Logger]:
    import logging  # 4 ms of cold start: loaded when the first snapshot is taken

    registered = list(logging.Logger.manager.loggerDict.values())
    return [logging.root, *(item for item in registered if isinstance(item, logging.Logger))]


def handler_ids() -> dict[str, tuple[int, ...]]:
    """Every logger's handlers, by identity (what the witness compares)."""
    return {logger.name: tuple(map(id, logger.handlers)) for logger in _loggers()}


def read_logging() -> tuple[LoggingData, tuple[Any, ...]]:
    """Every logger's handlers, and what the next snapshots compare: the list of all handlers
    ever created (weakly held), the logger registry, and the handler lists that are not empty.
    (An existing handler added to a logger that had none is seen at the next change.)
    """
    import logging

    loggers = _loggers()
    data = {logger.name: (logger, tuple(logger.handlers)) for logger in loggers}
    handler_refs = getattr(logging, "_handlerList", None)
    sources = (
        *([handler_refs] if isinstance(handler_refs, list) else []),
        logging.Logger.manager.loggerDict,
        *(logger.handlers for logger in loggers if logger.handlers or logger is logging.root),
    )
    return data, sources


def diff_logging(was: LoggingData, now: LoggingData, invocation: int) -> list[Resource]:
    out: list[Resource] = []
    for name, (_, handlers) in now.items():
        old = was.get(name, (None, ()))[1]
        old_ids = {id(handler) for handler in old}
        new_ids = {id(handler) for handler in handlers}
        key = (LOGGING_HANDLER, name)
        for handler in handlers:
            if id(handler) not in old_ids:
                detail = f"{describe_handler(handler)} added to {describe_logger(name)}"
                out.append(global_change(LOGGING_HANDLER, key, detail, invocation))
        for handler in old:
            if id(handler) not in new_ids:
                detail = f"{describe_handler(handler)} removed from {describe_logger(name)}"
                out.append(global_change(LOGGING_HANDLER, key, detail, invocation))
    return out


def restore_logging(was: LoggingData, wanted: Wanted) -> list[str]:
    """Handlers added since: removed from their loggers, and closed unless used before."""
    done: list[str] = []
    used_before = {id(handler) for _, handlers in was.values() for handler in handlers}
    for logger in _loggers():
        old = {id(handler) for handler in was.get(logger.name, (None, ()))[1]}
        for handler in list(logger.handlers):
            if id(handler) in old or not wanted((LOGGING_HANDLER, logger.name)):
                continue
            logger.removeHandler(handler)
            if id(handler) not in used_before:
                handler.close()
            done.append(
                f"{LOGGING_HANDLER} {describe_handler(handler)} removed from "
                f"{describe_logger(logger.name)}"
            )
    return done
