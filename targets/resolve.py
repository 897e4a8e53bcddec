"""Resolution: the reliable target of every node of a snapshot (SPEC §6)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Literal

from targets._names import check_platform, clean_class_name, clean_vc, identifier, plain_segment
from targets._steps import long_step
from targets.format import ROOT, Component, format_component
from targets.node import Node

ResolvedKind = Literal["ai", "ri", "tg", "path"]


@dataclass(frozen=True, slots=True)
class ResolvedTarget:
    """The reliable target of one node.

    ``path`` is the node's plain path (tvp), ``target`` its reliable target (the plain path
    itself when ``kind`` is ``"path"``), ``kind`` one of ``ai`` (short target; on Android the
    ``rid`` short target too), ``ri``/``tg`` (long target), ``path`` (none).
    """

    path: str
    target: str
    kind: ResolvedKind
    node: Node


@dataclass(frozen=True, slots=True)
class _Context:
    """What a node inherits from its ancestors."""

    vc: str | None
    plain: str  # the parent's computed plain path, ending in ">"
    long: str  # the parent's long target prefix, starting with "[root]"
    anchored: bool  # an ancestor has a restoration identifier or a tag
    used_ri: bool  # an ancestor's step uses a restoration identifier


_TOP = _Context(vc=None, plain=f"{ROOT}>", long=ROOT, anchored=False, used_ri=False)


def resolve_tree(root: Node, platform: str = "ios") -> list[ResolvedTarget]:
    """Resolve every node of a tree, in depth-first pre-order (the root first).

    Rules (SPEC §6): an identifier (``ai``; ``rid`` on Android) gives a short target
    ``Class[ai:VC.identifier]``; else, when the node or an ancestor has a restoration
    identifier (iOS only) or a tag, a long target ``[root]>step>...``; else its plain path.
    Nodes that would share a target string get ``:eq(n)`` appended, ``n`` counting them in
    pre-order. Never recurses.
    """
    plat = check_platform(platform)
    entries: list[tuple[Node, str, str, ResolvedKind]] = []
    stack: list[tuple[Node, str, int, _Context]] = [(root, clean_class_name(root.cls), 0, _TOP)]
    while stack:
        node, cls, index, ctx = stack.pop()
        vc = clean_vc(node.vc) or ctx.vc
        plain = ctx.plain + plain_segment(node)
        step = long_step(node, cls, vc, index, plat)
        long = f"{ctx.long}>{format_component(step)}"
        anchored = ctx.anchored or step.attr is not None
        used_ri = ctx.used_ri or step.attr == "ri"
        path = node.path or plain
        ident = identifier(node, plat)
        kind: ResolvedKind
        if ident is not None:
            target = format_component(Component(cls, ident[0], vc, ident[1]))
            kind = "ai"
        elif anchored:
            target, kind = long, ("ri" if used_ri else "tg")
        else:
            target, kind = path, "path"
        entries.append((node, path, target, kind))
        if node.children:
            child_ctx = _Context(vc, plain, long, anchored, used_ri)
            seen: Counter[str] = Counter()
            pushed: list[tuple[Node, str, int, _Context]] = []
            for child in node.children:
                child_cls = clean_class_name(child.cls)
                pushed.append((child, child_cls, seen[child_cls], child_ctx))
                seen[child_cls] += 1
            stack.extend(reversed(pushed))
    return _disambiguate(entries)


def _disambiguate(entries: list[tuple[Node, str, str, ResolvedKind]]) -> list[ResolvedTarget]:
    """Append ``:eq(n)`` to reliable targets that several nodes share (plain paths stay)."""
    counts = Counter(target for _, _, target, kind in entries if kind != "path")
    order: Counter[str] = Counter()
    resolved: list[ResolvedTarget] = []
    for node, path, target, kind in entries:
        if kind != "path" and counts[target] > 1:
            n = order[target]
            order[target] += 1
            target = f"{target}:eq({n})"
        resolved.append(ResolvedTarget(path=path, target=target, kind=kind, node=node))
    return resolved
