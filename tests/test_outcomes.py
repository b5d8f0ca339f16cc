"""Call outcomes on a real redis-server with a fake clock: each event matched to its contact and
batch, duplicates and unmatched events, unknown outcomes settled by their events (whichever
comes first) or resent after the grace period, and what is kept of the payload."""

from __future__ import annotations

import json

import pytest
import redis

from tests.conftest import FakeClock
from tests.outcome_harness import ANSWERED, NAMESPACE, NO_ANSWER, TEMPLATE, Loop
from worker.broker import CONTACTS_QUEUE
from worker.deadletters import DeadLetters
from worker.events import read_event


@pytest.fixture
def loop(redis_client: redis.Redis, clock: FakeClock) -> Loop:
    return Loop(redis_client, clock)


def counter(loop: Loop, name: str, **labels: str) -> float:
    value = loop.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_an_event_is_matched_to_its_contact_and_batch(loop: Loop) -> None:
    claim = loop.claim(size=2)
    loop.sent(claim)
    loop.clock.advance(90)
    event = loop.event(claim, 1, ANSWERED)
    assert loop.handle(event) == "recorded"
    record = loop.runtime.store.contact("m2")
    assert record is not None
    assert record["batchId"] == claim.batch_id and record["batchKey"] == f"{TEMPLATE}:0"
    assert record["outcome"] == {
        "deliveryStatus": "pass",
        "endedReason": "customer-ended-call",
        "duration": 42.5,
        "providerStatus": "completed",
        "providerCallId": "call_1",
    }
    assert record["numberTo"] == "+966501200002"
    # Personal data we have no use for never reaches Redis.
    assert "private" not in json.dumps(record)
    batch = loop.runtime.store.batch(claim.batch_id)
    assert batch is not None
    assert [o["contactId"] for o in batch["outcomes"]] == ["m2"]
    assert batch["record"]["state"] == "sent" and "contacts" not in batch["record"]
    assert (
        counter(loop, "levers_calls_ended_total", delivery_status="pass", call_output="none") == 1
    )
    assert (
        counter(loop, "levers_calls_ended_by_reason_total", ended_reason="customer-ended-call") == 1
    )
    # Appended at the start, the call's end 90 s later: the acceptance-to-end time.
    assert counter(loop, "levers_call_end_seconds_sum") == pytest.approx(90, abs=0.01)


def test_the_same_event_again_is_a_duplicate_and_another_one_is_kept_unmatched(
    loop: Loop,
) -> None:
    claim = loop.claim(size=1)
    loop.sent(claim)
    event = loop.event(claim, 0, ANSWERED, event_id="msg_1")
    assert loop.handle(event) == "recorded"
    assert loop.handle(event) == "duplicate"  # a redelivered actor message
    assert (
        counter(loop, "levers_calls_ended_total", delivery_status="pass", call_output="none") == 1
    )
    second = loop.event(claim, 0, NO_ANSWER, event_id="msg_2")
    assert loop.handle(second) == "second_event"
    # The first outcome stands; the second is visible for an operator.
    record = loop.runtime.store.contact("m1")
    assert record is not None and record["eventId"] == "msg_1"
    assert [u["eventId"] for u in loop.runtime.store.unmatched()] == ["msg_2"]


def test_events_that_match_nothing_are_counted_and_kept(loop: Loop) -> None:
    claim = loop.claim(size=1)
    loop.sent(claim)
    foreign = loop.event(claim, 0, ANSWERED, event_id="msg_foreign")
    foreign["correlation"] = {**foreign["correlation"], "batch_id": "f" * 32}
    no_correlation = read_event(
        b'{"deliveryStatus": "fail", "numberTo": "+966501234567"}', "msg_none", 1.0
    )
    malformed = read_event(b"not json", "msg_bad", 1.0)
    assert loop.handle(foreign) == "unknown_batch"
    assert loop.handle(no_correlation) == "no_correlation"
    assert loop.handle(malformed) == "malformed"
    assert loop.handle(malformed) == "malformed"  # redelivered: kept and counted once
    kept = {u["eventId"]: u["reason"] for u in loop.runtime.store.unmatched()}
    assert kept == {
        "msg_foreign": "unknown_batch",
        "msg_none": "no_correlation",
        "msg_bad": "malformed",
    }
    for reason in ("unknown_batch", "no_correlation", "malformed"):
        assert counter(loop, "levers_outcome_events_unmatched_total", reason=reason) == 1
    # Kept for the retention, then dropped by the housekeeping.
    loop.clock.advance(loop.settings.outcome_retention_seconds + 1)
    loop.runtime.housekeeping(loop.settings)
    assert loop.runtime.store.unmatched() == []


def test_an_unknown_outcome_is_settled_by_its_event(loop: Loop) -> None:
    claim = loop.claim(size=2)
    loop.unknown(claim)
    dead = DeadLetters(loop.client, loop.keys)
    assert sorted(dead.ids()) == [f"{claim.batch_id}:0", f"{claim.batch_id}:1"]
    assert loop.handle(loop.event(claim, 1, ANSWERED)) == "recorded"
    # The contact was called: it leaves the dead letters; its neighbour stays unknown.
    assert dead.ids() == [f"{claim.batch_id}:0"]
    record = loop.runtime.store.contact("m2")
    assert record is not None and record["settled"] is True
    assert record["settledDeadLetter"] == f"{claim.batch_id}:1"
    assert counter(loop, "levers_unknown_outcomes_total", result="settled") == 1


def test_an_event_that_came_before_its_dead_letter_settles_it_on_the_next_pass(
    loop: Loop,
) -> None:
    claim = loop.claim(size=1)
    # Levers called and reported while our request was still waiting for its answer.
    assert loop.handle(loop.event(claim, 0, NO_ANSWER)) == "recorded"
    loop.unknown(claim)
    dead = DeadLetters(loop.client, loop.keys)
    assert dead.ids() == [f"{claim.batch_id}:0"]
    done = loop.runtime.unknowns.run()
    assert done.settled == [f"{claim.batch_id}:0"]
    assert dead.ids() == []
    record = loop.runtime.store.contact("m1")
    assert record is not None and record["settled"] is True


def grace_loop(client: redis.Redis, clock: FakeClock, mode: str) -> Loop:
    return Loop(client, clock, LEVERS_RESEND_UNKNOWN=mode, LEVERS_OUTCOME_GRACE_SECONDS="600")


def test_after_grace_an_unknown_without_an_event_is_resent_once(
    redis_client: redis.Redis, clock: FakeClock
) -> None:
    loop = grace_loop(redis_client, clock, "after_grace")
    claim = loop.claim(size=2)
    loop.unknown(claim)
    assert loop.runtime.unknowns.run().watched == 2
    loop.clock.advance(300)
    assert loop.handle(loop.event(claim, 0, ANSWERED)) == "recorded"  # settles m1
    assert loop.runtime.unknowns.run().resent == []  # m2 is within its grace
    loop.clock.advance(301)
    done = loop.runtime.unknowns.run()
    assert done.resent == [f"{claim.batch_id}:1"]
    [message] = loop.queued(CONTACTS_QUEUE)
    [row] = message.args[0]
    assert row["number"] == "+966501200002"
    assert row["dedupe_key"] == f"replay:{claim.batch_id}:1"
    assert (row["first_name"], row["prompt_tags"]) == ("Customer 2", {"amount": "2"})
    assert DeadLetters(loop.client, loop.keys).ids() == []
    # Nothing is watched any more: a later pass resends nothing again.
    assert loop.runtime.unknowns.run().resent == []
    assert len(loop.queued(CONTACTS_QUEUE)) == 1


def test_after_grace_holds_the_resend_while_no_event_arrives_at_all(
    redis_client: redis.Redis, clock: FakeClock
) -> None:
    loop = grace_loop(redis_client, clock, "after_grace")
    claim = loop.claim(size=1)
    loop.unknown(claim)
    loop.runtime.unknowns.run()
    loop.clock.advance(601)
    # No event was recorded within the grace period: the webhook path may be down.
    done = loop.runtime.unknowns.run()
    assert done.held == [f"{claim.batch_id}:0"] and done.resent == []
    assert loop.queued(CONTACTS_QUEUE) == []
    assert DeadLetters(loop.client, loop.keys).ids() == [f"{claim.batch_id}:0"]


@pytest.mark.parametrize("mode", ["false", "true"])
def test_without_after_grace_unknowns_stay_for_an_operator(
    redis_client: redis.Redis, clock: FakeClock, mode: str
) -> None:
    loop = grace_loop(redis_client, clock, mode)
    claim = loop.claim(size=1)
    loop.unknown(claim)
    loop.runtime.unknowns.run()
    loop.clock.advance(601)
    assert loop.runtime.unknowns.run().dropped == [f"{claim.batch_id}:0"]
    assert loop.queued(CONTACTS_QUEUE) == []
    # A late event still settles it.
    assert loop.handle(loop.event(claim, 0, ANSWERED)) == "recorded"
    assert DeadLetters(loop.client, loop.keys).ids() == []


def test_metric_labels_are_bounded_across_processes(
    redis_client: redis.Redis, clock: FakeClock
) -> None:
    loop = Loop(redis_client, clock, LEVERS_METRICS_MAX_OUTCOME_LABELS="2")
    claim = loop.claim(size=4)
    loop.sent(claim)
    for index, output in enumerate(["interested", "callback", "not interested", {"a": 1}]):
        loop.handle(loop.event(claim, index, {**ANSWERED, "callOutput": output}))
    labels = {
        s.labels["call_output"]
        for s in loop.metrics.calls_ended.collect()[0].samples
        if s.name.endswith("_total") and s.value
    }
    assert labels == {"interested", "callback", "other", "structured"}
    # Another process (a fresh registry) folds the same way: the admitted words are in Redis.
    other = Loop(redis_client, clock, LEVERS_METRICS_MAX_OUTCOME_LABELS="2")
    assert other.keys.namespace == NAMESPACE
    assert redis_client.smembers(other.keys.outcome_labels("call_output")) == {
        b"interested",
        b"callback",
    }


def test_a_dead_lettered_batch_larger_than_a_page_is_watched_whole(
    redis_client: redis.Redis, clock: FakeClock
) -> None:
    loop = grace_loop(redis_client, clock, "after_grace")
    claim = loop.claim(size=25)
    loop.unknown(claim)  # 25 dead letters written at one and the same time
    assert loop.runtime.unknowns._watch_new(limit=10) == 25
    assert loop.runtime.unknowns._watch_new(limit=10) == 0  # read again: nothing new
    assert redis_client.zcard(loop.keys.unknown_watch) == 25
