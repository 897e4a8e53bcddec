"""Reading a JSON request body within limits, inflating gzip without ever exceeding them."""

from __future__ import annotations

import zlib

from aiohttp import web

from server.config import Config
from server.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

_CHUNK = 64 * 1024


async def read_json_body(request: web.Request, config: Config) -> bytes:
    """The body as JSON bytes: 415 for other types or encodings, 413 past a limit."""
    content_type = request.headers.get("Content-Type", "")
    if content_type.split(";", 1)[0].strip().lower() != "application/json":
        raise UnsupportedMediaType(
            f"Content-Type must be application/json, got {content_type or 'none'!r}."
        )
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip"):
        raise UnsupportedMediaType(
            f"Content-Encoding must be gzip or identity, got {encoding!r}."
        )
    limit = config.max_body_bytes
    too_large = PayloadTooLarge(f"The request body is larger than {limit} bytes.")
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    body = bytearray()
    async for chunk in request.content.iter_chunked(_CHUNK):
        body += chunk
        if len(body) > limit:
            raise too_large
    if encoding == "gzip":
        return inflate(bytes(body), config.max_inflated_bytes)
    return bytes(body)


def inflate(data: bytes, limit: int) -> bytes:
    """Gunzip `data`, refusing (413) as soon as the output would pass `limit` bytes."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    out = bytearray()
    pending = data
    try:
        while pending:
            out += inflater.decompress(pending, limit + 1 - len(out))
            if len(out) > limit:
                raise PayloadTooLarge(f"The inflated request body is larger than {limit} bytes.")
            pending = inflater.unconsumed_tail
            if inflater.eof:
                break
        if not inflater.eof:
            raise BadRequest("The gzip body is truncated.")
    except zlib.error as exc:
        raise BadRequest(f"The body is not valid gzip: {exc}.") from None
    return bytes(out)
