"""The metadata size check's shortcut never lets through what serialising would refuse."""

from __future__ import annotations

import json
import random
import string

import pytest

from worker.contacts import MAX_METADATA_BYTES, _metadata, _surely_fits
from worker.errors import ContactError


def test_the_shortcut_only_accepts_what_fits() -> None:
    rng = random.Random(3)
    alphabet = string.printable + '"\\\x00\x1f'
    for _ in range(5_000):
        value = {
            "".join(rng.choices(alphabet, k=rng.randrange(1, 40))): "".join(
                rng.choices(alphabet, k=rng.randrange(0, 900))
            )
            for _ in range(rng.randrange(1, 8))
        }
        size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
        if _surely_fits(value):
            assert size <= MAX_METADATA_BYTES
        try:
            _metadata(value)
        except ContactError:
            assert size > MAX_METADATA_BYTES


@pytest.mark.parametrize("value", [{"a": "\ud800"}, {"a": "é" * 2000}, {"a": 1}, {1: "a"}])
def test_anything_else_takes_the_full_check(value: dict[object, object]) -> None:
    assert not _surely_fits(value)
