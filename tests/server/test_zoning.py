"""GET /v1/projects/{pid}/zoning over a generated data set, against a plain reference."""

from __future__ import annotations

import time
from datetime import date
from typing import Any

import pytest
from support import Service
from zoning_data import TARGET_MAP, DataSet, StoredEvent, reference_report, stored_events

from server.auth import DENIED

SALES = "Sales"
ALL_SCREENS = ("Home", "Sales", "Cart", "Product detail", "/settings/main")


async def load(service: Service, data: DataSet, monkeypatch: pytest.MonkeyPatch) -> None:
    """Send every batch through POST /v1/batch, each received at its own server time."""
    clock = {"s": 0.0}
    monkeypatch.setattr(time, "time", lambda: clock["s"])
    for batch in data.batches:
        clock["s"] = (batch.received_ms + 0.5) / 1000
        key = service.default.ingest_key if batch.pid == 1 else service.other.ingest_key
        resp = await service.post_batch(batch.body, key)
        assert resp.status == 200, await resp.text()
    monkeypatch.undo()


async def zoning(service: Service, pid: int = 1, key: str | None = None, **params: Any):
    key = key or (service.default if pid == 1 else service.other).read_key
    return await service.client.get(
        f"/v1/projects/{pid}/zoning",
        params={k: str(v) for k, v in params.items()},
        headers={"Authorization": f"Bearer {key}"},
    )


def set_target_map(service: Service, rows: dict[tuple[str, str, str], tuple[str, str]]) -> None:
    service.query("DELETE FROM target_map")
    service.database.execute_many(
        "INSERT INTO target_map (pid, screen, av, tvp, target, kind) VALUES (1, ?, ?, ?, ?, ?)",
        [(*key, *value) for key, value in rows.items()],
    )


def assert_same(actual: dict[str, Any], expected: dict[str, Any]) -> None:
    """Equal, floats to 1e-9 (sums of amounts may be added in another order)."""
    assert {k: v for k, v in actual.items() if k != "zones"} == {
        k: v for k, v in expected.items() if k != "zones"
    }
    assert [z["zone"] for z in actual["zones"]] == [z["zone"] for z in expected["zones"]]
    for got, want in zip(actual["zones"], expected["zones"], strict=True):
        assert list(got) == list(want), "keys and their order"
        for name, value in want.items():
            if isinstance(value, float):
                assert got[name] == pytest.approx(value, rel=1e-9, abs=1e-9), (got["zone"], name)
            elif isinstance(value, dict):
                assert got[name].keys() == value.keys(), (got["zone"], name)
                for code, amount in value.items():
                    assert got[name][code] == pytest.approx(amount, rel=1e-9), (got["zone"], code)
            else:
                assert got[name] == value, (got["zone"], name)


QUERIES: list[dict[str, Any]] = [
    *({"screen": screen} for screen in ALL_SCREENS),
    {"screen": SALES, "from": "2024-03-03", "to": "2024-03-05"},
    {"screen": SALES, "from": "2024-03-04"},
    {"screen": SALES, "to": "2024-03-04"},
    {"screen": SALES, "from": "2024-03-06", "to": "2024-03-06"},
    {"screen": SALES, "av": "2.4.0"},
    {"screen": SALES, "av": "2.3.0", "dt": 5},
    {"screen": SALES, "dt": 4},
    {"screen": "Home", "from": "2024-03-02", "to": "2024-03-07", "av": "2.3.0", "dt": 6},
    {"screen": "Cart", "from": "2024-03-01", "to": "2024-03-08"},
    {"screen": "No such screen"},
    {"screen": SALES, "from": "2023-01-01", "to": "2023-12-31"},
]


def expected(
    events: list[StoredEvent],
    params: dict[str, Any],
    target_map: dict[tuple[str, str, str], tuple[str, str]],
    pid: int = 1,
) -> dict[str, Any]:
    return reference_report(
        events,
        target_map,
        pid=pid,
        screen=params["screen"],
        from_day=date.fromisoformat(params["from"]) if "from" in params else None,
        to_day=date.fromisoformat(params["to"]) if "to" in params else None,
        av=params.get("av"),
        dt=params.get("dt"),
    )


async def test_every_metric_matches_the_reference(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = DataSet()
    await load(service, data, monkeypatch)
    events = stored_events(data.batches, data.screens)
    # The data set has what it claims: duplicates, several projects, skewed and clamped times.
    assert len(events) < sum(len(b.body["pl"]) for b in data.batches)
    assert service.query("SELECT count(*) FROM events") == [(len(events),)]
    assert service.query("SELECT count(*) FROM events WHERE clamped = 1") == [(1,)]

    set_target_map(service, TARGET_MAP)
    for params in QUERIES:
        resp = await zoning(service, **params)
        assert resp.status == 200, (params, await resp.text())
        assert_same(await resp.json(), expected(events, params, TARGET_MAP))
    resp = await zoning(service, pid=2, screen=SALES)
    assert_same(await resp.json(), expected(events, {"screen": SALES}, {}, pid=2))

    report = await (await zoning(service, screen=SALES)).json()
    # Sanity of the data set itself: both versions' buy buttons are one zone, every metric
    # is exercised, zones come by taps.
    zones = {z["zone"]: z for z in report["zones"]}
    buy = zones["UIButton[ai:SalesViewController.buy]"]
    assert buy["kind"] == "ai" and buy["taps"] > 0 and buy["revenue"]
    assert zones["[root]>UIView[tg:444]>UIView:eq(0)"]["kind"] == "tg"
    assert any(z["kind"] == "path" for z in report["zones"])
    assert [z["taps"] for z in report["zones"]] == sorted(
        (z["taps"] for z in report["zones"]), reverse=True
    )
    assert 0 < report["users"] < report["sessions"] < report["screenviews"]


async def test_a_snapshot_stored_after_the_events_attributes_them(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = DataSet(seed=7, users=16)
    await load(service, data, monkeypatch)
    events = stored_events(data.batches, data.screens)
    before = await (await zoning(service, screen=SALES)).json()
    assert_same(before, expected(events, {"screen": SALES}, {}))
    assert all(z["kind"] == "path" for z in before["zones"])

    snapshot = {
        "pid": 1, "screen": SALES, "av": "2.4.0", "platform": "ios",
        "root": {"cls": "UIView", "vc": "SalesViewController", "path": "[root]>UIView>",
                 "children": [
                     {"cls": "UIStackView", "path": "[root]>UIView>UIStackView>", "children": [
                         {"cls": "UIButton", "ai": "buy",
                          "path": "[root]>UIView>UIStackView>UIButton#buy>"}]},
                     {"cls": "UIScrollView", "tag": 7, "path": "[root]>UIView>UIScrollView>"}]},
    }  # fmt: skip
    resp = await service.client.post(
        "/v1/snapshots",
        json=snapshot,
        headers={"Authorization": f"Bearer {service.default.ingest_key}"},
    )
    assert resp.status == 200, await resp.text()
    stored = {
        (screen, av, tvp): (target, kind)
        for screen, av, tvp, target, kind in service.query(
            "SELECT screen, av, tvp, target, kind FROM target_map WHERE pid = 1"
        )
    }
    assert stored[(SALES, "2.4.0", "[root]>UIView>UIStackView>UIButton#buy>")] == (
        "UIButton[ai:SalesViewController.buy]",
        "ai",
    )
    after = await (await zoning(service, screen=SALES)).json()
    assert_same(after, expected(events, {"screen": SALES}, stored))
    assert "UIButton[ai:SalesViewController.buy]" in {z["zone"] for z in after["zones"]}


async def small_data(service: Service) -> None:
    body = {
        "pid": 1, "uid": "u1", "dt": 4, "os": "17", "l": "en", "tz": "UTC",
        "now": 1709294400000, "to": {"an": "a", "st": "s", "sf": "r"}, "r": {"d": 2.0},
        "pl": [
            {"ea": 4, "euid": "a", "t": 1709294400000, "upt": 1, "url": "app://x?title=Sales",
             "scn": 1, "c": 1, "o": 0, "sn": 1, "st": "Sales", "sl": 1,
             "vo": {"sv": "1", "sb": 1, "av": "1.0", "af": "r", "ab": 1}},
        ],
    }  # fmt: skip
    assert (await service.post_batch(body)).status == 200


async def test_read_key_of_the_project_only(service: Service) -> None:
    await small_data(service)
    resp = await zoning(service, screen=SALES)
    assert resp.status == 200
    assert await resp.json() == {
        "screen": SALES,
        "screenviews": 1,
        "sessions": 1,
        "users": 1,
        "zones": [],
    }
    for key in (service.default.ingest_key, service.other.read_key, "tzr_unknown"):
        resp = await zoning(service, key=key, screen=SALES)
        assert resp.status == 401
        assert await resp.json() == {"status": 401, "error": DENIED}
    resp = await service.client.get("/v1/projects/1/zoning", params={"screen": SALES})
    assert (resp.status, (await resp.json())["error"]) == (401, DENIED)
    resp = await zoning(service, pid=3, key=service.default.read_key, screen=SALES)
    assert (resp.status, (await resp.json())["error"]) == (401, DENIED)
    resp = await zoning(service, pid=2, screen=SALES)
    assert resp.status == 200 and (await resp.json())["screenviews"] == 0


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "The query parameter `screen` is required."),
        ({"screen": ""}, "The query parameter `screen` is required."),
        ({"screen": SALES, "from": "2024-3-01"},
         "The query parameter `from` must be a date YYYY-MM-DD, got '2024-3-01'."),
        ({"screen": SALES, "to": "2024-02-30"},
         "The query parameter `to` must be a date YYYY-MM-DD, got '2024-02-30'."),
        ({"screen": SALES, "from": "20240301"},
         "The query parameter `from` must be a date YYYY-MM-DD, got '20240301'."),
        ({"screen": SALES, "from": "2024-03-05", "to": "2024-03-04"},
         "The query parameter `from` (2024-03-05) must not be after `to` (2024-03-04)."),
        ({"screen": SALES, "dt": "phone"},
         "The query parameter `dt` must be an integer, got 'phone'."),
        ({"screen": SALES, "dt": "4.0"}, "The query parameter `dt` must be an integer, got '4.0'."),
        ({"screen": SALES, "dt": "99999999999"},
         "The query parameter `dt` must be between -2147483648 and 2147483647, got '99999999999'."),
    ],
)  # fmt: skip
async def test_bad_parameters(service: Service, params: dict[str, str], message: str) -> None:
    resp = await zoning(service, **params)
    assert resp.status == 400
    assert await resp.json() == {"status": 400, "error": message}


async def test_a_query_parameter_given_twice_is_400(service: Service) -> None:
    resp = await service.client.get(
        "/v1/projects/1/zoning",
        params=[("screen", SALES), ("dt", "4"), ("screen", "Other")],
        headers={"Authorization": f"Bearer {service.default.read_key}"},
    )
    assert resp.status == 400
    assert await resp.json() == {
        "status": 400,
        "error": "The query parameter `screen` is given 2 times; give it once.",
    }


async def test_bad_project_id_in_the_path(service: Service) -> None:
    resp = await service.client.get(
        "/v1/projects/x1/zoning",
        params={"screen": SALES},
        headers={"Authorization": f"Bearer {service.default.read_key}"},
    )
    assert resp.status == 400
    assert (await resp.json())["error"] == (
        "The project id in the path must be an integer from 1 to 2147483647, got 'x1'."
    )
