"""Reconciliation: where did every accepted contact end up?

The rule the fault tests enforce (G1 + G2): every accepted contact is in exactly one request the
sandbox answered 2xx, or in the dead letters with a reason, and no number is in two requests
the sandbox accepted (answered or dropped). A contact may be in both only as an
`unknown_outcome`: its request was answered, but the worker died before it could record that,
which is exactly the case the operator is asked to check.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from tests.servers import wait_for
from worker.deadletters import DeadLetters
from worker.sandbox import Sandbox


@dataclass
class Reconciliation:
    answered: Counter[str]  # number -> requests answered 2xx that held it
    received: Counter[str]  # number -> requests the sandbox accepted, answered or dropped
    dead: Counter[str]  # number -> dead letters holding it
    dead_reasons: Counter[str]
    unknown: set[str]  # numbers dead-lettered as unknown_outcome

    @classmethod
    def take(cls, sandbox: Sandbox, dead: DeadLetters) -> Reconciliation:
        answered: Counter[str] = Counter()
        received: Counter[str] = Counter()
        for request in sandbox.accepted():
            numbers = [c["numberToCall"] for c in request.body["contacts"]]
            received.update(numbers)
            if not request.dropped:
                answered.update(numbers)
        records = list(dead.select())
        return cls(
            answered,
            received,
            Counter(r["contact"]["numberToCall"] for r in records),
            Counter(r["reason"] for r in records),
            {r["contact"]["numberToCall"] for r in records if r["reason"] == "unknown_outcome"},
        )

    def settled(self, accepted: set[str]) -> bool:
        return sum(1 for n in accepted if self.answered[n] + self.dead[n] >= 1) == len(accepted)

    def check(self, accepted: set[str]) -> None:
        lost = [n for n in accepted if self.answered[n] + self.dead[n] == 0]
        twice = [
            n
            for n in accepted
            if self.answered[n] + self.dead[n] > 1
            and not (self.answered[n] == 1 and self.dead[n] == 1 and n in self.unknown)
        ]
        doubled = [n for n, count in self.received.items() if count > 1]
        strangers = set(self.received) - accepted
        assert not lost, f"{len(lost)} accepted contacts are nowhere, e.g. {lost[:3]}"
        assert not twice, f"{len(twice)} contacts both sent and dead, e.g. {twice[:3]}"
        assert not doubled, f"{len(doubled)} numbers reached Levers twice, e.g. {doubled[:3]}"
        assert not strangers, f"numbers nobody enqueued were sent: {sorted(strangers)[:3]}"


def settle(
    sandbox: Sandbox, dead: DeadLetters, accepted: set[str], timeout: float
) -> Reconciliation:
    return wait_for(
        lambda: (r := Reconciliation.take(sandbox, dead)).settled(accepted) and r,
        timeout,
        interval=0.2,
        what=f"all {len(accepted)} contacts sent or dead-lettered",
    )
