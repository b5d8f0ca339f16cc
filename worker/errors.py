"""Errors raised by levers-batcher.

LeversBatcherError
├── SettingsError          bad environment; lists every bad variable at once
├── PolicyError            bad calling policy file; lists every problem with its TOML path
├── ContactError           a contact failed validation; carries a reason code
├── BacklogFullError       Redis is near its memory limit: nothing was enqueued, try later
├── NotReplicatedError     a write was made on the primary, but fewer replicas than
│                          LEVERS_REDIS_MIN_REPLICAS confirmed it in time (see worker/durability.py)
└── LeversAPIError         a call to the Levers API failed; carries the request and response
    ├── LeversAuthError    no token could be had (bad credentials, auth endpoint down)
    └── LeversTransportError  no answer: connect/read failure; `written` says if it was sent
"""

from __future__ import annotations

import httpx


class LeversBatcherError(Exception):
    """Root of every error this package raises on purpose."""


class SettingsError(LeversBatcherError):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        # One line for one problem (the common case); a list when there are several.
        if len(problems) == 1:
            text = f"invalid configuration: {problems[0]}"
        else:
            text = f"invalid configuration ({len(problems)} problems):\n  " + "\n  ".join(problems)
        super().__init__(text)


class PolicyError(LeversBatcherError):
    def __init__(self, problems: list[str], source: str = "calling policy") -> None:
        self.problems = problems
        self.source = source
        super().__init__(f"invalid calling policy ({source}):\n  " + "\n  ".join(problems))


class ContactError(LeversBatcherError):
    """`reason` is a stable machine-readable code; the message is for people."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


class BacklogFullError(LeversBatcherError):
    """Producers are refused while Redis is near its memory limit (see worker/headroom.py).

    Retryable: nothing of the refused call was enqueued. `reason` is the reject code the
    producers use for such rows."""

    reason = "backlog_full"

    def __init__(self, used_bytes: int, limit_bytes: int, retry_after_seconds: float = 5.0):
        self.used_bytes = used_bytes
        self.limit_bytes = limit_bytes
        self.retry_after_seconds = retry_after_seconds
        super().__init__(
            f"the backlog is full: Redis would use {used_bytes:,} of the {limit_bytes:,} bytes "
            "allowed to producers (LEVERS_MAX_BACKLOG_BYTES); nothing was enqueued, try again "
            "once workers have sent some of it"
        )


class NotReplicatedError(LeversBatcherError):
    """A write was made on the Redis primary, but only `acked` of the `required` replicas
    confirmed it within `timeout_ms`: a failover now could lose it (see worker/durability.py).

    `operation` names the write (`enqueue`, `append`, `begin`, `finish`); `result` is what the
    write itself returned, for callers that go on with it. `reason` is the reject code the
    producers use for rows refused after such a write."""

    reason = "replicas_unavailable"

    def __init__(
        self, operation: str, acked: int, required: int, timeout_ms: int, result: object = None
    ) -> None:
        self.operation = operation
        self.acked = acked
        self.required = required
        self.timeout_ms = timeout_ms
        self.result = result
        super().__init__(
            f"{operation}: written on the Redis primary, but {acked} of the {required} replicas "
            f"required (LEVERS_REDIS_MIN_REPLICAS) confirmed it within {timeout_ms} ms; a "
            "failover now could lose it"
        )


class LeversAPIError(LeversBatcherError):
    def __init__(
        self,
        message: str,
        *,
        request: httpx.Request | None = None,
        response: httpx.Response | None = None,
    ) -> None:
        self.request = request
        self.response = response
        super().__init__(message)


class LeversAuthError(LeversAPIError):
    pass


class LeversTransportError(LeversAPIError):
    """The request got no answer. `written` is False only when it surely never left us."""

    def __init__(
        self, message: str, *, written: bool, request: httpx.Request | None = None
    ) -> None:
        self.written = written
        super().__init__(message, request=request)
