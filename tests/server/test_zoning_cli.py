"""`tapzone zoning`: the three formats on a small data set, and user errors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from databases import TestDatabase

from server.cli import main
from server.ingest import prepare_batch

T0 = 1709287200000  # 2024-03-01T10:00:00Z
BUY, MORE = "[root]>UIView>UIButton#buy>", "[root]>UIView>UIButton#more>"
SCROLL, IMAGE = "[root]>UIView>UIScrollView>", "[root]>UIView>UIImageView>"


def event(ea: int, euid: str, t: int, sn: int, scn: int = 1, **extra: object) -> dict:
    return {
        "ea": ea, "euid": euid, "t": t, "upt": 1, "url": "app-ios://shop/main?title=Sales",
        "scn": scn, "c": 1, "o": 0, "sn": sn,
        "vo": {"sv": "2.1", "sb": 4, "av": "1.0", "af": "release", "ab": 1}, **extra,
    }  # fmt: skip


def gesture(ea: int, euid: str, t: int, sn: int, tvp: str, **extra: object) -> dict:
    return event(ea, euid, t, sn, tvp=tvp, tvid="v", **extra)


def batch(uid: str, pl: list[dict]) -> bytes:
    now = max(e["t"] for e in pl)
    return json.dumps(
        {
            "pid": 1,
            "uid": uid,
            "dt": 4,
            "os": "17.1",
            "l": "en",
            "tz": "UTC",
            "now": now,
            "to": {"an": "shop", "st": "sdk-ios", "sf": "release"},
            "r": {"d": 3.0},
            "pl": pl,
        }  # fmt: skip
    ).encode()


BATCHES = [
    batch("u1", [
        event(4, "a1", T0, 1, st="Sales", sl=1),
        gesture(6, "a2", T0 + 1000, 1, BUY, ur=True),
        gesture(6, "a3", T0 + 3000, 1, BUY, ur=False),
        gesture(9, "a4", T0 + 4000, 1, SCROLL, fd=2, tvd=90, tvv=40),
        event(16, "a5", T0 + 5000, 1, tr={"vl": 20.0, "cu": 978}),
    ]),
    batch("u2", [
        event(4, "b1", T0 + 3_600_000, 1, st="Sales", sl=1),
        event(16, "b2", T0 + 3_601_000, 1, tr={"vl": 5.5, "cu": 840}),
        gesture(6, "b3", T0 + 3_602_000, 1, BUY, ur=True),
        gesture(8, "b4", T0 + 3_602_500, 1, IMAGE),
    ]),
    batch("u2", [
        event(4, "c1", T0 + 82_800_000, 2, st="Sales", sl=1),
        gesture(10, "c2", T0 + 82_800_100, 2, SCROLL, fd=1, tvd=200, tvv=900),
        gesture(6, "c3", T0 + 82_800_700, 2, MORE, ur=True),
    ]),
]  # fmt: skip


@pytest.fixture
def db(new_database: Callable[[], TestDatabase]) -> TestDatabase:
    database = new_database()

    async def build() -> None:
        store = database.store()
        await store.open()
        await store.create_project("shop", pid=1)
        for body in BATCHES:
            now = json.loads(body)["now"]
            await store.ingest(
                prepare_batch(body, max_events=100, received_ms=now, skew_limit_ms=10**8)
            )
        await store.close()

    asyncio.run(build())
    database.execute_many(
        "INSERT INTO target_map VALUES "
        "(1, 'Sales', '1.0', ?, 'UIButton[ai:SalesViewController.buy]', 'ai')",
        [(BUY,)],
    )
    return database


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(["zoning", *args])
    out, err = capsys.readouterr()
    return status, out, err


EXPECTED = {
    "screen": "Sales", "screenviews": 3, "sessions": 3, "users": 2,
    "zones": [
        {"zone": "UIButton[ai:SalesViewController.buy]", "kind": "ai", "taps": 3,
         "long_presses": 0, "drags": 0, "flicks": 0, "unresponsive_taps": 1,
         "tap_rate": 2 / 3, "tap_recurrence": 1.5, "swipe_rate": 0.0, "swipe_recurrence": None,
         "time_before_first_tap_ms": 1500.0, "users": 2, "sessions": 2,
         "conversion_rate": 0.5, "revenue": {"978": 20.0}},
        {"zone": MORE, "kind": "path", "taps": 1, "long_presses": 0, "drags": 0, "flicks": 0,
         "unresponsive_taps": 0, "tap_rate": 1 / 3, "tap_recurrence": 1.0, "swipe_rate": 0.0,
         "swipe_recurrence": None, "time_before_first_tap_ms": 700.0, "users": 1,
         "sessions": 1, "conversion_rate": 0.0, "revenue": {}},
        {"zone": IMAGE, "kind": "path", "taps": 0, "long_presses": 1, "drags": 0, "flicks": 0,
         "unresponsive_taps": 0, "tap_rate": 0.0, "tap_recurrence": None, "swipe_rate": 0.0,
         "swipe_recurrence": None, "time_before_first_tap_ms": None, "users": 0,
         "sessions": 0, "conversion_rate": None, "revenue": {}},
        {"zone": SCROLL, "kind": "path", "taps": 0, "long_presses": 0, "drags": 1, "flicks": 1,
         "unresponsive_taps": 0, "tap_rate": 0.0, "tap_recurrence": None, "swipe_rate": 2 / 3,
         "swipe_recurrence": 1.0, "time_before_first_tap_ms": None, "users": 0,
         "sessions": 0, "conversion_rate": None, "revenue": {}},
    ],
}  # fmt: skip


def test_json_is_the_api_object(db: TestDatabase, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "--pid", "1", "--screen", "Sales", *db.cli_options,
                           "--format", "json")  # fmt: skip
    assert (status, err) == (0, "")
    assert json.loads(out) == EXPECTED
    assert out == json.dumps(EXPECTED, separators=(",", ":")) + "\n"


def test_csv_has_one_row_per_zone(db: TestDatabase, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "--pid", "1", "--screen", "Sales", *db.cli_options,
                           "--format", "csv")  # fmt: skip
    assert (status, err) == (0, "")
    assert out == (
        "zone,kind,taps,long_presses,drags,flicks,unresponsive_taps,tap_rate,tap_recurrence,"
        "swipe_rate,swipe_recurrence,time_before_first_tap_ms,users,sessions,conversion_rate,"
        "revenue_978\n"
        "UIButton[ai:SalesViewController.buy],ai,3,0,0,0,1,0.6666666666666666,1.5,0.0,,1500.0,"
        "2,2,0.5,20.0\n"
        "[root]>UIView>UIButton#more>,path,1,0,0,0,0,0.3333333333333333,1.0,0.0,,700.0,1,1,"
        "0.0,\n"
        "[root]>UIView>UIImageView>,path,0,1,0,0,0,0.0,,0.0,,,0,0,,\n"
        "[root]>UIView>UIScrollView>,path,0,0,1,1,0,0.0,,0.6666666666666666,1.0,,0,0,,\n"
    )


def test_table_is_aligned_for_people(db: TestDatabase, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "--pid", "1", "--screen", "Sales", *db.cli_options)
    assert (status, err) == (0, "")
    assert out == TABLE


TABLE = """\
screen Sales: 3 screenviews, 3 sessions, 2 users, 4 zones
zone                                  kind  taps  long  drags  flicks  unresp.  tap rate  tap rec.  swipe rate  swipe rec.  1st tap ms  users  sessions  conversion  revenue
UIButton[ai:SalesViewController.buy]  ai       3     0      0       0        1     66.7%      1.50        0.0%           -      1500.0      2         2       50.0%  978: 20.00
[root]>UIView>UIButton#more>          path     1     0      0       0        0     33.3%      1.00        0.0%           -       700.0      1         1        0.0%  -
[root]>UIView>UIImageView>            path     0     1      0       0        0      0.0%         -        0.0%           -           -      0         0           -  -
[root]>UIView>UIScrollView>           path     0     0      1       1        0      0.0%         -       66.7%        1.00           -      0         0           -  -
"""  # noqa: E501


def test_filters_and_an_empty_screen(db: TestDatabase, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "--pid", "1", "--screen", "Sales", *db.cli_options,
                         "--from", "2024-03-02", "--format", "json")  # fmt: skip
    assert status == 0
    report = json.loads(out)
    assert (report["screenviews"], [z["zone"] for z in report["zones"]]) == (1, [MORE, SCROLL])
    status, out, _ = run(capsys, "--pid", "1", "--screen", "Sales", *db.cli_options,
                         "--dt", "5", "--format", "csv")  # fmt: skip
    assert (status, out.count("\n")) == (0, 1)
    status, out, _ = run(capsys, "--pid", "1", "--screen", "Home", *db.cli_options)
    assert (status, out) == (0, "screen Home: 0 screenviews, 0 sessions, 0 users, 0 zones\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--pid", "1", "--screen", "Sales", "--from", "2024-13-01"],
         "error: --from must be a date YYYY-MM-DD, got '2024-13-01'.\n"),
        (["--pid", "1", "--screen", "Sales", "--from", "2024-03-02", "--to", "2024-03-01"],
         "error: --from (2024-03-02) must not be after --to (2024-03-01).\n"),
        (["--pid", "1", "--screen", "Sales", "--dt", "tablet"],
         "error: --dt must be an integer, got 'tablet'.\n"),
        (["--pid", "1"], "error: tapzone zoning: the following arguments are required: --screen\n"),
        (["--pid", "7", "--screen", "Sales"], "error: no project with pid 7\n"),
    ],
)  # fmt: skip
def test_user_errors(
    db: TestDatabase, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert run(capsys, *args, *db.cli_options) == (2, "", message)


def test_a_missing_database_is_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "nothing.db"
    assert run(capsys, "--pid", "1", "--screen", "Sales", "--db", str(path)) == (
        2, "", f"error: no database at {path}\n"
    )  # fmt: skip
    assert not path.exists()
