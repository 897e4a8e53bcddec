"""Decoding a snapshot request and resolving its view hierarchy into reliable targets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from server.errors import BadRequest
from server.schema import Pid, decode_body
from targets import ResolvedTarget, TreeError, build_tree, resolve_tree


class SnapshotRequest(Struct, kw_only=True):
    pid: Pid
    screen: Annotated[str, Meta(min_length=1, max_length=1024)]
    av: Annotated[str, Meta(max_length=256)]
    platform: Literal["ios", "android"] = "ios"
    root: dict[str, Any]


_DECODER = msgspec.json.Decoder(SnapshotRequest)


@dataclass(frozen=True, slots=True)
class ResolvedSnapshot:
    pid: int
    screen: str
    av: str
    platform: str
    targets: list[ResolvedTarget]

    def target_map(self) -> list[tuple[str, str, str]]:
        """(tvp, target, kind) for every plain path that names exactly one target.

        Sibling views of the same class can share a plain path; a gesture on such a path
        cannot be told apart, so that path is left out and its gestures keep their tvp.
        """
        by_path: dict[str, set[tuple[str, str]]] = {}
        for resolved in self.targets:
            by_path.setdefault(resolved.path, set()).add((resolved.target, resolved.kind))
        return [
            (path, *next(iter(found)))
            for path, found in by_path.items()
            if len(found) == 1
        ]


def resolve_snapshot(body: bytes, *, max_depth: int, max_nodes: int) -> ResolvedSnapshot:
    """Decode, validate (400 naming the path) and resolve every node of the hierarchy."""
    # Nesting past the decoder's limit is always far past any configured depth limit.
    too_deep = f"The view hierarchy is deeper than {max_depth} levels - at `$.root`."
    request = decode_body(_DECODER, body, "snapshot", too_deep=too_deep)
    try:
        root = build_tree(request.root, max_depth=max_depth, max_nodes=max_nodes)
    except TreeError as exc:
        message = exc.message if exc.message.endswith(".") else f"{exc.message}."
        raise BadRequest(message) from None
    return ResolvedSnapshot(
        pid=request.pid,
        screen=request.screen,
        av=request.av,
        platform=request.platform,
        targets=resolve_tree(root, platform=request.platform),
    )
