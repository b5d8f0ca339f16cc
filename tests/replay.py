"""A redis-py client that loses the reply of one chosen command after Redis has run it.

Redis runs the command, the connection reads the real reply, throws it away and raises
`redis.ConnectionError`, as if the socket had timed out or been reset just then. redis-py's
own `Retry` (the one worker/connection.py gives every client) then sends the same command
again: a real second run against a real redis-server, which is what every Lua script must
survive. In a pipeline the whole pipeline is sent again, as redis-py does.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import redis
from redis.connection import Connection

from worker.connection import redis_retry

# The command's arguments as sent (bytes or str, as redis-py has them) -> lose its reply?
Choose = Callable[[Sequence[Any]], bool]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def evalsha_of(script: Any, nth: int = 1) -> Choose:
    """Choose the `nth` EVALSHA of `script` (a redis-py Script, as load_script returns)."""
    seen = 0

    def choose(args: Sequence[Any]) -> bool:
        nonlocal seen
        if _text(args[0]).upper() != "EVALSHA" or _text(args[1]) != script.sha:
            return False
        seen += 1
        return seen == nth

    return choose


class Replays:
    """Which replies to lose, and a count of those lost (a test asserts the replay happened)."""

    def __init__(self) -> None:
        self.choose: Choose | None = None
        self.lost: list[str] = []

    def lose(self, choose: Choose) -> None:
        self.choose = choose


class ReplayingConnection(Connection):
    """Remembers the commands it sent, in order, so each reply read is matched to its command."""

    replays: Replays

    def __init__(self, *args: Any, replays: Replays, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.replays = replays
        self._sent: deque[Sequence[Any]] = deque()

    def send_command(self, *args: Any, **kwargs: Any) -> None:
        self._sent.append(args)
        super().send_command(*args, **kwargs)

    def pack_commands(self, commands: Any) -> Any:
        commands = list(commands)
        self._sent.extend(commands)
        return super().pack_commands(commands)

    def disconnect(self, *args: Any, **kwargs: Any) -> None:
        self._sent.clear()
        super().disconnect(*args, **kwargs)

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        # Taken first: an error reply (raised by redis-py) answers its command too.
        command = self._sent.popleft() if self._sent else ()
        response = super().read_response(*args, **kwargs)
        choose = self.replays.choose
        if command and choose is not None and choose(command):
            self.replays.choose = None  # once: the retry gets its reply
            self.replays.lost.append(_text(command[0]))
            self.disconnect()
            raise redis.ConnectionError("reply lost after the command ran (tests/replay.py)")
        return response


def replaying_client(url: str) -> tuple[redis.Redis, Replays]:
    """A client for `url` with the worker's retry policy; `Replays.lose` picks the command."""
    replays = Replays()
    kwargs = redis.ConnectionPool.from_url(url).connection_kwargs
    pool = redis.ConnectionPool(
        connection_class=ReplayingConnection,
        replays=replays,
        retry=redis_retry(),
        **kwargs,
    )
    # The client owns the pool: closing it closes the connections too.
    return redis.Redis.from_pool(pool), replays
