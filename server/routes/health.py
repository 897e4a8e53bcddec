"""GET /healthz: 200 when the store answers, 503 otherwise."""

from __future__ import annotations

import asyncio

from aiohttp import web

from server import keys
from server.errors import Overloaded
from server.middleware import json_response

PING_TIMEOUT_S = 2.0


async def healthz(request: web.Request) -> web.Response:
    try:
        ok = await asyncio.wait_for(request.app[keys.STORE].ping(), PING_TIMEOUT_S)
    except TimeoutError:
        ok = False
    if not ok:
        raise Overloaded("The store does not answer.")
    return json_response({"status": "ok"})


def setup(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
