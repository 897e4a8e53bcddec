"""Cleaning of class and view-controller names, and the per-platform choice of identifiers."""

from __future__ import annotations

from typing import Literal, cast

from targets.node import Node

Platform = Literal["ios", "android"]
PLATFORMS: tuple[Platform, ...] = ("ios", "android")

# Characters a class name inside a target string may not contain: they delimit components.
CLASS_FORBIDDEN = frozenset("[]>:\\")
_OPENERS = "<("
_CLOSERS = ">)"


def check_platform(platform: str) -> Platform:
    """Return ``platform`` typed as a `Platform`, or raise ValueError naming the valid ones."""
    if platform not in PLATFORMS:
        raise ValueError(f"Unknown platform {platform!r}; expected 'ios' or 'android'")
    return cast(Platform, platform)


def _sanitize(name: str, forbidden: frozenset[str]) -> str:
    if not any(ch in forbidden for ch in name):
        return name
    return "".join("_" if ch in forbidden else ch for ch in name)


def clean_class_name(raw: str) -> str:
    """Drop the module prefix and the generic suffix from a class name.

    ``Shop.ProductCell<Shop.Item>`` -> ``ProductCell``: the name is what follows the last
    ``.`` outside ``<...>`` and ``(...)``, cut at its first ``<``. Characters that delimit
    target components (``[ ] > : \\``) become ``_``. A name that cleans to nothing (``Foo.``,
    ``<T>``) falls back to the raw name with those characters replaced.
    """
    depth = 0
    start = 0
    for i, ch in enumerate(raw):
        if ch in _OPENERS:
            depth += 1
        elif ch in _CLOSERS:
            depth = max(0, depth - 1)
        elif ch == "." and depth == 0:
            start = i + 1
    name = raw[start:]
    cut = name.find("<")
    if cut != -1:
        name = name[:cut]
    name = _sanitize(name, CLASS_FORBIDDEN)
    return name or _sanitize(raw, CLASS_FORBIDDEN)


_VC_FORBIDDEN = CLASS_FORBIDDEN | {"."}


def clean_vc(raw: str | None) -> str | None:
    """Clean a view-controller name like a class name; it never contains ``.`` afterwards."""
    if not raw:
        return None
    return _sanitize(clean_class_name(raw), _VC_FORBIDDEN)


def identifier(node: Node, platform: Platform) -> tuple[Literal["ai", "rid"], str] | None:
    """A node's short-target identifier: ``("ai", ...)`` on iOS, ``("rid", ...)`` on Android."""
    if platform == "ios":
        return ("ai", node.ai) if node.ai else None
    return ("rid", node.rid) if node.rid else None


def anchor(node: Node, platform: Platform) -> tuple[Literal["ri", "tg"], str] | None:
    """The long-target attribute of a node: its restoration identifier (iOS only), else its tag."""
    if platform == "ios" and node.ri:
        return ("ri", node.ri)
    if node.tag:
        return ("tg", str(node.tag))
    return None


def plain_segment(node: Node) -> str:
    """One node's part of a computed plain path: the raw ``cls``, ``#rid`` if any, then ``>``."""
    if node.rid:
        return f"{node.cls}#{node.rid}>"
    return f"{node.cls}>"
