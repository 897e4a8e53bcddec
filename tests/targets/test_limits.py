"""What `build_tree` accepts and refuses: validation messages and the size limits."""

from __future__ import annotations

from typing import Any

import pytest

from targets import (
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_NODES,
    DEFAULT_MAX_OUTPUT_CHARS,
    Node,
    TreeError,
    build_tree,
    resolve_tree,
)
from targets.node import TreeTooLargeError


def chain(depth: int) -> dict[str, Any]:
    """A hierarchy of ``depth`` nested views, built without recursion."""
    node: dict[str, Any] = {"cls": "UIButton", "ai": "deep"}
    for _ in range(depth - 1):
        node = {"cls": "UIView", "children": [node]}
    return node


def test_defaults() -> None:
    assert (DEFAULT_MAX_DEPTH, DEFAULT_MAX_NODES) == (256, 50_000)


def test_depth_256_is_accepted() -> None:
    root = build_tree(chain(256))
    node, depth = root, 1
    while node.children:
        node, depth = node.children[0], depth + 1
    assert (depth, node.ai) == (256, "deep")
    resolved = resolve_tree(root)
    assert len(resolved) == 256
    assert resolved[-1].target == "UIButton[ai:.deep]"


def test_depth_257_is_refused_with_a_shortened_path() -> None:
    with pytest.raises(TreeTooLargeError) as caught:
        build_tree(chain(257))
    assert str(caught.value) == (
        "The view hierarchy is deeper than 256 levels - at `$.root.children[0].children[0]"
        ".children[0] ... (250 levels) ... .children[0].children[0].children[0]`"
    )
    assert caught.value.path == "$.root" + ".children[0]" * 256
    assert isinstance(caught.value, TreeError)


def test_a_100000_deep_chain_is_refused_without_recursion() -> None:
    with pytest.raises(TreeTooLargeError, match="deeper than 256 levels"):
        build_tree(chain(100_000))


def test_depth_path_names_the_branch_that_is_too_deep() -> None:
    tree = {"cls": "A", "children": [{"cls": "B"}, {"cls": "C", "children": [{"cls": "D"}]}]}
    with pytest.raises(TreeTooLargeError) as caught:
        build_tree(tree, max_depth=2)
    assert str(caught.value) == (
        "The view hierarchy is deeper than 2 levels - at `$.root.children[1].children[0]`"
    )


def flat(count: int) -> dict[str, Any]:
    return {"cls": "UIView", "children": [{"cls": "UILabel"} for _ in range(count - 1)]}


def test_50000_nodes_are_accepted() -> None:
    root = build_tree(flat(50_000))
    assert len(root.children) == 49_999


def test_50001_nodes_are_refused() -> None:
    with pytest.raises(TreeTooLargeError) as caught:
        build_tree(flat(50_001))
    assert str(caught.value) == "The view hierarchy has more than 50000 nodes"
    assert caught.value.path == "$.root"


def test_node_limit_counts_every_level() -> None:
    tree = {"cls": "A", "children": [{"cls": "B", "children": [{"cls": "C"}, {"cls": "D"}]}]}
    assert build_tree(tree, max_nodes=4).children[0].children[1].cls == "D"
    with pytest.raises(TreeTooLargeError, match="^The view hierarchy has more than 3 nodes$"):
        build_tree(tree, max_nodes=3)


def test_deep_and_wide_tree_is_refused_for_its_output_size() -> None:
    # ~1 MB of JSON that would resolve to ~500 M characters of paths and targets
    node: dict[str, Any] = {"cls": "UIView", "tag": 1, "children": [{"cls": "L"}] * 49_700}
    for _ in range(254):
        node = {"cls": "SomeContainerView", "children": [node]}
    with pytest.raises(TreeTooLargeError) as caught:
        build_tree(node)
    assert str(caught.value) == (
        "The view hierarchy is too large: its paths and targets would exceed 64000000 characters"
    )
    assert caught.value.path == "$.root"
    assert DEFAULT_MAX_OUTPUT_CHARS == 64_000_000


def test_long_values_count_towards_the_output_size() -> None:
    tree = {"cls": "UIView", "ri": "r" * 10_000, "children": [{"cls": "L"}] * 100}
    with pytest.raises(TreeTooLargeError, match="would exceed 1000000 characters"):
        build_tree(tree, max_output_chars=1_000_000)
    assert len(build_tree(tree, max_output_chars=None).children) == 100


def test_output_size_bound_is_never_below_the_real_output() -> None:
    tree = {
        "cls": "Shop.Cell<T>",
        "vc": "V" * 50,
        "ri": "]\\" * 20,
        "children": [
            {"cls": "A", "ai": "]" * 30, "children": [{"cls": "B", "tag": -(2**63)}]},
            {"cls": "A", "ai": "]" * 30, "rid": "\\" * 9, "path": "[root]>" + "x" * 99 + ">"},
            {"cls": "C", "children": [{"cls": "C", "ri": "r"}] * 12},
        ],
    }
    for platform in ("ios", "android"):
        actual = sum(len(r.path) + len(r.target) for r in resolve_tree(build_tree(tree), platform))
        # refused one character below the real size: the bound is at least the real size
        with pytest.raises(TreeTooLargeError):
            build_tree(tree, max_output_chars=actual - 1)
        if platform == "ios":  # (the bound counts `ri`, which Android ignores)
            build_tree(tree, max_output_chars=3 * actual)  # and loose by less than 3x


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        build_tree({"cls": "A"}, max_depth=0)


# --- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tree", "message", "path"),
    [
        ([], "Expected `object`, got `array` - at `$.root`", "$.root"),
        ({}, "Object missing required field `cls` - at `$.root`", "$.root"),
        ({"cls": 3}, "Expected `str`, got `int` - at `$.root.cls`", "$.root.cls"),
        ({"cls": None}, "Expected `str`, got `null` - at `$.root.cls`", "$.root.cls"),
        ({"cls": ""}, "Expected `str` of length >= 1 - at `$.root.cls`", "$.root.cls"),
        (
            {"cls": "A", "vc": 1.5},
            "Expected `str | null`, got `float` - at `$.root.vc`",
            "$.root.vc",
        ),
        (
            {"cls": "A", "ai": []},
            "Expected `str | null`, got `array` - at `$.root.ai`",
            "$.root.ai",
        ),
        (
            {"cls": "A", "ri": {}},
            "Expected `str | null`, got `object` - at `$.root.ri`",
            "$.root.ri",
        ),
        (
            {"cls": "A", "rid": True},
            "Expected `str | null`, got `bool` - at `$.root.rid`",
            "$.root.rid",
        ),
        (
            {"cls": "A", "path": "view2>"},
            "Expected a plain path that starts with `[root]>` and ends with `>` - at `$.root.path`",
            "$.root.path",
        ),
        (
            {"cls": "A", "path": "[root]>view2"},
            "Expected a plain path that starts with `[root]>` and ends with `>` - at `$.root.path`",
            "$.root.path",
        ),
        (
            {"cls": "A", "tag": "7"},
            "Expected `int | null`, got `str` - at `$.root.tag`",
            "$.root.tag",
        ),
        (
            {"cls": "A", "tag": 7.0},
            "Expected `int | null`, got `float` - at `$.root.tag`",
            "$.root.tag",
        ),
        (
            {"cls": "A", "tag": True},
            "Expected `int | null`, got `bool` - at `$.root.tag`",
            "$.root.tag",
        ),
        (
            {"cls": "A", "tag": 2**63},
            "Expected `int` that fits in 64 bits - at `$.root.tag`",
            "$.root.tag",
        ),
        (
            {"cls": "A", "frame": "0,0,1,1"},
            "Expected `array | null`, got `str` - at `$.root.frame`",
            "$.root.frame",
        ),
        (
            {"cls": "A", "frame": [0, 0, 1]},
            "Expected `array` of length 4, got 3 - at `$.root.frame`",
            "$.root.frame",
        ),
        (
            {"cls": "A", "frame": [0, "0", 1, 1]},
            "Expected `float`, got `str` - at `$.root.frame[1]`",
            "$.root.frame[1]",
        ),
        (
            {"cls": "A", "frame": [0, 0, 1, float("nan")]},
            "Expected a finite `float` - at `$.root.frame[3]`",
            "$.root.frame[3]",
        ),
        (
            {"cls": "A", "children": {"cls": "B"}},
            "Expected `array | null`, got `object` - at `$.root.children`",
            "$.root.children",
        ),
        (
            {"cls": "A", "children": [{"cls": "B"}, "C"]},
            "Expected `object`, got `str` - at `$.root.children[1]`",
            "$.root.children[1]",
        ),
        (
            {"cls": "A", "children": [{"cls": "B", "children": [{"cls": "C"}, {}, {"cls": "D"}]}]},
            "Object missing required field `cls` - at `$.root.children[0].children[1]`",
            "$.root.children[0].children[1]",
        ),
        (
            {"cls": "A", "children": [{"cls": "B"}, {"cls": "C"}, {"cls": 5}]},
            "Expected `str`, got `int` - at `$.root.children[2].cls`",
            "$.root.children[2].cls",
        ),
    ],
)
def test_invalid_trees(tree: Any, message: str, path: str) -> None:
    with pytest.raises(TreeError) as caught:
        build_tree(tree)
    assert str(caught.value) == message
    assert caught.value.path == path
    assert not isinstance(caught.value, TreeTooLargeError)


def test_first_error_in_document_order_is_reported() -> None:
    tree = {"cls": "A", "children": [{"cls": "B", "children": [{"tag": "x"}]}, {"cls": 1}]}
    with pytest.raises(TreeError, match=r"at `\$\.root\.children\[0\]\.children\[0\]`$"):
        build_tree(tree)


def test_prefix_names_the_tree_in_messages() -> None:
    with pytest.raises(TreeError) as caught:
        build_tree({"cls": "A", "children": [{"cls": ""}]}, prefix="$")
    assert str(caught.value) == "Expected `str` of length >= 1 - at `$.children[0].cls`"


def test_valid_tree_with_nulls_and_unknown_keys() -> None:
    root = build_tree(
        {
            "cls": "UIView",
            "vc": None,
            "ai": None,
            "tag": None,
            "frame": [0, 0.5, 390, 844],
            "children": None,
            "alpha": 0.5,
            "hidden": False,
        }
    )
    assert root.vc is None and root.tag is None and root.children == ()
    assert root.frame == (0.0, 0.5, 390.0, 844.0)
    assert all(isinstance(x, float) for x in root.frame)


def test_build_keeps_every_field_and_child_order() -> None:
    root = build_tree(
        {
            "cls": "UIView",
            "vc": "VC",
            "children": [
                {"cls": "A", "ai": "a", "ri": "r", "rid": "d", "tag": -4, "path": "[root]>x>"},
                {"cls": "B", "children": [{"cls": "C"}]},
                {"cls": "D"},
            ],
        }
    )
    a, b, d = root.children
    assert (a.cls, a.ai, a.ri, a.rid, a.tag, a.path) == ("A", "a", "r", "d", -4, "[root]>x>")
    assert [b.cls, b.children[0].cls, d.cls] == ["B", "C", "D"]
    assert root.vc == "VC" and a.vc is None  # inheritance is resolution's business


def test_node_repr_does_not_recurse_and_nodes_compare_by_identity() -> None:
    node = Node(cls="UIButton", ai="buy")
    for _ in range(5000):
        node = Node(cls="UIView", children=(node,))
    assert repr(node) == "Node(cls='UIView', children=1)"
    assert repr(Node(cls="B", vc="VC", tag=3)) == "Node(cls='B', vc='VC', tag=3, children=0)"
    assert Node(cls="A") != Node(cls="A")
