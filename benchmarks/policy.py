"""Calling-policy decisions per second, in one process (no Redis: decisions are pure).

    python -m benchmarks.policy [--decisions 200000] [--numbers 20000]

A mix of Saudi, US (one and two zones), British and Emirati numbers under `by_country`, a
custom window for one template, instants spread over a week, and a not_before/expire_at on a
quarter of them. Prints decisions per second for:

* resolved:  `decide_for(recipient, ...)`, the recipient's zones resolved beforehand (the
  pipeline can keep them with the contact);
* cached:    `decide(number, ...)` for numbers seen before (the LRU of resolved numbers);
* new:       `decide(number, ...)` for numbers never seen, each resolved by phonenumbers;
* new parsed: the same with the number already parsed (the aggregator parses it anyway);
* first:     the first decision of a day for one number's zones with every cache empty,
  which is what the caches save the others from.

The goal is ~10,000 decisions per second per core, twice per contact (accepted, then sent).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable

PREFIXES = ["+96650", "+96655", "+1212555", "+1208555", "+447400", "+97150"]
TEMPLATE = "0b6f3f4e-6a43-4a5e-9e59-7f3b3c1d2a10"
START = 1_775_000_000.0  # 2026-03-31 23:33 UTC: a week of ordinary days follows
WEEK = 7 * 86400


def numbers(count: int, rng: random.Random) -> list[str]:
    out = []
    for _ in range(count):
        prefix = rng.choice(PREFIXES)
        out.append(prefix + "".join(rng.choice("0123456789") for _ in range(13 - len(prefix))))
    return out


def rate(label: str, count: int, run: Callable[[], None], repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        run()
        times.append(time.perf_counter() - began)
    best = count / min(times)
    median = count / statistics.median(times)
    print(f"{label:<11}{median:>12,.0f} decisions/s (best {best:,.0f}; {count:,} per run)")
    return median


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--decisions", type=int, default=100_000)
    parser.add_argument("--numbers", type=int, default=20_000)
    parser.add_argument("--new", type=int, default=10_000, help="never-seen numbers to resolve")
    args = parser.parse_args()

    import phonenumbers

    from worker.policy import decision as decision_module
    from worker.policy import parse_policy
    from worker.policy import windows as windows_module
    from worker.policy import zones as zones_module
    from worker.policy.zones import recipient_for, recipient_from_parsed

    rng = random.Random(7)
    policy = parse_policy(
        {"templates": {TEMPLATE: {"days": ["sun-thu"], "hours": ["09:00-12:00", "16:00-21:00"]}}}
    )
    pool = numbers(args.numbers, rng)
    jobs = []
    for _ in range(args.decisions):
        at = START + rng.random() * WEEK
        scheduled = rng.random() < 0.25
        jobs.append(
            (
                rng.choice(pool),
                rng.choice([None, TEMPLATE]),
                at,
                at + 3600 if scheduled else None,
                at + 2 * 86400 if scheduled else None,
            )
        )
    recipients = {n: recipient_for(n) for n in pool}
    print(f"{len(pool):,} numbers, {len({r.zones for r in recipients.values()})} zone sets")

    def resolved() -> None:
        for number, template, at, not_before, expire_at in jobs:
            policy.decide_for(
                recipients[number], template, at, not_before=not_before, expire_at=expire_at
            )

    def cached() -> None:
        for number, template, at, not_before, expire_at in jobs:
            policy.decide(number, template, at, not_before=not_before, expire_at=expire_at)

    fresh = numbers(args.new, rng)
    parsed = [phonenumbers.parse(n) for n in fresh]

    def new() -> None:
        zones_module.recipient_for.cache_clear()
        for number in fresh:
            policy.decide(number, None, START)

    def new_parsed() -> None:
        for number in parsed:
            policy.decide_for(recipient_from_parsed(number), None, START)

    resolved()  # fill the per-day caches once
    rate("resolved", len(jobs), resolved)
    rate("cached", len(jobs), cached)
    rate("new", len(fresh), new)
    rate("new parsed", len(parsed), new_parsed)

    samples = ("+966501234567", "+12125551234", "+12085551234", "+447400123456")
    for number in samples:
        recipient = recipient_for(number)
        decision_module._timeline.cache_clear()
        windows_module.open_intervals.cache_clear()
        began = time.perf_counter()
        policy.decide_for(recipient, None, START)
        took = (time.perf_counter() - began) * 1000
        zones = len(recipient.zones)
        print(f"first      {took:6.2f} ms for a day of {number[:6]}… ({zones} zones)")


if __name__ == "__main__":
    main()
