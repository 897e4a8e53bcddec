"""POST /v1/touches bodies: strokes decoded one by one, classified together, stored as gestures."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import msgspec
import numpy as np
from msgspec import Meta, Struct

from gestures import (
    ACTION_MOVE,
    ACTION_NAMES,
    ACTION_UP,
    DIRECTION_NAMES,
    GESTURE_NAMES,
    StrokeResult,
    classify_strokes,
)
from server.errors import PayloadTooLarge
from server.ingest import SOURCE_TOUCHES, PreparedBatch, corrected_time
from server.schema import (
    NUL_ESCAPE,
    NUL_MESSAGE,
    Count,
    Density,
    DeviceType,
    EpochMs,
    Euid,
    Pid,
    Px,
    SessionNumber,
    Uid,
    Versions,
    at_path,
    decode_body,
    invalid_utf8,
    nul_path,
)
from server.screens import screen_name

_ACTION_CODES = {name: code for code, name in enumerate(ACTION_NAMES)}
SampleTime = Annotated[float, Meta(ge=0, le=253_402_300_799_999)]


class Stroke(Struct, kw_only=True):
    id: Euid
    tvp: str
    tvid: str
    t: list[SampleTime]
    x: list[Px]
    y: list[Px]
    actions: list[Literal["down", "move", "up", "cancel"]] | None = None
    ur: bool | None = None


class TouchesRequest(Struct, kw_only=True):
    pid: Pid
    uid: Uid
    sn: SessionNumber
    scn: Count
    url: str
    density: Density
    vo: Versions
    dt: DeviceType = 0
    now: EpochMs | None = None
    strokes: Annotated[list[msgspec.Raw], Meta(min_length=1)]


class _IdProbe(Struct):
    id: str | None = None


_REQUEST = msgspec.json.Decoder(TouchesRequest)
_ID_PROBE = msgspec.json.Decoder(_IdProbe)
_STROKE = msgspec.json.Decoder(Stroke)


@dataclass(slots=True)
class PreparedTouches:
    batch: PreparedBatch
    gestures: list[dict[str, object]]


def prepare_touches(
    body: bytes, *, max_strokes: int, received_ms: int, skew_limit_ms: int
) -> PreparedTouches:
    request = decode_body(_REQUEST, body, "touches")
    if len(request.strokes) > max_strokes:
        raise PayloadTooLarge(
            f"The request has {len(request.strokes)} strokes; at most {max_strokes} are "
            "accepted - at `$.strokes`."
        )
    now = received_ms if request.now is None else request.now
    header = (
        request.pid, request.uid, request.dt, None, None, None, None, None, now, received_ms,
        None, None, None, request.density, None, None, SOURCE_TOUCHES, body,
    )  # fmt: skip
    prepared = PreparedBatch(pid=request.pid, header=header, events=[])
    strokes: list[tuple[int, Stroke]] = []
    maybe_nul = NUL_ESCAPE in body
    for index, raw in enumerate(request.strokes):
        try:
            stroke = _STROKE.decode(raw)
        except msgspec.ValidationError as exc:
            _reject(prepared, index, bytes(raw), str(exc), received_ms)
            continue
        except UnicodeDecodeError:
            _reject(prepared, index, bytes(raw), invalid_utf8(bytes(raw)), received_ms)
            continue
        if maybe_nul and (path := nul_path(stroke)) is not None:
            _reject(prepared, index, bytes(raw), f"{NUL_MESSAGE} - at `{path}`", received_ms)
            continue
        strokes.append((index, stroke))
    result = _classify([stroke for _, stroke in strokes], request.density)
    screen, av = screen_name(request.url), request.vo.av
    gestures: list[dict[str, object]] = []
    for row, (index, stroke) in enumerate(strokes):
        gesture = _describe(stroke.id, result, row)
        gestures.append(gesture)
        ea = int(result.ea[row])
        if ea < 0:
            continue  # ambiguous, cancelled, invalid: counted in the reply, not stored
        t_ms = int(stroke.t[int(result.first_index[row])])
        corrected, clamped = corrected_time(t_ms, now, received_ms, skew_limit_ms)
        fd = int(result.fd[row]) or None
        ur = None if ea != 6 or stroke.ur is None else int(stroke.ur)
        prepared.events.append((
            request.pid, stroke.id, ea, request.uid, request.dt, request.sn, request.scn,
            t_ms, corrected, clamped, screen, av, stroke.tvp, ur, fd, None, None,
            SOURCE_TOUCHES, index,
        ))  # fmt: skip
    return PreparedTouches(prepared, gestures)


def _classify(strokes: list[Stroke], density: float) -> StrokeResult:
    """One vectorised call for all strokes; strokes with ragged arrays become invalid."""
    lengths = np.array([_usable_length(s) for s in strokes], dtype=np.int64)
    usable = [s for s, n in zip(strokes, lengths, strict=True) if n]
    offsets = np.zeros(len(strokes) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    t = np.fromiter((v for s in usable for v in s.t), dtype=np.float64, count=int(offsets[-1]))
    x = np.fromiter((v for s in usable for v in s.x), dtype=np.float64, count=int(offsets[-1]))
    y = np.fromiter((v for s in usable for v in s.y), dtype=np.float64, count=int(offsets[-1]))
    actions = None
    if any(s.actions is not None for s in usable):
        # A stroke sent without actions is taken as complete: it ends with an up.
        codes: list[int] = []
        for s in usable:
            if s.actions is None:
                codes.extend([ACTION_MOVE] * (len(s.t) - 1) + [ACTION_UP])
            else:
                codes.extend(_ACTION_CODES[a] for a in s.actions)
        actions = np.array(codes, dtype=np.int8)
    # Global sample indexes come back in first_index; make them stroke-local.
    result = classify_strokes(t, x, y, offsets, density, actions)
    local = np.where(result.first_index >= 0, result.first_index - offsets[:-1], -1)
    return result._replace(first_index=local)


def _usable_length(stroke: Stroke) -> int:
    """Its sample count, or 0 (classified invalid) when its arrays differ in length."""
    n = len(stroke.t)
    if len(stroke.x) != n or len(stroke.y) != n:
        return 0
    if stroke.actions is not None and len(stroke.actions) != n:
        return 0
    return n


def _describe(stroke_id: str, result: StrokeResult, row: int) -> dict[str, object]:
    code = int(result.gesture[row])
    ea = int(result.ea[row])
    fd = int(result.fd[row])
    finite = ea >= 0 or np.isfinite(result.duration_ms[row])
    return {
        "id": stroke_id,
        "gesture": GESTURE_NAMES[code],
        "ea": ea if ea >= 0 else None,
        "duration_ms": round(float(result.duration_ms[row]), 3) if finite else None,
        "distance_dp": round(float(result.distance_dp[row]), 3) if finite else None,
        "velocity_dps": round(float(result.velocity_dps[row]), 3) if finite else None,
        "direction": DIRECTION_NAMES[fd] or None,
        "fd": fd or None,
        "tvd": int(result.tvd[row]) if finite else None,
        "tvv": int(result.tvv[row]) if finite else None,
        "samples": int(result.samples[row]),
    }


def _reject(
    prepared: PreparedBatch, index: int, raw: bytes, message: str, received_ms: int
) -> None:
    try:
        stroke_id = _ID_PROBE.decode(raw).id
    except (msgspec.DecodeError, UnicodeDecodeError):
        stroke_id = None
    reason = at_path(message, f"$.strokes[{index}]")
    prepared.reject(index, raw, reason, stroke_id, received_ms, id_key="id")
