"""The zoning reply: per-zone metrics of SPEC §7 from the aggregates a store computes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import msgspec

# Zones without a snapshot entry are their plain path, like a snapshot node without a
# reliable target (server.routes.snapshots answers kind "path" for those).
KIND_PATH = "path"


@dataclass(slots=True)
class ZoneAggregate:
    """What a store counts for one zone; the rates are derived from it by `build_report`.

    `tapped_views` / `swiped_views`: screenviews with at least one tap / drag or flick on the
    zone. `sessions`, `users`: distinct tapping sessions and users. `converted_sessions`:
    tapping sessions with a transaction strictly after their first tap on the zone.
    `median_delay_ms`: median over tapped screenviews of first tap minus screenview time.
    `revenue`: currency code -> sum of the values of those later transactions.
    """

    zone: str
    kind: str
    taps: int = 0
    unresponsive_taps: int = 0
    long_presses: int = 0
    drags: int = 0
    flicks: int = 0
    tapped_views: int = 0
    swiped_views: int = 0
    sessions: int = 0
    users: int = 0
    converted_sessions: int = 0
    median_delay_ms: float | None = None
    revenue: dict[int, float] = field(default_factory=dict)


class Zone(msgspec.Struct, kw_only=True):
    zone: str
    kind: str
    taps: int
    long_presses: int
    drags: int
    flicks: int
    unresponsive_taps: int
    tap_rate: float | None
    tap_recurrence: float | None
    swipe_rate: float | None
    swipe_recurrence: float | None
    time_before_first_tap_ms: float | None
    users: int
    sessions: int
    conversion_rate: float | None
    revenue: dict[str, float]


class ZoningReport(msgspec.Struct, kw_only=True):
    screen: str
    screenviews: int
    sessions: int
    users: int
    zones: list[Zone]


def ratio(numerator: int, denominator: int) -> float | None:
    """numerator / denominator, or None (JSON null) when the ratio is undefined."""
    return numerator / denominator if denominator else None


def build_report(
    screen: str,
    screenviews: int,
    sessions: int,
    users: int,
    aggregates: Iterable[ZoneAggregate],
) -> ZoningReport:
    """Rates from counts; zones by taps descending, then by zone name for a stable order."""
    zones = [
        Zone(
            zone=a.zone,
            kind=a.kind,
            taps=a.taps,
            long_presses=a.long_presses,
            drags=a.drags,
            flicks=a.flicks,
            unresponsive_taps=a.unresponsive_taps,
            tap_rate=ratio(a.tapped_views, screenviews),
            tap_recurrence=ratio(a.taps, a.tapped_views),
            swipe_rate=ratio(a.swiped_views, screenviews),
            swipe_recurrence=ratio(a.drags + a.flicks, a.swiped_views),
            time_before_first_tap_ms=a.median_delay_ms,
            users=a.users,
            sessions=a.sessions,
            conversion_rate=ratio(a.converted_sessions, a.sessions),
            revenue={str(code): a.revenue[code] for code in sorted(a.revenue)},
        )
        for a in aggregates
    ]
    zones.sort(key=lambda z: (-z.taps, z.zone))
    return ZoningReport(
        screen=screen, screenviews=screenviews, sessions=sessions, users=users, zones=zones
    )
