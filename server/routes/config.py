"""GET /v1/config/{pid}: the SDK's run configuration."""

from __future__ import annotations

import time

from aiohttp import web

from server import keys
from server.auth import require_pid
from server.errors import BadRequest
from server.middleware import json_response
from server.store.base import ROLE_INGEST


def path_pid(request: web.Request) -> int:
    raw = request.match_info["pid"]
    if not raw.isdigit() or len(raw) > 10:
        raise BadRequest(f"The project id in the path must be a positive integer, got {raw!r}.")
    return int(raw)


async def get_config(request: web.Request) -> web.Response:
    pid = path_pid(request)
    project = await request.app[keys.KEYRING].project_for(request, ROLE_INGEST)
    require_pid(project, pid)
    return json_response(
        {
            "pid": project.pid,
            "batch_size": project.batch_size,
            "server_time": int(time.time() * 1000),
            "tracking_enabled": project.tracking_enabled,
            "max_batch_events": request.app[keys.CONFIG].max_batch_events,
        }
    )


def setup(app: web.Application) -> None:
    app.router.add_get("/v1/config/{pid}", get_config)
