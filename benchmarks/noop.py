"""The floor: dramatiq moving the contact messages with an actor that does nothing.

    python -m benchmarks.noop --processes N --threads M

Same broker (`worker.broker.build_broker`, so the same namespace and keys), same queue and actor
name as `levers_aggregate`, same process and thread layout as `levers-worker` (see
`benchmarks.runner`); the actor takes the contact message and returns. No Prometheus middleware:
the floor is plain dramatiq, so the pipeline's own metrics count as pipeline cost.
"""

from __future__ import annotations

from typing import Any

from dramatiq.brokers.redis import RedisBroker

from benchmarks import runner
from worker.settings import Settings


def levers_aggregate(payload: Any) -> None:
    """Takes a contact message and does nothing with it."""


def build(settings: Settings) -> RedisBroker:
    return runner.broker_with(settings, levers_aggregate)


if __name__ == "__main__":
    raise SystemExit(runner.main("benchmarks.noop", build, None))
