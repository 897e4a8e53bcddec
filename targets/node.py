"""Snapshot nodes, and building them from a plain JSON tree with validation and limits."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

DEFAULT_MAX_DEPTH = 256
DEFAULT_MAX_NODES = 50_000
# Paths and long targets grow with depth: 50,000 nodes under a 256-deep chain would make a
# ~1 MB snapshot resolve to ~500 M characters. This bounds the resolver's output instead.
DEFAULT_MAX_OUTPUT_CHARS = 64_000_000

_TAG_MIN = -(2**63)
_TAG_MAX = 2**63 - 1
_PLAIN_PATH_START = "[root]>"


@dataclass(frozen=True, slots=True, eq=False, kw_only=True)
class Node:
    """One view of a snapshot.

    Built by `build_tree`, which stores empty strings and tag 0 as ``None`` (absent). Nodes
    compare and hash by identity; ``repr`` does not recurse, so any depth is safe to print.
    """

    cls: str
    vc: str | None = None
    ai: str | None = None
    ri: str | None = None
    rid: str | None = None
    tag: int | None = None
    path: str | None = None
    frame: tuple[float, float, float, float] | None = None
    children: tuple[Node, ...] = ()

    def __repr__(self) -> str:
        parts = [f"cls={self.cls!r}"]
        for name in ("vc", "ai", "ri", "rid", "tag"):
            value = getattr(self, name)
            if value is not None:
                parts.append(f"{name}={value!r}")
        parts.append(f"children={len(self.children)}")
        return f"Node({', '.join(parts)})"


class TreeError(ValueError):
    """A snapshot tree that cannot be accepted; ``path`` is the JSON path of the culprit."""

    def __init__(self, message: str, path: str):
        super().__init__(message)
        self.message = message
        self.path = path


class TreeTooLargeError(TreeError):
    """The tree is valid JSON but deeper or larger than the configured limits."""


def is_plain_path(text: str) -> bool:
    """True for a plain path (``tvp``): ``[root]>`` then at least one character, ending in ``>``."""
    return (
        len(text) > len(_PLAIN_PATH_START)
        and text.startswith(_PLAIN_PATH_START)
        and text.endswith(">")
    )


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


class _Builder:
    """Validates a tree in pre-order with an explicit stack, then builds nodes bottom-up."""

    def __init__(self, prefix: str, max_depth: int, max_nodes: int, max_output_chars: int | None):
        self.prefix = prefix
        self.max_depth = max_depth
        self.max_nodes = max_nodes
        self.max_output_chars = max_output_chars
        self.output_chars = 0
        # Per entry: upper bounds of its computed plain path and long target lengths, and the
        # length of its (inherited) view controller name; see `charge`.
        self.sizes: list[tuple[int, int, int]] = []
        # Per accepted entry, in pre-order: link to its parent (entry index, child position).
        self.links: list[tuple[int, int]] = []
        self.fields: list[dict[str, Any]] = []
        self.kids: list[list[int]] = []

    def segments(self, parent: int, position: int) -> list[str]:
        """JSON path segments of the child at ``position`` of entry ``parent`` (-1: the root)."""
        segments: list[str] = []
        while position != -1:
            segments.append(f".children[{position}]")
            parent, position = self.links[parent]
        segments.append(self.prefix)
        segments.reverse()
        return segments

    def path(self, parent: int, position: int) -> str:
        return "".join(self.segments(parent, position))

    def fail(self, message: str, parent: int, position: int, key: str = "") -> TreeError:
        path = self.path(parent, position) + key
        return TreeError(f"{message} - at `{path}`", path)

    def build(self, obj: object) -> Node:
        stack: list[tuple[object, int, int, int]] = [(obj, -1, -1, 1)]
        count = 1
        while stack:
            value, parent, position, depth = stack.pop()
            index = len(self.fields)
            fields, children = self.validate(value, parent, position)
            if children:
                if depth >= self.max_depth:
                    segments = self.segments(parent, position) + [".children[0]"]
                    path = "".join(segments)
                    raise TreeTooLargeError(
                        f"The view hierarchy is deeper than {self.max_depth} levels"
                        f" - at `{_shorten(segments)}`",
                        path,
                    )
                count += len(children)
                if count > self.max_nodes:
                    raise TreeTooLargeError(
                        f"The view hierarchy has more than {self.max_nodes} nodes", self.prefix
                    )
                for child_position in range(len(children) - 1, -1, -1):
                    stack.append((children[child_position], index, child_position, depth + 1))
            self.charge(fields, parent)
            self.links.append((parent, position))
            self.fields.append(fields)
            self.kids.append([])
            if parent != -1:
                self.kids[parent].append(index)
        # Children come after their parent in pre-order: build from the last entry back.
        built: dict[int, Node] = {}
        for index in range(len(self.fields) - 1, -1, -1):
            children_nodes = tuple(built.pop(k) for k in self.kids[index])
            built[index] = Node(**self.fields[index], children=children_nodes)
        return built[0]

    def charge(self, fields: dict[str, Any], parent: int) -> None:
        """Add an upper bound of the node's resolved path + target length to the total."""
        plain, long, vc = self.sizes[parent] if parent != -1 else (len("[root]>"), 6, 0)
        cls, rid, ri, ai = (len(fields[k] or "") for k in ("cls", "rid", "ri", "ai"))
        vc = len(fields["vc"]) if fields["vc"] else vc
        plain += cls + rid + 2
        # a step is `Cls:eq(i)`, `Cls[tg:N]` or `Cls[ri:VC.id]`; escaping at most doubles `id`
        long += 1 + cls + 16 + (2 * ri + vc + 6 if ri else 0) + (24 if fields["tag"] else 0)
        short = cls + 2 * max(ai, rid) + vc + 8
        path = len(fields["path"]) if fields["path"] else plain
        self.sizes.append((plain, long, vc))
        self.output_chars += path + max(long, short) + 16  # 16: a final `:eq(n)`
        if self.max_output_chars is not None and self.output_chars > self.max_output_chars:
            raise TreeTooLargeError(
                "The view hierarchy is too large: its paths and targets would exceed"
                f" {self.max_output_chars} characters",
                self.prefix,
            )

    def validate(
        self, value: object, parent: int, position: int
    ) -> tuple[dict[str, Any], list[object]]:
        if not isinstance(value, dict):
            raise self.fail(f"Expected `object`, got `{_json_type(value)}`", parent, position)
        if "cls" not in value:
            raise self.fail("Object missing required field `cls`", parent, position)
        cls = value["cls"]
        if not isinstance(cls, str):
            raise self.fail(f"Expected `str`, got `{_json_type(cls)}`", parent, position, ".cls")
        if not cls:
            raise self.fail("Expected `str` of length >= 1", parent, position, ".cls")
        fields: dict[str, Any] = {"cls": cls}
        for key in ("vc", "ai", "ri", "rid", "path"):
            item = value.get(key)
            if item is not None and not isinstance(item, str):
                message = f"Expected `str | null`, got `{_json_type(item)}`"
                raise self.fail(message, parent, position, f".{key}")
            fields[key] = item or None
        if fields["path"] is not None and not is_plain_path(fields["path"]):
            message = "Expected a plain path that starts with `[root]>` and ends with `>`"
            raise self.fail(message, parent, position, ".path")
        fields["tag"] = self.tag(value.get("tag"), parent, position)
        fields["frame"] = self.frame(value.get("frame"), parent, position)
        children = value.get("children")
        if children is None:
            return fields, []
        if not isinstance(children, list):
            message = f"Expected `array | null`, got `{_json_type(children)}`"
            raise self.fail(message, parent, position, ".children")
        return fields, children

    def tag(self, tag: object, parent: int, position: int) -> int | None:
        if tag is None:
            return None
        if isinstance(tag, bool) or not isinstance(tag, int):
            message = f"Expected `int | null`, got `{_json_type(tag)}`"
            raise self.fail(message, parent, position, ".tag")
        if not _TAG_MIN <= tag <= _TAG_MAX:
            raise self.fail("Expected `int` that fits in 64 bits", parent, position, ".tag")
        return tag or None

    def frame(
        self, frame: object, parent: int, position: int
    ) -> tuple[float, float, float, float] | None:
        if frame is None:
            return None
        if not isinstance(frame, list):
            message = f"Expected `array | null`, got `{_json_type(frame)}`"
            raise self.fail(message, parent, position, ".frame")
        if len(frame) != 4:
            message = f"Expected `array` of length 4, got {len(frame)}"
            raise self.fail(message, parent, position, ".frame")
        numbers: list[float] = []
        for i, item in enumerate(frame):
            if isinstance(item, bool) or not isinstance(item, int | float):
                message = f"Expected `float`, got `{_json_type(item)}`"
                raise self.fail(message, parent, position, f".frame[{i}]")
            number = float(item)
            if not math.isfinite(number):
                raise self.fail("Expected a finite `float`", parent, position, f".frame[{i}]")
            numbers.append(number)
        return (numbers[0], numbers[1], numbers[2], numbers[3])


def _shorten(segments: list[str], keep: int = 3) -> str:
    """A JSON path for a message: the first and last few levels around a count of the rest."""
    head, levels = segments[0], segments[1:]
    if len(levels) <= 2 * keep + 1:
        return "".join(segments)
    hidden = len(levels) - 2 * keep
    return f"{head}{''.join(levels[:keep])} ... ({hidden} levels) ... {''.join(levels[-keep:])}"


def build_tree(
    obj: object,
    *,
    prefix: str = "$.root",
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_nodes: int = DEFAULT_MAX_NODES,
    max_output_chars: int | None = DEFAULT_MAX_OUTPUT_CHARS,
) -> Node:
    """Validate a plain JSON view hierarchy and return its root `Node`.

    ``obj`` is the snapshot's ``root`` object (``prefix`` names it in messages). Only ``cls``
    is required; ``vc``, ``ai``, ``ri``, ``rid``, ``path`` are strings or null, ``tag`` an
    integer or null, ``frame`` four numbers or null, ``children`` an array of nodes or null.
    Unknown keys are ignored. Raises `TreeError` (one sentence naming the JSON path), or its
    subclass `TreeTooLargeError` when the tree is deeper than ``max_depth`` levels (the root
    is level 1), has more than ``max_nodes`` nodes, or would resolve to more than
    ``max_output_chars`` characters of paths and targets (an upper bound computed while
    validating; ``None`` disables it). Never recurses.
    """
    if max_depth < 1 or max_nodes < 1:
        raise ValueError("max_depth and max_nodes must be at least 1")
    return _Builder(prefix, max_depth, max_nodes, max_output_chars).build(obj)
