"""The cron dialect: fields, names, macros, the seconds field, Vixie's day rule, and daylight saving."""

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from foreseer.scheduling.cron import CronError, CronSchedule, parse_cron

UTC = timezone.utc
PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def upcoming(expression, tz, after, count):
    return CronSchedule(expression, tz).upcoming(after, count)


def walls(moments, tz):
    return [m.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M:%S %Z") for m in moments]


# ----------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("text", "field", "values"),
    [
        ("* * * * *", "minutes", tuple(range(60))),
        ("5,10-12,*/20 * * * *", "minutes", (0, 5, 10, 11, 12, 20, 40)),
        ("10-30/10 * * * *", "minutes", (10, 20, 30)),
        ("50/5 * * * *", "minutes", (50, 55)),
        ("0 */6 * * *", "hours", (0, 6, 12, 18)),
        ("0 0 1,15,31 * *", "days", (1, 15, 31)),
        ("0 0 1 jan,Jun-AUG *", "months", (1, 6, 7, 8)),
        ("0 0 1 */4 *", "months", (1, 5, 9)),
        ("*/15 * * * * *", "seconds", (0, 15, 30, 45)),
        ("0 0 * * *", "seconds", (0,)),
    ],
)
def test_fields_parse_to_their_values(text, field, values):
    assert getattr(parse_cron(text), field) == values


@pytest.mark.parametrize(
    ("text", "weekdays"),
    [
        ("0 0 * * MON-FRI", {1, 2, 3, 4, 5}),
        ("0 0 * * sun,sat", {0, 6}),
        ("0 0 * * 7", {0}),
        ("0 0 * * 5-7", {5, 6, 0}),
        ("0 0 * * */2", {0, 2, 4, 6}),
        ("0 0 ? * 1", {1}),
    ],
)
def test_day_of_week_names_and_sunday_as_seven(text, weekdays):
    assert parse_cron(text).weekdays == frozenset(weekdays)


@pytest.mark.parametrize(
    ("macro", "same_as"),
    [
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@monthly", "0 0 1 * *"),
        ("@weekly", "0 0 * * 0"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@hourly", "0 * * * *"),
        ("@DAILY", "0 0 * * *"),
    ],
)
def test_macros(macro, same_as):
    after = utc(2026, 5, 17, 13, 37)
    assert upcoming(macro, "UTC", after, 5) == upcoming(same_as, "UTC", after, 5)


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("61 * * * *", ["minute field '61'", "out of range 0-59", "accepted: *, 0-59"]),
        ("0 24 * * *", ["hour field '24'", "out of range 0-23"]),
        ("0 0 0 * *", ["day-of-month field '0'", "out of range 1-31"]),
        ("0 0 1 13 *", ["month field '13'", "out of range 1-12", "names JAN-DEC"]),
        ("0 0 * * 8", ["day-of-week field '8'", "out of range 0-7", "names SUN-SAT"]),
        ("0 0 * JANUARY *", ["month field 'JANUARY'", "not a number or a name"]),
        ("0 0 * * FUN", ["day-of-week field 'FUN'", "not a number or a name"]),
        ("*/0 * * * *", ["minute field '*/0'", "step '0' must be a whole number of at least 1"]),
        ("*/x * * * *", ["minute field '*/x'", "step 'x'"]),
        ("30-10 * * * *", ["minute field '30-10'", "runs backwards"]),
        ("0 0 * * FRI-MON", ["day-of-week field 'FRI-MON'", "runs backwards"]),
        ("1,,2 * * * *", ["minute field '1,,2'", "empty list item"]),
        ("? * * * *", ["minute field '?'", "only accepted in the day-of-month and day-of-week"]),
        ("60 * * * * *", ["second field '60'", "out of range 0-59"]),
        ("* * *", ["has 3 fields", "expected 5", "6 with a leading second"]),
        ("* * * * * * *", ["has 7 fields"]),
        ("", ["empty"]),
        ("@reboot", ["unknown cron macro '@reboot'", "@daily"]),
        ("0 0 30 2 *", ["never fires", "day-of-month 30 does not occur in Feb"]),
        ("0 0 31 4,6 *", ["never fires", "Apr,Jun"]),
    ],
)
def test_errors_name_the_field_the_value_and_what_is_accepted(text, names):
    with pytest.raises(CronError) as raised:
        parse_cron(text)
    for part in names:
        assert part in str(raised.value)


@pytest.mark.parametrize("name", ["Europe/Pari", "Mars/Olympus", "", " UTC", "../etc/passwd"])
def test_unknown_time_zone(name):
    with pytest.raises(CronError, match="unknown time zone .* IANA name"):
        CronSchedule("0 3 * * *", name)


def test_naive_datetime_is_refused():
    with pytest.raises(ValueError, match="aware datetime"):
        CronSchedule("0 3 * * *").next_after(datetime(2026, 1, 1))


# ----------------------------------------------------------------------------- next occurrence


def test_simple_schedules_in_utc():
    assert upcoming("0 3 * * *", "UTC", utc(2026, 1, 1, 3, 0), 2) == [utc(2026, 1, 2, 3), utc(2026, 1, 3, 3)]
    assert upcoming("*/15 * * * *", "UTC", utc(2026, 1, 1, 23, 50), 3) == [
        utc(2026, 1, 2, 0, 0),
        utc(2026, 1, 2, 0, 15),
        utc(2026, 1, 2, 0, 30),
    ]
    assert upcoming("0 0 1 * *", "UTC", utc(2026, 12, 15), 2) == [utc(2027, 1, 1), utc(2027, 2, 1)]
    assert upcoming("0 0 29 2 *", "UTC", utc(2026, 1, 1), 2) == [utc(2028, 2, 29), utc(2032, 2, 29)]
    assert upcoming("0 12 31 * *", "UTC", utc(2026, 1, 31, 12), 2) == [
        utc(2026, 3, 31, 12),
        utc(2026, 5, 31, 12),
    ]


def test_strictly_after_and_sub_second_inputs():
    schedule = CronSchedule("*/10 * * * * *")
    assert schedule.next_after(utc(2026, 1, 1, 0, 0, 10)) == utc(2026, 1, 1, 0, 0, 20)
    assert schedule.next_after(utc(2026, 1, 1, 0, 0, 9, 999_999)) == utc(2026, 1, 1, 0, 0, 10)
    assert schedule.next_after(utc(2026, 1, 1, 0, 0, 10, 1)) == utc(2026, 1, 1, 0, 0, 20)


def test_seconds_field_fires_every_few_seconds():
    moments = upcoming("*/2 * * * * *", "UTC", utc(2026, 1, 1, 23, 59, 57), 4)
    assert moments == [
        utc(2026, 1, 1, 23, 59, 58),
        utc(2026, 1, 2),
        utc(2026, 1, 2, 0, 0, 2),
        utc(2026, 1, 2, 0, 0, 4),
    ]
    assert upcoming("30 0 9 * * MON", "UTC", utc(2026, 3, 2, 9, 0, 30), 1) == [utc(2026, 3, 9, 9, 0, 30)]


def test_weekdays_only():
    # 2026-03-06 is a Friday
    moments = upcoming("0 9 * * MON-FRI", "UTC", utc(2026, 3, 6, 9), 2)
    assert [m.strftime("%a %d") for m in moments] == ["Mon 09", "Tue 10"]


def test_vixie_day_rule_or_when_both_days_are_restricted():
    # the 13th of any month OR any Friday (Vixie cron): March 2026 has Friday the 6th, 13th, 20th, 27th
    moments = upcoming("0 0 13 * FRI", "UTC", utc(2026, 2, 28), 6)
    assert [m.day for m in moments] == [6, 13, 20, 27, 3, 10]  # April 3 and 10 are Fridays; April 13 follows
    assert upcoming("0 0 13 * FRI", "UTC", utc(2026, 4, 10), 1) == [utc(2026, 4, 13)]


def test_vixie_day_rule_and_when_a_day_field_starts_with_a_star():
    # "*/2" in day-of-month counts as unrestricted for the rule: odd days that are also Mondays
    moments = upcoming("0 0 */2 * MON", "UTC", utc(2026, 3, 1), 3)
    assert [(m.day, m.strftime("%a")) for m in moments] == [(9, "Mon"), (23, "Mon"), (13, "Mon")]
    assert [m.month for m in moments] == [3, 3, 4]
    # one day field a plain star: the other one alone decides
    assert [m.day for m in upcoming("0 0 * * FRI", "UTC", utc(2026, 3, 1), 2)] == [6, 13]
    assert [m.day for m in upcoming("0 0 13 * *", "UTC", utc(2026, 3, 1), 2)] == [13, 13]


def test_time_zone_is_applied_and_the_result_is_in_it():
    moment = CronSchedule("0 3 * * *", "Europe/Paris").next_after(utc(2026, 1, 10, 12))
    assert moment == utc(2026, 1, 11, 2)  # 03:00 CET is 02:00 UTC
    assert moment.tzinfo == UTC  # instants come back in UTC; local() shows them in the zone
    assert CronSchedule("0 3 * * *", "Europe/Paris").local(moment).isoformat() == "2026-01-11T03:00:00+01:00"
    assert CronSchedule("0 3 * * *", "Europe/Paris").next_after(utc(2026, 7, 10, 12)) == utc(
        2026, 7, 11, 1
    )  # CEST


# ----------------------------------------------------------------------------- daylight saving


def test_paris_spring_forward_skips_the_nonexistent_time():
    # 2026-03-29: 02:00 CET jumps to 03:00 CEST, so 02:30 does not exist that night
    daily = upcoming("30 2 * * *", "Europe/Paris", utc(2026, 3, 27, 12), 3)
    assert walls(daily, "Europe/Paris") == [
        "2026-03-28 02:30:00 CET",
        "2026-03-30 02:30:00 CEST",
        "2026-03-31 02:30:00 CEST",
    ]
    half_hourly = upcoming("*/30 * * * *", "Europe/Paris", utc(2026, 3, 29, 0, 0), 3)
    assert walls(half_hourly, "Europe/Paris") == [
        "2026-03-29 01:30:00 CET",
        "2026-03-29 03:00:00 CEST",
        "2026-03-29 03:30:00 CEST",
    ]
    assert half_hourly[1] - half_hourly[0] == timedelta(minutes=30)  # in real time


def test_paris_fall_back_fires_an_ambiguous_time_once():
    # 2026-10-25: 03:00 CEST goes back to 02:00 CET, so 02:00-02:59 happens twice
    daily = upcoming("30 2 * * *", "Europe/Paris", utc(2026, 10, 24, 12), 2)
    assert walls(daily, "Europe/Paris") == ["2026-10-25 02:30:00 CEST", "2026-10-26 02:30:00 CET"]
    assert daily[0] == utc(2026, 10, 25, 0, 30)  # the first of the two 02:30s
    # asked from inside the repeated hour (02:10 CET, the second pass), 02:30 is not fired again
    second_pass = datetime(2026, 10, 25, 2, 10, tzinfo=PARIS, fold=1)
    assert CronSchedule("30 2 * * *", "Europe/Paris").next_after(second_pass) == daily[1]
    hourly = upcoming("0 * * * *", "Europe/Paris", utc(2026, 10, 24, 22, 30), 4)
    assert walls(hourly, "Europe/Paris") == [
        "2026-10-25 01:00:00 CEST",
        "2026-10-25 02:00:00 CEST",
        "2026-10-25 03:00:00 CET",
        "2026-10-25 04:00:00 CET",
    ]


def test_new_york_spring_forward_and_fall_back():
    # 2026-03-08: 02:00 EST jumps to 03:00 EDT
    assert walls(upcoming("0 2 * * *", "America/New_York", utc(2026, 3, 7, 12), 2), "America/New_York") == [
        "2026-03-09 02:00:00 EDT",
        "2026-03-10 02:00:00 EDT",
    ]
    assert walls(upcoming("15 2 * * *", "America/New_York", utc(2026, 3, 6, 12), 2), "America/New_York") == [
        "2026-03-07 02:15:00 EST",
        "2026-03-09 02:15:00 EDT",
    ]
    # 2026-11-01: 02:00 EDT goes back to 01:00 EST, so 01:30 happens twice and fires once
    once = upcoming("30 1 * * *", "America/New_York", utc(2026, 10, 31, 12), 2)
    assert once == [utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)]
    assert walls(once, "America/New_York") == ["2026-11-01 01:30:00 EDT", "2026-11-02 01:30:00 EST"]
    moments = upcoming("*/20 * * * *", "America/New_York", utc(2026, 11, 1, 5, 0), 5)
    assert walls(moments, "America/New_York") == [
        "2026-11-01 01:20:00 EDT",
        "2026-11-01 01:40:00 EDT",
        "2026-11-01 02:00:00 EST",
        "2026-11-01 02:20:00 EST",
        "2026-11-01 02:40:00 EST",
    ]


def _reference(expression, tz, start, minutes):
    """Brute force: every UTC minute whose local wall time matches, counting a wall time that
    happens twice only on its first pass (fold 0); skipped wall times never appear in UTC."""
    parsed, zone, out = parse_cron(expression), ZoneInfo(tz), []
    for i in range(minutes):
        instant = start + timedelta(minutes=i)
        wall = instant.astimezone(zone)
        if (
            wall.fold == 0
            and wall.minute in parsed.minutes
            and wall.hour in parsed.hours
            and wall.month in parsed.months
            and parsed.day_matches(wall.date())
        ):
            out.append(instant)
    return out


@pytest.mark.parametrize("tz", ["Europe/Paris", "America/New_York", "UTC"])
@pytest.mark.parametrize(
    "expression", ["*/7 * * * *", "0,30 1-3 * * *", "45 2 * * SUN", "*/20 0-4 25,8 3,10,11 *"]
)
@pytest.mark.parametrize("start", [utc(2026, 3, 7), utc(2026, 3, 28), utc(2026, 10, 24), utc(2026, 10, 31)])
def test_matches_a_brute_force_reference_across_daylight_saving(tz, expression, start):
    minutes = 3 * 24 * 60
    expected = _reference(expression, tz, start, minutes)
    got, after = [], start - timedelta(seconds=1)
    while True:
        after = CronSchedule(expression, tz).next_after(after)
        if after >= start + timedelta(minutes=minutes):
            break
        got.append(after)
    assert got == expected


def test_latest_at_or_before():
    schedule = CronSchedule("*/5 * * * * *")
    now = utc(2026, 1, 1, 12, 0, 7, 500_000)
    assert schedule.latest_at_or_before(now, utc(2026, 1, 1)) == utc(2026, 1, 1, 12, 0, 5)
    assert schedule.latest_at_or_before(now, utc(2026, 1, 1, 12, 0, 6)) is None
    assert schedule.latest_at_or_before(utc(2026, 1, 1, 12, 0, 5), utc(2026, 1, 1, 12, 0, 5)) == utc(
        2026, 1, 1, 12, 0, 5
    )
    yearly = CronSchedule("@yearly", "Europe/Paris")
    assert yearly.latest_at_or_before(utc(2030, 6, 1), utc(2026, 6, 1)) == utc(2029, 12, 31, 23)


def test_next_after_is_cheap():
    import time

    schedule, moment = CronSchedule("*/2 * * * * *", "Europe/Paris"), utc(2026, 1, 1)
    started = time.perf_counter()
    for _ in range(2000):
        moment = schedule.next_after(moment)
    assert time.perf_counter() - started < 1.0
    assert moment == utc(2026, 1, 1, 1, 6, 40)
