"""GET /v1/projects/{pid}/zoning: what people did with each element of one screen."""

from __future__ import annotations

from aiohttp import web

from server import keys
from server.auth import require_pid
from server.errors import BadRequest
from server.middleware import json_response
from server.routes.config import path_pid
from server.store.base import ROLE_READ
from server.zoning import parse_query

# The query parameters parse_query reads; the others are ignored.
PARAMETERS = ("screen", "from", "to", "av", "dt")


async def get_zoning(request: web.Request) -> web.Response:
    pid = path_pid(request)
    project = await request.app[keys.KEYRING].project_for(request, ROLE_READ)
    require_pid(project, pid)
    for name in PARAMETERS:  # `?screen=a&screen=b` is ambiguous: not the first of them
        if (given := len(request.query.getall(name, ()))) > 1:
            raise BadRequest(f"The query parameter `{name}` is given {given} times; give it once.")
    query = parse_query(pid, request.query)
    report = await request.app[keys.STORE].zoning(query)
    return json_response(report)


def setup(app: web.Application) -> None:
    app.router.add_get("/v1/projects/{pid}/zoning", get_zoning)
