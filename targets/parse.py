"""Parsing a reliable-target string back into a `Target`."""

from __future__ import annotations

from targets._names import CLASS_FORBIDDEN
from targets.format import (
    MAX_INDEX_DIGITS,
    ROOT,
    TAG_PATTERN,
    Attr,
    Component,
    Target,
)
from targets.node import is_plain_path

_ATTRS: tuple[Attr, ...] = ("ai", "rid", "ri", "tg")
_EQ = ":eq("


class TargetSyntaxError(ValueError):
    """A malformed target string; ``position`` is the 0-based index of the problem."""

    def __init__(self, message: str, position: int):
        super().__init__(message)
        self.message = message
        self.position = position


def _show(text: str, limit: int = 20) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.pos = 0

    def error(self, message: str, position: int | None = None) -> TargetSyntaxError:
        position = self.pos if position is None else position
        return TargetSyntaxError(f"{message} at position {position}", position)

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def unexpected(self, expected: str) -> TargetSyntaxError:
        return self.error(f"Unexpected `{self.text[self.pos]}`, expected {expected},")

    def class_name(self) -> str:
        start = self.pos
        text = self.text
        while self.pos < len(text) and text[self.pos] not in CLASS_FORBIDDEN:
            self.pos += 1
        if self.pos == start:
            if self.at_end():
                raise self.error("Expected a class name, found the end of the target,")
            raise self.error(f"Expected a class name, found `{text[start]}`,")
        return text[start : self.pos]

    def attribute(self) -> Attr:
        """Read ``attr:`` after an opening ``[`` (at ``self.pos``)."""
        start = self.pos
        text = self.text
        while self.pos < len(text) and text[self.pos].isascii() and text[self.pos].isalpha():
            self.pos += 1
        name = text[start : self.pos]
        attr = next((a for a in _ATTRS if a == name), None)
        if not name:
            raise self.error("Expected an attribute (ai, rid, ri or tg) after `[`", start)
        if attr is None:
            message = f"Unknown attribute `{_show(name)}`, expected ai, rid, ri or tg,"
            raise self.error(message, start)
        if self.at_end() or text[self.pos] != ":":
            raise self.error(f"Expected `:` after attribute `{name}`")
        self.pos += 1
        return attr

    def bracket_value(self, opened: int) -> tuple[str, int | None, int]:
        """Read an escaped value up to the closing ``]``.

        Returns the unescaped text, the index in it of the first ``.`` (None if none), and the
        position in the target where the value starts.
        """
        start = self.pos
        text = self.text
        out: list[str] = []
        dot: int | None = None
        while True:
            if self.pos >= len(text):
                raise self.error("Unterminated `[` opened", opened)
            ch = text[self.pos]
            if ch == "]":
                self.pos += 1
                return "".join(out), dot, start
            if ch == "\\":
                if self.pos + 1 >= len(text):
                    raise self.error("Unterminated `[` opened", opened)
                escaped = text[self.pos + 1]
                if escaped not in "\\]":
                    raise self.error(
                        f"Bad escape `\\{escaped}`: inside `[...]` only `\\\\` and `\\]` are"
                        " escapes,"
                    )
                out.append(escaped)
                self.pos += 2
                continue
            if ch == "." and dot is None:
                dot = len(out)
            out.append(ch)
            self.pos += 1

    def bracket(self, cls: str) -> Component:
        """Read ``[attr:...]`` (``self.pos`` is at the ``[``)."""
        opened = self.pos
        self.pos += 1
        attr = self.attribute()
        value, dot, start = self.bracket_value(opened)
        if attr == "tg":
            if not TAG_PATTERN.fullmatch(value):
                raise self.error(f"Expected a non-zero integer tag, got `{_show(value)}`,", start)
            return Component(cls, attr, None, value)
        if dot is None:
            message = f"Expected `VC.identifier` inside `[{attr}:...]`, found no `.`,"
            raise self.error(message, start)
        vc, identifier = value[:dot], value[dot + 1 :]
        if not identifier:
            raise self.error(f"Empty identifier inside `[{attr}:...]`", start)
        return Component(cls, attr, vc or None, identifier)

    def index(self) -> int:
        """Read ``:eq(i)`` (``self.pos`` is at the ``:``)."""
        text = self.text
        if not text.startswith(_EQ, self.pos):
            raise self.error("Expected `:eq(`")
        self.pos += len(_EQ)
        start = self.pos
        end = text.find(")", start)
        if end == -1:
            raise self.error("Unterminated `:eq(` opened", start - len(_EQ))
        digits = text[start:end]
        if not digits.isascii() or not digits.isdigit() or (len(digits) > 1 and digits[0] == "0"):
            raise self.error(
                f"Expected a non-negative integer without leading zeros in `:eq(...)`,"
                f" got `{_show(digits)}`,",
                start,
            )
        if len(digits) > MAX_INDEX_DIGITS:
            raise self.error(f"Index in `:eq(...)` has more than {MAX_INDEX_DIGITS} digits", start)
        self.pos = end + 1
        return int(digits)

    def short(self) -> Target:
        cls = self.class_name()
        if self.at_end():
            raise self.error(f"Expected `[ai:` or `[rid:` after class `{_show(cls)}`")
        if self.text[self.pos] != "[":
            if self.text[self.pos] == ":":
                message = "A short target needs `[ai:...]` or `[rid:...]` before `:eq(...)`,"
                raise self.error(message)
            raise self.unexpected("`[`")
        opened = self.pos
        component = self.bracket(cls)
        if component.attr not in ("ai", "rid"):
            raise self.error(
                f"A short target uses `ai` or `rid`, not `{component.attr}`"
                " (long targets start with `[root]>`),",
                opened + 1,
            )
        eq = self.index() if not self.at_end() and self.text[self.pos] == ":" else None
        if not self.at_end():
            if self.text[self.pos] == ">":
                raise self.error("Unexpected `>`: only a long target (`[root]>...`) has steps,")
            raise self.unexpected("the end of the target")
        return Target("ai", (component,), eq)

    def long(self) -> Target:
        text = self.text
        if not text.startswith(ROOT):
            raise self.error("Expected `[root]>` or a class name")
        self.pos = len(ROOT)
        components: list[Component] = []
        eq: int | None = None
        while True:
            if self.at_end() or text[self.pos] != ">":
                if self.at_end():
                    raise self.error("Expected `>` after `[root]`")
                raise self.unexpected("`>`")
            self.pos += 1
            cls = self.class_name()
            if self.at_end():
                raise self.error(f"Expected `[` or `:eq(` after class `{_show(cls)}`")
            if text[self.pos] == "[":
                opened = self.pos
                component = self.bracket(cls)
                if component.attr not in ("ri", "tg"):
                    raise self.error(
                        f"`[{component.attr}:...]` belongs in a short target;"
                        " a step of a long target uses `ri` or `tg`,",
                        opened + 1,
                    )
            elif text[self.pos] == ":":
                component = Component(cls, index=self.index())
            else:
                raise self.unexpected("`[` or `:eq(`")
            components.append(component)
            if self.at_end():
                break
            if text[self.pos] == ":":
                eq = self.index()
                if not self.at_end():
                    if text[self.pos] == ">":
                        raise self.error("Unexpected `>`: a final `:eq(...)` ends the target,")
                    raise self.unexpected("the end of the target")
                break
        attrs = {c.attr for c in components}
        if "ri" not in attrs and "tg" not in attrs:
            raise self.error("A long target needs at least one `[ri:...]` or `[tg:...]` step", 0)
        return Target("ri" if "ri" in attrs else "tg", tuple(components), eq)


def parse_target(text: str) -> Target:
    """Parse a reliable target or a plain path.

    ``[root]>...>`` (ending in ``>``) is a plain path, kept verbatim; another string starting
    with ``[`` is a long target ``[root]>step>step...``; anything else is a short target
    ``Class[ai:VC.identifier]``. Raises `TargetSyntaxError` naming the position of the problem.
    """
    if not isinstance(text, str):
        raise TypeError(f"A target is a str, got {type(text).__name__}")
    if not text:
        raise TargetSyntaxError("Empty target", 0)
    if is_plain_path(text):
        return Target("path", path=text)
    parser = _Parser(text)
    if text.startswith("["):
        return parser.long()
    return parser.short()
