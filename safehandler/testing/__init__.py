"""Testing tools: soak a handler, a fake LambdaContext, handler and event loading.

Importable without pytest; the CLI and the pytest plugin are thin layers over ``soak()``.
"""

from __future__ import annotations

import time
import uuid

from ..errors import TargetError
from ._soak import (
    DEFAULT_INVOCATIONS,
    LAMBDA_FD_LIMIT,
    SoakReport,
    soak,
    soak_isolated,
    soak_policy,
)
from ._targets import load_event, load_events, load_handler
from .runtime_api import LocalRuntimeAPI, RuntimeEvent, run_local, run_runtime

__all__ = [
    "DEFAULT_INVOCATIONS",
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


class FakeLambdaContext:
    """A ``LambdaContext`` lookalike with a real deadline, as the Python runtime passes."""

    def __init__(
        self,
        function_name: str = "safehandler-soak",
        memory_limit_in_mb: int = 1024,
        timeout_s: float = 30.0,
        function_version: str = "$LATEST",
    ) -> None:
        self.function_name = function_name
        self.function_version = function_version
        self.memory_limit_in_mb = memory_limit_in_mb
        self.invoked_function_arn = (
            f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        )
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "2026/01/01/[$LATEST]safehandler"
        self.identity = None
        self.client_context = None
        self.tenant_id = None
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))
