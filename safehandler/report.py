"""How findings and events are told: one structured log line each, redacted on the way out."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._constants import LAMBDA_LOG_FORMAT, LOGGER_NAME, RESTARTS
from ._records import Finding, Site
from ._redact import redact_obj, redact_text

if TYPE_CHECKING:
    from .health import Health

__all__ = ["log_event", "log_finding", "log_layer_active", "log_unhealthy"]


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


def log_layer_active(version: str, handler: str, settings: Mapping[str, str]) -> None:
    """The one line at init under the layer: it is active, which version, which settings."""
    # at info where info is shown (Lambda's JSON format), else at the level that is: once
    shown = logging.getLogger(LOGGER_NAME).isEnabledFor(logging.INFO)
    log_event(
        None,
        "safehandler.init",
        f"safehandler {version}: the layer guards {handler}",
        {"version": version, "handler": handler, "settings": dict(settings)},
        level="info" if shown else "warning",
    )
