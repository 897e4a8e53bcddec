"""The one error middleware: every non-2xx reply is {"status": int, "error": "one sentence"}."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import msgspec
from aiohttp import web

from server.errors import ServiceError

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_ENCODER = msgspec.json.Encoder()


def json_response(
    data: object, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=_ENCODER.encode(data),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    return json_response({"status": status, "error": message}, status=status, headers=headers)


def _http_message(exc: web.HTTPException, request: web.Request) -> str:
    if exc.status == 404:
        return f"No route for {request.method} {request.path}."
    if exc.status == 405:
        return f"Method {request.method} is not allowed on {request.path}."
    if exc.status == 413:
        return "The request body is too large."
    return f"{exc.reason}."


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except ServiceError as exc:
        return error_response(exc.status, exc.message, exc.headers)
    except msgspec.DecodeError as exc:
        return error_response(400, f"Invalid request: {exc}.")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(exc.status, _http_message(exc, request))
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "Internal server error.")
    return response
