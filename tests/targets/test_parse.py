"""Target strings: formatting, parsing, their round trip and the parser's error messages."""

from __future__ import annotations

import re
from typing import Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from targets import Component, Target, TargetSyntaxError, format_target, parse_target
from targets.format import MAX_INDEX

SEED_SHORT = "UIButton[ai:SalesViewController.on_sale]"
SEED_RI = (
    "[root]>UIView[ri:SalesViewController.trichotomy]"
    ">UIView[ri:SalesViewController.dichotomy]>UIView:eq(0)"
)
SEED_TG = "[root]>UIView[tg:444]>UIView[tg:223]>UIView:eq(1)"


# --- exact parses --------------------------------------------------------------------------


def test_parse_seed_short_target() -> None:
    assert parse_target(SEED_SHORT) == Target(
        "ai", (Component("UIButton", "ai", "SalesViewController", "on_sale"),)
    )


def test_parse_seed_restoration_target() -> None:
    assert parse_target(SEED_RI) == Target(
        "ri",
        (
            Component("UIView", "ri", "SalesViewController", "trichotomy"),
            Component("UIView", "ri", "SalesViewController", "dichotomy"),
            Component("UIView", index=0),
        ),
    )


def test_parse_seed_tag_target() -> None:
    assert parse_target(SEED_TG) == Target(
        "tg",
        (
            Component("UIView", "tg", value="444"),
            Component("UIView", "tg", value="223"),
            Component("UIView", index=1),
        ),
    )


def test_parse_plain_path_keeps_it_verbatim() -> None:
    assert parse_target("[root]>view#id>view2>") == Target("path", path="[root]>view#id>view2>")
    # anything between `[root]>` and the final `>` is the SDK's business
    odd = "[root]>Cell<Item>>UIView[tg:1]>"
    assert parse_target(odd) == Target("path", path=odd)


def test_parse_disambiguated_targets() -> None:
    assert parse_target("UIButton[ai:VC.buy]:eq(1)") == Target(
        "ai", (Component("UIButton", "ai", "VC", "buy"),), eq=1
    )
    assert parse_target("[root]>UIView[tg:1]>UILabel:eq(0):eq(12)") == Target(
        "tg", (Component("UIView", "tg", value="1"), Component("UILabel", index=0)), eq=12
    )
    assert parse_target("[root]>Cell[tg:-3]:eq(0)") == Target(
        "tg", (Component("Cell", "tg", value="-3"),), eq=0
    )


def test_parse_escapes_and_the_first_dot() -> None:
    assert parse_target(r"UIButton[ai:VC.a\]b\\c]") == Target(
        "ai", (Component("UIButton", "ai", "VC", "a]b\\c"),)
    )
    # the vc ends at the first `.`; the identifier may contain more dots and brackets
    assert parse_target(r"UILabel[ai:VC.product.title[0\]]").components[0] == Component(
        "UILabel", "ai", "VC", "product.title[0]"
    )
    assert parse_target(r"UILabel[ai:V\\C.x]").components[0].vc == "V\\C"


def test_parse_android_and_missing_vc() -> None:
    assert parse_target("Button[rid:CheckoutActivity.buy]") == Target(
        "ai", (Component("Button", "rid", "CheckoutActivity", "buy"),)
    )
    assert parse_target("UIButton[ai:.buy]").components[0] == Component(
        "UIButton", "ai", None, "buy"
    )


def test_format_exact_strings() -> None:
    assert format_target(Target("ai", (Component("UIButton", "ai", "VC", "a]b\\c"),))) == (
        r"UIButton[ai:VC.a\]b\\c]"
    )
    assert format_target(Target("ai", (Component("B", "rid", None, "x"),), eq=3)) == (
        "B[rid:.x]:eq(3)"
    )
    long = Target("ri", (Component("V", "tg", value="5"), Component("W", "ri", "VC", "r")), eq=0)
    assert format_target(long) == "[root]>V[tg:5]>W[ri:VC.r]:eq(0)"
    assert format_target(Target("path", path="[root]>a>")) == "[root]>a>"


# --- round trip ----------------------------------------------------------------------------

# Values and view controllers are full of the characters that matter to the grammar.
_TRICKY = "]\\>.:[ ()eq#"
_values = st.text(
    alphabet=st.one_of(st.sampled_from(_TRICKY), st.characters(codec="utf-8")), min_size=1
)
_vcs = st.none() | _values.map(lambda s: s.replace(".", "")).filter(bool)
# Class names: any characters except `[ ] > : \`.
_classes = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="[]>:\\"), min_size=1, max_size=12
) | st.sampled_from(["UIView", "UIButton", "ProductCell", "Outer$Inner", ".", "a b", "é🙂"])
_indices = st.integers(min_value=0, max_value=MAX_INDEX)
_tags = st.integers(min_value=-(2**63), max_value=2**63 - 1).filter(bool).map(str)

_short_components = st.builds(Component, _classes, st.sampled_from(["ai", "rid"]), _vcs, _values)
_ri_components = st.builds(Component, _classes, st.just("ri"), _vcs, _values)
_tg_components = st.builds(Component, _classes, st.just("tg"), st.none(), _tags)
_eq_components = st.builds(Component, _classes, st.none(), st.none(), st.none(), _indices)


@st.composite
def _long_targets(draw: st.DrawFn) -> Target:
    steps = draw(st.lists(st.one_of(_ri_components, _tg_components, _eq_components), max_size=6))
    anchor = draw(st.one_of(_ri_components, _tg_components))
    steps.insert(draw(st.integers(0, len(steps))), anchor)
    kind: Literal["ri", "tg"] = "ri" if any(c.attr == "ri" for c in steps) else "tg"
    return Target(kind, tuple(steps), draw(st.none() | _indices))


_short_targets = st.builds(
    lambda c, eq: Target("ai", (c,), eq), _short_components, st.none() | _indices
)
_path_targets = st.builds(
    lambda middle: Target("path", path=f"[root]>{middle}>"),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=40),
)
_targets = st.one_of(_short_targets, _long_targets(), _path_targets)


@settings(max_examples=300, deadline=None)
@given(_targets)
def test_parse_format_round_trip(target: Target) -> None:
    text = format_target(target)
    assert parse_target(text) == target
    assert format_target(parse_target(text)) == text


_fuzz_alphabet = st.sampled_from(
    list("[]>:\\.()")
    + ["[root]", ">", ":eq(", "[ai:", "[ri:", "[tg:", "[rid:", "UIView", "0", "1", "-", "VC.x", "é"]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_fuzz_alphabet, max_size=12).map("".join))
def test_parser_accepts_only_canonical_strings_and_fails_cleanly(text: str) -> None:
    try:
        parsed = parse_target(text)
    except TargetSyntaxError as error:
        assert 0 <= error.position <= len(text)
        if text:
            assert str(error).endswith(f"at position {error.position}")
    else:
        assert format_target(parsed) == text


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message", "position"),
    [
        ("", "Empty target", 0),
        ("UIButton", "Expected `[ai:` or `[rid:` after class `UIButton` at position 8", 8),
        ("UIButton[ai:VC.buy", "Unterminated `[` opened at position 8", 8),
        ("UIButton[ai:VC.buy\\", "Unterminated `[` opened at position 8", 8),
        (
            "UIButton[ai:VC.b\\uy]",
            "Bad escape `\\u`: inside `[...]` only `\\\\` and `\\]` are escapes, at position 16",
            16,
        ),
        (
            "UIButton[xx:VC.buy]",
            "Unknown attribute `xx`, expected ai, rid, ri or tg, at position 9",
            9,
        ),
        (
            "UIButton[:VC.buy]",
            "Expected an attribute (ai, rid, ri or tg) after `[` at position 9",
            9,
        ),
        ("UIButton[ai]", "Expected `:` after attribute `ai` at position 11", 11),
        (
            "UIButton[ai:buy]",
            "Expected `VC.identifier` inside `[ai:...]`, found no `.`, at position 12",
            12,
        ),
        ("UIButton[ai:VC.]", "Empty identifier inside `[ai:...]` at position 12", 12),
        ("[ai:VC.buy]", "Expected `[root]>` or a class name at position 0", 0),
        (":eq(0)", "Expected a class name, found `:`, at position 0", 0),
        (
            "UIButton:eq(0)",
            "A short target needs `[ai:...]` or `[rid:...]` before `:eq(...)`, at position 8",
            8,
        ),
        (
            "UIButton[tg:5]",
            "A short target uses `ai` or `rid`, not `tg` (long targets start with `[root]>`),"
            " at position 9",
            9,
        ),
        (
            "UIButton[ai:VC.buy]x",
            "Unexpected `x`, expected the end of the target, at position 19",
            19,
        ),
        (
            "UIButton[ai:VC.buy]>UIView:eq(0)",
            "Unexpected `>`: only a long target (`[root]>...`) has steps, at position 19",
            19,
        ),
        ("UIButton[ai:VC.buy]:eq", "Expected `:eq(` at position 19", 19),
        ("UIButton[ai:VC.buy]:eq(1", "Unterminated `:eq(` opened at position 19", 19),
        (
            "UIButton[ai:VC.buy]:eq(01)",
            "Expected a non-negative integer without leading zeros in `:eq(...)`, got `01`,"
            " at position 23",
            23,
        ),
        (
            "UIButton[ai:VC.buy]:eq(-1)",
            "Expected a non-negative integer without leading zeros in `:eq(...)`, got `-1`,"
            " at position 23",
            23,
        ),
        (
            "UIButton[ai:VC.buy]:eq()",
            "Expected a non-negative integer without leading zeros in `:eq(...)`, got ``,"
            " at position 23",
            23,
        ),
        (
            "UIButton[ai:VC.buy]:eq(1234567890)",
            "Index in `:eq(...)` has more than 9 digits at position 23",
            23,
        ),
        ("[root]", "Expected `>` after `[root]` at position 6", 6),
        ("[root]>", "Expected a class name, found the end of the target, at position 7", 7),
        ("[root]x", "Unexpected `x`, expected `>`, at position 6", 6),
        ("[root]>>UIView[tg:1]", "Expected a class name, found `>`, at position 7", 7),
        ("[root]>UIView", "Expected `[` or `:eq(` after class `UIView` at position 13", 13),
        ("[root]>UIView]", "Unexpected `]`, expected `[` or `:eq(`, at position 13", 13),
        (
            "[root]>UIView[tg:abc]",
            "Expected a non-zero integer tag, got `abc`, at position 17",
            17,
        ),
        ("[root]>UIView[tg:0]", "Expected a non-zero integer tag, got `0`, at position 17", 17),
        ("[root]>UIView[tg:007]", "Expected a non-zero integer tag, got `007`, at position 17", 17),
        (
            "[root]>UIView[ai:VC.x]",
            "`[ai:...]` belongs in a short target; a step of a long target uses `ri` or `tg`,"
            " at position 14",
            14,
        ),
        (
            "[root]>UIView:eq(0)>UILabel:eq(1)",
            "A long target needs at least one `[ri:...]` or `[tg:...]` step at position 0",
            0,
        ),
        (
            "[root]>UIView[tg:1]:eq(0)>UILabel:eq(1)",
            "Unexpected `>`: a final `:eq(...)` ends the target, at position 25",
            25,
        ),
        (
            "[root]>UIView[tg:1]x",
            "Unexpected `x`, expected `>`, at position 19",
            19,
        ),
        (
            "[root]>UIView[tg:1]:eq(0)x",
            "Unexpected `x`, expected the end of the target, at position 25",
            25,
        ),
    ],
)
def test_syntax_errors(text: str, message: str, position: int) -> None:
    with pytest.raises(TargetSyntaxError) as caught:
        parse_target(text)
    assert str(caught.value) == message
    assert caught.value.position == position


def test_long_values_are_shortened_in_messages() -> None:
    with pytest.raises(TargetSyntaxError) as caught:
        parse_target("[root]>V[tg:" + "x" * 100 + "]")
    assert str(caught.value) == (
        "Expected a non-zero integer tag, got `xxxxxxxxxxxxxxxxxxxx...`, at position 12"
    )


def test_non_string_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="A target is a str, got int"):
        parse_target(5)  # type: ignore[arg-type]


# --- model validation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Component("", "ai", "VC", "x"), "Invalid class name ''"),
        (lambda: Component("A>B", "ai", "VC", "x"), "Invalid class name 'A>B'"),
        (lambda: Component("A", "ai", "V.C", "x"), "A vc is None or a non-empty name"),
        (lambda: Component("A", "ai", "", "x"), "A vc is None or a non-empty name"),
        (lambda: Component("A", "ai", "VC", ""), "needs a non-empty value"),
        (lambda: Component("A", "tg", None, "0"), "A `tg` value is a non-zero integer"),
        (lambda: Component("A", "tg", "VC", "1"), "A `tg` component has no vc"),
        (lambda: Component("A"), "A component without attribute needs an index"),
        (lambda: Component("A", index=-1), "A component without attribute needs an index"),
        (lambda: Component("A", "ri", "VC", "x", 0), "either an attribute or an index"),
        (lambda: Target("ai", ()), "A short target has one component"),
        (lambda: Target("ai", (Component("A", "ri", "V", "x"),)), "A short target has one"),
        (lambda: Target("ri", (Component("A", index=0),)), "at least one ri or tg"),
        (lambda: Target("ri", (Component("A", "tg", None, "1"),)), "is of kind 'tg', not 'ri'"),
        (lambda: Target("tg", (Component("A", "ai", "V", "x"),)), "A long target has"),
        (lambda: Target("path", path="foo"), "A path target needs `path`"),
        (lambda: Target("path", path="[root]>"), "A path target needs `path`"),
        (lambda: Target("ai", (Component("A", "ai", "V", "x"),), path="[root]>a>"), "Only a"),
        (lambda: Target("ai", (Component("A", "ai", "V", "x"),), eq=-1), "`eq` is None"),
        (lambda: Target("xx", ()), "Unknown kind 'xx'"),  # type: ignore[arg-type]
    ],
)
def test_invalid_parts_are_refused(build: object, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        build()  # type: ignore[operator]
