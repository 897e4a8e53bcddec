"""The store's background threads run at a lower CPU priority than its request path.

`serve --workers N` pins each worker to one core (server.workers), so a worker's zoning
fold, WAL checkpoints and dedupe merges share that core with the threads a request waits
for: the event loop, the writer and the fsync. At the same priority a fold of 90 ms of CPU
stretched the commits beside it from 5 to 20-30 ms. Niced, the background work takes the
time the request path leaves. Under a load that leaves it too little, checkpoints and merges
wait (the writer's backstop checkpoint bounds the WAL), and the zoning folder goes back to
normal priority once its folds lag (server.store.sqlite_folder).
"""

from __future__ import annotations

import contextlib
import os
import threading

# Added to the calling thread's nice value (19 at most): CPU weight 110 against 1,024.
BACKGROUND_NICE = 10


def lower_priority() -> None:
    """Lower the calling thread's CPU priority (Linux, where nice is per thread; elsewhere
    nothing)."""
    with contextlib.suppress(AttributeError, OSError):
        tid = threading.get_native_id()
        nice = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(19, nice + BACKGROUND_NICE))


def lower_session_priority() -> None:
    """Lower the CPU priority of the calling process's session, when it leads one (the
    zoning fold process). Linux schedules each session as a group ("autogroup") that
    shares the CPUs fairly with the others, whatever the nice values of the threads inside:
    a niced thread yields to its own process's threads, not to another session's. The
    group's own nice value weighs it against the others. Elsewhere, or with autogroups
    off, nothing (and thread nice values apply across processes)."""
    set_session_nice(BACKGROUND_NICE)


def set_session_nice(nice: int) -> bool:
    """Set the nice value of the calling process's session group, when it leads its session
    (Linux with autogroups); whether it was set. Lowering it back needs CAP_SYS_NICE or an
    RLIMIT_NICE that allows it."""
    if os.getsid(0) != os.getpid():  # not our own session: the group is not ours to renice
        return False
    try:
        with open("/proc/self/autogroup", "w") as group:
            group.write(str(nice))
    except OSError:
        return False
    return True
