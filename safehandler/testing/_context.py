"""A fake ``LambdaContext``: what a soak passes as the handler's second argument."""

from __future__ import annotations

import time
import uuid

__all__ = ["FakeLambdaContext"]


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
