"""A lean HTTP/1.1 keep-alive load generator for the ingest bench.

The generator shares the two cores with the server it measures, so every microsecond it
spends per request is taken from the server. aiohttp's client cost about 220 µs of CPU per
request (4 µs per event); this one sends pre-built request bytes on raw asyncio connections
and parses only the status line and Content-Length of each reply, like wrk does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Iterator


def post_requests(host: str, path: str, key: str, bodies: Iterable[bytes]) -> Iterator[bytes]:
    """Each body as the full bytes of one keep-alive POST."""
    for body in bodies:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        yield head.encode() + body


class _Connection(asyncio.Protocol):
    """One keep-alive connection: one request in flight at a time."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiter: asyncio.Future[int] | None = None
        self._lost: Exception | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = exc or ConnectionError("the server closed the connection")
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(self._lost)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0 or self._waiter is None:
            return
        head = bytes(self._buffer[:end]).decode("latin-1").split("\r\n")
        length = next(
            (int(line.split(":", 1)[1]) for line in head[1:]
             if line.lower().startswith("content-length:")),
            None,
        )  # fmt: skip
        if length is None:
            self._waiter.set_exception(RuntimeError(f"no Content-Length in reply: {head[0]}"))
            return
        if len(self._buffer) < end + 4 + length:
            return
        del self._buffer[: end + 4 + length]
        self._waiter.set_result(int(head[0].split(" ", 2)[1]))

    async def request(self, data: bytes) -> int:
        """Send one request; its reply's status."""
        if self._lost is not None:
            raise self._lost
        assert self._transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self._transport.write(data)
        return await self._waiter

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


async def connect(host: str, port: int) -> _Connection:
    loop = asyncio.get_running_loop()
    _, conn = await loop.create_connection(_Connection, host, port)
    return conn


async def closed_loop(
    host: str, port: int, requests: list[bytes], clients: int
) -> tuple[float, list[float]]:
    """`clients` connections each sending the next request when its reply came; returns
    (elapsed seconds, latency of each request). Any status but 200 is an error."""
    conns = [await connect(host, port) for _ in range(clients)]
    latencies: list[float] = []
    queue = iter(requests)

    async def client(conn: _Connection) -> None:
        for data in queue:
            start = time.perf_counter()
            status = await conn.request(data)
            if status != 200:
                raise RuntimeError(f"status {status}")
            latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    try:
        await asyncio.gather(*(client(conn) for conn in conns))
    finally:
        for conn in conns:
            conn.close()
    return time.perf_counter() - start, latencies


async def open_loop(
    host: str, port: int, requests: list[bytes], interval_s: float, connections: int
) -> list[float]:
    """Send a request every `interval_s` whether or not earlier ones were answered (a new
    connection when all are busy); the latency of each."""
    idle = [await connect(host, port) for _ in range(connections)]
    latencies: list[float] = []

    async def one(data: bytes, due: float) -> None:
        conn = idle.pop() if idle else await connect(host, port)
        status = await conn.request(data)
        # From when it was due, not when it went out: a late send is the server's delay too.
        latencies.append(time.perf_counter() - due)
        idle.append(conn)
        if status != 200:
            raise RuntimeError(f"status {status}")

    tasks = []
    t0 = time.perf_counter()
    for i, data in enumerate(requests):
        due = t0 + i * interval_s
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(data, due)))
    try:
        await asyncio.gather(*tasks)
    finally:
        for conn in idle:
            conn.close()
    return latencies
