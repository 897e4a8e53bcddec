"""Seeded random mutations of valid batches, and of their bytes: never a 5xx, always the
reply or error shape."""

from __future__ import annotations

import copy
import json
import random

from support import Service

VALUES = [None, True, False, 0, -1, 2**63, -(2**63) - 1, 1.5, float("1e308"), "", "x" * 300,
          "\u0000", "💥", [], {}, [1, "a"], {"ea": 6}]  # fmt: skip


def mutate(rng: random.Random, batch: dict) -> object:
    batch = copy.deepcopy(batch)
    for _ in range(rng.randint(1, 4)):
        target: object = batch
        path = []
        while isinstance(target, dict | list) and target and rng.random() < 0.7:
            if isinstance(target, dict):
                key = rng.choice(list(target))
            else:
                key = rng.randrange(len(target))
            path.append((target, key))
            target = target[key]
        if not path:
            return rng.choice(VALUES)
        parent, key = path[-1]
        action = rng.random()
        if action < 0.5:
            parent[key] = rng.choice(VALUES)
        elif action < 0.8 and isinstance(parent, dict):
            del parent[key]
        elif isinstance(parent, list):
            parent.append(copy.deepcopy(rng.choice(batch["pl"]) if batch.get("pl") else {}))
    return batch


async def posted(service: Service, data: bytes) -> tuple[int, dict]:
    """POST /v1/batch; (status, reply), the reply checked for its shape."""
    resp = await service.post_batch(data)
    reply = await resp.json()
    assert resp.status in (200, 400, 401, 413), (resp.status, reply, data)
    if resp.status == 200:
        assert set(reply) == {"accepted", "duplicates", "rejected"}
        for rejected in reply["rejected"]:
            assert set(rejected) == {"index", "euid", "error"}
            assert "- at `$.pl[" in rejected["error"]
    else:
        assert reply == {"status": resp.status, "error": reply["error"]}
    return resp.status, reply


async def test_mutated_batches_never_fail_the_server(service: Service, seed_batch: dict) -> None:
    rng = random.Random(20261122)
    statuses: dict[int, int] = {}
    for i in range(300):
        body = mutate(rng, seed_batch)
        data = json.dumps(body).encode()
        if i % 7 == 0:
            data = data[: rng.randrange(len(data) + 1)]  # truncated bodies too
        status, _ = await posted(service, data)
        statuses[status] = statuses.get(status, 0) + 1
    # The mutations reach every outcome, so the test checks something on each path.
    assert statuses.get(200, 0) > 20 and statuses.get(400, 0) > 20
    stored = service.query("SELECT count(*) FROM events")[0][0]
    quarantined = service.query("SELECT count(*) FROM quarantine")[0][0]
    assert stored > 0 and quarantined > 0


async def test_a_batch_with_a_random_byte_never_fails_the_server(
    service: Service, seed_batch: dict
) -> None:
    rng = random.Random(20261123)
    data = json.dumps(seed_batch).encode()  # ASCII only: \u escapes for the rest
    outcomes = {"400": 0, "quarantined as not UTF-8": 0}
    for _ in range(100):
        at = rng.randrange(len(data))  # a byte of 0x80-0xff: never valid alone in UTF-8
        changed = data[:at] + bytes([rng.randrange(128, 256)]) + data[at + 1 :]
        status, reply = await posted(service, changed)
        if status == 400:
            outcomes["400"] += 1
        elif any("invalid UTF-8" in r["error"] for r in reply.get("rejected", [])):
            outcomes["quarantined as not UTF-8"] += 1
    assert min(outcomes.values()) > 10, outcomes
