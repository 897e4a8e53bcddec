"""POST /v1/batch: decode, authorize, commit durably, answer with counts and rejections."""

from __future__ import annotations

import time

from aiohttp import web

from server import keys
from server.auth import require_pid
from server.body import read_json_body
from server.ingest import prepare_batch
from server.middleware import json_response
from server.store.base import ROLE_INGEST


async def post_batch(request: web.Request) -> web.Response:
    app = request.app
    config = app[keys.CONFIG]
    project = await app[keys.KEYRING].project_for(request, ROLE_INGEST)
    received_ms = int(time.time() * 1000)
    body = await read_json_body(request, config)
    batch = prepare_batch(
        body,
        max_events=config.max_batch_events,
        received_ms=received_ms,
        skew_limit_ms=config.clock_skew_limit_ms,
    )
    require_pid(project, batch.pid)
    result = await app[keys.STORE].ingest(batch)
    return json_response(
        {"accepted": result.accepted, "duplicates": result.duplicates, "rejected": batch.rejected}
    )


def setup(app: web.Application) -> None:
    app.router.add_post("/v1/batch", post_batch)
