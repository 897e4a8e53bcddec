"""WAL checkpoints run on their own thread, not in the ingest COMMIT."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from server.ingest import prepare_batch
from server.store.sqlite import SqliteStore
from server.store.sqlite_checkpoint import BACKSTOP_PAGES

SEED = Path(__file__).resolve().parents[2] / "fixtures" / "batches" / "seed_batch.json"


async def test_committed_pages_reach_the_database_file_without_the_writer(
    tmp_path: Path,
) -> None:
    path = tmp_path / "t.db"
    store = SqliteStore(str(path))
    await store.open()
    try:
        assert store._conn().execute("PRAGMA wal_autocheckpoint").fetchone() == (BACKSTOP_PAGES,)
        await store.create_project("main", pid=1)
        before = path.stat().st_size
        batch = prepare_batch(
            SEED.read_bytes(), max_events=1000, received_ms=int(time.time() * 1000),
            skew_limit_ms=10**12,
        )  # fmt: skip
        [result] = await store.ingest_group([batch])
        assert result.accepted == 11
        # The writer only checkpoints past BACKSTOP_PAGES of WAL, so a grown database file
        # means the checkpoint thread copied the commit into it.
        deadline = time.monotonic() + 5
        while path.stat().st_size == before and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert path.stat().st_size > before
    finally:
        await store.close()
