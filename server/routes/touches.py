"""POST /v1/touches: classify raw strokes with the gestures kernel, store them as gestures."""

from __future__ import annotations

import time
from collections import Counter

from aiohttp import web

from server import keys
from server.auth import require_pid
from server.body import read_json_body
from server.middleware import json_response
from server.store.base import ROLE_INGEST
from server.touches import prepare_touches


async def post_touches(request: web.Request) -> web.Response:
    app = request.app
    config = app[keys.CONFIG]
    project = await app[keys.KEYRING].project_for(request, ROLE_INGEST)
    received_ms = int(time.time() * 1000)
    body = await read_json_body(request, config)
    touches = prepare_touches(
        body,
        max_strokes=config.max_strokes,
        received_ms=received_ms,
        skew_limit_ms=config.clock_skew_limit_ms,
    )
    require_pid(project, touches.batch.pid)
    result = await app[keys.STORE].ingest(touches.batch)
    return json_response(
        {
            "gestures": touches.gestures,
            "accepted": result.accepted,
            "duplicates": result.duplicates,
            "counts": Counter(str(g["gesture"]) for g in touches.gestures),
            "rejected": touches.batch.rejected,
        }
    )


def setup(app: web.Application) -> None:
    app.router.add_post("/v1/touches", post_touches)
