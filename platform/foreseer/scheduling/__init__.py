"""Recurring searches: cron schedules stored in the job store, fired by the scheduler daemon.

- :mod:`~foreseer.scheduling.cron`: the cron dialect (5 fields, or 6 with leading seconds) and the
  next occurrence in an IANA time zone;
- :mod:`~foreseer.scheduling.schedules`: adding, pausing, resuming, removing and listing schedules;
- :mod:`~foreseer.scheduling.daemon`: the daemon that claims each due occurrence once and launches it.

Example:
    >>> from datetime import datetime, timezone
    >>> CronSchedule("*/10 * * * * *").next_after(datetime(2026, 1, 1, 0, 0, 3, tzinfo=timezone.utc)).second
    10
"""

from foreseer.scheduling.cron import CronError, CronSchedule, parse_cron

__all__ = ["CronError", "CronSchedule", "parse_cron"]
