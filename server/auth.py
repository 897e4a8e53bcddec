"""Bearer keys: which project and which role a key opens."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from server.errors import Unauthorized
from server.store.base import ROLE_INGEST, ROLE_READ, Project, Store

# One message for every refusal, so a caller learns nothing about which pids exist.
DENIED = "The key is missing, unknown, or not allowed for this project."


class KeyRing:
    """Keys of all projects, cached; a miss reloads from the store at most once a second."""

    def __init__(self, store: Store, *, refresh_s: float = 1.0) -> None:
        self._store = store
        self._refresh_s = refresh_s
        self._keys: dict[str, tuple[str, Project]] = {}
        self._loaded_at = float("-inf")
        self._lock = asyncio.Lock()

    async def load(self) -> None:
        projects = await self._store.list_projects()
        keys: dict[str, tuple[str, Project]] = {}
        for project in projects:
            keys[project.ingest_key] = (ROLE_INGEST, project)
            keys[project.read_key] = (ROLE_READ, project)
        self._keys = keys
        self._loaded_at = time.monotonic()

    async def lookup(self, key: str) -> tuple[str, Project] | None:
        found = self._keys.get(key)
        if found is None and time.monotonic() - self._loaded_at >= self._refresh_s:
            async with self._lock:
                if time.monotonic() - self._loaded_at >= self._refresh_s:
                    await self.load()
            found = self._keys.get(key)
        return found

    async def project_for(self, request: web.Request, role: str) -> Project:
        """The project the request's key opens in this role; 401 otherwise."""
        header = request.headers.get("Authorization", "")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise Unauthorized(DENIED)
        found = await self.lookup(key.strip())
        if found is None or found[0] != role:
            raise Unauthorized(DENIED)
        return found[1]


def require_pid(project: Project, pid: int) -> None:
    """401 when the key's project is not the one the request names."""
    if project.pid != pid:
        raise Unauthorized(DENIED)
