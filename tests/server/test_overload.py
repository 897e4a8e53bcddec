"""A full write queue answers 503 with Retry-After and stores nothing of that batch."""

from __future__ import annotations

import asyncio
import copy

from support import Service

from server import keys


async def test_full_write_queue_is_503_and_stores_nothing(
    service_factory, seed_batch: dict
) -> None:
    service: Service = await service_factory(write_queue_events=20, retry_after_s=3)
    store = service.app[keys.STORE]
    release = asyncio.Event()
    real_write_group = store._writer._write_group

    async def slow_write_group(batches):
        await release.wait()
        return await real_write_group(batches)

    store._writer._write_group = slow_write_group
    first = asyncio.create_task(service.post_batch(seed_batch))  # 11 events + header: queued
    while store._writer.queued == 0:
        await asyncio.sleep(0.01)
    second_batch = copy.deepcopy(seed_batch)
    for event in second_batch["pl"]:
        event["euid"] += "-second"
    resp = await service.post_batch(second_batch)
    assert resp.status == 503
    assert resp.headers["Retry-After"] == "3"
    assert await resp.json() == {"status": 503, "error": "The write queue is full; retry later."}
    release.set()
    assert (await (await first).json())["accepted"] == 11
    assert service.query("SELECT count(*) FROM events WHERE euid LIKE '%-second'") == [(0,)]
    assert service.query("SELECT count(*) FROM batches") == [(1,)]
    # Once the queue has drained, the refused batch goes through.
    assert (await (await service.post_batch(second_batch)).json())["accepted"] == 11
