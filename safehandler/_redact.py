"""The one redaction boundary: every string safehandler writes out passes through here."""

from __future__ import annotations

import re

__all__ = ["is_secret_name", "redact"]

_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)[^@\s]*@")
_KEY_PASSWORD = re.compile(
    r"(?P<head>\b(?:password|passwd|pwd|secret|token)[\"']?\s*[=:]\s*[\"']?)[^\s,;&\"')}]+",
    re.IGNORECASE,
)
_SECRET_NAME = re.compile(r"pass|pwd|secret|token|key|cred|auth|cookie|session", re.IGNORECASE)


def redact(text: str) -> str:
    """Hide passwords in DSNs (``user:***@host``) and ``password=...`` pairs."""
    text = _URL_PASSWORD.sub(r"\g<head>***@", text)
    return _KEY_PASSWORD.sub(r"\g<head>***", text)


def is_secret_name(name: str) -> bool:
    """Whether a variable or attribute of this name holds a secret (its value is masked)."""
    return _SECRET_NAME.search(name) is not None
