"""Start-up checks of the outcome settings against the calling policy, for `levers-worker`.

Kept apart from worker/outcome_runtime.py, which imports prometheus_client: the supervisor
runs these before it sets PROMETHEUS_MULTIPROC_DIR, which prometheus_client reads on import.
"""

from __future__ import annotations

import sys

from worker.policy.policy import CallingPolicy
from worker.settings import Settings, variable


def outcome_problems(settings: Settings, policy: CallingPolicy) -> list[str]:
    """Why these settings cannot run this policy's outcome routes (for start-up)."""
    rules = [policy.default, *policy.templates.values()]
    if any(rule.outcomes.url for rule in rules) and not settings.callback_secret:
        return [
            f"{variable('callback_secret')} is not set, and the calling policy names a callback "
            "url: callbacks are signed (set it to a whsec_... secret the receiver verifies with)"
        ]
    return []


def check_or_exit(settings: Settings) -> None:
    """For levers-worker's start: the policy loads and its outcome routes can run, or every
    problem on stderr and exit status 2 (before any process starts)."""

    from worker.policy.config import policy_or_exit

    problems = outcome_problems(settings, policy_or_exit(settings))
    if problems:
        print("invalid configuration:\n  " + "\n  ".join(problems), file=sys.stderr)
        raise SystemExit(2)
