"""Decoding a batch body into storable rows: valid events, quarantine, clock-skew correction."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import msgspec

from server.errors import BadRequest, PayloadTooLarge
from server.schema import (
    BATCH_DECODER,
    EVENT_DECODER,
    RAW_BATCH_DECODER,
    Batch,
    Drag,
    DynamicVarInt,
    DynamicVarStr,
    Event,
    Flick,
    GestureBase,
    RawBatch,
    Screenview,
    Tap,
    Transaction,
    at_path,
    probe_euid,
)
from server.screens import screen_name

# Column order of the events table; the writer prepends nothing and appends batch_id.
EVENT_COLUMNS = (
    "pid", "euid", "ea", "uid", "dt", "sn", "scn",
    "t_ms", "upt_ms", "now_ms", "received_ms", "corrected_ms", "clamped",
    "url", "screen", "c", "ci", "o", "sv", "sb", "av", "af", "ab",
    "st", "sl", "tvp", "tvid", "ur", "fd", "tvd", "tvv", "x", "y",
    "tr_vl", "tr_cu", "tr_id", "k", "v_str", "v_int", "source",
)  # fmt: skip
BATCH_COLUMNS = (
    "pid", "uid", "dt", "dma", "dmo", "os", "l", "tz", "now_ms", "received_ms",
    "an", "st", "sf", "density", "w", "h", "source",
)  # fmt: skip
QUARANTINE_COLUMNS = ("pid", "received_ms", "idx", "euid", "reason", "raw", "raw_sha")

SOURCE_BATCH = 0
SOURCE_TOUCHES = 1


@dataclass(slots=True)
class PreparedBatch:
    """Everything one request stores, as rows; the writer commits it whole or not at all."""

    pid: int
    header: tuple[object, ...]
    events: list[tuple[object, ...]]
    quarantine: list[tuple[object, ...]] = field(default_factory=list)
    rejected: list[dict[str, object]] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.events) + len(self.quarantine) + 1


@dataclass(frozen=True, slots=True)
class IngestResult:
    accepted: int
    duplicates: int


def corrected_time(t_ms: int, now_ms: int, received_ms: int, limit_ms: int) -> tuple[int, int]:
    """Device time moved onto the server clock; (corrected, clamped flag)."""
    corrected = t_ms + (received_ms - now_ms)
    if corrected > received_ms + limit_ms:
        return received_ms, 1
    return corrected, 0


def decode_batch(body: bytes, max_events: int) -> tuple[Batch | RawBatch, list[Event | None]]:
    """Decode the body: the header strictly (400), the events one by one.

    Returns the header and a list with the decoded event, or None where the event is
    invalid (its reason is then found again by `quarantine_rows`).
    """
    try:
        batch: Batch | RawBatch = BATCH_DECODER.decode(body)
    except msgspec.DecodeError:
        try:
            batch = RAW_BATCH_DECODER.decode(body)
        except msgspec.ValidationError as exc:
            raise BadRequest(f"Invalid batch: {exc}.") from None
        except msgspec.DecodeError as exc:
            raise BadRequest(f"The body is not valid JSON: {exc}.") from None
    if len(batch.pl) > max_events:
        raise PayloadTooLarge(
            f"The batch has {len(batch.pl)} events; at most {max_events} are accepted - at `$.pl`."
        )
    if isinstance(batch, Batch):
        return batch, list(batch.pl)
    events: list[Event | None] = []
    for raw in batch.pl:
        try:
            events.append(EVENT_DECODER.decode(raw))
        except msgspec.DecodeError:
            events.append(None)
    return batch, events


def prepare_batch(
    body: bytes, *, max_events: int, received_ms: int, skew_limit_ms: int
) -> PreparedBatch:
    batch, events = decode_batch(body, max_events)
    pid, uid, dt, now = batch.pid, batch.uid, batch.dt, batch.now
    header = (
        pid, uid, dt, batch.dma, batch.dmo, batch.os, batch.l, batch.tz, now, received_ms,
        batch.to.an, batch.to.st, batch.to.sf, batch.r.d, batch.r.w, batch.r.h, SOURCE_BATCH,
    )  # fmt: skip
    prepared = PreparedBatch(pid=pid, header=header, events=[])
    rows = prepared.events
    for index, event in enumerate(events):
        if event is None:
            assert isinstance(batch, RawBatch)
            _reject(prepared, index, bytes(batch.pl[index]), received_ms)
            continue
        corrected, clamped = corrected_time(event.t, now, received_ms, skew_limit_ms)
        rows.append(event_row(pid, uid, dt, event, now, received_ms, corrected, clamped))
    return prepared


def _reject(prepared: PreparedBatch, index: int, raw: bytes, received_ms: int) -> None:
    try:
        EVENT_DECODER.decode(raw)
        reason = "Invalid event"  # unreachable: only events that failed decoding get here
    except msgspec.DecodeError as exc:
        reason = at_path(str(exc), f"$.pl[{index}]")
    euid = probe_euid(raw)
    text = raw.decode("utf-8", "replace")
    sha = hashlib.sha256(raw).hexdigest()
    prepared.quarantine.append((prepared.pid, received_ms, index, euid, reason, text, sha))
    prepared.rejected.append({"index": index, "euid": euid, "error": reason})


def event_row(
    pid: int,
    uid: str,
    dt: int,
    e: Event,
    now_ms: int,
    received_ms: int,
    corrected_ms: int,
    clamped: int,
    source: int = SOURCE_BATCH,
) -> tuple[object, ...]:
    """One events-table row (EVENT_COLUMNS order) for a decoded event."""
    vo = e.vo
    st = sl = tvp = tvid = ur = fd = tvd = tvv = x = y = None
    tr_vl = tr_cu = tr_id = k = v_str = v_int = None
    if isinstance(e, GestureBase):
        tvp, tvid, x, y = e.tvp, e.tvid, e.x, e.y
        if isinstance(e, Tap):
            ur = int(e.ur)
        elif isinstance(e, Drag | Flick):
            fd, tvd, tvv = e.fd, e.tvd, e.tvv
    elif isinstance(e, Screenview):
        st, sl = e.st, e.sl
    elif isinstance(e, Transaction):
        tr_vl, tr_cu, tr_id = e.tr.vl, e.tr.cu, e.tr.id
    elif isinstance(e, DynamicVarStr):
        k, v_str = e.k, e.v
    elif isinstance(e, DynamicVarInt):
        k, v_int = e.k, e.v
    return (
        pid, e.euid, e.__struct_config__.tag, uid, dt, e.sn, e.scn,
        e.t, e.upt, now_ms, received_ms, corrected_ms, clamped,
        e.url, screen_name(e.url), e.c, e.ci, e.o, vo.sv, vo.sb, vo.av, vo.af, vo.ab,
        st, sl, tvp, tvid, ur, fd, tvd, tvv, x, y,
        tr_vl, tr_cu, tr_id, k, v_str, v_int, source,
    )  # fmt: skip
