"""Schedules of periodic tasks: a unix-cron subset and the common App Engine phrases, both turned
into one cron expression that Cloud Scheduler runs and that fire times are computed from here.

- cron, five fields: minute (0-59), hour (0-23), day of month (1-31), month (1-12), day of week
  (0-7, 0 and 7 are Sunday, or `mon`...`sun`); each `*`, `N`, `A-B`, `*/S` or `A-B/S`, or a comma
  list of them. When both day fields are restricted, a day matching either fires (as in cron).
- App Engine: `every N minutes` (N dividing 60), `every N hours` (N dividing 24), `every day
  HH:MM`, `every monday HH:MM`, `every mon,wed,fri HH:MM`.

Times are wall times in the schedule's time zone (an IANA name, e.g. `Europe/Berlin`). On
daylight-saving changes a wall time that does not exist that day does not fire, and one that
occurs twice fires once, the first time.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WEEK = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
DAYS = {name: number for number, day in enumerate(WEEK) for name in (day, day[:3])}
# (name, lowest, highest) of the five cron fields; day of week 7 is Sunday again
FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12),
          ("day of week", 0, 7))
SEARCH_DAYS = 366 * 8 + 2  # the longest gap between two fire times: 29 February, 2096 to 2104
_EVERY = re.compile(r"every (\d+) (minutes?|mins?|hours?)")
_AT = re.compile(r"every ([a-z,]+) ([01]?\d|2[0-3]):([0-5]\d)")
_PART = re.compile(r"(\*|\d+|[a-z]+)(?:-(\d+|[a-z]+))?(?:/(\d+))?")


@dataclass(frozen=True)
class Schedule:
    """When a periodic handler fires: `Schedule.parse("every day 06:00", "Europe/Berlin")`."""

    text: str  # as written
    timezone: str
    cron: str  # the same schedule as a cron expression: what Cloud Scheduler is given
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 is Sunday
    any_day: bool  # the day-of-month field is `*`
    any_weekday: bool  # the day-of-week field is `*`

    @classmethod
    def parse(cls, text: str, timezone: str = "UTC") -> Schedule:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {timezone!r}: give an IANA name such as "
                             "'Europe/Berlin'") from exc
        cron = to_cron(text)
        fields = cron.split()
        minutes, hours, days, months, weekdays = (
            _field(value, name, low, high) for value, (name, low, high) in zip(
                fields, FIELDS, strict=True))
        schedule = cls(text, timezone, cron, tuple(sorted(minutes)), tuple(sorted(hours)),
                       frozenset(days), frozenset(months), frozenset(day % 7 for day in weekdays),
                       fields[2].startswith("*"), fields[4].startswith("*"))
        schedule.latest(datetime.datetime(2100, 1, 1, tzinfo=datetime.UTC))  # does it ever fire?
        return schedule

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def fires_on(self, day: datetime.date) -> bool:
        if day.month not in self.months:
            return False
        by_date, by_weekday = day.day in self.days, day.isoweekday() % 7 in self.weekdays
        if self.any_day or self.any_weekday:
            return by_date and by_weekday
        return by_date or by_weekday

    def latest(self, now: datetime.datetime) -> datetime.datetime:
        """The last fire time at or before `now` (an aware time), in UTC."""
        zone = self.zone
        day = now.astimezone(zone).date()
        for _ in range(SEARCH_DAYS):
            if self.fires_on(day):
                for hour in reversed(self.hours):
                    for minute in reversed(self.minutes):
                        fire = _instant(day, hour, minute, zone)
                        if fire is not None and fire <= now:
                            return fire
            day -= datetime.timedelta(days=1)
        raise ValueError(f"schedule {self.text!r} never fires")


def to_cron(text: str) -> str:
    """The cron expression of a schedule written in either syntax."""
    words = " ".join(text.lower().split())
    if len(words.split()) == 5 and not words.startswith("every"):
        *times, weekdays = words.split()  # day names as numbers: what every cron accepts
        return " ".join([*times, re.sub(r"[a-z]+", lambda name: str(DAYS.get(name[0], name[0])),
                                        weekdays)])
    every = _EVERY.fullmatch(words)
    if every:
        count, unit = int(every[1]), every[2]
        whole = 24 if unit.startswith("hour") else 60
        if not 1 <= count <= whole or whole % count:
            raise ValueError(f"{text!r}: every N {unit} needs N dividing {whole}, so that the "
                             "firings are evenly spaced across the day (or write a cron "
                             "expression)")
        step = "" if count == 1 else f"/{count}"
        return f"0 *{step} * * *" if whole == 24 else f"*{step} * * * *"
    at = _AT.fullmatch(words)
    if at:
        names = [] if at[1] == "day" else at[1].split(",")
        unknown = [name for name in names if name not in DAYS]
        if unknown:
            raise ValueError(f"{text!r}: {', '.join(unknown)} is not a day of the week")
        days = ",".join(str(DAYS[name]) for name in names) or "*"
        return f"{int(at[3])} {int(at[2])} * * {days}"
    raise ValueError(f"schedule {text!r} is neither a cron expression ('0 6 * * *') nor one of "
                     "'every N minutes', 'every N hours', 'every day HH:MM', "
                     "'every monday HH:MM'")


def _field(value: str, name: str, low: int, high: int) -> set[int]:
    found: set[int] = set()
    for part in value.split(","):
        match = _PART.fullmatch(part)
        if match is None:
            raise ValueError(f"cron {name} {value!r}: {part!r} is not *, N, A-B or a step /S")
        first, last, step = match[1], match[2], int(match[3] or 1)
        start = low if first == "*" else _number(first, name)
        end = high if first == "*" else _number(last, name) if last else start
        if first != "*" and last is None and match[3]:
            end = high  # N/S: from N to the end, as in cron
        if not low <= start <= end <= high or step < 1 or (first == "*" and last):
            raise ValueError(f"cron {name} {value!r}: {part!r} is outside {low}-{high}")
        found.update(range(start, end + 1, step))
    return found


def _number(token: str, name: str) -> int:
    if not token.isdigit():
        raise ValueError(f"cron {name}: {token!r} is not a number")
    return int(token)


def _instant(
    day: datetime.date, hour: int, minute: int, zone: ZoneInfo
) -> datetime.datetime | None:
    """The UTC instant of a wall time (its first, where it occurs twice); None if the wall time
    does not exist that day (skipped by a daylight-saving change)."""
    wall = datetime.datetime.combine(day, datetime.time(hour, minute), tzinfo=zone)
    instant = wall.astimezone(datetime.UTC)
    if instant.astimezone(zone).replace(tzinfo=None) != wall.replace(tzinfo=None):
        return None
    return instant
