"""One writer task that commits the items of every waiting request in one transaction."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from server.errors import Overloaded, ServiceError

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger(__name__)

# write_group(items) -> one result per item, or an exception instance for an item that failed
# on its own (the others are still committed).
WriteGroup = Callable[[Sequence[T]], Awaitable[Sequence[R | BaseException]]]
# commit(items) -> one result per item, all in one transaction; raises if nothing was stored.
Commit = Callable[[Sequence[T]], Awaitable[Sequence[R]]]
# durable() -> called right after a group's commit; the awaitable it returns completes once
# that commit is on disk, or raises.
Durable = Callable[[], Awaitable[None]]


async def commit_or_split(
    commit: Commit[T, R], items: Sequence[T], item_errors: tuple[type[Exception], ...]
) -> list[R | BaseException]:
    """A WriteGroup from an all-or-nothing `commit`: the group in one transaction, and when
    that fails with one of `item_errors` (something in an item: a constraint, bad data), each
    item in a transaction of its own, so only the item at fault fails. Rare; other errors
    (the database is gone) fail the whole group at once.
    """
    try:
        return [*await commit(items)]
    except item_errors:
        if len(items) == 1:
            raise
    results: list[R | BaseException] = []
    for item in items:
        try:
            results.extend(await commit([item]))
        except item_errors as exc:
            results.append(exc)
    return results


class GroupCommitWriter(Generic[T, R]):
    """Queue of (item, future); the loop takes as many as fit a group and commits them together.

    A request is answered only after the transaction holding its item has committed, and, with
    a `durable` step (a commit that returns before its fsync), after that step: the next group
    is committed meanwhile, so the writer never waits for the disk. The queue is bounded by the
    total size of waiting items: past it, `submit` refuses at once (503) and the item is never
    stored.
    """

    def __init__(
        self,
        write_group: WriteGroup[T, R],
        *,
        max_queued: int,
        max_group: int,
        retry_after_s: int = 1,
        durable: Durable | None = None,
    ) -> None:
        self._write_group = write_group
        self._durable = durable
        self._settling: set[asyncio.Task[None]] = set()  # groups waiting for `durable`
        self._max_queued = max_queued
        self._max_group = max_group
        self._retry_after_s = retry_after_s
        self._queue: deque[tuple[T, int, asyncio.Future[R]]] = deque()
        self._queued = 0
        self._wakeup = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="tapzone-writer")

    @property
    def queued(self) -> int:
        return self._queued

    async def submit(self, item: T, size: int) -> R:
        if self._closing:
            raise Overloaded(
                "The server is shutting down; retry later.",
                headers={"Retry-After": str(self._retry_after_s)},
            )
        if self._queued and self._queued + size > self._max_queued:
            raise Overloaded(
                "The write queue is full; retry later.",
                headers={"Retry-After": str(self._retry_after_s)},
            )
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, size, future))
        self._queued += size
        self._wakeup.set()
        # Shielded: a client that hangs up must not cancel the write of what it already sent.
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            # Nobody waits for the outcome any more: drop it (the write itself goes on), so a
            # failure is not set on a future no one reads and logged as lost.
            future.cancel()
            raise

    async def close(self) -> None:
        """Stop taking items, commit everything queued, stop the loop."""
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
        while self._settling:
            await asyncio.wait(self._settling)

    async def _run(self) -> None:
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            group: list[tuple[T, int, asyncio.Future[R]]] = []
            total = 0
            while self._queue and (not group or total + self._queue[0][1] <= self._max_group):
                entry = self._queue.popleft()
                group.append(entry)
                total += entry[1]
            try:
                results = await self._write_group([item for item, _, _ in group])
            except ServiceError as exc:  # a reply of its own (a full disk): one line
                log.error("group commit of %d items failed: %s", len(group), exc.message)
                results = [exc] * len(group)
            except Exception as exc:  # the whole transaction failed: nothing of it is stored
                log.exception("group commit of %d items failed", len(group))
                results = [exc] * len(group)
            finally:
                self._queued -= total
            futures = [future for _, _, future in group]
            if self._durable is None or all(isinstance(r, BaseException) for r in results):
                _answer(futures, results)
                continue
            settle = asyncio.create_task(_answer_when(self._durable(), futures, results))
            self._settling.add(settle)
            settle.add_done_callback(self._settling.discard)


async def _answer_when(
    durable: Awaitable[None],
    futures: list[asyncio.Future[R]],
    results: Sequence[R | BaseException],
) -> None:
    try:
        await durable
    except Exception as exc:  # committed, but not known to be on disk: not acknowledged
        results = [exc] * len(futures)
    _answer(futures, results)


def _answer(futures: list[asyncio.Future[R]], results: Sequence[R | BaseException]) -> None:
    for future, result in zip(futures, results, strict=True):
        if future.done():
            continue
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)
