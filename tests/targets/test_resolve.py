"""Resolution of snapshot nodes into reliable targets (SPEC §6)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from targets import Node, ResolvedTarget, build_tree, format_target, parse_target, resolve_tree
from targets._names import clean_class_name, clean_vc

SNAPSHOTS = Path(__file__).resolve().parents[2] / "fixtures" / "snapshots"

SEED_SHORT = "UIButton[ai:SalesViewController.on_sale]"
SEED_RI = (
    "[root]>UIView[ri:SalesViewController.trichotomy]"
    ">UIView[ri:SalesViewController.dichotomy]>UIView:eq(0)"
)
SEED_TG = "[root]>UIView[tg:444]>UIView[tg:223]>UIView:eq(1)"


def load(name: str) -> tuple[Node, str]:
    body = json.loads((SNAPSHOTS / f"{name}.json").read_text(encoding="utf-8"))
    return build_tree(body["root"]), body["platform"]


def resolve_fixture(name: str) -> list[ResolvedTarget]:
    root, platform = load(name)
    return resolve_tree(root, platform=platform)


def targets_of(tree: dict[str, Any], platform: str = "ios") -> list[tuple[str, str]]:
    return [(r.kind, r.target) for r in resolve_tree(build_tree(tree), platform=platform)]


# --- the seed examples ---------------------------------------------------------------------


def test_seed_accessibility_gives_short_targets() -> None:
    assert [(r.kind, r.target) for r in resolve_fixture("seed_accessibility")] == [
        ("ai", "UIView[ai:SalesViewController.rootView]"),
        ("ri", "[root]>UIView:eq(0)>UIView[ri:SalesViewController.dichotomy]"),
        ("ai", SEED_SHORT),
        ("ai", "UIButton[ai:SalesViewController.new_arrivals]"),
        ("ai", "UIButton[ai:SalesViewController.for_kids]"),
    ]


def test_seed_short_target_survives_the_move() -> None:
    moved = resolve_fixture("seed_accessibility_moved")
    assert [(r.kind, r.target) for r in moved] == [
        ("ai", "UIView[ai:SalesViewController.rootView]"),
        ("ri", "[root]>UIView:eq(0)>UIView[ri:SalesViewController.dichotomy]"),
        ("ai", "UIButton[ai:SalesViewController.new_arrivals]"),
        ("ai", SEED_SHORT),
        ("ai", "UIButton[ai:SalesViewController.for_kids]"),
    ]
    # viewThree now lives under viewFour; its plain path changed, its target did not.
    assert moved[3].node.ai == "on_sale"
    assert moved[3].path == "[root]>UIView>UIView>UIButton>UIButton>"


def test_seed_restoration_gives_long_ri_targets() -> None:
    prefix = "[root]>UIView[ri:SalesViewController.trichotomy]"
    assert [(r.kind, r.target) for r in resolve_fixture("seed_restoration")] == [
        ("ri", prefix),
        ("ri", f"{prefix}>UIView[ri:SalesViewController.dichotomy]"),
        ("ri", SEED_RI),
        ("ri", f"{prefix}>UIView[ri:SalesViewController.dichotomy]>UIView:eq(1)"),
    ]


def test_seed_tag_gives_long_tg_targets() -> None:
    assert [(r.kind, r.target) for r in resolve_fixture("seed_tag")] == [
        ("tg", "[root]>UIView[tg:444]"),
        ("tg", "[root]>UIView[tg:444]>UIView[tg:223]"),
        ("tg", "[root]>UIView[tg:444]>UIView[tg:223]>UIView:eq(0)"),
        ("tg", SEED_TG),
    ]


def test_resolved_carries_plain_path_and_node() -> None:
    resolved = resolve_fixture("seed_tag")
    root = resolved[0].node
    assert [r.node for r in resolved] == [
        root,
        root.children[0],
        root.children[0].children[0],
        root.children[0].children[1],
    ]
    assert [r.path for r in resolved] == [
        "[root]>UIView>",
        "[root]>UIView>UIView>",
        "[root]>UIView>UIView>UIView>",
        "[root]>UIView>UIView>UIView>",
    ]


# --- rules ---------------------------------------------------------------------------------


def test_vc_is_inherited_until_a_descendant_names_its_own() -> None:
    tree = {
        "cls": "UIView",
        "vc": "CartViewController",
        "children": [
            {"cls": "UIButton", "ai": "a"},
            {
                "cls": "UIView",
                "vc": "SummaryViewController",
                "children": [{"cls": "UIButton", "ai": "b"}],
            },
            {"cls": "UIView", "children": [{"cls": "UIButton", "ai": "c"}]},
        ],
    }
    assert [t for k, t in targets_of(tree) if k == "ai"] == [
        "UIButton[ai:CartViewController.a]",
        "UIButton[ai:SummaryViewController.b]",
        "UIButton[ai:CartViewController.c]",
    ]


def test_no_vc_anywhere_leaves_the_vc_empty() -> None:
    tree = {"cls": "UIView", "ri": "top", "children": [{"cls": "UIButton", "ai": "buy"}]}
    assert targets_of(tree) == [("ri", "[root]>UIView[ri:.top]"), ("ai", "UIButton[ai:.buy]")]


def test_module_prefix_is_dropped_from_class_and_vc() -> None:
    tree = {
        "cls": "Shop.BuyButton",
        "vc": "MyApp.SalesViewController",
        "ai": "buy",
    }
    assert targets_of(tree) == [("ai", "BuyButton[ai:SalesViewController.buy]")]


def test_generic_suffix_is_dropped() -> None:
    tree = {
        "cls": "UITableView",
        "vc": "Shop.ListViewController<Shop.Product>",
        "tag": 3,
        "children": [
            {"cls": "Shop.ProductCell<Item>", "ai": "cell"},
            {"cls": "ProductCell"},
            {"cls": "Shop.ProductCell<Shop.Box<Item>>"},
        ],
    }
    assert targets_of(tree) == [
        ("tg", "[root]>UITableView[tg:3]"),
        ("ai", "ProductCell[ai:ListViewController.cell]"),
        # same-class index counts cleaned names: `ProductCell` is the second ProductCell
        ("tg", "[root]>UITableView[tg:3]>ProductCell:eq(1)"),
        ("tg", "[root]>UITableView[tg:3]>ProductCell:eq(2)"),
    ]


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("UIButton", "UIButton"),
        ("MyApp.SalesViewController", "SalesViewController"),
        ("Cell<Item>", "Cell"),
        ("Shop.ProductCell<Item>", "ProductCell"),
        ("Shop.ProductCell<Shop.Box<Shop.Item>>", "ProductCell"),
        ("Shop.Outer<Shop.Item>.Inner", "Inner"),
        ("Shop.(unknown context at $10a2c4f3c).PrivateCell", "PrivateCell"),
        ("com.google.android.material.button.MaterialButton", "MaterialButton"),
        ("Outer$Inner", "Outer$Inner"),
        ("Foo.", "Foo."),
        ("<T>", "<T_"),
        ("Weird:Name[1]", "Weird_Name_1_"),
        ("Bad\\Name", "Bad_Name"),
    ],
)
def test_clean_class_name(raw: str, clean: str) -> None:
    assert clean_class_name(raw) == clean


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        (None, None),
        ("", None),
        ("Shop.CheckoutViewController", "CheckoutViewController"),
        ("Foo.", "Foo_"),
        ("List<A.B>", "List"),
    ],
)
def test_clean_vc_never_contains_a_dot(raw: str | None, clean: str | None) -> None:
    assert clean_vc(raw) == clean


def test_empty_strings_and_tag_zero_are_absent() -> None:
    tree = {
        "cls": "UIView",
        "vc": "",
        "ai": "",
        "ri": "",
        "rid": "",
        "tag": 0,
        "path": "",
        "children": [{"cls": "UIButton", "vc": "VC", "ai": "", "tag": 0}],
    }
    assert targets_of(tree) == [
        ("path", "[root]>UIView>"),
        ("path", "[root]>UIView>UIButton>"),
    ]
    root = build_tree(tree)
    assert (root.vc, root.ai, root.ri, root.rid, root.tag, root.path) == (None,) * 6


def test_absent_values_on_hand_built_nodes_are_absent_too() -> None:
    root = Node(cls="UIView", ai="", ri="", tag=0, children=(Node(cls="UIButton", tag=5),))
    assert [(r.kind, r.target) for r in resolve_tree(root)] == [
        ("path", "[root]>UIView>"),
        ("tg", "[root]>UIView:eq(0)>UIButton[tg:5]"),
    ]


def test_accessibility_identifier_wins_over_restoration_identifier_and_tag() -> None:
    tree = {"cls": "UIView", "vc": "VC", "ri": "r", "tag": 9, "ai": "main"}
    assert targets_of(tree) == [("ai", "UIView[ai:VC.main]")]


def test_restoration_identifier_wins_over_tag_in_a_step() -> None:
    tree = {"cls": "UIView", "vc": "VC", "ri": "r", "tag": 9, "children": [{"cls": "UILabel"}]}
    assert targets_of(tree) == [
        ("ri", "[root]>UIView[ri:VC.r]"),
        ("ri", "[root]>UIView[ri:VC.r]>UILabel:eq(0)"),
    ]


def test_long_target_ignores_ancestor_identifiers_and_indexes_the_top_view_zero() -> None:
    tree = {
        "cls": "UIView",
        "vc": "VC",
        "ai": "top",
        "children": [
            {"cls": "UILabel"},
            {"cls": "UIView", "ai": "box", "children": [{"cls": "UIView", "tag": -7}]},
        ],
    }
    assert targets_of(tree) == [
        ("ai", "UIView[ai:VC.top]"),
        ("path", "[root]>UIView>UILabel>"),
        ("ai", "UIView[ai:VC.box]"),
        ("tg", "[root]>UIView:eq(0)>UIView:eq(0)>UIView[tg:-7]"),
    ]


def test_kind_is_ri_when_any_step_uses_ri() -> None:
    tree = {
        "cls": "UIView",
        "vc": "VC",
        "tag": 1,
        "children": [{"cls": "UIView", "ri": "r", "children": [{"cls": "UIView", "tag": 2}]}],
    }
    assert targets_of(tree) == [
        ("tg", "[root]>UIView[tg:1]"),
        ("ri", "[root]>UIView[tg:1]>UIView[ri:VC.r]"),
        ("ri", "[root]>UIView[tg:1]>UIView[ri:VC.r]>UIView[tg:2]"),
    ]


def test_restoration_identifier_step_uses_the_nodes_own_vc() -> None:
    tree = {
        "cls": "UIView",
        "vc": "Outer",
        "ri": "a",
        "children": [{"cls": "UIView", "vc": "Shop.Inner", "ri": "b"}],
    }
    assert targets_of(tree)[1] == ("ri", "[root]>UIView[ri:Outer.a]>UIView[ri:Inner.b]")


# --- ambiguity -----------------------------------------------------------------------------


def test_equal_short_targets_get_eq_in_preorder() -> None:
    tree = {
        "cls": "UIView",
        "vc": "VC",
        "children": [
            {"cls": "UIView", "children": [{"cls": "UIButton", "ai": "buy"}]},
            {"cls": "UIButton", "ai": "buy"},
            {"cls": "UIButton", "ai": "buy", "vc": "OtherVC"},
            {"cls": "UIButton", "ai": "sell"},
        ],
    }
    assert [t for k, t in targets_of(tree) if k == "ai"] == [
        "UIButton[ai:VC.buy]:eq(0)",
        "UIButton[ai:VC.buy]:eq(1)",
        "UIButton[ai:OtherVC.buy]",
        "UIButton[ai:VC.sell]",
    ]


def test_same_identifier_on_different_classes_is_not_ambiguous() -> None:
    tree = {
        "cls": "UIView",
        "vc": "VC",
        "children": [{"cls": "UIButton", "ai": "x"}, {"cls": "UILabel", "ai": "x"}],
    }
    assert targets_of(tree)[1:] == [("ai", "UIButton[ai:VC.x]"), ("ai", "UILabel[ai:VC.x]")]


def test_equal_long_targets_get_eq_too() -> None:
    tree = {
        "cls": "UIView",
        "vc": "VC",
        "children": [
            {"cls": "UITableViewCell", "tag": 1, "children": [{"cls": "UILabel"}]},
            {"cls": "UITableViewCell", "tag": 1, "children": [{"cls": "UILabel"}]},
        ],
    }
    assert targets_of(tree) == [
        ("path", "[root]>UIView>"),
        ("tg", "[root]>UIView:eq(0)>UITableViewCell[tg:1]:eq(0)"),
        ("tg", "[root]>UIView:eq(0)>UITableViewCell[tg:1]>UILabel:eq(0):eq(0)"),
        ("tg", "[root]>UIView:eq(0)>UITableViewCell[tg:1]:eq(1)"),
        ("tg", "[root]>UIView:eq(0)>UITableViewCell[tg:1]>UILabel:eq(0):eq(1)"),
    ]


def test_equal_plain_paths_are_left_alone() -> None:
    tree = {"cls": "UIView", "children": [{"cls": "UIButton"}, {"cls": "UIButton"}]}
    assert targets_of(tree)[1:] == [
        ("path", "[root]>UIView>UIButton>"),
        ("path", "[root]>UIView>UIButton>"),
    ]


# --- escaping ------------------------------------------------------------------------------


def test_brackets_and_backslashes_are_escaped() -> None:
    tree = {"cls": "UIButton", "vc": "VC", "ai": "a]b\\c"}
    assert targets_of(tree) == [("ai", "UIButton[ai:VC.a\\]b\\\\c]")]
    assert targets_of(tree)[0][1] == r"UIButton[ai:VC.a\]b\\c]"


def test_identifier_with_dots_and_brackets_round_trips() -> None:
    tree = {"cls": "UIView", "vc": "VC", "ri": "a.b[c]>d:e", "children": [{"cls": "UILabel"}]}
    resolved = resolve_tree(build_tree(tree))
    assert resolved[1].target == r"[root]>UIView[ri:VC.a.b[c\]>d:e]>UILabel:eq(0)"
    component = parse_target(resolved[1].target).components[0]
    assert (component.vc, component.value) == ("VC", "a.b[c]>d:e")


# --- plain paths ---------------------------------------------------------------------------


def test_given_path_wins_over_computed_path() -> None:
    tree = {
        "cls": "UIView",
        "path": "[root]>view#id>",
        "children": [{"cls": "UIButton", "path": "[root]>view#id>view2>"}, {"cls": "UILabel"}],
    }
    assert [(r.path, r.target) for r in resolve_tree(build_tree(tree))] == [
        ("[root]>view#id>", "[root]>view#id>"),
        ("[root]>view#id>view2>", "[root]>view#id>view2>"),
        # computed from the classes, not from the parent's given path
        ("[root]>UIView>UILabel>", "[root]>UIView>UILabel>"),
    ]


def test_computed_path_uses_raw_class_and_rid() -> None:
    tree = {
        "cls": "Shop.RootView",
        "rid": "root",
        "children": [{"cls": "Shop.ProductCell<Item>"}],
    }
    paths = [r.path for r in resolve_tree(build_tree(tree))]
    assert paths == [
        "[root]>Shop.RootView#root>",
        "[root]>Shop.RootView#root>Shop.ProductCell<Item>>",
    ]


# --- Android -------------------------------------------------------------------------------


def test_android_uses_rid_for_short_targets_and_ignores_ri_and_ai() -> None:
    tree = {
        "cls": "android.widget.FrameLayout",
        "vc": "com.shop.CheckoutActivity",
        "ri": "ignored",
        "children": [
            {"cls": "com.google.android.material.button.MaterialButton", "rid": "buy"},
            {"cls": "android.widget.TextView", "ai": "Total", "ri": "ignored"},
            {"cls": "android.widget.LinearLayout", "tag": 12, "children": [{"cls": "Button"}]},
        ],
    }
    assert targets_of(tree, platform="android") == [
        ("path", "[root]>android.widget.FrameLayout>"),
        ("ai", "MaterialButton[rid:CheckoutActivity.buy]"),
        ("path", "[root]>android.widget.FrameLayout>android.widget.TextView>"),
        ("tg", "[root]>FrameLayout:eq(0)>LinearLayout[tg:12]"),
        ("tg", "[root]>FrameLayout:eq(0)>LinearLayout[tg:12]>Button:eq(0)"),
    ]


def test_ios_ignores_rid_for_targets_but_not_for_paths() -> None:
    tree = {"cls": "UIButton", "vc": "VC", "rid": "buy"}
    assert targets_of(tree) == [("path", "[root]>UIButton#buy>")]


def test_unknown_platform_is_refused() -> None:
    with pytest.raises(ValueError, match="Unknown platform 'web'; expected 'ios' or 'android'"):
        resolve_tree(Node(cls="UIView"), platform="web")


# --- realistic fixtures --------------------------------------------------------------------


IOS_LONG = (
    "[root]>UILayoutContainerView:eq(0)>UINavigationTransitionView:eq(0)"
    ">UIViewControllerWrapperView:eq(0)>UIView:eq(0)"
)
IOS_TABLE = f"{IOS_LONG}>UITableView[ri:CheckoutViewController.cartTable]"


def test_ios_checkout_targets() -> None:
    resolved = resolve_fixture("ios_checkout")
    assert len(resolved) == 54
    kinds = [r.kind for r in resolved]
    assert {k: kinds.count(k) for k in ("ai", "ri", "tg", "path")} == {
        "ai": 15,
        "ri": 19,
        "tg": 2,
        "path": 18,
    }
    by_index = {i: r.target for i, r in enumerate(resolved)}
    assert by_index[0] == "[root]>UILayoutContainerView>"
    assert by_index[4] == IOS_TABLE
    assert by_index[5] == f"{IOS_TABLE}>ProductCell:eq(0)"
    assert (
        by_index[7]
        == f"{IOS_TABLE}>ProductCell:eq(0)>UITableViewCellContentView:eq(0)>UIImageView:eq(0)"
    )
    assert by_index[8] == "UILabel[ai:CheckoutViewController.product.title]:eq(0)"
    assert by_index[10] == "QuantityStepper[ai:CheckoutViewController.quantity]:eq(0)"
    assert by_index[22] == (
        f"{IOS_TABLE}>ProductCell:eq(1)>UITableViewCellContentView:eq(0)>QuantityStepper:eq(0)"
        ">UIButton[tg:2]"
    )
    assert by_index[26] == "UILabel[ai:CheckoutViewController.product.title]:eq(2)"
    assert by_index[33] == "UITextField[ai:CheckoutViewController.coupon.field]"
    assert by_index[34] == (
        "[root]>UILayoutContainerView>UINavigationTransitionView>UIViewControllerWrapperView"
        ">UIView>UIView>UIButton>"
    )
    assert by_index[36] == "UILabel[ai:OrderSummaryViewController.subtotal]"
    assert by_index[39] == f"{IOS_LONG}>UIView:eq(1)>UIStackView[tg:7]"
    assert by_index[40] == "UIButton[ai:OrderSummaryViewController.pay]"
    assert by_index[41] == f"{IOS_LONG}>UIView:eq(1)>UIStackView[tg:7]>PKPaymentButton:eq(0)"
    assert by_index[45] == "_UIButtonBarButton[ai:UINavigationController.BackButton]"
    assert by_index[49] == (
        "[root]>UILayoutContainerView>UINavigationBar>_UINavigationBarContentView"
        ">_UIButtonBarButton>"
    )


ANDROID_TOP = "[root]>DecorView:eq(0)>LinearLayout:eq(0)>FrameLayout:eq(0)>ConstraintLayout:eq(0)"


def test_android_checkout_targets() -> None:
    resolved = resolve_fixture("android_checkout")
    assert len(resolved) == 44
    kinds = [r.kind for r in resolved]
    assert {k: kinds.count(k) for k in ("ai", "ri", "tg", "path")} == {
        "ai": 31,
        "ri": 0,
        "tg": 7,
        "path": 6,
    }
    by_index = {i: r.target for i, r in enumerate(resolved)}
    assert (
        by_index[1] == "[root]>com.android.internal.policy.DecorView>android.widget.LinearLayout>"
    )
    assert by_index[2] == "FrameLayout[rid:CheckoutActivity.content]"
    assert by_index[7] == "RecyclerView[rid:CheckoutActivity.cart_list]"
    assert by_index[8] == f"{ANDROID_TOP}>RecyclerView:eq(0)>ConstraintLayout[tg:1001]"
    assert by_index[10] == "MaterialTextView[rid:CheckoutActivity.title]:eq(0)"
    assert by_index[12] == f"{ANDROID_TOP}>RecyclerView:eq(0)>ConstraintLayout[tg:1001]>View:eq(0)"
    assert by_index[13] == "QuantityStepper[rid:CheckoutActivity.quantity]:eq(0)"
    assert by_index[26] == f"{ANDROID_TOP}>RecyclerView:eq(0)>ConstraintLayout[tg:1003]"
    assert by_index[34] == "MaterialButton[rid:CheckoutActivity.plus]:eq(2)"
    assert by_index[36] == (
        "[root]>com.android.internal.policy.DecorView>android.widget.LinearLayout"
        ">android.widget.FrameLayout#content>androidx.constraintlayout.widget.ConstraintLayout"
        "#checkout_root>androidx.fragment.app.FragmentContainerView#summary_container"
        ">androidx.constraintlayout.widget.ConstraintLayout>"
    )
    assert by_index[39] == "MaterialButton[rid:OrderSummaryFragment.buy]"
    assert by_index[40] == (
        f"{ANDROID_TOP}>FragmentContainerView:eq(0)>ConstraintLayout:eq(0)>MaterialButton[tg:7]"
    )
    assert by_index[43] == "View[rid:CheckoutActivity.statusBarBackground]"


@pytest.mark.parametrize(
    "name",
    [
        "seed_accessibility",
        "seed_accessibility_moved",
        "seed_restoration",
        "seed_tag",
        "ios_checkout",
        "android_checkout",
    ],
)
def test_every_target_parses_back_with_its_kind_and_is_unique(name: str) -> None:
    resolved = resolve_fixture(name)
    for r in resolved:
        parsed = parse_target(r.target)
        assert parsed.kind == r.kind
        assert format_target(parsed) == r.target
    reliable = [r.target for r in resolved if r.kind != "path"]
    assert len(reliable) == len(set(reliable))


def test_resolution_does_not_recurse() -> None:
    node = Node(cls="UIButton", ai="deep")
    for _ in range(2999):
        node = Node(cls="V", children=(node,))
    node = Node(cls="V", vc="VC", tag=1, children=node.children)
    resolved = resolve_tree(node)
    assert len(resolved) == 3000
    assert resolved[-1].target == "UIButton[ai:VC.deep]"
    assert resolved[-2].target == "[root]>V[tg:1]" + ">V:eq(0)" * 2998
