"""Testing tools: soak a handler, a fake LambdaContext, handler and event loading.

Importable without pytest; the CLI and the pytest plugin are thin layers over ``soak()``.

The modules, each importing only those before it: ``_limits`` (Lambda's fd limit),
``_targets`` (handlers and events by name), ``_context`` (the fake context), ``_outcomes``
(failing invocations, fd exhaustion, the verdict), ``_report`` (``SoakReport``), ``_events``
(event adapters), ``_progress`` (the bar), ``_bounds`` (the per-invocation timeout),
``_release`` (what an in-process soak gives back), ``_output`` (report files written whole),
``_soak`` (the loop), ``_isolated`` and ``_child`` (a soak in a child process),
``html_report``, ``runtime_api`` (a local Lambda Runtime API under awslambdaric).
"""

from __future__ import annotations

from ..errors import TargetError
from ._bounds import DEFAULT_TIMEOUT
from ._context import FakeLambdaContext
from ._isolated import soak_isolated
from ._limits import LAMBDA_FD_LIMIT
from ._report import SoakReport
from ._soak import DEFAULT_INVOCATIONS, soak, soak_policy
from ._targets import load_event, load_events, load_handler
from .runtime_api import LocalRuntimeAPI, RuntimeEvent, run_local, run_runtime

__all__ = [
    "DEFAULT_INVOCATIONS",
    "DEFAULT_TIMEOUT",
    "LAMBDA_FD_LIMIT",
    "FakeLambdaContext",
    "LocalRuntimeAPI",
    "RuntimeEvent",
    "SoakReport",
    "TargetError",
    "load_event",
    "load_events",
    "load_handler",
    "run_local",
    "run_runtime",
    "soak",
    "soak_isolated",
    "soak_policy",
]
