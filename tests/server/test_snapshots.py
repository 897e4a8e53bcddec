"""POST /v1/snapshots: targets in the reply, the stored target map, refusals."""

from __future__ import annotations

import io
import json

from support import Service, load_fixture

from server.auth import DENIED

RI = "[root]>UIView[ri:SalesViewController.trichotomy]>UIView[ri:SalesViewController.dichotomy]"


async def post_snapshot(service: Service, body: object, key: str | None = None):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await service.client.post(
        "/v1/snapshots",
        data=io.BytesIO(data),
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {key or service.default.ingest_key}",
        },
    )


async def test_restoration_seed_resolves_and_is_stored(service: Service) -> None:
    resp = await post_snapshot(service, load_fixture("snapshots/seed_restoration.json"))
    assert resp.status == 200
    reply = await resp.json()
    assert reply["snapshot"] == "1"
    assert reply["targets"] == [
        {"path": "[root]>UIView>", "target": "[root]>UIView[ri:SalesViewController.trichotomy]",
         "kind": "ri"},
        {"path": "[root]>UIView>UIView>", "target": RI, "kind": "ri"},
        {"path": "[root]>UIView>UIView>UIView>", "target": RI + ">UIView:eq(0)", "kind": "ri"},
        {"path": "[root]>UIView>UIView>UIView>", "target": RI + ">UIView:eq(1)", "kind": "ri"},
    ]  # fmt: skip
    # The two leaves share a plain path, so a gesture on it cannot be attributed: left out.
    assert service.query(
        "SELECT pid, screen, av, tvp, target, kind FROM target_map ORDER BY tvp"
    ) == [
        (1, "Sales", "2.3.0", "[root]>UIView>", "[root]>UIView[ri:SalesViewController.trichotomy]",
         "ri"),
        (1, "Sales", "2.3.0", "[root]>UIView>UIView>", RI, "ri"),
    ]  # fmt: skip
    assert service.query("SELECT snapshot_id, pid, screen, av, platform FROM snapshots") == [
        (1, 1, "Sales", "2.3.0", "ios")
    ]


async def test_accessibility_seed_keeps_its_target_when_moved(service: Service) -> None:
    before = await (await post_snapshot(
        service, load_fixture("snapshots/seed_accessibility.json"))).json()  # fmt: skip
    moved = load_fixture("snapshots/seed_accessibility_moved.json")
    moved["av"] = "2.4.0"
    after = await (await post_snapshot(service, moved)).json()
    on_sale = "UIButton[ai:SalesViewController.on_sale]"
    assert on_sale in {t["target"] for t in before["targets"]}
    assert on_sale in {t["target"] for t in after["targets"]}
    # In 2.3.0 the three buttons are siblings with one plain path: a tvp that cannot say which
    # button was tapped is left out of the map. Moved under viewFour, on_sale has a path of
    # its own, which maps to the same target as before.
    rows = service.query("SELECT av, tvp, target FROM target_map WHERE kind = 'ai' ORDER BY av")
    assert ("2.3.0", "[root]>UIView>UIView>UIButton>", on_sale) not in rows
    assert ("2.4.0", "[root]>UIView>UIView>UIButton>UIButton>", on_sale) in rows


async def test_a_later_snapshot_replaces_the_map_of_its_screen_and_version(
    service: Service,
) -> None:
    await post_snapshot(service, load_fixture("snapshots/ios_checkout.json"))
    first = service.query("SELECT count(*) FROM target_map")[0][0]
    assert first > 20
    await post_snapshot(service, load_fixture("snapshots/seed_tag.json") | {"screen": "Checkout",
                        "av": load_fixture("snapshots/ios_checkout.json")["av"]})  # fmt: skip
    rows = service.query("SELECT target FROM target_map ORDER BY tvp")
    assert rows == [("[root]>UIView[tg:444]",), ("[root]>UIView[tg:444]>UIView[tg:223]",)]
    assert service.query("SELECT count(*) FROM snapshots") == [(2,)]


async def test_android_snapshot(service: Service) -> None:
    resp = await post_snapshot(service, load_fixture("snapshots/android_checkout.json"))
    reply = await resp.json()
    targets = {t["target"] for t in reply["targets"]}
    assert "MaterialButton[rid:OrderSummaryFragment.buy]" in targets


async def test_refusals(service: Service) -> None:
    seed = load_fixture("snapshots/seed_tag.json")
    no_cls = json.loads(json.dumps(seed))
    del no_cls["root"]["children"][0]["cls"]
    cases = [
        (seed, service.default.read_key, 401, DENIED),
        (seed, service.other.ingest_key, 401, DENIED),
        (no_cls, None, 400,
         "Object missing required field `cls` - at `$.root.children[0]`."),
        (seed | {"platform": "web"}, None, 400,
         "Invalid snapshot: Invalid enum value 'web' - at `$.platform`."),
        ({k: v for k, v in seed.items() if k != "root"}, None, 400,
         "Invalid snapshot: Object missing required field `root`."),
        (seed | {"screen": ""}, None, 400,
         "Invalid snapshot: Expected `str` of length >= 1 - at `$.screen`."),
    ]  # fmt: skip
    for body, key, status, error in cases:
        resp = await post_snapshot(service, body, key)
        reply = await resp.json()
        assert resp.status == status, reply
        assert reply == {"status": status, "error": error}
    assert service.query("SELECT count(*) FROM snapshots") == [(0,)]


def chain(depth: int) -> dict:
    node: dict = {"cls": "UIView"}
    for _ in range(depth - 1):
        node = {"cls": "UIView", "children": [node]}
    return node


async def test_depth_limit(service: Service) -> None:
    ok = await post_snapshot(service, {"pid": 1, "screen": "S", "av": "1", "root": chain(256)})
    assert ok.status == 200
    assert len((await ok.json())["targets"]) == 256
    deep = await post_snapshot(service, {"pid": 1, "screen": "S", "av": "1", "root": chain(257)})
    assert deep.status == 400
    assert (await deep.json())["error"].startswith("The view hierarchy is deeper than 256 levels")
    # Far deeper than the JSON decoder's own nesting limit: still a 400, never a crash.
    body = (b'{"pid": 1, "screen": "S", "av": "1", "root": '
            + b'{"cls": "V", "children": [' * 20_000 + b'{"cls": "V"}' + b"]}" * 20_000 + b"}")
    huge = await post_snapshot(service, body)
    assert await huge.json() == {
        "status": 400, "error": "The view hierarchy is deeper than 256 levels - at `$.root`."
    }  # fmt: skip


async def test_node_limit(service: Service) -> None:
    wide = {"cls": "UIView", "children": [{"cls": "UILabel"} for _ in range(50_000)]}
    resp = await post_snapshot(service, {"pid": 1, "screen": "S", "av": "1", "root": wide})
    assert await resp.json() == {
        "status": 400, "error": "The view hierarchy has more than 50000 nodes."
    }  # fmt: skip
