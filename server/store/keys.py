"""Project API keys: random, 192 bits, URL-safe, with a prefix that tells their role."""

from __future__ import annotations

import secrets

INGEST_PREFIX = "tzi_"
READ_PREFIX = "tzr_"


def new_keys() -> tuple[str, str]:
    """(ingest_key, read_key)."""
    return INGEST_PREFIX + secrets.token_urlsafe(24), READ_PREFIX + secrets.token_urlsafe(24)
