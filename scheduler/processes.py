"""Crawl processes a daemon did not start itself: found by pid and start time, and stopped.

A pid alone does not name a process: after the process ends, the kernel gives the number to
another. What does is the pid with the process's start time (field 22 of
``/proc/<pid>/stat``, in clock ticks since boot) and the boot it belongs to
(``/proc/sys/kernel/random/boot_id``). The daemon records that identity in the run's row when
it starts the crawl process; a restarted daemon stops the process only when the identity
still matches, so it never signals a stranger that inherited the pid.

Where ``/proc`` is missing there is no identity, and nothing is stopped by it (the crawl
process then watches its parent itself, see :mod:`crawler.lifeline`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

PROC = Path("/proc")
POLL_EVERY = 0.1


def process_identity(pid: int) -> str | None:
    """``<boot id>:<start time>`` of the living process ``pid``; None when there is none
    (gone, a zombie, or no ``/proc``)."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
        boot = (PROC / "sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces and parentheses.
    fields = stat[stat.rfind(")") + 2 :].split()
    state, start = fields[0], fields[19]
    if state in ("Z", "X"):
        return None
    return f"{boot}:{start}"


def stop_process_group(pid: int, identity: str, *, grace: float) -> bool:
    """Stop the process ``pid`` (and its process group) if it is still the one ``identity``
    names: SIGTERM, then SIGKILL after ``grace`` seconds. Whether there was one to stop."""
    if process_identity(pid) != identity:
        return False
    _signal(pid, signal.SIGTERM)
    if not _gone(pid, identity, within=grace):
        _signal(pid, signal.SIGKILL)
        _gone(pid, identity, within=grace)
    return True


def _gone(pid: int, identity: str, *, within: float) -> bool:
    deadline = time.monotonic() + within
    while process_identity(pid) == identity:
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL_EVERY)
    return True


def _signal(pid: int, signum: signal.Signals) -> None:
    # The crawl process leads a process group of its own (it was started in a new session).
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signum)
