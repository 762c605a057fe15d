"""A crawl process dies with the process that started it.

A crawl left running by a supervisor that was killed (``kill -9``, an out-of-memory kill)
has nobody to stop it at its time limit, and a restarted supervisor could start a second
crawl of the same topic beside it. The supervisor names itself in the child's environment
(``TOPICWATCH_SUPERVISOR_PID``); the child asks the kernel for SIGKILL when its parent dies
(Linux ``prctl(PR_SET_PDEATHSIG)``) and then checks that its parent is still that process,
since the supervisor may have died before the request was made. Elsewhere a thread of the
child checks its parent every second.

Linux sends the signal when the *thread* that started the child ends, so the supervisor
starts crawl processes from its main thread.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
from collections.abc import Mapping

SUPERVISOR_PID_ENV = "TOPICWATCH_SUPERVISOR_PID"
PR_SET_PDEATHSIG = 1
POLL_EVERY = 1.0


def die_with_supervisor(env: Mapping[str, str] | None = None) -> None:
    """Tie this process's life to the supervisor's named in ``env``; exit at once when the
    supervisor is already gone. Without a supervisor named, do nothing (a crawl by hand)."""
    named = (os.environ if env is None else env).get(SUPERVISOR_PID_ENV, "")
    if not named.isdigit():
        return
    supervisor = int(named)
    if not (sys.platform.startswith("linux") and _set_parent_death_signal(signal.SIGKILL)):
        threading.Thread(
            target=_watch_parent, args=(supervisor,), name="supervisor watch", daemon=True
        ).start()
    if os.getppid() != supervisor:
        os._exit(1)  # the supervisor died before it could be watched


def _set_parent_death_signal(signum: signal.Signals) -> bool:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return bool(libc.prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def _watch_parent(supervisor: int) -> None:
    while os.getppid() == supervisor:
        threading.Event().wait(POLL_EVERY)
    os.kill(os.getpid(), signal.SIGKILL)
