"""Decisions for real numbers under the presets, written in the recipient's local time.

No Redis: a decision is a pure function of (number's zones, template, instant). Each table
row reads "at this local time, this number is open until / held until that local time".
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import phonenumbers
import pytest

from worker.policy import calendars
from worker.policy.decision import Closed, Expired, Open
from worker.policy.policy import CallingPolicy, Rule
from worker.policy.presets import PRESETS
from worker.policy.schedule import window_from_table
from worker.policy.windows import ALWAYS, Window
from worker.policy.zones import recipient_for

RIYADH = "Asia/Riyadh"
SAUDI = "+966501234567"
NEW_YORK = "+12125551234"  # Manhattan: America/New_York
IDAHO = "+12085551234"  # area code 208: Boise (Mountain) and the north (Pacific)
TOLL_FREE = "+18002345678"
INMARSAT = "+870772111111"  # valid, but phonenumbers knows no zone for it
FRANCE = "+33612345678"

BY_COUNTRY = CallingPolicy()


def local(zone: str, text: str, fold: int = 0) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone), fold=fold).timestamp()


def custom(**table: object) -> Window:
    built = window_from_table(table, "custom", "test")
    assert isinstance(built, Window), built
    return built


def expect(zone: str, state: str, until: str) -> Open | Closed:
    """Open until / held (window_closed) until a local time in `zone`."""
    moment = local(zone, until)
    return Open(moment) if state == "open" else Closed("window_closed", moment)


# -- Saudi Arabia ------------------------------------------------------------------------

SAUDI_CASES = [
    # An ordinary week (April 2026): Sunday-Thursday 09:00-21:00, Friday and Saturday closed.
    ("Sun 08:00, the window opens at 09:00", "2026-04-05T08:00", "closed", "2026-04-05T09:00"),
    ("Sun 09:00, open", "2026-04-05T09:00", "open", "2026-04-05T21:00"),
    ("Thu 21:00, weekend next", "2026-04-09T21:00", "closed", "2026-04-12T09:00"),
    ("Fri noon", "2026-04-10T12:00", "closed", "2026-04-12T09:00"),
    # Ramadan 1447 (18 February - 19 March 2026): 12:00-21:00.
    ("Ramadan Wed 10:00", "2026-02-25T10:00", "closed", "2026-02-25T12:00"),
    ("Ramadan Wed 20:59", "2026-02-25T20:59", "open", "2026-02-25T21:00"),
    # Founding Day, Sunday 22 February 2026, in Ramadan: closed, then Monday at noon.
    ("Founding Day 13:00", "2026-02-22T13:00", "closed", "2026-02-23T12:00"),
    # Eid al-Fitr holidays 19-24 March 2026 and the weekend between: Wednesday 25th, 09:00.
    ("last Ramadan evening", "2026-03-18T21:30", "closed", "2026-03-25T09:00"),
    # National Day, Wednesday 23 September 2026.
    ("National Day 2026", "2026-09-23T10:00", "closed", "2026-09-24T09:00"),
    # 2027: Ramadan 1448 is 8 February - 8 March; Eid holidays 9-12 and 14 March.
    ("Ramadan 2027 Tue 11:00", "2027-02-16T11:00", "closed", "2027-02-16T12:00"),
    ("Founding Day 2027 (Mon)", "2027-02-22T12:30", "closed", "2027-02-23T12:00"),
    ("Eid 2027", "2027-03-08T21:00", "closed", "2027-03-15T09:00"),
    ("National Day 2027 (Thu)", "2027-09-23T09:30", "closed", "2027-09-26T09:00"),
]


@pytest.mark.parametrize(("case", "now", "state", "until"), SAUDI_CASES, ids=lambda v: str(v))
def test_saudi_preset(case: str, now: str, state: str, until: str) -> None:
    decision = BY_COUNTRY.decide(SAUDI, None, local(RIYADH, now))
    assert decision == expect(RIYADH, state, until), case


def test_the_calendars_behind_the_saudi_cases() -> None:
    """What hijridate and holidays say for 2026 and 2027, which the cases above rely on."""
    ramadan_2026 = [date(2026, 2, 18) + timedelta(days=i) for i in range(30)]
    assert all(calendars.is_ramadan(d) for d in ramadan_2026)
    assert not calendars.is_ramadan(date(2026, 2, 17))
    assert not calendars.is_ramadan(date(2026, 3, 20))  # 1 Shawwal 1447
    assert calendars.is_ramadan(date(2027, 2, 8)) and calendars.is_ramadan(date(2027, 3, 8))
    assert not calendars.is_ramadan(date(2027, 3, 9))
    holidays = {
        date(2026, 2, 22): "Founding Day",
        date(2026, 3, 19): "Eid al-Fitr",
        date(2026, 3, 24): "Eid al-Fitr",
        date(2026, 5, 26): "Arafah",
        date(2026, 5, 27): "Eid al-Adha",
        date(2026, 9, 23): "National Day",
        date(2027, 2, 22): "Founding Day",
        date(2027, 3, 14): "Eid al-Fitr",
        date(2027, 9, 23): "National Day",
    }
    for day, name in holidays.items():
        assert name in (calendars.holiday_name("SA", day) or ""), day
    assert calendars.holiday_name("SA", date(2026, 3, 25)) is None


# -- United States: DST at the preset's edges, the hard bound, several zones -------------

NY = "America/New_York"
US_CASES = [
    ("spring forward: the evening before", "2026-03-07T20:30", "closed", "2026-03-08T09:00"),
    ("spring forward: 08:59 EDT", "2026-03-08T08:59", "closed", "2026-03-08T09:00"),
    ("spring forward: 19:59 EDT", "2026-03-08T19:59", "open", "2026-03-08T20:00"),
    ("fall back: 08:30 EST", "2026-11-01T08:30", "closed", "2026-11-01T09:00"),
    ("fall back: 09:00 EST", "2026-11-01T09:00", "open", "2026-11-01T20:00"),
    ("fall back: the evening before", "2026-10-31T20:00", "closed", "2026-11-01T09:00"),
]


@pytest.mark.parametrize(("case", "now", "state", "until"), US_CASES, ids=lambda v: str(v))
def test_us_preset_across_daylight_saving(case: str, now: str, state: str, until: str) -> None:
    assert BY_COUNTRY.decide(NEW_YORK, None, local(NY, now)) == expect(NY, state, until), case


def test_us_bound_holds_whatever_the_template_says() -> None:
    late = custom(days=["mon-sun"], hours=["07:00-22:30"])
    policy = CallingPolicy(templates={"default": Rule(late), "t": Rule(ALWAYS)})
    at = local(NY, "2026-06-10T07:30")
    assert policy.decide(NEW_YORK, None, at) == expect(NY, "closed", "2026-06-10T08:00")
    assert policy.decide(NEW_YORK, None, local(NY, "2026-06-10T20:30")) == expect(
        NY, "open", "2026-06-10T21:00"
    )
    # `always` is bound too, but a Saudi number under `always` is open at 03:00.
    assert policy.decide(NEW_YORK, "t", at) == expect(NY, "closed", "2026-06-10T08:00")
    assert policy.decide(SAUDI, "t", local(RIYADH, "2026-06-10T03:00")) == Open(None)
    # A window wholly outside 08:00-21:00 never opens for a US number.
    night = CallingPolicy(default=Rule(custom(days=["mon-sun"], hours=["22:00-06:00"])))
    assert night.decide(NEW_YORK, None, at) == Closed("window_closed", None)


def test_several_zones_of_one_area_code() -> None:
    zones = recipient_for(IDAHO).zones
    assert zones == ("America/Boise", "America/Los_Angeles")
    boise, pacific = zones
    # 09:30 in Boise is 08:30 in the Pacific part: held until 09:00 there (10:00 in Boise).
    assert BY_COUNTRY.decide(IDAHO, None, local(boise, "2026-06-10T09:30")) == expect(
        pacific, "closed", "2026-06-10T09:00"
    )
    # Open until 20:00 in Boise, which is 19:00 in the Pacific part.
    assert BY_COUNTRY.decide(IDAHO, None, local(pacific, "2026-06-10T12:00")) == expect(
        boise, "open", "2026-06-10T20:00"
    )
    assert BY_COUNTRY.decide(IDAHO, None, local(pacific, "2026-06-10T19:30")) == expect(
        pacific, "closed", "2026-06-11T09:00"
    )


def in_window_everywhere(instant: float, zones: tuple[str, ...]) -> bool:
    for name in zones:
        clock = datetime.fromtimestamp(instant, ZoneInfo(name))
        if not 9 * 60 <= clock.hour * 60 + clock.minute < 20 * 60:
            return False
    return True


def test_a_toll_free_number_opens_only_when_every_one_of_its_zones_is_in_hours() -> None:
    parsed = phonenumbers.parse(TOLL_FREE)
    assert phonenumbers.number_type(parsed) == phonenumbers.PhoneNumberType.TOLL_FREE
    zones = recipient_for(TOLL_FREE).zones
    assert len(zones) == 42 and "Pacific/Guam" in zones and "America/St_Johns" in zones
    at = datetime.fromisoformat("2026-01-15T12:00:00+00:00").timestamp()
    held = BY_COUNTRY.decide(TOLL_FREE, None, at)
    assert isinstance(held, Closed) and held.until is not None
    # The release time is the first second inside 09:00-20:00 in all 42 zones at once.
    assert in_window_everywhere(held.until, zones)
    assert not in_window_everywhere(held.until - 1, zones)
    opened = BY_COUNTRY.decide(TOLL_FREE, None, held.until)
    assert isinstance(opened, Open) and opened.until is not None
    assert in_window_everywhere(opened.until - 1, zones)
    assert not in_window_everywhere(opened.until, zones)
    # In winter, 09:00 in Guam (UTC+10) to 20:00 in St John's (UTC-3:30): half an hour a day.
    assert opened.until - held.until == 1800
    # In summer St John's is an hour further from Guam and the windows never overlap: held
    # with no release time rather than called outside someone's hours.
    summer = datetime.fromisoformat("2026-07-15T12:00:00+00:00").timestamp()
    assert BY_COUNTRY.decide(TOLL_FREE, None, summer) == Closed("window_closed", None)


# -- Where the zone comes from ----------------------------------------------------------


def test_a_producer_given_zone_replaces_the_numbers() -> None:
    london = "Europe/London"
    at = local(london, "2026-04-06T08:30")  # Monday; 10:30 in Riyadh
    assert BY_COUNTRY.decide(SAUDI, None, at) == expect(RIYADH, "open", "2026-04-06T21:00")
    given = BY_COUNTRY.decide(SAUDI, None, at, time_zone=london)
    assert given == expect(london, "closed", "2026-04-06T09:00")


def test_a_templates_zone_replaces_the_numbers_but_not_a_producers() -> None:
    dubai, london = "Asia/Dubai", "Europe/London"
    policy = CallingPolicy(templates={"default": Rule(PRESETS["SA"], time_zone=dubai)})
    at = local(RIYADH, "2026-04-06T20:30")  # 21:30 in Dubai
    assert policy.decide(SAUDI, None, at) == expect(dubai, "closed", "2026-04-07T09:00")
    assert policy.decide(SAUDI, None, at, time_zone=london) == expect(
        london, "open", "2026-04-06T21:00"
    )


def test_an_unknown_zone_is_held_never_guessed() -> None:
    assert recipient_for(INMARSAT).zones == ()
    at = local("UTC", "2026-04-06T12:00")
    saudi_hours = CallingPolicy(default=Rule(PRESETS["SA"]))
    assert saudi_hours.decide(INMARSAT, None, at) == Closed("unknown_time_zone", None)
    # A producer's zone this machine cannot read is not replaced by the number's.
    assert BY_COUNTRY.decide(SAUDI, None, at, time_zone="Mars/Olympus") == Closed(
        "unknown_time_zone", None
    )
    # With no window at all the zone does not matter.
    anytime = CallingPolicy(default=Rule(ALWAYS))
    assert anytime.decide(INMARSAT, None, at) == Open(None)


def test_by_country_holds_a_country_without_a_window_until_the_policy_names_one() -> None:
    at = local("Europe/Paris", "2026-04-07T11:00")
    assert BY_COUNTRY.decide(FRANCE, None, at) == Closed("no_window_for_country", None)
    assert BY_COUNTRY.decide("+14165551234", None, at) == Closed("no_window_for_country", None)
    assert BY_COUNTRY.decide(INMARSAT, None, at) == Closed("no_window_for_country", None)
    french = custom(days=["mon-fri"], hours=["10:00-13:00", "14:00-20:00"])
    policy = CallingPolicy(countries={"FR": french})
    assert policy.decide(FRANCE, None, at) == expect("Europe/Paris", "open", "2026-04-07T13:00")


# -- not_before and expire_at -----------------------------------------------------------

NOT_BEFORE_CASES = [
    # (now, not_before, expire_at) -> (state, reason, until or expire_at): Riyadh, 2026
    (("04-05T10:00", "04-05T15:00", None), ("closed", "not_before", "04-05T15:00")),
    # not_before falls in a closed window (Thursday night): wait for both.
    (("04-05T10:00", "04-09T22:00", None), ("closed", "not_before", "04-12T09:00")),
    (("04-05T10:00", "04-05T09:00", None), ("open", None, "04-05T21:00")),
    # Open until expire_at when it comes before the window closes.
    (("04-05T10:00", None, "04-05T15:00"), ("open", None, "04-05T15:00")),
    (("04-05T15:00", None, "04-05T15:00"), ("expired", None, "04-05T15:00")),
    # It cannot be called before expire_at: expired now, naming what would have held it.
    (("04-09T22:00", None, "04-11T23:00"), ("expired", "window_closed", "04-11T23:00")),
    (("04-05T10:00", "04-06T10:00", "04-06T09:00"), ("expired", "not_before", "04-06T09:00")),
    (("04-09T22:00", None, "04-12T09:00"), ("expired", "window_closed", "04-12T09:00")),
    (("04-09T22:00", None, "04-12T09:01"), ("closed", "window_closed", "04-12T09:00")),
]  # fmt: skip


@pytest.mark.parametrize(("times", "expected"), NOT_BEFORE_CASES)
def test_not_before_and_expire_at(
    times: tuple[str, str | None, str | None], expected: tuple[str, str | None, str]
) -> None:
    def at(text: str | None) -> float | None:
        return None if text is None else local(RIYADH, f"2026-{text}")

    now, not_before, expire_at = times
    state, reason, when = expected
    decision = BY_COUNTRY.decide(
        SAUDI,
        None,
        local(RIYADH, f"2026-{now}"),
        not_before=at(not_before),
        expire_at=at(expire_at),
    )
    if state == "open":
        assert decision == Open(at(when))
    elif state == "closed":
        assert decision == Closed(reason, at(when))
    else:
        assert decision == Expired(local(RIYADH, f"2026-{when}"), reason)


def test_a_hold_without_end_still_expires() -> None:
    at = local("UTC", "2026-04-06T12:00")
    later = at + 3600
    assert BY_COUNTRY.decide(FRANCE, None, at, expire_at=later) == Closed(
        "no_window_for_country", None
    )
    assert BY_COUNTRY.decide(FRANCE, None, later, expire_at=later) == Expired(later)
