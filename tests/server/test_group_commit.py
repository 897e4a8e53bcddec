"""The group-commit writer: grouping, per-item failure, close drains the queue."""

from __future__ import annotations

import asyncio

import pytest

from server.errors import Overloaded
from server.store.group_commit import GroupCommitWriter, commit_or_split


def make_writer(write_group, max_queued: int, max_group: int) -> GroupCommitWriter[str, str]:
    writer: GroupCommitWriter[str, str] = GroupCommitWriter(
        write_group, max_queued=max_queued, max_group=max_group
    )
    writer.start()
    return writer


async def test_waiting_items_are_committed_together() -> None:
    groups: list[list[str]] = []
    gate = asyncio.Event()

    async def write_group(items):
        await gate.wait()
        groups.append(list(items))
        return [item.upper() for item in items]

    writer = make_writer(write_group, 100, 3)
    tasks = [asyncio.create_task(writer.submit(name, 1)) for name in "abcde"]
    await asyncio.sleep(0.01)
    gate.set()
    assert await asyncio.gather(*tasks) == ["A", "B", "C", "D", "E"]
    assert groups == [["a", "b", "c"], ["d", "e"]]
    await writer.close()


async def test_an_item_failing_alone_fails_only_its_request() -> None:
    async def write_group(items):
        return [ValueError(item) if item == "bad" else item for item in items]

    writer = make_writer(write_group, 10, 10)
    good = asyncio.create_task(writer.submit("good", 1))
    bad = asyncio.create_task(writer.submit("bad", 1))
    assert await good == "good"
    with pytest.raises(ValueError, match="bad"):
        await bad
    await writer.close()


async def test_a_failed_transaction_fails_every_request_of_the_group(caplog) -> None:
    async def write_group(items):
        raise OSError("disk full")

    writer = make_writer(write_group, 10, 10)
    results = await asyncio.gather(
        writer.submit("a", 1), writer.submit("b", 1), return_exceptions=True
    )
    assert [str(r) for r in results] == ["disk full", "disk full"]
    assert writer.queued == 0
    await writer.close()


async def test_close_commits_what_is_queued_then_refuses() -> None:
    done: list[str] = []

    async def write_group(items):
        await asyncio.sleep(0.01)
        done.extend(items)
        return list(items)

    writer = make_writer(write_group, 10, 1)
    tasks = [asyncio.create_task(writer.submit(x, 1)) for x in "xyz"]
    await asyncio.sleep(0)
    await writer.close()
    assert await asyncio.gather(*tasks) == ["x", "y", "z"]
    assert done == ["x", "y", "z"]
    with pytest.raises(Overloaded, match="shutting down"):
        await writer.submit("late", 1)


async def test_a_cancelled_request_is_still_written() -> None:
    gate = asyncio.Event()
    done: list[str] = []

    async def write_group(items):
        await gate.wait()
        done.extend(items)
        return list(items)

    writer = make_writer(write_group, 10, 10)
    task = asyncio.create_task(writer.submit("sent", 1))
    await asyncio.sleep(0.01)
    task.cancel()  # the client hung up
    gate.set()
    await writer.close()
    assert done == ["sent"]


async def test_commit_or_split_retries_a_failed_group_item_by_item() -> None:
    transactions: list[list[str]] = []

    async def commit(items):
        transactions.append(list(items))
        if "bad" in items:
            raise ValueError("bad row")
        return [item.upper() for item in items]

    results = await commit_or_split(commit, ["a", "bad", "b"], (ValueError,))
    assert results[0] == "A" and results[2] == "B"
    assert isinstance(results[1], ValueError) and str(results[1]) == "bad row"
    assert transactions == [["a", "bad", "b"], ["a"], ["bad"], ["b"]]
    with pytest.raises(ValueError, match="bad row"):  # alone, it simply fails
        await commit_or_split(commit, ["bad"], (ValueError,))
    with pytest.raises(ValueError, match="bad row"):  # not an item error: the group fails
        await commit_or_split(commit, ["a", "bad"], (OSError,))


async def test_a_group_is_answered_after_its_durable_step_while_the_next_commits() -> None:
    committed: list[list[str]] = []
    flushes: list[asyncio.Future[None]] = []

    async def write_group(items):
        committed.append(list(items))
        return [item.upper() for item in items]

    def durable() -> asyncio.Future[None]:  # called right after each group's commit
        flushes.append(asyncio.get_running_loop().create_future())
        return flushes[-1]

    writer: GroupCommitWriter[str, str] = GroupCommitWriter(
        write_group, max_queued=10, max_group=1, durable=durable
    )
    writer.start()
    first = asyncio.create_task(writer.submit("a", 1))
    second = asyncio.create_task(writer.submit("b", 1))
    await asyncio.sleep(0.01)
    assert committed == [["a"], ["b"]] and len(flushes) == 2  # b committed, a not yet durable
    assert not first.done() and not second.done()
    flushes[1].set_result(None)
    assert await second == "B"
    assert not first.done()
    flushes[0].set_exception(OSError("fsync failed"))
    with pytest.raises(OSError, match="fsync failed"):
        await first
    third = asyncio.create_task(writer.submit("c", 1))
    await asyncio.sleep(0.01)
    closing = asyncio.create_task(writer.close())
    await asyncio.sleep(0.01)
    assert committed[-1] == ["c"] and not closing.done()  # close waits for "c" to be durable
    flushes[2].set_result(None)
    await closing
    assert await third == "C"
