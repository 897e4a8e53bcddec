"""msgspec Structs of the wire format (SPEC §3): the batch header and every event kind."""

from __future__ import annotations

from typing import Annotated, TypeVar

import msgspec
from msgspec import Meta, Struct

from server.errors import BadRequest

T = TypeVar("T")

# Millisecond epochs up to the end of year 9999: keeps every sum of times inside int64.
EpochMs = Annotated[int, Meta(ge=0, le=253_402_300_799_999)]
Uptime = Annotated[int, Meta(ge=0, le=2**53)]
Count = Annotated[int, Meta(ge=0, le=2**31 - 1)]
MAX_PID = 2**31 - 1
Pid = Annotated[int, Meta(ge=1, le=MAX_PID)]
Uid = Annotated[str, Meta(min_length=1, max_length=64)]
SessionNumber = Annotated[int, Meta(ge=1, le=2**31 - 1)]
DeviceType = Annotated[int, Meta(ge=-(2**31), le=2**31 - 1)]
Density = Annotated[float, Meta(ge=0.75, le=10)]
Euid = Annotated[str, Meta(min_length=1, max_length=128)]
Px = Annotated[float, Meta(ge=-1e7, le=1e7)]
Direction = Annotated[int, Meta(ge=1, le=5)]


# gc=False on every wire Struct: decoded from JSON they hold only strings, numbers, lists and
# other such Structs, so they cannot be part of a reference cycle, and the cyclic GC need not
# track the ~100 objects each batch of 50 events decodes into (server.serve.tune_gc).


class Origin(Struct, kw_only=True, gc=False):
    an: str
    st: str
    sf: str


class Resolution(Struct, kw_only=True, gc=False):
    d: Density
    w: Annotated[int, Meta(ge=1, le=100_000)] | None = None
    h: Annotated[int, Meta(ge=1, le=100_000)] | None = None


class Versions(Struct, kw_only=True, gc=False):
    sv: str
    sb: int
    av: str
    af: str
    ab: int


class EventBase(Struct, kw_only=True, tag_field="ea", gc=False):
    euid: Euid
    t: EpochMs
    upt: Uptime
    url: str
    scn: Count
    c: Annotated[int, Meta(ge=-1, le=4)]
    ci: str | None = None
    o: Annotated[int, Meta(ge=0, le=1)]
    vo: Versions
    sn: SessionNumber


class AppStart(EventBase, kw_only=True, tag=0):
    pass


class Foreground(EventBase, kw_only=True, tag=1):
    pass


class Background(EventBase, kw_only=True, tag=2):
    pass


class Screenview(EventBase, kw_only=True, tag=4):
    st: str
    sl: Count


class GestureBase(EventBase, kw_only=True):
    tvp: str
    tvid: str
    x: Px | None = None
    y: Px | None = None


class Tap(GestureBase, kw_only=True, tag=6):
    ur: bool


class LongPress(GestureBase, kw_only=True, tag=8):
    pass


class Drag(GestureBase, kw_only=True, tag=9):
    fd: Direction
    tvd: Count
    tvv: Count


class Flick(GestureBase, kw_only=True, tag=10):
    fd: Direction
    tvd: Count
    tvv: Count


class TransactionDetail(Struct, kw_only=True, gc=False):
    vl: Annotated[float, Meta(ge=-1e15, le=1e15)]
    cu: Annotated[int, Meta(ge=1, le=999)]
    id: str | None = None


class Transaction(EventBase, kw_only=True, tag=16):
    tr: TransactionDetail


class DynamicVarStr(EventBase, kw_only=True, tag=18):
    k: str
    v: str


class DynamicVarInt(EventBase, kw_only=True, tag=19):
    k: str
    v: Annotated[int, Meta(ge=-(2**63), le=2**63 - 1)]


Event = (
    AppStart
    | Foreground
    | Background
    | Screenview
    | Tap
    | LongPress
    | Drag
    | Flick
    | Transaction
    | DynamicVarStr
    | DynamicVarInt
)


class _Header(Struct, kw_only=True, gc=False):
    pid: Pid
    uid: Uid
    dt: DeviceType
    dma: str | None = None
    dmo: str | None = None
    os: str
    l: str  # noqa: E741 - the wire name
    tz: str
    now: EpochMs
    to: Origin
    r: Resolution


class Batch(_Header, kw_only=True):
    """The whole batch, every event valid: the fast path."""

    pl: Annotated[list[Event], Meta(min_length=1)]


class RawBatch(_Header, kw_only=True):
    """The header decoded strictly, events kept raw to be decoded one by one."""

    pl: Annotated[list[msgspec.Raw], Meta(min_length=1)]


class _EuidProbe(Struct):
    euid: str | None = None


BATCH_DECODER = msgspec.json.Decoder(Batch)
RAW_BATCH_DECODER = msgspec.json.Decoder(RawBatch)
EVENT_DECODER = msgspec.json.Decoder(Event)
_EUID_DECODER = msgspec.json.Decoder(_EuidProbe)

GESTURE_EAS = frozenset({6, 8, 9, 10})


NESTED_TOO_DEEP = "The JSON is nested too deeply to be decoded."


# JSON can only spell a NUL character as this escape; PostgreSQL text cannot hold one, so no
# stored string may contain it, on either backend.
NUL_ESCAPE = b"\\u0000"
NUL_MESSAGE = "NUL characters (\\u0000) are not accepted in strings"


def nul_path(value: object, path: str = "$") -> str | None:
    """Path of the first string (or key) holding a NUL character, None when there is none.

    Walks decoded Structs, dicts and lists; msgspec.Raw parts are left for their own decode.
    Iterative: a snapshot may nest as deep as msgspec allows.
    """
    stack: list[tuple[str, object]] = [(path, value)]
    while stack:
        here, item = stack.pop()
        children: list[tuple[str, object]] = []
        if isinstance(item, str):
            if "\x00" in item:
                return here
        elif isinstance(item, Struct):
            names = zip(item.__struct_fields__, item.__struct_encode_fields__, strict=True)
            children = [(f"{here}.{wire}", getattr(item, name)) for name, wire in names]
        elif isinstance(item, dict):
            for key, child in item.items():
                if "\x00" in key:
                    return here
                children.append((f"{here}.{key}", child))
        elif isinstance(item, list | tuple):
            children = [(f"{here}[{i}]", child) for i, child in enumerate(item)]
        stack.extend(reversed(children))
    return None


def decode_body(
    decoder: msgspec.json.Decoder[T], body: bytes, what: str, *, too_deep: str = NESTED_TOO_DEEP
) -> T:
    """Decode a request body, or 400 with msgspec's message (`Invalid batch: … - at $.pid.`).

    msgspec refuses nesting past the interpreter's recursion limit with RecursionError; that
    is a 400 too (`too_deep`), never a crash.
    """
    try:
        decoded = decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"Invalid {what}: {exc}.") from None
    except msgspec.DecodeError as exc:
        raise BadRequest(f"The body is not valid JSON: {exc}.") from None
    except UnicodeDecodeError:
        raise BadRequest(f"The body is not valid JSON: {invalid_utf8(body)}.") from None
    except RecursionError:
        raise BadRequest(too_deep) from None
    if NUL_ESCAPE in body and (path := nul_path(decoded)) is not None:
        raise BadRequest(f"Invalid {what}: {NUL_MESSAGE} - at `{path}`.")
    return decoded


def invalid_utf8(data: bytes) -> str:
    """The message for JSON with a string that is not UTF-8, in msgspec's words: msgspec
    raises UnicodeDecodeError for it (not a DecodeError), with an offset inside the string;
    this names the first bad byte of `data` instead."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"JSON is malformed: invalid UTF-8 (byte {exc.start})"
    return "JSON is malformed: invalid UTF-8"


def at_path(message: str, prefix: str) -> str:
    """Re-root a msgspec message decoded from a sub-document: `$.ea` -> `$.pl[3].ea`."""
    if "- at `$" in message:
        return message.replace("- at `$", f"- at `{prefix}", 1)
    return f"{message} - at `{prefix}`"


def probe_euid(raw: bytes) -> str | None:
    """The euid of an event that failed validation, when it has a usable one."""
    try:
        return _EUID_DECODER.decode(raw).euid
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None
