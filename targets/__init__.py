"""Reliable targets: snapshot nodes in, reliable-target strings out; their parser and matching."""

from targets.format import Component, Target, format_target
from targets.match import match_target
from targets.node import (
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_NODES,
    DEFAULT_MAX_OUTPUT_CHARS,
    Node,
    TreeError,
    TreeTooLargeError,
    build_tree,
)
from targets.parse import TargetSyntaxError, parse_target
from targets.resolve import ResolvedTarget, resolve_tree

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_NODES",
    "DEFAULT_MAX_OUTPUT_CHARS",
    "Component",
    "Node",
    "ResolvedTarget",
    "Target",
    "TargetSyntaxError",
    "TreeError",
    "TreeTooLargeError",
    "build_tree",
    "format_target",
    "match_target",
    "parse_target",
    "resolve_tree",
]
