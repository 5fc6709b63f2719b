"""A Lambda context object with the attributes Powertools reads."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field


@dataclass
class FakeLambdaContext:
    function_name: str = "test-function"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:test-function"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    # What Lambda reports at the start of the invocation: the function's Timeout, less what
    # has run. Fixed: handlers read it when they start.
    remaining_ms: int = 300_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms
