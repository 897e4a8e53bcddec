"""GET /v1/config/{pid}: the SDK's run configuration."""

from __future__ import annotations

import re
import time

from aiohttp import web

from server import keys
from server.auth import require_pid
from server.errors import BadRequest
from server.middleware import json_response
from server.schema import MAX_PID
from server.store.base import ROLE_INGEST

# ASCII digits only: str.isdigit() also takes "²" (which int() refuses) and "１" or "١"
# (which int() reads as 1), so those were a 500 or project 1.
_PID = re.compile(r"[0-9]{1,10}")


def path_pid(request: web.Request) -> int:
    raw = request.match_info["pid"]
    if not _PID.fullmatch(raw) or not 1 <= int(raw) <= MAX_PID:
        raise BadRequest(
            f"The project id in the path must be an integer from 1 to {MAX_PID}, got {raw!r}."
        )
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
