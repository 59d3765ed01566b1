"""How findings and events are told: one structured log line each, redacted on the way out."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from ._constants import LAMBDA_LOG_FORMAT, LOGGER_NAME, RESTARTS
from ._records import Finding, Site
from ._redact import redact_obj, redact_text

TYPE_CHECKING = False  # typing's, without importing typing: mypy knows the name
if TYPE_CHECKING:
    from typing import Any

    from .health import Health

__all__ = ["advice", "log_event", "log_finding", "log_layer_active", "log_unhealthy"]


def _is_powertools(logger: Any) -> bool:
    return type(logger).__module__.startswith("aws_lambda_powertools")


def _json_log_format() -> bool:
    """Lambda's JSON log format: awslambdaric's formatter makes ``extra`` keys fields of the
    line's own object, so a JSON string in its message would be encoded twice."""
    return os.environ.get(LAMBDA_LOG_FORMAT, "").upper() == "JSON"


def log_event(
    logger: Any, event: str, message: str, fields: Mapping[str, Any], *, level: str = "warning"
) -> None:
    """One structured line: a JSON object on stdlib logging, ``extra`` keys on Powertools and
    under Lambda's JSON log format. Every line says which process and which runtime
    generation (restarts by the layer's wrapper) it comes from: a recycled environment logs
    its findings again. The redaction boundary for log lines: the message and every field
    pass it here."""
    import json  # json and logging: 6 ms of cold start, loaded with the first line
    import logging

    if logger is None:
        logger = logging.getLogger(LOGGER_NAME)
    message = redact_text(message)
    payload = redact_obj(
        {"event": event, **fields, "pid": os.getpid(), "generation": _generation()}
    )
    emit = getattr(logger, level, None) or logger.warning  # any logger with warning()
    if _is_powertools(logger) or (_json_log_format() and isinstance(logger, logging.Logger)):
        emit(message, extra={"safehandler": payload})
    else:
        emit(json.dumps({"message": message, "safehandler": payload}, default=str))


def _generation() -> int:
    restarts = os.environ.get(RESTARTS, "")
    return int(restarts) if restarts.isdigit() else 0


def log_finding(logger: Any, finding: Finding) -> None:
    fields = finding.to_dict()
    del fields["detail"]  # it is the message
    del fields["created_at"]  # the site says it in a line: for reports read back, not logs
    fields["fix"] = advice(finding)
    log_event(logger, "safehandler.leak", f"safehandler: {finding}", fields)


def log_unhealthy(
    logger: Any, invocation: int, health: Health, top: list[tuple[int, Site | None, str]]
) -> None:
    """The environment turned unhealthy: the figures, and what holds the most."""
    state = "unhealthy" if health.recyclable else "near its limit"
    log_event(
        logger,
        "safehandler.unhealthy",
        f"safehandler: environment {state}: " + "; ".join(health.reasons),
        {
            "invocation": invocation,
            "recycle": health.recyclable,
            "reasons": list(health.reasons),
            "fds": health.fds,
            "fd_limit": health.fd_limit,
            "rss": health.rss,
            "memory_limit": health.memory_limit,
            "top_sites": [
                {"count": count, "site": site.location if site else None, "what": what}
                for count, site, what in top
            ],
        },
    )


# -- what to do: one fix line per finding, fitted to what leaked -------------------------

_CLOSE = "close it before returning (`with` or try/finally)"
_SHARED_STATE_FIX = {
    "stdlib attribute": "do not rebind the standard library per call; if it must change, "
    'change it once at import, or let isolation="restore" put it back',
    "builtin": "do not rebind builtins per call; change them once at import, if at all",
    "sys.modules entry": "import modules at module level instead of editing sys.modules per call",
    "environment variable": "pass the value explicitly instead of setting os.environ per call "
    '(or let isolation="restore" put it back)',
    "sys.path entry": "set sys.path once at import, not per call",
    "mutable default": "do not use a mutable default: default to None and make the container "
    "in the call (`seen = [] if seen is None else seen`); state meant to persist belongs in a "
    "module-level cache with a bound, or marked with allow_global",
    "logging handler": "add logging handlers once at import: one per call repeats every line "
    "and holds its file open",
    "working directory": "use absolute paths instead of os.chdir per call",
    "signal handler": "install signal handlers once at import",
    "atexit callback": "register exit callbacks once at import",
}
_CACHE_FIX = (
    "bound it (functools.lru_cache(maxsize=...), a size limit or an eviction), or, if it is a "
    "cache meant to hold this much, mark it with allow_global"
)


def advice(finding: Finding) -> str:
    """The ``fix:`` line for one finding: close or ``with`` for resources, a module-level
    object for clients and executors, a bound or ``allow_global`` for caches, restore or leave
    alone for the standard library, join for threads."""
    via = finding.site.via if finding.site is not None else None
    return _FIXES.get(finding.kind, _fd_fix)(finding, via or "")


def _memory_fix(finding: Finding, via: str) -> str:
    return (
        "find what keeps growing (in a soak, the allocation lines above) and bound it or free "
        "it per call"
    )


def _global_fix(finding: Finding, via: str) -> str:
    return _SHARED_STATE_FIX.get(finding.noun, _CACHE_FIX)


def _thread_fix(finding: Finding, via: str) -> str:
    if "Executor" in via:
        name = via.rpartition(".")[2]
        return (
            f"create the {name} once at module level and reuse it, or use it as "
            f"`with {name}() as executor:` so that it is shut down"
        )
    if finding.noun == "idle thread":
        return "stop the worker before returning (send it its stop), or start it once at import"
    return (
        "join the thread before returning (thread.join()): one left running resumes inside a "
        "later invocation"
    )


def _process_fix(finding: Finding, via: str) -> str:
    return "wait for the child before returning (subprocess.run, or proc.wait()/communicate())"


def _db_fix(finding: Finding, via: str) -> str:
    if finding.noun == "SQLAlchemy Session":
        return (
            "close the Session: `with Session(engine) as session:`; in a FastAPI dependency, "
            "`try: yield db` then `finally: db.close()`"
        )
    if finding.noun == "SQLAlchemy engine":
        return (
            "create the engine once at module level and reuse it (a pool made per call lives "
            "until the garbage collector runs), or engine.dispose() before returning"
        )
    return f"{_CLOSE}, or connect once at module level and reuse the connection"


# fds and sockets: the first rule that fits, from what made it to what it is
_FD_RULES: tuple[tuple[Callable[[Finding, str], bool], str], ...] = (
    (
        lambda f, via: via == "asyncio event loop",
        "close the loop (loop.close()), or run the coroutine with asyncio.run(), which does",
    ),
    (
        # a client's pooled connections: the owner's line, its first use beside it
        lambda f, via: bool(via) and f.site is not None and f.site.first_use is not None,
        "create the {name} once at module level and reuse it (its connections are pooled), or "
        "close it before returning (`with` or .close())",
    ),
    (
        lambda f, via: f.noun == "pipe" and via.startswith("subprocess.Popen"),
        "close the child's pipes: `with subprocess.Popen(...) as proc:`, or "
        "subprocess.run(...), which does",
    ),
    (lambda f, via: f.noun == "pipe", "close both ends (os.close) before returning"),
    (
        lambda f, via: via == "sqlite3.connect",
        "close the connection before returning: `with contextlib.closing(sqlite3.connect(...)) "
        "as conn:` (`with conn:` alone only commits), or connect once at module level",
    ),
    (
        lambda f, via: f.noun == "anonymous temporary file",
        "`with tempfile.TemporaryFile() as f:` closes (and frees) it",
    ),
    (lambda f, via: f.kind == "socket", f"{_CLOSE}, or open it once at module level and reuse it"),
)


def _fd_fix(finding: Finding, via: str) -> str:
    for fits, text in _FD_RULES:
        if fits(finding, via):
            return text.format(name=via.removeprefix("a "))
    return f"{_CLOSE}: `with open(...) as f:`"


_FIXES: dict[str, Callable[[Finding, str], str]] = {
    "memory": _memory_fix,
    "global": _global_fix,
    "thread": _thread_fix,
    "process": _process_fix,
    "db_connection": _db_fix,
}


def log_layer_active(version: str, handler: str, settings: Mapping[str, str]) -> None:
    """The one line at init under the layer: it is active, which version, which settings."""
    # at info where info is shown (Lambda's JSON format), else at the level that is: once
    import logging

    shown = logging.getLogger(LOGGER_NAME).isEnabledFor(logging.INFO)
    log_event(
        None,
        "safehandler.init",
        f"safehandler {version}: the layer guards {handler}",
        {"version": version, "handler": handler, "settings": dict(settings)},
        level="info" if shown else "warning",
    )
