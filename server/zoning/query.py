"""A zoning query: which screen, which period, which app version and device type."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime

from server.errors import BadRequest

_DAY_MS = 86_400_000
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_INTEGER = re.compile(r"[+-]?[0-9]+")
# Device types are 32-bit on the wire (server.schema); the same bounds keep SQL integers safe.
_DT_MIN, _DT_MAX = -(2**31), 2**31 - 1
# Without a bound the period is open on that side; these cover every storable corrected time.
OPEN_FROM_MS = -(2**63)
OPEN_TO_MS = 2**63 - 1


@dataclass(frozen=True, slots=True)
class ZoningQuery:
    """Screenviews of `screen` whose screenview event's corrected time falls in the period.

    `from_day` and `to_day` are UTC dates, both inclusive; None leaves that side open.
    """

    pid: int
    screen: str
    from_day: date | None = None
    to_day: date | None = None
    av: str | None = None
    dt: int | None = None

    @property
    def from_ms(self) -> int:
        """First millisecond of the period (inclusive)."""
        return OPEN_FROM_MS if self.from_day is None else _day_start_ms(self.from_day)

    @property
    def to_ms(self) -> int:
        """First millisecond after the period (exclusive)."""
        if self.to_day is None:
            return OPEN_TO_MS
        return _day_start_ms(self.to_day) + _DAY_MS


def _day_start_ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * 1000


class Naming:
    """How messages call a parameter: a query parameter over HTTP, an option on the CLI."""

    def __init__(self, subject: str, ref: str) -> None:
        self._subject, self._ref = subject, ref

    def subject(self, name: str) -> str:
        return self._subject.format(name)

    def ref(self, name: str) -> str:
        return self._ref.format(name)


HTTP_NAMING = Naming("The query parameter `{}`", "`{}`")
CLI_NAMING = Naming("--{}", "--{}")


def parse_query(
    pid: int, values: Mapping[str, str | None], naming: Naming = HTTP_NAMING
) -> ZoningQuery:
    """Validate the raw parameters `screen`, `from`, `to`, `av`, `dt`; BadRequest names one."""
    screen = values.get("screen")
    if not screen:
        raise BadRequest(f"{naming.subject('screen')} is required.")
    from_day = _parse_day(values.get("from"), "from", naming)
    to_day = _parse_day(values.get("to"), "to", naming)
    if from_day is not None and to_day is not None and from_day > to_day:
        raise BadRequest(
            f"{naming.subject('from')} ({from_day.isoformat()}) must not be after "
            f"{naming.ref('to')} ({to_day.isoformat()})."
        )
    return ZoningQuery(
        pid=pid,
        screen=screen,
        from_day=from_day,
        to_day=to_day,
        av=values.get("av"),
        dt=_parse_dt(values.get("dt"), naming),
    )


def _parse_day(text: str | None, name: str, naming: Naming) -> date | None:
    if text is None:
        return None
    if _DATE.fullmatch(text):
        try:
            return date.fromisoformat(text)
        except ValueError:
            pass
    raise BadRequest(f"{naming.subject(name)} must be a date YYYY-MM-DD, got {text!r}.")


def _parse_dt(text: str | None, naming: Naming) -> int | None:
    if text is None:
        return None
    if not _INTEGER.fullmatch(text):
        raise BadRequest(f"{naming.subject('dt')} must be an integer, got {text!r}.")
    dt = int(text)
    if not _DT_MIN <= dt <= _DT_MAX:
        raise BadRequest(
            f"{naming.subject('dt')} must be between {_DT_MIN} and {_DT_MAX}, got {text!r}."
        )
    return dt
