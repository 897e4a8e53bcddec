"""Matching a reliable target against another snapshot of the same screen."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from targets import (
    Node,
    TargetSyntaxError,
    TreeTooLargeError,
    build_tree,
    match_target,
    parse_target,
    resolve_tree,
)

SNAPSHOTS = Path(__file__).resolve().parents[2] / "fixtures" / "snapshots"
FIXTURES = [
    "seed_accessibility",
    "seed_accessibility_moved",
    "seed_restoration",
    "seed_tag",
    "ios_checkout",
    "android_checkout",
]


def body(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SNAPSHOTS / f"{name}.json").read_text(encoding="utf-8"))
    return loaded


def load(name: str) -> Node:
    return build_tree(body(name)["root"])


def test_seed_short_target_is_found_after_the_move() -> None:
    before = resolve_tree(load("seed_accessibility"))
    target = before[2].target
    assert target == "UIButton[ai:SalesViewController.on_sale]"
    moved = load("seed_accessibility_moved")
    view_four = moved.children[0].children[0]
    assert view_four.ai == "new_arrivals"
    assert match_target(target, moved) == [view_four.children[0]]
    assert match_target("UIButton[ai:SalesViewController.new_arrivals]", moved) == [view_four]


def test_moved_node_plain_path_is_not_found() -> None:
    before = resolve_tree(load("seed_accessibility"))
    assert before[2].path == "[root]>UIView>UIView>UIButton>"
    # that plain path now names the two buttons left under viewTwo, not viewThree
    moved = load("seed_accessibility_moved")
    matches = match_target(before[2].path, moved)
    assert [n.ai for n in matches] == ["new_arrivals", "for_kids"]


def test_long_target_survives_sibling_changes_above_its_anchor() -> None:
    tree = body("seed_restoration")["root"]
    target = resolve_tree(build_tree(tree))[3].target
    assert target == (
        "[root]>UIView[ri:SalesViewController.trichotomy]"
        ">UIView[ri:SalesViewController.dichotomy]>UIView:eq(1)"
    )
    changed = copy.deepcopy(tree)
    # a new label before viewTwo and a new button among viewTwo's children
    changed["children"].insert(0, {"cls": "UILabel"})
    changed["children"][1]["children"].insert(0, {"cls": "UIButton"})
    other = build_tree(changed)
    assert match_target(target, other) == [other.children[1].children[2]]


def test_long_target_index_step_follows_same_class_index() -> None:
    other = build_tree(
        {
            "cls": "UIView",
            "tag": 444,
            "children": [
                {
                    "cls": "UIView",
                    "tag": 223,
                    "children": [{"cls": "UIView"}, {"cls": "UIView"}],
                }
            ],
        }
    )
    seed_tg = "[root]>UIView[tg:444]>UIView[tg:223]>UIView:eq(1)"
    assert match_target(seed_tg, other) == [other.children[0].children[1]]
    assert match_target("[root]>UIView[tg:444]>UIView[tg:223]>UIView:eq(2)", other) == []
    assert match_target("[root]>UIView[tg:444]>UIView[tg:999]", other) == []


def test_tag_step_does_not_match_a_view_with_a_restoration_identifier() -> None:
    # On iOS that view's step would read `UIView[ri:...]`, so it is not the same target.
    other = build_tree({"cls": "UIView", "vc": "VC", "ri": "r", "tag": 5})
    assert match_target("[root]>UIView[tg:5]", other) == []
    assert match_target("[root]>UIView[ri:VC.r]", other) == [other]
    # On Android restoration identifiers do not exist and the tag is the step.
    assert match_target("[root]>UIView[tg:5]", other, platform="android") == [other]
    assert match_target("[root]>UIView[ri:VC.r]", other, platform="android") == []


def test_long_target_does_not_match_a_view_that_now_has_an_identifier() -> None:
    other = build_tree({"cls": "UIView", "vc": "VC", "tag": 5, "ai": "main"})
    assert match_target("[root]>UIView[tg:5]", other) == []
    assert match_target("UIView[ai:VC.main]", other) == [other]


def test_short_target_needs_class_vc_and_identifier() -> None:
    other = build_tree(
        {
            "cls": "UIView",
            "vc": "MyApp.VC",
            "children": [
                {"cls": "UILabel", "ai": "buy"},
                {"cls": "UIButton", "ai": "buy", "vc": "Other"},
                {"cls": "Shop.UIButton<T>", "ai": "buy"},
            ],
        }
    )
    assert match_target("UIButton[ai:VC.buy]", other) == [other.children[2]]
    assert match_target("UIButton[ai:Other.buy]", other) == [other.children[1]]
    assert match_target("UIButton[ai:Nope.buy]", other) == []
    assert match_target("UIButton[ai:.buy]", other) == []


def test_eq_picks_one_of_equal_short_targets_in_preorder() -> None:
    other = build_tree(
        {
            "cls": "UIView",
            "vc": "VC",
            "children": [
                {"cls": "UIView", "children": [{"cls": "UIButton", "ai": "buy"}]},
                {"cls": "UIButton", "ai": "buy"},
            ],
        }
    )
    first, second = other.children[0].children[0], other.children[1]
    assert match_target("UIButton[ai:VC.buy]", other) == [first, second]
    assert match_target("UIButton[ai:VC.buy]:eq(0)", other) == [first]
    assert match_target("UIButton[ai:VC.buy]:eq(1)", other) == [second]
    assert match_target("UIButton[ai:VC.buy]:eq(2)", other) == []


def test_eq_picks_one_of_equal_long_targets() -> None:
    other = build_tree(
        {
            "cls": "UIView",
            "children": [
                {"cls": "Cell", "tag": 1, "children": [{"cls": "UILabel"}]},
                {"cls": "Cell", "tag": 1, "children": [{"cls": "UILabel"}]},
            ],
        }
    )
    labels = [other.children[0].children[0], other.children[1].children[0]]
    assert match_target("[root]>UIView:eq(0)>Cell[tg:1]>UILabel:eq(0)", other) == labels
    assert match_target("[root]>UIView:eq(0)>Cell[tg:1]>UILabel:eq(0):eq(1)", other) == [labels[1]]


def test_android_short_target_by_resource_name() -> None:
    other = load("android_checkout")
    matches = match_target("MaterialButton[rid:OrderSummaryFragment.buy]", other, "android")
    assert [(n.cls, n.rid) for n in matches] == [
        ("com.google.android.material.button.MaterialButton", "buy")
    ]
    # an `ai` short target names nothing on Android, a `rid` one nothing on iOS
    assert match_target("MaterialButton[ai:OrderSummaryFragment.buy]", other, "android") == []
    assert match_target("MaterialButton[rid:OrderSummaryFragment.buy]", other, "ios") == []


def test_ios_checkout_cell_label_after_a_cell_is_removed() -> None:
    tree = body("ios_checkout")["root"]
    resolved = resolve_tree(build_tree(tree))
    third_title = resolved[26].target
    assert third_title == "UILabel[ai:CheckoutViewController.product.title]:eq(2)"
    changed = copy.deepcopy(tree)
    table = changed["children"][0]["children"][0]["children"][0]["children"][0]
    del table["children"][0]
    other = build_tree(changed)
    # the third title is gone as such; the ambiguous base names the two that are left
    assert match_target(third_title, other) == []
    assert len(match_target("UILabel[ai:CheckoutViewController.product.title]", other)) == 2


def test_accepts_a_parsed_target() -> None:
    root = load("seed_tag")
    target = parse_target("[root]>UIView[tg:444]>UIView[tg:223]>UIView:eq(1)")
    assert match_target(target, root) == [root.children[0].children[1]]


def test_malformed_target_and_unknown_platform_raise() -> None:
    root = load("seed_tag")
    with pytest.raises(TargetSyntaxError, match="Unterminated `\\[` opened at position 8"):
        match_target("UIButton[ai:VC.x", root)
    with pytest.raises(ValueError, match="Unknown platform"):
        match_target("UIButton[ai:VC.x]", root, platform="web")


@pytest.mark.parametrize("name", FIXTURES)
def test_every_resolved_target_matches_its_own_node(name: str) -> None:
    snapshot = body(name)
    root = build_tree(snapshot["root"])
    platform = snapshot["platform"]
    for r in resolve_tree(root, platform=platform):
        matches = match_target(r.target, root, platform=platform)
        if r.kind == "path":
            assert r.node in matches
        else:
            assert matches == [r.node]


def test_matching_does_not_recurse() -> None:
    node = Node(cls="UILabel")
    for _ in range(2999):
        node = Node(cls="V", children=(node,))
    root = Node(cls="V", tag=3, children=node.children)
    target = "[root]>V[tg:3]" + ">V:eq(0)" * 2998 + ">UILabel:eq(0)"
    assert resolve_tree(root)[-1].target == target
    deepest = resolve_tree(root)[-1].node
    assert match_target(target, root) == [deepest]
    assert len(match_target("[root]>V>", root)) == 1


# Random small trees: every resolved target parses back to its kind and names its node.
_trees = st.recursive(
    st.fixed_dictionaries(
        {"cls": st.sampled_from(["UIView", "UIButton", "Shop.Cell<T>", "Cell"])},
        optional={
            "vc": st.sampled_from(["", "A", "M.B"]),
            "ai": st.sampled_from(["", "x", "y]"]),
            "ri": st.sampled_from(["", "r", "s.t"]),
            "rid": st.sampled_from(["", "x", "z"]),
            "tag": st.sampled_from([0, 1, -2]),
        },
    ),
    lambda children: st.fixed_dictionaries(
        {
            "cls": st.sampled_from(["UIView", "Cell"]),
            "children": st.lists(children, max_size=4),
        },
        optional={"tag": st.sampled_from([0, 7]), "ri": st.sampled_from(["", "q"])},
    ),
    max_leaves=16,
)


@settings(max_examples=150, deadline=None)
@given(_trees, st.sampled_from(["ios", "android"]))
def test_random_trees_resolve_to_parseable_targets_that_match(
    tree: dict[str, Any], platform: str
) -> None:
    root = build_tree(tree)
    resolved = resolve_tree(root, platform=platform)
    # build_tree's output-size bound is never below the real output
    actual = sum(len(r.path) + len(r.target) for r in resolved)
    with pytest.raises(TreeTooLargeError):
        build_tree(tree, max_output_chars=actual - 1)
    reliable = [r.target for r in resolved if r.kind != "path"]
    assert len(reliable) == len(set(reliable))
    for r in resolved:
        assert parse_target(r.target).kind == r.kind
        matches = match_target(r.target, root, platform=platform)
        if r.kind == "path":
            assert r.node in matches
        else:
            assert matches == [r.node]
