"""The step a node contributes to a long target."""

from __future__ import annotations

from targets._names import Platform, anchor
from targets.format import Component
from targets.node import Node


def long_step(node: Node, cls: str, vc: str | None, index: int, platform: Platform) -> Component:
    """``cls[ri:vc.ri]`` (iOS), else ``cls[tg:tag]``, else ``cls:eq(index)``.

    ``cls`` is the node's cleaned class, ``vc`` its effective cleaned view controller and
    ``index`` its 0-based index among its parent's children of the same cleaned class.
    """
    own = anchor(node, platform)
    if own is None:
        return Component(cls, index=index)
    if own[0] == "ri":
        return Component(cls, "ri", vc, own[1])
    return Component(cls, "tg", None, own[1])
