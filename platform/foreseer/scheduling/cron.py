"""Cron expressions: Vixie-cron's five fields, an optional leading seconds field, and the next
occurrence in an IANA time zone.

The dialect:

- ``minute hour day-of-month month day-of-week`` (Vixie cron), or
  ``second minute hour day-of-month month day-of-week`` (Quartz / Spring order) for schedules that
  fire every few seconds. With five fields the second is 0.
- In each field: ``*``, a value, a range ``a-b``, a step ``*/n``, ``a-b/n`` or ``a/n`` (from ``a``
  to the field's maximum), and comma-separated lists of these. Months take ``JAN``-``DEC``, days of
  the week ``SUN``-``SAT`` (any case); day of week 0 and 7 are both Sunday. ``?`` is ``*`` in the
  two day fields.
- ``@yearly`` (``@annually``), ``@monthly``, ``@weekly``, ``@daily`` (``@midnight``), ``@hourly``.
- Vixie cron's day rule: when both day fields are restricted (neither starts with ``*``), a day
  matches if **either** matches; otherwise both must.

Times are wall-clock times in the schedule's time zone. Across daylight-saving changes a wall time
that does not exist (the hour skipped in spring) is skipped, and one that happens twice (the hour
repeated in autumn) fires once, at its first instant.

Example:
    >>> from datetime import datetime, timezone
    >>> nightly = CronSchedule("0 3 * * *", "Europe/Paris")
    >>> moment = nightly.next_after(datetime(2026, 3, 28, 12, 0, tzinfo=timezone.utc))
    >>> moment.isoformat(), nightly.local(moment).isoformat()
    ('2026-03-29T01:00:00+00:00', '2026-03-29T03:00:00+02:00')
"""

from __future__ import annotations

import bisect
import calendar
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from foreseer.errors import ForeseerError

__all__ = ["CronError", "CronExpression", "CronSchedule", "parse_cron", "parse_timezone"]

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = {name.upper(): i for i, name in enumerate(calendar.month_abbr) if name}
_DAYS = {"SUN": 0, "MON": 1, "TUE": 2, "WED": 3, "THU": 4, "FRI": 5, "SAT": 6}


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int] | None = None

    def accepted(self) -> str:
        extra = ""
        if self.names:
            names = list(self.names)
            first, last = names[0], names[-1]
            extra = f" or names {first}-{last}"
        wild = "*, ?" if self.name.startswith("day") else "*"
        return f"{wild}, {self.low}-{self.high}{extra}, ranges a-b, steps */n or a-b/n, lists a,b"


_SECOND = _Field("second", 0, 59)
_MINUTE = _Field("minute", 0, 59)
_HOUR = _Field("hour", 0, 23)
_DOM = _Field("day-of-month", 1, 31)
_MONTH = _Field("month", 1, 12, _MONTHS)
_DOW = _Field("day-of-week", 0, 7, _DAYS)
_FIVE = (_MINUTE, _HOUR, _DOM, _MONTH, _DOW)


class CronError(ForeseerError, ValueError):
    """A cron expression or a time zone that cannot be used; the message names the field and
    what it accepts."""


@dataclass(frozen=True)
class CronExpression:
    """The parsed fields of a cron expression: the allowed values of each, sorted.

    ``dom_star`` and ``dow_star`` say whether a day field started with ``*`` (Vixie cron's rule for
    combining the two day fields).
    """

    text: str
    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: tuple[int, ...]
    months: tuple[int, ...]
    weekdays: frozenset[int]  # 0 = Sunday
    dom_star: bool
    dow_star: bool

    def day_matches(self, day: date) -> bool:
        dom = day.day in self.days
        dow = (day.isoweekday() % 7) in self.weekdays
        if self.dom_star or self.dow_star:
            return dom and dow
        return dom or dow

    def next_wall_time(self, start: datetime) -> datetime:
        """The first naive wall time at or after ``start`` (whole seconds) that matches every field."""
        t = (
            start.replace(microsecond=0)
            if start.microsecond == 0
            else start.replace(microsecond=0) + timedelta(seconds=1)
        )
        limit = t.year + 400  # the Gregorian calendar repeats every 400 years
        while t.year <= limit:
            month = _first_at_least(self.months, t.month)
            if month is None:
                t = datetime(t.year + 1, self.months[0], 1)
                continue
            if month != t.month:
                t = datetime(t.year, month, 1)
            if not self.day_matches(t.date()):
                t = datetime(t.year, t.month, t.day) + timedelta(days=1)
                continue
            hour = _first_at_least(self.hours, t.hour)
            if hour is None:
                t = datetime(t.year, t.month, t.day) + timedelta(days=1)
                continue
            if hour != t.hour:
                t = t.replace(hour=hour, minute=0, second=0)
            minute = _first_at_least(self.minutes, t.minute)
            if minute is None:
                t = t.replace(minute=0, second=0) + timedelta(hours=1)
                continue
            if minute != t.minute:
                t = t.replace(minute=minute, second=0)
            second = _first_at_least(self.seconds, t.second)
            if second is None:
                t = t.replace(second=0) + timedelta(minutes=1)
                continue
            return t.replace(second=second)
        raise CronError(f"cron {self.text!r} has no occurrence within 400 years of {start:%Y-%m-%d}")


def _first_at_least(values: tuple[int, ...], value: int) -> int | None:
    i = bisect.bisect_left(values, value)
    return values[i] if i < len(values) else None


def parse_cron(text: str) -> CronExpression:
    """Parse a cron expression (5 fields, 6 with a leading seconds field, or an ``@`` macro).

    Raises:
        CronError: naming the field that is wrong, the value, and what the field accepts.
    """
    if not isinstance(text, str) or not text.strip():
        raise CronError(
            f"cron expression is empty (got {text!r}); expected 5 fields "
            "'minute hour day-of-month month day-of-week', 6 with a leading second, or @daily etc."
        )
    source = text.strip()
    if source.startswith("@"):
        expanded = MACROS.get(source.lower())
        if expanded is None:
            raise CronError(f"unknown cron macro {source!r}; accepted: {', '.join(MACROS)}")
        source = expanded
    parts = source.split()
    if len(parts) == 5:
        parts, fields = ["0", *parts], (_SECOND, *_FIVE)
    elif len(parts) == 6:
        fields = (_SECOND, *_FIVE)
    else:
        raise CronError(
            f"cron {text!r} has {len(parts)} fields; "
            "expected 5 ('minute hour day-of-month month day-of-week', "
            "e.g. '0 3 * * *') or 6 with a leading second (e.g. '*/5 * * * * *')"
        )
    values = [_parse_field(part, field, text) for part, field in zip(parts, fields, strict=True)]
    weekdays = frozenset(0 if d == 7 else d for d in values[5])
    expression = CronExpression(
        text=text.strip(),
        seconds=tuple(sorted(values[0])),
        minutes=tuple(sorted(values[1])),
        hours=tuple(sorted(values[2])),
        days=tuple(sorted(values[3])),
        months=tuple(sorted(values[4])),
        weekdays=weekdays,
        dom_star=parts[3].startswith(("*", "?")),
        dow_star=parts[5].startswith(("*", "?")),
    )
    _check_days_exist(expression)
    return expression


def _parse_field(part: str, field: _Field, text: str) -> set[int]:
    out: set[int] = set()
    for item in part.split(","):
        try:
            out.update(_parse_item(item, field))
        except CronError as e:
            raise CronError(
                f"cron {text!r}: {field.name} field {part!r}: {e}; accepted: {field.accepted()}"
            ) from None
    return out


def _parse_item(item: str, field: _Field) -> range:
    if not item:
        raise CronError("empty list item")
    body, slash, step_text = item.partition("/")
    step = 1
    if slash:
        if not step_text.isdigit() or int(step_text) < 1:
            raise CronError(f"step {step_text!r} must be a whole number of at least 1")
        step = int(step_text)
    if body in ("*", "?"):
        if body == "?" and not field.name.startswith("day"):
            raise CronError("'?' is only accepted in the day-of-month and day-of-week fields")
        low, high = field.low, field.high
    elif "-" in body:
        first, _, last = body.partition("-")
        low, high = _value(first, field), _value(last, field)
        if low > high:
            raise CronError(f"range {body!r} runs backwards ({low} > {high}); write it as two ranges")
    else:
        low = _value(body, field)
        high = field.high if slash else low  # "a/n": from a to the field's maximum, as in Quartz
    if field is _DOW and slash and body in ("*", "?"):
        high = 6  # */2 over 0-7 would give Sunday twice
    return range(low, high + 1, step)


def _value(token: str, field: _Field) -> int:
    if field.names and token.upper() in field.names:
        return field.names[token.upper()]
    if not token.isdigit():
        names = f" or a name ({', '.join(field.names)})" if field.names else ""
        raise CronError(f"{token!r} is not a number{names}")
    value = int(token)
    if not field.low <= value <= field.high:
        raise CronError(f"{value} is out of range {field.low}-{field.high}")
    return value


def _check_days_exist(expression: CronExpression) -> None:
    """Refuse a day-of-month that no allowed month has (``0 0 30 2 *``), which would never fire."""
    if not expression.dom_star and not expression.dow_star:
        return  # the day-of-week alternative always matches some day
    if expression.dom_star:
        return
    longest = max(calendar.monthrange(2024, m)[1] for m in expression.months)  # 2024: February has 29 days
    if min(expression.days) > longest:
        months = ",".join(calendar.month_abbr[m] for m in expression.months)
        raise CronError(
            f"cron {expression.text!r} never fires: "
            f"day-of-month {min(expression.days)} does not occur in {months}"
        )


def parse_timezone(name: str) -> ZoneInfo:
    """An IANA time zone (``Europe/Paris``, ``UTC``).

    Raises:
        CronError: the name is not a known IANA time zone.
    """
    try:
        if not name or name != name.strip():
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise CronError(
            f"unknown time zone {name!r}; expected an IANA name such as UTC, Europe/Paris or America/New_York"
        ) from None


class CronSchedule:
    """A cron expression in a time zone: when it fires next.

    Args:
        expression: the cron expression (see the module's docstring for the dialect).
        tz: an IANA time zone name; wall times in the expression are read in it.

    Raises:
        CronError: the expression or the time zone is invalid.
    """

    def __init__(self, expression: str, tz: str = "UTC") -> None:
        self.expression = parse_cron(expression)
        self.tz = parse_timezone(tz)
        self.tz_name = tz

    def __repr__(self) -> str:
        return f"CronSchedule({self.expression.text!r}, {self.tz_name!r})"

    def next_after(self, after: datetime) -> datetime:
        """The first occurrence strictly after ``after`` (an aware datetime), as a UTC datetime.

        UTC, not the schedule's zone: Python compares and subtracts two datetimes of one zone by
        their wall times, and never finds an instant in a repeated hour equal to one in another
        zone (PEP 495), both wrong for instants. :meth:`local` shows one in the schedule's zone."""
        if after.tzinfo is None or after.utcoffset() is None:
            raise ValueError(f"next_after needs an aware datetime, got the naive {after!r}")
        # Compare instants in UTC: Python compares two datetimes of the same zone by wall time,
        # ignoring ``fold``, which is wrong in the hour repeated in autumn.
        after_utc = after.astimezone(timezone.utc)
        wall = after.astimezone(self.tz).replace(tzinfo=None, fold=0)
        start = wall.replace(microsecond=0) + timedelta(seconds=1)
        for _ in range(100_000):  # more than the seconds in a daylight-saving gap
            candidate = self.expression.next_wall_time(start)
            instant = self._instant(candidate)
            if instant is not None and instant.astimezone(timezone.utc) > after_utc:
                return instant.astimezone(timezone.utc)
            start = candidate + timedelta(seconds=1)
        raise CronError(f"cron {self.expression.text!r} found no occurrence after {after.isoformat()}")

    def local(self, moment: datetime) -> datetime:
        """``moment`` as a wall time in the schedule's zone, for display."""
        return moment.astimezone(self.tz)

    def upcoming(self, after: datetime, count: int) -> list[datetime]:
        """The next ``count`` occurrences after ``after``."""
        out: list[datetime] = []
        for _ in range(count):
            after = self.next_after(after)
            out.append(after)
        return out

    def latest_at_or_before(self, moment: datetime, since: datetime) -> datetime | None:
        """The last occurrence in ``[since, moment]``, or ``None`` when there is none.

        Searches backwards in growing windows, so a schedule that fired every second for a day
        costs about as much as one that fires yearly."""
        moment, since = moment.astimezone(timezone.utc), since.astimezone(timezone.utc)
        if since > moment:
            return None
        span = timedelta(seconds=1)
        while True:
            start = max(since, moment - span)
            found, t = None, start - timedelta(microseconds=1)
            while True:
                t = self.next_after(t)
                if t > moment:
                    break
                found = t
            if found is not None or start == since:
                return found
            span *= 16

    def _instant(self, wall: datetime) -> datetime | None:
        """The instant of a wall time: ``None`` when daylight saving skips it, the first of two
        when it happens twice."""
        first = wall.replace(tzinfo=self.tz, fold=0)
        back = first.astimezone(timezone.utc).astimezone(self.tz).replace(tzinfo=None)
        if back != wall:
            return None  # in the gap: the round trip lands on another wall time
        return first
