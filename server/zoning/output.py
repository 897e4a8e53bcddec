"""A zoning report as text: JSON (the API's bytes), CSV (one row per zone), an aligned table."""

from __future__ import annotations

import csv
import io

import msgspec

from server.zoning.report import ZoningReport

FORMATS = ("table", "json", "csv")

# The zone keys of the JSON reply, in order; `revenue` is spread over one column per currency.
CSV_COLUMNS = (
    "zone", "kind", "taps", "long_presses", "drags", "flicks", "unresponsive_taps",
    "tap_rate", "tap_recurrence", "swipe_rate", "swipe_recurrence",
    "time_before_first_tap_ms", "users", "sessions", "conversion_rate",
)  # fmt: skip

_ENCODER = msgspec.json.Encoder()


def render(report: ZoningReport, fmt: str) -> str:
    if fmt == "json":
        return render_json(report)
    if fmt == "csv":
        return render_csv(report)
    if fmt == "table":
        return render_table(report)
    raise ValueError(f"unknown format {fmt!r}")


def render_json(report: ZoningReport) -> str:
    """Exactly the body of GET /v1/projects/{pid}/zoning, plus a newline."""
    return _ENCODER.encode(report).decode() + "\n"


def currencies(report: ZoningReport) -> list[str]:
    """Every currency code any zone has revenue in, numerically ordered."""
    return sorted({code for z in report.zones for code in z.revenue}, key=int)


def render_csv(report: ZoningReport) -> str:
    """Header, then one row per zone. Null ratios are empty cells, floats are repr()-exact.

    Revenue gets a `revenue_<code>` column per currency present; empty where the zone has
    no attributed transaction in that currency.
    """
    codes = currencies(report)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*CSV_COLUMNS, *(f"revenue_{code}" for code in codes)])
    for zone in report.zones:
        cells = [getattr(zone, column) for column in CSV_COLUMNS]
        cells += [zone.revenue.get(code) for code in codes]
        writer.writerow(["" if cell is None else cell for cell in cells])
    return out.getvalue()


_TABLE_COLUMNS = (
    # (title, key, right-aligned)
    ("zone", "zone", False),
    ("kind", "kind", False),
    ("taps", "taps", True),
    ("long", "long_presses", True),
    ("drags", "drags", True),
    ("flicks", "flicks", True),
    ("unresp.", "unresponsive_taps", True),
    ("tap rate", "tap_rate", True),
    ("tap rec.", "tap_recurrence", True),
    ("swipe rate", "swipe_rate", True),
    ("swipe rec.", "swipe_recurrence", True),
    ("1st tap ms", "time_before_first_tap_ms", True),
    ("users", "users", True),
    ("sessions", "sessions", True),
    ("conversion", "conversion_rate", True),
    ("revenue", "revenue", False),
)
_PERCENT = frozenset({"tap_rate", "swipe_rate", "conversion_rate"})
_DASH = "-"


def _cell(key: str, value: object) -> str:
    if value is None:
        return _DASH
    if key == "revenue":
        assert isinstance(value, dict)
        return ", ".join(f"{code}: {amount:.2f}" for code, amount in value.items()) or _DASH
    if isinstance(value, float):
        if key in _PERCENT:
            return f"{value * 100:.1f}%"
        if key == "time_before_first_tap_ms":
            return f"{value:.1f}"
        return f"{value:.2f}"
    return str(value)


def render_table(report: ZoningReport) -> str:
    """For people: the screen's totals, then one aligned line per zone (rates in percent)."""
    lines = [
        f"screen {report.screen}: {report.screenviews} screenviews, "
        f"{report.sessions} sessions, {report.users} users, {len(report.zones)} zones"
    ]
    if not report.zones:
        return lines[0] + "\n"
    rows = [[title for title, _, _ in _TABLE_COLUMNS]]
    for zone in report.zones:
        rows.append([_cell(key, getattr(zone, key)) for _, key, _ in _TABLE_COLUMNS])
    widths = [max(len(row[i]) for row in rows) for i in range(len(_TABLE_COLUMNS))]
    for row in rows:
        cells = [
            cell.rjust(width) if right else cell.ljust(width)
            for cell, width, (_, _, right) in zip(row, widths, _TABLE_COLUMNS, strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines) + "\n"
