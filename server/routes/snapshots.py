"""POST /v1/snapshots: resolve a view hierarchy, store it and its target map, list the targets."""

from __future__ import annotations

from aiohttp import web

from server import keys
from server.auth import require_pid
from server.body import read_json_body
from server.middleware import json_response
from server.snapshots import resolve_snapshot
from server.store.base import ROLE_INGEST


async def post_snapshot(request: web.Request) -> web.Response:
    app = request.app
    config = app[keys.CONFIG]
    project = await app[keys.KEYRING].project_for(request, ROLE_INGEST)
    body = await read_json_body(request, config)
    snapshot = resolve_snapshot(
        body, max_depth=config.max_snapshot_depth, max_nodes=config.max_snapshot_nodes
    )
    require_pid(project, snapshot.pid)
    snapshot_id = await app[keys.STORE].save_snapshot(snapshot, body)
    return json_response(
        {
            "snapshot": str(snapshot_id),
            "targets": [
                {"path": t.path, "target": t.target, "kind": t.kind} for t in snapshot.targets
            ],
        }
    )


def setup(app: web.Application) -> None:
    app.router.add_post("/v1/snapshots", post_snapshot)
