"""Screen names from SDK urls: the `title` query parameter, else the path."""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import parse_qs, unquote, urlsplit


@lru_cache(maxsize=65_536)
def screen_name(url: str) -> str:
    """`app-and://id/main?title=Sales` -> `Sales`; without a title, the path (`/main`)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    titles = parse_qs(parts.query).get("title")
    if titles and titles[0]:
        return titles[0]
    return unquote(parts.path) or parts.netloc or url
