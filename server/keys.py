"""Typed application keys shared by the app factory, the routes and the tests."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from server.auth import KeyRing
    from server.config import Config
    from server.store.base import Store

CONFIG: web.AppKey[Config] = web.AppKey("config")
STORE: web.AppKey[Store] = web.AppKey("store")
KEYRING: web.AppKey[KeyRing] = web.AppKey("keyring")
