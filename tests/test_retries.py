"""Policy retries and outcomes to producers, on a real redis-server with a fake clock: a retry is
a new contact message with its not_before and dedupe key, scheduled once however often the
event comes, chained up to the rule's last delay; the producer's actor gets one message."""

from __future__ import annotations

import pytest
import redis

from tests.conftest import FakeClock
from tests.outcome_harness import ANSWERED, NO_ANSWER, TEMPLATE, Loop, retry_policy
from worker.broker import CONTACTS_QUEUE
from worker.contacts import validate_contact
from worker.notify import message_id_for


@pytest.fixture
def loop(redis_client: redis.Redis, clock: FakeClock) -> Loop:
    return Loop(redis_client, clock, retry_policy("30m", "1h"))


def counter(loop: Loop, name: str, **labels: str) -> float:
    value = loop.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_an_unanswered_call_schedules_a_retry_with_its_not_before_and_dedupe_key(
    loop: Loop,
) -> None:
    claim = loop.claim(size=2)
    loop.sent(claim)
    loop.clock.advance(120)
    assert loop.handle(loop.event(claim, 0, NO_ANSWER)) == "recorded"
    assert loop.handle(loop.event(claim, 1, ANSWERED)) == "recorded"  # answered: no retry
    [message] = loop.queued(CONTACTS_QUEUE)
    [row] = message.args[0]
    assert row["dedupe_key"] == "retry:m1:1"
    assert row["not_before"] == pytest.approx(loop.clock() + 1800)
    # The contact as it was sent: same number, template, names, tags and the producer's own
    # metadata (our correlation is added again when the retry is sent).
    assert row["number"] == "+966501200001"
    assert row["template_id"] == TEMPLATE and not row.get("update_existing")
    assert (row["first_name"], row["prompt_tags"], row["metadata"]) == (
        "Customer 1",
        {"amount": "1"},
        {"crm_id": "1"},
    )
    validate_contact(row)  # what the aggregator will accept
    record = loop.runtime.store.contact("m1")
    assert record is not None
    assert record["retry"] == {
        "number": 1,
        "contactId": f"{message.message_id}:0",
        "notBefore": pytest.approx(loop.clock() + 1800),
        "dedupeKey": "retry:m1:1",
    }
    assert counter(loop, "levers_retries_total", result="scheduled") == 1


def test_a_redelivered_or_repeated_event_schedules_nothing_again(loop: Loop) -> None:
    claim = loop.claim(size=1)
    loop.sent(claim)
    event = loop.event(claim, 0, NO_ANSWER)
    loop.handle(event)
    loop.handle(event)  # the outcome message redelivered
    loop.handle(loop.event(claim, 0, NO_ANSWER))  # a second event for the same call
    assert len(loop.queued(CONTACTS_QUEUE)) == 1
    assert counter(loop, "levers_retries_total", result="scheduled") == 1


def test_retries_chain_until_the_rule_runs_out(loop: Loop) -> None:
    claim = loop.claim(size=1)
    loop.sent(claim)
    loop.handle(loop.event(claim, 0, NO_ANSWER))
    [first] = loop.queued(CONTACTS_QUEUE)
    retry_id = f"{first.message_id}:0"
    assert loop.runtime.handler.retries.lineage(retry_id) == ("m1", 1)
    # The retry is appended and sent like any contact; its call goes unanswered too.
    retry = loop.retry_claim(first)
    assert retry.contacts[0][0] == retry_id
    loop.sent(retry)
    loop.handle(loop.event(retry, 0, NO_ANSWER))
    second = loop.queued(CONTACTS_QUEUE)[-1]
    [row] = second.args[0]
    assert row["dedupe_key"] == "retry:m1:2"
    assert row["not_before"] == pytest.approx(loop.clock() + 3600)
    # The second retry fails as well: the rule has no third delay.
    last = loop.retry_claim(second)
    loop.sent(last)
    loop.handle(loop.event(last, 0, NO_ANSWER))
    assert len(loop.queued(CONTACTS_QUEUE)) == 2
    assert counter(loop, "levers_retries_total", result="exhausted") == 1


def test_a_retry_without_the_contact_as_sent_is_counted_not_made(loop: Loop) -> None:
    claim = loop.claim(size=1)
    loop.sent(claim)
    loop.client.delete(loop.keys.sent_contact("m1"))  # past its retention
    loop.handle(loop.event(claim, 0, NO_ANSWER))
    assert loop.queued(CONTACTS_QUEUE) == []
    assert counter(loop, "levers_retries_total", result="no_contact") == 1


def test_templates_without_retry_rules_keep_no_copy_and_retry_nothing(loop: Loop) -> None:
    claim = loop.claim(template=None, size=1)
    assert loop.client.get(loop.keys.sent_contact(claim.contacts[0][0])) is None
    loop.sent(claim)
    loop.handle(loop.event(claim, 0, NO_ANSWER))
    assert loop.queued(CONTACTS_QUEUE) == []


def test_the_producers_actor_gets_one_message_per_outcome(loop: Loop) -> None:
    claim = loop.claim(size=1)
    loop.sent(claim)
    event = loop.event(claim, 0, NO_ANSWER)
    loop.handle(event)
    loop.handle(event)
    [message] = loop.queued("crm")
    assert message.actor_name == "crm_outcome"
    assert message.message_id == message_id_for(loop.keys.namespace, "m1")
    payload = message.args[0]
    assert payload["contactId"] == "m1" and payload["batchId"] == claim.batch_id
    assert payload["aiSettingsTemplateId"] == TEMPLATE
    assert payload["metadata"] == {"crm_id": "1"}  # the producer's own, ours left out
    assert payload["outcome"]["deliveryStatus"] == "fail"
    assert payload["retry"]["dedupeKey"] == "retry:m1:1"
    assert payload["retry"]["notBefore"] == pytest.approx(loop.clock() + 1800)
    assert payload["retryOf"] is None
