"""Lambda's file-descriptor limit, and starting a command under it.

A small Python launcher sets ``RLIMIT_NOFILE`` and then ``exec``s the command, so the pid stays
the same. (``preexec_fn`` would do it in fewer words, but it is unsafe in a process with
threads, which a test harness or a Runtime API server always has.)
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["LAMBDA_FD_LIMIT", "fd_limited"]

LAMBDA_FD_LIMIT = 1024  # RLIMIT_NOFILE in a Lambda execution environment

_LAUNCHER = (
    "import os, resource, sys; n = int(sys.argv[1]); "
    "resource.setrlimit(resource.RLIMIT_NOFILE, (n, n)); os.execvp(sys.argv[2], sys.argv[2:])"
)


def fd_limited(argv: Sequence[str], limit: int) -> list[str]:
    """``argv`` run with soft and hard ``RLIMIT_NOFILE`` at ``limit``."""
    return [sys.executable, "-c", _LAUNCHER, str(limit), *argv]
