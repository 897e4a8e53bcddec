"""Finding, in another snapshot of the same screen, the node(s) a reliable target names."""

from __future__ import annotations

from collections import Counter

from targets._names import (
    Platform,
    check_platform,
    clean_class_name,
    clean_vc,
    identifier,
    plain_segment,
)
from targets._steps import long_step
from targets.format import ROOT, Component, Target
from targets.node import Node
from targets.parse import parse_target


def match_target(target: str | Target, other_root: Node, platform: str = "ios") -> list[Node]:
    """The nodes of ``other_root`` that ``target`` names, in depth-first pre-order.

    A node matches when resolving ``other_root`` would give it the same target before
    disambiguation: a short target by cleaned class, view controller and identifier; a long
    target by walking its steps from the top view (``ri``/``tg`` steps by attribute, ``:eq(i)``
    steps by index among same-class siblings); a plain path by equal plain path. A final
    ``:eq(n)`` keeps only the n-th match (none if there are fewer), otherwise every match is
    returned, so an empty list means "gone" and several mean "ambiguous here". Raises
    `TargetSyntaxError` for a malformed target string.
    """
    plat = check_platform(platform)
    parsed = parse_target(target) if isinstance(target, str) else target
    if parsed.kind == "path":
        return [node for node, path in _plain_paths(other_root) if path == parsed.path]
    if parsed.kind == "ai":
        matches = _short_matches(parsed.components[0], other_root, plat)
    else:
        matches = _long_matches(parsed.components, other_root, plat)
    if parsed.eq is None:
        return matches
    return [matches[parsed.eq]] if parsed.eq < len(matches) else []


def _plain_paths(root: Node) -> list[tuple[Node, str]]:
    out: list[tuple[Node, str]] = []
    stack: list[tuple[Node, str]] = [(root, f"{ROOT}>")]
    while stack:
        node, parent_plain = stack.pop()
        plain = parent_plain + plain_segment(node)
        out.append((node, node.path or plain))
        stack.extend((child, plain) for child in reversed(node.children))
    return out


def _short_matches(step: Component, root: Node, platform: Platform) -> list[Node]:
    wanted = (step.attr, step.value)
    out: list[Node] = []
    stack: list[tuple[Node, str | None]] = [(root, None)]
    while stack:
        node, parent_vc = stack.pop()
        vc = clean_vc(node.vc) or parent_vc
        if (
            identifier(node, platform) == wanted
            and vc == step.vc
            and clean_class_name(node.cls) == step.cls
        ):
            out.append(node)
        stack.extend((child, vc) for child in reversed(node.children))
    return out


def _long_matches(steps: tuple[Component, ...], root: Node, platform: Platform) -> list[Node]:
    # Level by level, parents kept in pre-order, so the matches come out in pre-order.
    parents: list[tuple[tuple[Node, ...], str | None]] = [((root,), None)]
    matched: list[tuple[Node, str | None]] = []
    for step in steps:
        matched = []
        for children, parent_vc in parents:
            seen: Counter[str] = Counter()
            for child in children:
                cls = clean_class_name(child.cls)
                index = seen[cls]
                seen[cls] += 1
                if cls != step.cls:
                    continue
                vc = clean_vc(child.vc) or parent_vc
                if long_step(child, cls, vc, index, platform) == step:
                    matched.append((child, vc))
        parents = [(node.children, vc) for node, vc in matched]
    # A node with an identifier resolves to a short target, not to this long one.
    return [node for node, _ in matched if identifier(node, platform) is None]
