"""A generated zoning data set (fixed seed) and a plain reference implementation of SPEC §7.

The data set is a list of SDK batches in the order they are sent, each with the server time
at which it is received. It has many users, sessions, screens, app versions, device types
and currencies; device clocks that are off (batch `now` ≠ server time); events outside any
period of interest; batches split mid-session and shuffled (gestures before their
screenview, transactions before the tap); retried batches (duplicates), some re-sent later
with a new `now`; a screenview sent twice under two euids; gestures without a screenview;
a gesture whose url names another screen than its screenview; clamped future times.

`reference_report` recomputes every metric from the events alone, in the most direct way.
"""

from __future__ import annotations

import copy
import random
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote

DAY_MS = 86_400_000
SKEW_LIMIT_MS = 23 * 3600 * 1000
START = date(2024, 3, 1)
DAYS = 8
SCREENS = ("Home", "Sales", "Cart", "Product detail")
PATH_SCREEN = "/settings/main"  # a url without title: the screen is its path
ELEMENTS = {
    "Home": [
        "[root]>UIView>UIButton#search>", "[root]>UIView>UITableView>", "[root]>UIView>UIImageView>"
    ],
    "Sales": [
        "[root]>UIView>UIButton#buy>",
        "[root]>UIView>UIStackView>UIButton#buy>",  # the buy button moved in 2.4.0
        "[root]>UIView>UIView#promo>",
        "[root]>UIView>UIScrollView>",
        "[root]>UIView>UIButton#more>",
        "[root]>UIView>UIButton#less>",
    ],
    "Cart": ["[root]>UIView>UIButton#pay>", "[root]>UIView>UITableView>"],
    "Product detail": ["[root]>UIView>UIButton#add>", "[root]>UIView>UIImageView#photo>"],
    PATH_SCREEN: ["[root]>UIView>UISwitch#dark>"],
}
APP_VERSIONS = ("2.3.0", "2.4.0")
DEVICE_TYPES = (4, 5, 6)
CURRENCIES = (978, 840, 826, 36)
# Sales attribution: (screen, av, tvp) -> (target, kind). 2.3.0 and 2.4.0 put the buy button
# at different paths, both map to one reliable target; #more and #less share a target (a
# hand-made map: two elements, one zone); #promo has a tag target in 2.3.0 only.
BUY = "UIButton[ai:SalesViewController.buy]"
PAGER = "UIButton[ai:SalesViewController.pager]"
TARGET_MAP = {
    ("Sales", "2.3.0", "[root]>UIView>UIButton#buy>"): (BUY, "ai"),
    ("Sales", "2.4.0", "[root]>UIView>UIStackView>UIButton#buy>"): (BUY, "ai"),
    ("Sales", "2.3.0", "[root]>UIView>UIView#promo>"): ("[root]>UIView[tg:444]>UIView:eq(0)", "tg"),
    ("Sales", "2.3.0", "[root]>UIView>UIButton#more>"): (PAGER, "ai"),
    ("Sales", "2.3.0", "[root]>UIView>UIButton#less>"): (PAGER, "ai"),
    ("Home", "2.4.0", "[root]>UIView>UITableView>"): ("UITableView[ai:HomeVC.feed]", "ai"),
}  # fmt: skip


def day_ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * 1000


def url_of(screen: str) -> str:
    if screen.startswith("/"):
        return f"app-ios://shop{screen}"
    return f"app-ios://shop/main?title={quote(screen)}"


@dataclass
class Batch:
    """One POST /v1/batch: its body and the server clock when it is received."""

    body: dict[str, Any]
    received_ms: int

    @property
    def pid(self) -> int:
        return int(self.body["pid"])


@dataclass
class _Session:
    pid: int
    uid: str
    dt: int
    sn: int
    av: str
    clock_offset_ms: int
    events: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # (true time, event)


class DataSet:
    """Builds the batches; `self.batches` is the send order."""

    def __init__(self, seed: int = 20240305, users: int = 28) -> None:
        self.rng = random.Random(seed)
        self.euid = 0
        self.batches: list[Batch] = []
        self.screens: dict[str, str] = {}  # euid -> the screen its url names
        sessions: list[_Session] = []
        for u in range(users):
            uid = f"user-{u:03d}-{self.rng.randrange(16**6):06x}"
            dt = DEVICE_TYPES[u % 3]
            offset = self.rng.choice((0, 0, self.rng.randint(-7_200_000, 7_200_000)))
            for sn in range(1, self.rng.randint(1, 3) + 1):
                av = self.rng.choice(APP_VERSIONS)
                sessions.append(self._session(1 if u % 7 else 2, uid, dt, sn, av, offset))
        for session in sessions:
            self._split(session)
        self._oddities(sessions)
        self._shuffle_and_retry()

    def _next_euid(self) -> str:
        self.euid += 1
        return f"ev-{self.euid:05d}"

    def _event(
        self, ea: int, true_ms: int, s: _Session, scn: int, screen: str, **extra: Any
    ) -> None:
        event = {
            "ea": ea, "euid": self._next_euid(), "t": true_ms + s.clock_offset_ms,
            "upt": 1000 + true_ms % 1_000_000, "url": url_of(screen), "scn": scn, "c": 1,
            "o": 0, "vo": {"sv": "2.1", "sb": 4, "av": s.av, "af": "release", "ab": 7},
            "sn": s.sn, **extra,
        }  # fmt: skip
        self.screens[event["euid"]] = screen
        s.events.append((true_ms, event))

    def _gesture(self, true_ms: int, s: _Session, scn: int, screen: str, tvp: str) -> None:
        kind = self.rng.random()
        target = {"tvp": tvp, "tvid": tvp.rsplit(">", 2)[-2]}
        if kind < 0.6:
            self._event(6, true_ms, s, scn, screen, ur=self.rng.random() < 0.8, **target)
        elif kind < 0.7:
            self._event(8, true_ms, s, scn, screen, **target)
        else:
            move = {"fd": self.rng.randint(1, 5), "tvd": 120, "tvv": 80}
            self._event(9 if kind < 0.85 else 10, true_ms, s, scn, screen, **target, **move)

    def _session(self, pid: int, uid: str, dt: int, sn: int, av: str, offset: int) -> _Session:
        rng = self.rng
        s = _Session(pid, uid, dt, sn, av, offset)
        t = day_ms(START) + rng.randrange(DAYS * DAY_MS)
        # Sessions near midnight cross into the next day.
        if rng.random() < 0.15:
            t = day_ms(START) + rng.randrange(1, DAYS) * DAY_MS - rng.randint(5_000, 60_000)
        self._event(0, t, s, 0, "Home")
        for scn in range(1, rng.randint(2, 7)):
            screen = rng.choice((*SCREENS, PATH_SCREEN, "Sales", "Sales"))
            t += rng.randint(300, 20_000)
            self._event(4, t, s, scn, screen, st=screen, sl=rng.randint(0, 900))
            for _ in range(rng.choice((0, 1, 2, 3, 4, 6))):
                t += rng.randint(0, 4_000)  # 0: a tap at the screenview's own millisecond
                self._gesture(t, s, scn, screen, rng.choice(ELEMENTS[screen]))
            if rng.random() < 0.3:
                t += rng.choice((0, rng.randint(1, 30_000)))  # 0: same ms as the last event
                amount = rng.choice((9.99, 20.0, 0.1, 0.2, 1234.5, rng.randint(1, 99_999) / 100))
                tr = {"vl": amount, "cu": rng.choice(CURRENCIES)}
                self._event(16, t, s, scn, screen, tr=tr)
            if rng.random() < 0.2:
                self._event(18, t, s, scn, screen, k="plan", v="gold")
        self._event(2, t + 500, s, scn, screen)
        return s

    def _split(self, s: _Session) -> None:
        """Cut the session into batches of random sizes, each sent after its last event."""
        events = s.events
        cut = 0
        while cut < len(events):
            size = self.rng.randint(1, 9)
            chunk = events[cut : cut + size]
            cut += size
            sent_true = chunk[-1][0] + self.rng.randint(100, 120_000)
            self._add_batch(s, [e for _, e in chunk], sent_true)

    def _add_batch(self, s: _Session, pl: list[dict[str, Any]], sent_true_ms: int) -> None:
        body = {
            "pid": s.pid, "uid": s.uid, "dt": s.dt, "os": "17.1", "l": "en_US",
            "tz": "Europe/Paris", "now": sent_true_ms + s.clock_offset_ms,
            "to": {"an": "shop", "st": "sdk-ios", "sf": "release"}, "r": {"d": 3.0},
            "pl": pl,
        }  # fmt: skip
        latency = self.rng.randint(20, 900)
        self.batches.append(Batch(body, sent_true_ms + latency))

    def _batch_of(self, euid: str) -> Batch:
        return next(b for b in self.batches if any(e["euid"] == euid for e in b.body["pl"]))

    def _oddities(self, sessions: list[_Session]) -> None:
        main = [s for s in sessions if s.pid == 1]
        # A screenview sent again under another euid, in a batch with the same clocks as the
        # first one's: 1.5 s earlier on another screen (it wins: earliest corrected time),
        # 4 s later (ignored), at the same time (ignored: ties go to the smaller euid).
        for s, shift, screen in ((main[0], -1_500, "Cart"), (main[1], 4_000, "Home"),
                                 (main[2], 0, "Cart")):  # fmt: skip
            first = next(e for _, e in s.events if e["ea"] == 4)
            again = dict(first, euid=self._next_euid(), url=url_of(screen), st=screen)
            again["t"] = first["t"] + shift
            self.screens[again["euid"]] = screen
            original = self._batch_of(first["euid"])
            body = dict(copy.deepcopy(original.body), pl=[again])
            self.batches.append(Batch(body, original.received_ms))
        # A gesture of a screenview that never came; a gesture whose url names another screen
        # than its screenview's (it still belongs to that screenview).
        s = main[3]
        sv_true, sv = next((t, e) for t, e in s.events if e["ea"] == 4)
        tvp = ELEMENTS["Home"][0]
        self._event(6, day_ms(START) + DAY_MS, s, 99, "Home", tvp=tvp, tvid="x", ur=True)
        self._event(6, sv_true + 10, s, sv["scn"], "Cart", tvp=ELEMENTS["Cart"][0], tvid="p",
                    ur=False)  # fmt: skip
        self._add_batch(s, [e for _, e in s.events[-2:]], sv_true + 20_000)
        # A device clock gone wild: the event is more than 23 h ahead of its batch's `now`,
        # so its corrected time is clamped to the receive time.
        s = main[4]
        sv_true, sv = next((t, e) for t, e in s.events if e["ea"] == 4)
        self._event(6, sv_true + 30 * 3600 * 1000, s, sv["scn"], sv["st"],
                    tvp=ELEMENTS[sv["st"]][0], tvid="w", ur=True)  # fmt: skip
        self._add_batch(s, [s.events[-1][1]], sv_true + 5_000)

    def _shuffle_and_retry(self) -> None:
        rng = self.rng
        rng.shuffle(self.batches)
        retried: list[Batch] = []
        for batch in rng.sample(self.batches, len(self.batches) // 6):
            again = copy.deepcopy(batch.body)
            if rng.random() < 0.5:
                # Re-sent later: a new `now` (and receive time); the stored copy stays first.
                delay = rng.randint(60_000, 3_600_000)
                again["now"] += delay
                retried.append(Batch(again, batch.received_ms + delay))
            else:
                retried.append(Batch(again, batch.received_ms))
        # A retry that adds one new event to events already stored.
        merged = copy.deepcopy(self.batches[0].body)
        extra = dict(merged["pl"][0], euid=self._next_euid())
        self.screens[extra["euid"]] = self.screens[merged["pl"][0]["euid"]]
        merged["pl"].append(extra)
        retried.append(Batch(merged, self.batches[0].received_ms + 1_000))
        self.batches += retried


# -- the reference ------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredEvent:
    pid: int
    uid: str
    dt: int
    ea: int
    euid: str
    sn: int
    scn: int
    corrected_ms: int
    screen: str
    av: str
    tvp: str | None
    ur: bool | None
    currency: int | None
    value: float | None


def stored_events(batches: list[Batch], screens: dict[str, str]) -> list[StoredEvent]:
    """What the server keeps: the first copy of every (pid, euid), with corrected times.

    `screens` gives each event's screen as the generator built its url.
    """
    seen: set[tuple[int, str]] = set()
    kept = []
    for batch in batches:
        body = batch.body
        for e in body["pl"]:
            key = (body["pid"], e["euid"])
            if key in seen:
                continue
            seen.add(key)
            corrected = e["t"] + batch.received_ms - body["now"]
            if corrected > batch.received_ms + SKEW_LIMIT_MS:
                corrected = batch.received_ms
            tr = e.get("tr") or {}
            kept.append(
                StoredEvent(
                    pid=body["pid"], uid=body["uid"], dt=body["dt"], ea=e["ea"], euid=e["euid"],
                    sn=e["sn"], scn=e["scn"], corrected_ms=corrected, screen=screens[e["euid"]],
                    av=e["vo"]["av"], tvp=e.get("tvp"), ur=e.get("ur"),
                    currency=tr.get("cu"), value=tr.get("vl"),
                )
            )  # fmt: skip
    return kept


def reference_report(
    events: list[StoredEvent],
    target_map: dict[tuple[str, str, str], tuple[str, str]],
    *,
    pid: int,
    screen: str,
    from_day: date | None = None,
    to_day: date | None = None,
    av: str | None = None,
    dt: int | None = None,
) -> dict[str, Any]:
    """SPEC §7 as the README states it, directly from the stored events."""
    events = [e for e in events if e.pid == pid]
    # The screenview of each (uid, sn, scn): its earliest event, ties to the smaller euid.
    screenview: dict[tuple[str, int, int], StoredEvent] = {}
    for e in events:
        if e.ea == 4:
            key = (e.uid, e.sn, e.scn)
            best = screenview.get(key)
            if best is None or (e.corrected_ms, e.euid) < (best.corrected_ms, best.euid):
                screenview[key] = e
    low = day_ms(from_day) if from_day else -(2**63)
    high = day_ms(to_day) + DAY_MS if to_day else 2**63
    selected = {
        key: sv
        for key, sv in screenview.items()
        if sv.screen == screen
        and low <= sv.corrected_ms < high
        and (av is None or sv.av == av)
        and (dt is None or sv.dt == dt)
    }
    zones: dict[str, dict[str, Any]] = {}
    kinds: dict[str, set[str]] = defaultdict(set)
    view_taps: dict[tuple[str, tuple[str, int, int]], list[int]] = defaultdict(list)
    view_swipes: set[tuple[str, tuple[str, int, int]]] = set()
    for e in events:
        key = (e.uid, e.sn, e.scn)
        if e.ea not in (6, 8, 9, 10) or key not in selected:
            continue
        assert e.tvp is not None
        zone, kind = target_map.get((e.screen, e.av, e.tvp), (e.tvp, "path"))
        kinds[zone].add(kind)
        z = zones.setdefault(
            zone, {"taps": 0, "long_presses": 0, "drags": 0, "flicks": 0, "unresponsive_taps": 0}
        )
        if e.ea == 6:
            z["taps"] += 1
            z["unresponsive_taps"] += e.ur is False
            view_taps[(zone, key)].append(e.corrected_ms)
        elif e.ea == 8:
            z["long_presses"] += 1
        else:
            z["drags" if e.ea == 9 else "flicks"] += 1
            view_swipes.add((zone, key))
    transactions: dict[tuple[str, int], list[StoredEvent]] = defaultdict(list)
    for e in events:
        if e.ea == 16:
            transactions[(e.uid, e.sn)].append(e)
    n_views = len(selected)
    out = []
    for zone, z in zones.items():
        tapped = {key: min(times) for (zn, key), times in view_taps.items() if zn == zone}
        swiped = [key for zn, key in view_swipes if zn == zone]
        first_tap: dict[tuple[str, int], int] = {}
        for (uid, sn, _), t in tapped.items():
            first_tap[(uid, sn)] = min(t, first_tap.get((uid, sn), t))
        delays = [t - selected[key].corrected_ms for key, t in tapped.items()]
        revenue: dict[str, float] = defaultdict(float)
        converted = 0
        for session, t in first_tap.items():
            later = [x for x in transactions[session] if x.corrected_ms > t]
            converted += bool(later)
            for x in later:
                assert x.currency is not None and x.value is not None
                revenue[str(x.currency)] += x.value
        swipes = z["drags"] + z["flicks"]
        out.append(
            {
                "zone": zone,
                "kind": min(kinds[zone]),
                **z,
                "tap_rate": len(tapped) / n_views if tapped else 0.0,
                "tap_recurrence": z["taps"] / len(tapped) if tapped else None,
                "swipe_rate": len(swiped) / n_views,
                "swipe_recurrence": swipes / len(swiped) if swiped else None,
                "time_before_first_tap_ms": statistics.median(delays) if delays else None,
                "users": len({uid for uid, _ in first_tap}),
                "sessions": len(first_tap),
                "conversion_rate": converted / len(first_tap) if first_tap else None,
                "revenue": {code: revenue[code] for code in sorted(revenue, key=int)},
            }
        )
    out.sort(key=lambda z: (-z["taps"], z["zone"]))
    return {
        "screen": screen,
        "screenviews": n_views,
        "sessions": len({(uid, sn) for uid, sn, _ in selected}),
        "users": len({uid for uid, _, _ in selected}),
        "zones": out,
    }
