"""Release periods: ISO week, month or quarter (configurable per site; never finer than a week).

A period has a label (``2026-W41``, ``2026-10``, ``2026-Q4``), a total order
(``index``) used by the pseudonym key ratchet, and a date range.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from edge_agent.population.errors import PopulationError

WEEK, MONTH, QUARTER = "week", "month", "quarter"
GRANULARITIES = (WEEK, MONTH, QUARTER)
DEFAULT_GRANULARITY = QUARTER

_WEEK_RE = re.compile(r"^(\d{4})-W(\d{2})$")
_MONTH_RE = re.compile(r"^(\d{4})-(\d{2})$")
_QUARTER_RE = re.compile(r"^(\d{4})-Q([1-4])$")


@dataclass(frozen=True, order=True)
class Period:
    granularity: str
    index: int  # strictly increasing in time within a granularity
    label: str
    start: dt.date  # first day
    end: dt.date  # first day after the period


def period_of(day: dt.date, granularity: str = DEFAULT_GRANULARITY) -> Period:
    """The period containing ``day``."""
    if isinstance(day, dt.datetime):  # keep only the date: no time of day enters a record
        day = day.date()
    if granularity == QUARTER:
        q = (day.month - 1) // 3 + 1
        start = dt.date(day.year, 3 * q - 2, 1)
        end = dt.date(day.year + (q == 4), 1 if q == 4 else 3 * q + 1, 1)
        return Period(QUARTER, day.year * 4 + q - 1, f"{day.year}-Q{q}", start, end)
    if granularity == MONTH:
        start = dt.date(day.year, day.month, 1)
        end = dt.date(day.year + (day.month == 12), 1 if day.month == 12 else day.month + 1, 1)
        return Period(MONTH, day.year * 12 + day.month - 1, f"{day.year}-{day.month:02d}", start, end)
    if granularity == WEEK:
        year, week, _ = day.isocalendar()
        start = dt.date.fromisocalendar(year, week, 1)
        return Period(WEEK, (start.toordinal() - 1) // 7, f"{year}-W{week:02d}", start, start + dt.timedelta(days=7))
    raise PopulationError(f"unknown period granularity {granularity!r}; use one of {', '.join(GRANULARITIES)}")


def parse_period(label: str) -> Period:
    """``2026-Q4`` / ``2026-10`` / ``2026-W41`` -> Period."""
    try:
        if m := _QUARTER_RE.match(label):
            return period_of(dt.date(int(m[1]), 3 * int(m[2]) - 2, 1), QUARTER)
        if m := _MONTH_RE.match(label):
            return period_of(dt.date(int(m[1]), int(m[2]), 1), MONTH)
        if m := _WEEK_RE.match(label):
            return period_of(dt.date.fromisocalendar(int(m[1]), int(m[2]), 1), WEEK)
    except ValueError:
        pass
    raise PopulationError(f"period {label!r} is not a period label; write e.g. 2026-Q4, 2026-10 or 2026-W41")
