"""How findings and events are told: one structured log line each, redacted on the way out."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._constants import LOGGER_NAME
from ._records import Finding, Site
from ._redact import redact_obj, redact_text

if TYPE_CHECKING:
    from .health import Health

__all__ = ["log_event", "log_finding", "log_unhealthy"]


def _is_powertools(logger: Any) -> bool:
    return type(logger).__module__.startswith("aws_lambda_powertools")


def log_event(logger: Any, event: str, message: str, fields: Mapping[str, Any]) -> None:
    """One structured line: a JSON object on stdlib logging, ``extra`` keys on Powertools.
    The redaction boundary for log lines: the message and every field pass it here."""
    if logger is None:
        logger = logging.getLogger(LOGGER_NAME)
    message = redact_text(message)
    payload = redact_obj({"event": event, **fields})
    if _is_powertools(logger):
        logger.warning(message, extra={"safehandler": payload})
    else:
        logger.warning(json.dumps({"message": message, "safehandler": payload}, default=str))


def log_finding(logger: Any, finding: Finding) -> None:
    fields = finding.to_dict()
    del fields["detail"]  # it is the message
    del fields["created_at"]  # the site says it in a line: for reports read back, not logs
    log_event(logger, "safehandler.leak", f"safehandler: {finding}", fields)


def log_unhealthy(
    logger: Any, invocation: int, health: Health, top: list[tuple[int, Site | None, str]]
) -> None:
    """The environment turned unhealthy: the figures, and what holds the most."""
    log_event(
        logger,
        "safehandler.unhealthy",
        "safehandler: environment unhealthy: " + "; ".join(health.reasons),
        {
            "invocation": invocation,
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
