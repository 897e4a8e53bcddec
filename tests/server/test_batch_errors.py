"""POST /v1/batch refusals: exact status, exact message, and nothing stored."""

from __future__ import annotations

import gzip
import json
import tracemalloc

import pytest
from support import Service

from server.auth import DENIED


def assert_nothing_stored(service: Service) -> None:
    assert service.query("SELECT count(*) FROM events") == [(0,)]
    assert service.query("SELECT count(*) FROM batches") == [(0,)]
    assert service.query("SELECT count(*) FROM quarantine") == [(0,)]


async def expect(resp, status: int, error: str) -> None:
    assert resp.status == status
    assert resp.content_type == "application/json"
    assert await resp.json() == {"status": status, "error": error}


async def test_gzip_body_is_accepted(service: Service, seed_batch: dict) -> None:
    body = gzip.compress(json.dumps(seed_batch).encode())
    resp = await service.post_batch(body, **{"Content-Encoding": "gzip"})
    assert await resp.json() == {"accepted": 11, "duplicates": 0, "rejected": []}


async def test_gzip_bomb_is_refused_without_inflating_it(service: Service) -> None:
    # 200 MiB of spaces compress to ~200 KiB: under the 1 MiB wire limit, far over 8 MiB inflated.
    bomb = gzip.compress(b"{" + b" " * (200 * 1024 * 1024) + b"}", compresslevel=9)
    assert len(bomb) < 1024 * 1024
    tracemalloc.start()
    try:
        resp = await service.post_batch(bomb, **{"Content-Encoding": "gzip"})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    await expect(resp, 413, "The inflated request body is larger than 8388608 bytes.")
    assert peak < 40 * 1024 * 1024  # never more than the limit plus buffers, not 200 MiB
    assert_nothing_stored(service)


async def test_corrupt_gzip_is_400(service: Service, seed_batch: dict) -> None:
    body = gzip.compress(json.dumps(seed_batch).encode())
    resp = await service.post_batch(body[:-20], **{"Content-Encoding": "gzip"})
    await expect(resp, 400, "The gzip body is truncated.")
    resp = await service.post_batch(b"not gzip at all", **{"Content-Encoding": "gzip"})
    await expect(resp, 400, "The body is not valid gzip: Error -3 while decompressing data: "
                            "incorrect header check.")
    assert_nothing_stored(service)


async def test_compressed_body_over_1_mib_is_413(service: Service, seed_batch: dict) -> None:
    seed_batch["padding"] = "x" * (1024 * 1024)
    resp = await service.post_batch(seed_batch)
    await expect(resp, 413, "The request body is larger than 1048576 bytes.")
    assert_nothing_stored(service)


async def test_1001_events_is_413(service: Service, seed_batch: dict) -> None:
    event = seed_batch["pl"][0]
    seed_batch["pl"] = [dict(event, euid=f"e{i}") for i in range(1001)]
    resp = await service.post_batch(seed_batch)
    await expect(resp, 413, "The batch has 1001 events; at most 1000 are accepted - at `$.pl`.")
    assert_nothing_stored(service)
    seed_batch["pl"] = seed_batch["pl"][:1000]
    assert (await (await service.post_batch(seed_batch)).json())["accepted"] == 1000


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        ({"Content-Type": "text/plain"},
         "Content-Type must be application/json, got 'text/plain'."),
        ({"Content-Type": "application/x-www-form-urlencoded"},
         "Content-Type must be application/json, got 'application/x-www-form-urlencoded'."),
        ({"Content-Encoding": "br"}, "Content-Encoding must be gzip or identity, got 'br'."),
        ({"Content-Encoding": "deflate"},
         "Content-Encoding must be gzip or identity, got 'deflate'."),
    ],
)  # fmt: skip
async def test_other_media_types_are_415(
    service: Service, seed_batch: dict, headers: dict, error: str
) -> None:
    resp = await service.post_batch(seed_batch, **headers)
    await expect(resp, 415, error)
    assert_nothing_stored(service)


async def test_charset_parameter_is_accepted(service: Service, seed_batch: dict) -> None:
    headers = {"Content-Type": "application/json; charset=utf-8"}
    resp = await service.post_batch(seed_batch, **headers)
    assert resp.status == 200


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"{not json", "The body is not valid JSON: JSON is malformed: "
                       "object keys must be strings (byte 1)."),
        (b"", "The body is not valid JSON: Input data was truncated."),
        (b"[1, 2]", "Invalid batch: Expected `object`, got `array`."),
    ],
)  # fmt: skip
async def test_unparseable_json_is_400(service: Service, body: bytes, error: str) -> None:
    await expect(await service.post_batch(body), 400, error)
    assert_nothing_stored(service)


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"pl": []}, "Invalid batch: Expected `array` of length >= 1 - at `$.pl`."),
        ({"uid": ""}, "Invalid batch: Expected `str` of length >= 1 - at `$.uid`."),
        ({"uid": "u" * 65}, "Invalid batch: Expected `str` of length <= 64 - at `$.uid`."),
        ({"pid": "1"}, "Invalid batch: Expected `int`, got `str` - at `$.pid`."),
        ({"r": {"d": 0.5}}, "Invalid batch: Expected `float` >= 0.75 - at `$.r.d`."),
        ({"r": {"d": 11}}, "Invalid batch: Expected `float` <= 10.0 - at `$.r.d`."),
        ({"to": {"an": "a", "st": "s"}},
         "Invalid batch: Object missing required field `sf` - at `$.to`."),
        ({"now": -5}, "Invalid batch: Expected `int` >= 0 - at `$.now`."),
        ({"pl": {"ea": 0}}, "Invalid batch: Expected `array`, got `object` - at `$.pl`."),
    ],
)  # fmt: skip
async def test_invalid_header_is_400_naming_the_field(
    service: Service, seed_batch: dict, change: dict, error: str
) -> None:
    seed_batch.update(change)
    await expect(await service.post_batch(seed_batch), 400, error)
    assert_nothing_stored(service)


async def test_missing_header_field_is_400(service: Service, seed_batch: dict) -> None:
    del seed_batch["tz"]
    await expect(
        await service.post_batch(seed_batch), 400,
        "Invalid batch: Object missing required field `tz`.",
    )  # fmt: skip


async def test_auth_refusals_are_401_and_store_nothing(service: Service, seed_batch: dict) -> None:
    cases = [
        await service.post_batch(seed_batch, key=False),  # no Authorization header
        await service.post_batch(seed_batch, key="tzi_unknown"),
        await service.post_batch(seed_batch, key=service.default.read_key),  # read-only key
        await service.post_batch(seed_batch, key=service.other.ingest_key),  # other project's
        await service.post_batch(dict(seed_batch, pid=99)),  # a pid that does not exist
        await service.post_batch(seed_batch, Authorization=f"Basic {service.default.ingest_key}"),
    ]
    for resp in cases:
        await expect(resp, 401, DENIED)
    assert_nothing_stored(service)


async def test_wrong_method_and_unknown_route_keep_the_shape(service: Service) -> None:
    await expect(await service.client.get("/v1/batch"), 405,
                 "Method GET is not allowed on /v1/batch.")  # fmt: skip
    await expect(await service.client.get("/v1/nothing"), 404, "No route for GET /v1/nothing.")


async def test_deeply_nested_json_is_400_not_a_crash(service: Service, seed_batch: dict) -> None:
    body = json.dumps(seed_batch).encode()
    deep = body[:-1] + b', "x": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    await expect(
        await service.post_batch(deep), 400, "The JSON is nested too deeply to be decoded."
    )
    assert_nothing_stored(service)
