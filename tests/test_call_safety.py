"""The do-not-call list, frequency caps and the operators' brakes, on a real redis-server
with a fixed clock (the World of tests/test_holds.py: aggregator, flusher and sender of one
worker, and a Levers that records what it is sent)."""

from __future__ import annotations

import redis

from tests.conftest import tokens
from tests.test_holds import RIYADH, SAUDI, TEMPLATE, World, local, policy
from worker.backlog import read_backlog, read_totals
from worker.control import Control
from worker.deadletters import DeadLetters
from worker.suppression import Suppression

OTHER = "9c1d2e3f-4a5b-4c6d-8e7f-a0b1c2d3e4f5"
ANYTIME = '[default]\nwindow = "always"\n'


def capped(world: World) -> dict[tuple[str, str], float]:
    """levers_contacts_capped_total by (scope, cap)."""
    return {
        (sample.labels["scope"], sample.labels["cap"]): sample.value
        for metric in world.metrics.registry.collect()
        if metric.name == "levers_contacts_capped"
        for sample in metric.samples
        if sample.name.endswith("_total")
    }


def letters(world: World) -> list[dict[str, object]]:
    return list(DeadLetters(world.client, world.keys).select())


def test_a_number_suppressed_after_acceptance_is_never_called(redis_client: redis.Redis) -> None:
    world = World(redis_client, policy(ANYTIME), max_size=2)
    world.at(RIYADH, "2026-12-02T10:00")
    world.accept(SAUDI)
    world.accept("+966501234568")  # the batch is cut; its token waits on the queue
    Suppression(redis_client, world.keys).add([SAUDI], note="opted out by phone")
    world.tick()
    assert world.sent_numbers() == ["+966501234568"]
    [letter] = letters(world)
    assert letter["reason"] == "suppressed" and letter["contact"]["numberToCall"] == SAUDI
    # And it is refused at the door from now on.
    [result] = world.aggregator.handle({"number": SAUDI}, "later")
    assert result is None
    assert read_totals(redis_client, world.keys)["rejected_suppressed"] == 1


def test_a_suppression_with_an_expiry_ends(redis_client: redis.Redis) -> None:
    world = World(redis_client, policy(ANYTIME), max_size=1)
    world.at(RIYADH, "2026-12-02T10:00")
    suppression = Suppression(redis_client, world.keys, world.clock)
    suppression.add([SAUDI], note="complaint", expire_at=world.clock() + 3600)
    assert suppression.check([SAUDI, "+966501234568"]) == {SAUDI}
    world.clock.advance(3600)
    assert suppression.check([SAUDI]) == set()
    assert suppression.expire() == 1 and suppression.count() == 0


def test_one_call_a_day_whatever_the_template(redis_client: redis.Redis) -> None:
    world = World(redis_client, policy(ANYTIME), max_size=1)  # default caps: 1 a day
    world.at(RIYADH, "2026-12-02T10:00")
    world.accept(SAUDI, template_id=TEMPLATE)
    world.tick()
    world.accept(SAUDI, template_id=OTHER)  # another template, the same person
    world.tick()
    assert world.sent_numbers() == [SAUDI]
    # Held until the day has passed since the call (the 4 h gap is inside it).
    assert world.held() == {SAUDI: ("frequency_capped", local(RIYADH, "2026-12-03T10:00"))}
    assert capped(world) == {("every_template", "1 per 1d"): 1.0}
    world.at(RIYADH, "2026-12-03T10:00")
    world.tick()
    assert world.sent_numbers() == [SAUDI, SAUDI]


def test_a_template_cap_counts_that_template_only(redis_client: redis.Redis) -> None:
    rules = policy(
        ANYTIME
        + '[caps]\nlimits = [{calls = 5, period = "1d"}]\nmin_gap = "0"\n'
        + f'[templates."{TEMPLATE}".caps]\nlimits = [{{calls = 1, period = "1d"}}]\n'
    )
    world = World(redis_client, rules, max_size=1)
    world.at(RIYADH, "2026-12-02T10:00")
    world.accept(SAUDI, template_id=TEMPLATE)
    world.tick()
    world.accept(SAUDI, template_id=TEMPLATE, dedupe_key="second-reminder")
    world.accept(SAUDI, template_id=OTHER)
    world.tick()
    assert world.sent_numbers() == [SAUDI, SAUDI]  # the first, and the other template's
    assert [reason for reason, _ in world.held().values()] == ["frequency_capped"]
    assert capped(world) == {("template", "1 per 1d"): 1.0}


def test_a_cap_that_outlasts_expire_at_dead_letters(redis_client: redis.Redis) -> None:
    world = World(redis_client, policy(ANYTIME), max_size=1)
    world.at(RIYADH, "2026-12-02T10:00")
    world.accept(SAUDI)
    world.tick()
    world.accept(SAUDI, template_id=OTHER, expire_at="2026-12-02T18:00:00+03:00")
    world.tick()
    [letter] = letters(world)
    assert letter["reason"] == "frequency_capped"


def test_a_retry_is_not_a_call_but_an_unknown_outcome_is(redis_client: redis.Redis) -> None:
    world = World(redis_client, policy(ANYTIME), max_size=1)
    world.at(RIYADH, "2026-12-02T10:00")
    calls = world.keys.calls(SAUDI)
    world.accept(SAUDI)
    world.flusher.run_once()
    [batch_id] = tokens(world.broker)
    claim = world.outbox.pick(batch_id, "o")
    world.outbox.begin(
        claim, "o", decided_at=world.clock(), caps=world.sender.eligibility.caps(None)
    )  # type: ignore[union-attr]
    assert redis_client.zcard(calls) == 1
    from worker.outbox import Retry

    world.outbox.finish(claim, "o", Retry(1.0, 503, "busy"))
    assert redis_client.zcard(calls) == 0  # Levers did not call: the cap is not used


def test_pause_holds_every_request_and_resume_sends_them_once(redis_client: redis.Redis) -> None:
    world = World(redis_client, policy(ANYTIME), max_size=1)
    world.at(RIYADH, "2026-12-02T10:00")
    control = Control(
        redis_client, world.keys, world.buffers.config, world.broker, clock=world.clock
    )
    assert control.pause(TEMPLATE, note="wrong script", who="ops@test")
    for i in range(3):
        world.accept(f"+96650123456{i}", template_id=TEMPLATE)
    world.accept("+966501234569")  # the default template is not paused
    world.tick()
    assert world.sent_numbers() == ["+966501234569"]
    assert read_backlog(redis_client, world.keys).total == 3
    assert control.resume(TEMPLATE, note="script fixed", who="ops@test") == 3
    world.tick()
    assert sorted(world.sent_numbers()) == sorted(
        ["+966501234569", "+966501234560", "+966501234561", "+966501234562"]
    )
    actions = [(a["action"], a["target"], a["note"]) for a in control.audit.recent()]
    assert actions == [("resume", TEMPLATE, "script fixed"), ("pause", TEMPLATE, "wrong script")]


def test_cancel_dead_letters_what_waits_and_replay_sends_it(redis_client: redis.Redis) -> None:
    world = World(redis_client, policy('[default]\nwindow = "SA"\n'), max_size=2)
    world.at(RIYADH, "2026-12-02T08:00")  # closed: held
    world.accept(SAUDI, template_id=TEMPLATE)
    world.at(RIYADH, "2026-12-02T09:00")
    world.accept("+966501234561", template_id=TEMPLATE)  # pending
    world.accept("+966501234562", template_id=TEMPLATE)
    world.accept("+966501234563", template_id=TEMPLATE)  # cut with the one above
    control = Control(
        redis_client, world.keys, world.buffers.config, world.broker, clock=world.clock
    )
    cancelled = control.cancel(TEMPLATE, note="campaign withdrawn", who="ops@test")
    assert cancelled.contacts == 4
    world.tick()
    assert world.sent == []
    assert read_backlog(redis_client, world.keys).total == 0
    dead = DeadLetters(redis_client, world.keys)
    assert {r["reason"] for r in dead.select()} == {"cancelled"}
    from producers.api import EnqueueResult

    replayed: list[dict[str, object]] = []

    def enqueue(rows: list[dict[str, object]]) -> EnqueueResult:
        replayed.extend(rows)
        return EnqueueResult(accepted=[(i, f"r{i}") for i in range(len(rows))])

    result = dead.replay(list(dead.select(reason="cancelled")), enqueue)
    assert len(result.replayed) == 4 and dead.count() == 0
    assert {row["template_id"] for row in replayed} == {TEMPLATE}


def test_begin_run_twice_sends_once_and_records_one_call(redis_client: redis.Redis) -> None:
    """A begin whose reply was lost and which the client ran again (a Redis restart) answers
    "send" again: its own recorded call does not count against its cap."""
    world = World(redis_client, policy(ANYTIME), max_size=1)  # default caps: 1 a day
    world.at(RIYADH, "2026-12-02T10:00")
    world.accept(SAUDI)
    world.flusher.run_once()
    [batch_id] = tokens(world.broker)
    claim = world.outbox.pick(batch_id, "o")
    caps = world.sender.eligibility.caps(None)  # type: ignore[union-attr]
    first = world.outbox.begin(claim, "o", decided_at=world.clock(), caps=caps)
    again = world.outbox.begin(claim, "o", decided_at=world.clock(), caps=caps)
    assert (first.code, again.code) == ("send", "send")
    assert redis_client.zcard(world.keys.calls(SAUDI)) == 1
    assert world.held() == {}
