"""Real processes the tests need, and waiting with a deadline instead of sleeping.

A test that needs Redis fails (never skips) when `redis-server` is missing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from worker.local import RedisServer, free_port

__all__ = ["RedisServer", "free_port", "wait_for"]

T = TypeVar("T")


def wait_for(
    condition: Callable[[], T], timeout: float, interval: float = 0.02, what: str = "condition"
) -> T:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
