"""Lua scripts and the one clock they share.

Scripts live in `lua/`, each with a header naming its KEYS and ARGV. Every script is
registered with `clock.lua` in front, so that its time is Redis's own (`TIME`): replicas on
hosts whose clocks disagree still agree on every deadline, lease, retry and rate-limit slot.
A test injects a fixed time through `Clock` (seconds, like `time.time`), which reaches the
scripts as their first argument; production passes no clock and the argument is ''.

Scripts that free memory or that the pipeline needs to make progress are registered with
`allow-oom`, so that a Redis at `maxmemory` (policy `noeviction`) still lets batches be cut,
sent and finished (which is what frees it); only appends of new contacts are refused then.
Script flags need Redis 7.0 or newer.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from typing import Any

import redis

Clock = Callable[[], float]

# Prepended to every script, in this order, before the libraries a script names.
_PRELUDE = ("clock",)


def load_script(
    client: redis.Redis, name: str, *libraries: str, flags: str | None = "allow-oom"
) -> Any:
    """Register `lua/{name}.lua` with the clock and the shared functions of `libraries`.

    `flags` are Redis 7 script flags (`allow-oom`, `no-writes`); None declares none, which
    Redis treats as a script that may write and is refused when memory is full.
    """
    folder = resources.files("worker").joinpath("lua")
    parts = (*_PRELUDE, *libraries, name)
    text = "".join(folder.joinpath(f"{part}.lua").read_text("utf-8") for part in parts)
    if flags is not None:
        text = f"#!lua flags={flags}\n{text}"
    return client.register_script(text)


def time_arg(clock: Clock | None) -> int | str:
    """The scripts' ARGV[1]: '' for Redis's own time, or a test's fixed time in ms."""
    return "" if clock is None else int(clock() * 1000)


def redis_now(client: redis.Redis, clock: Clock | None = None) -> float:
    """The shared clock read from Python (seconds): Redis `TIME`, or a test's clock."""
    if clock is not None:
        return clock()
    seconds, micros = client.time()
    return float(seconds) + float(micros) / 1_000_000


def as_text(value: Any) -> str:
    """Redis replies as str (the client returns bytes)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def compact(value: Any) -> str:
    """JSON without spaces, as stored in Redis."""
    import json

    return json.dumps(value, separators=(",", ":"))
