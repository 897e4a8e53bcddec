"""Storage backends behind one port (server.store.base.Store)."""

from __future__ import annotations

from server.config import Config
from server.store.base import Store

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def make_store(config: Config) -> Store:
    """The backend the configuration asks for (not opened yet)."""
    if config.database_url:
        if not config.database_url.startswith(POSTGRES_SCHEMES):
            raise ValueError(
                "The database URL must start with postgresql:// or postgres://, "
                f"got {config.database_url.split(':', 1)[0]!r}."
            )
        from server.store.postgres import PostgresStore

        return PostgresStore(
            config.database_url,
            write_queue_events=config.write_queue_events,
            group_commit_events=config.group_commit_events,
            retry_after_s=config.retry_after_s,
        )
    from server.store.sqlite import SqliteStore

    return SqliteStore(
        config.db,
        write_queue_events=config.write_queue_events,
        group_commit_events=config.group_commit_events,
        retry_after_s=config.retry_after_s,
        cache_mib=config.sqlite_cache_mib,
    )
