"""The parts of a reliable target (`Target`, `Component`) and their string form."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from targets._names import CLASS_FORBIDDEN
from targets.node import is_plain_path

Kind = Literal["ai", "ri", "tg", "path"]
Attr = Literal["ai", "rid", "ri", "tg"]

ROOT = "[root]"
# Indices in `:eq(i)` have at most this many digits: a snapshot has far fewer nodes.
MAX_INDEX_DIGITS = 9
MAX_INDEX = 10**MAX_INDEX_DIGITS - 1
TAG_PATTERN = re.compile(r"-?[1-9][0-9]*")

_SHORT_ATTRS = ("ai", "rid")
_LONG_ATTRS = ("ri", "tg")
_ATTRS_WITH_VC = ("ai", "rid", "ri")


@dataclass(frozen=True, slots=True)
class Component:
    """One step of a target: ``cls[attr:vc.value]``, ``cls[tg:value]`` or ``cls:eq(index)``.

    ``vc`` is ``None`` when the view has no view controller (written ``[ai:.value]``).
    A tag's ``value`` is its decimal string (``"444"``). Construction validates the parts, so
    every `Component` has a string form that parses back to it.
    """

    cls: str
    attr: Attr | None = None
    vc: str | None = None
    value: str | None = None
    index: int | None = None

    def __post_init__(self) -> None:
        if not self.cls or any(ch in CLASS_FORBIDDEN for ch in self.cls):
            raise ValueError(f"Invalid class name {self.cls!r}: empty or contains [ ] > : \\")
        if self.attr is None:
            if self.vc is not None or self.value is not None:
                raise ValueError("A `:eq(i)` component has no vc and no value")
            if self.index is None or not 0 <= self.index <= MAX_INDEX:
                raise ValueError(f"A component without attribute needs an index, got {self.index}")
            return
        if self.index is not None:
            raise ValueError("A component has either an attribute or an index, not both")
        if self.attr == "tg":
            if self.vc is not None:
                raise ValueError("A `tg` component has no vc")
            if self.value is None or not TAG_PATTERN.fullmatch(self.value):
                raise ValueError(f"A `tg` value is a non-zero integer, got {self.value!r}")
            return
        if self.attr not in _ATTRS_WITH_VC:
            raise ValueError(f"Unknown attribute {self.attr!r}")
        if not self.value:
            raise ValueError(f"A `{self.attr}` component needs a non-empty value")
        if self.vc is not None and (not self.vc or "." in self.vc):
            raise ValueError(f"A vc is None or a non-empty name without `.`, got {self.vc!r}")


@dataclass(frozen=True, slots=True)
class Target:
    """A parsed reliable target.

    - kind ``"ai"``: a short target, one component with attribute ``ai`` (or ``rid`` on
      Android), ``eq`` the optional ``:eq(n)`` that tells apart equal short targets;
    - kind ``"ri"`` / ``"tg"``: a long target, components from the top view down, at least one
      with ``ri`` or ``tg`` (kind ``ri`` if any uses ``ri``); ``eq`` as above;
    - kind ``"path"``: a plain path, kept verbatim in ``path``; no components.
    """

    kind: Kind
    components: tuple[Component, ...] = ()
    eq: int | None = None
    path: str | None = None

    def __post_init__(self) -> None:
        if self.eq is not None and not 0 <= self.eq <= MAX_INDEX:
            raise ValueError(f"`eq` is None or in 0..{MAX_INDEX}, got {self.eq}")
        if self.kind == "path":
            if self.path is None or not is_plain_path(self.path):
                raise ValueError("A path target needs `path` starting with `[root]>`, ending `>`")
            if self.components or self.eq is not None:
                raise ValueError("A path target has no components and no eq")
            return
        if self.path is not None:
            raise ValueError("Only a path target has `path`")
        if self.kind == "ai":
            if len(self.components) != 1 or self.components[0].attr not in _SHORT_ATTRS:
                raise ValueError("A short target has one component with attribute ai or rid")
            return
        if self.kind not in _LONG_ATTRS:
            raise ValueError(f"Unknown kind {self.kind!r}")
        attrs = {c.attr for c in self.components}
        if not attrs or not attrs <= {None, *_LONG_ATTRS} or attrs == {None}:
            raise ValueError("A long target has ri/tg/index components, at least one ri or tg")
        expected = "ri" if "ri" in attrs else "tg"
        if self.kind != expected:
            raise ValueError(f"This long target is of kind {expected!r}, not {self.kind!r}")


def escape(value: str) -> str:
    """Escape a value for use inside ``[...]``: ``\\`` -> ``\\\\`` and ``]`` -> ``\\]``."""
    return value.replace("\\", "\\\\").replace("]", "\\]")


def format_component(component: Component) -> str:
    """``Class[attr:VC.value]``, ``Class[tg:N]`` or ``Class:eq(i)``."""
    if component.attr is None:
        return f"{component.cls}:eq({component.index})"
    if component.attr == "tg":
        return f"{component.cls}[tg:{component.value}]"
    vc = escape(component.vc) if component.vc is not None else ""
    value = escape(component.value or "")
    return f"{component.cls}[{component.attr}:{vc}.{value}]"


def format_target(target: Target) -> str:
    """The string form of a target; `parse_target` gives the same `Target` back."""
    if target.kind == "path":
        assert target.path is not None
        return target.path
    body = ">".join(format_component(c) for c in target.components)
    text = body if target.kind == "ai" else f"{ROOT}>{body}"
    if target.eq is not None:
        text += f":eq({target.eq})"
    return text
