"""Imported by the forkserver as it starts (a preload): its children go when the parent dies.

``_guard.start_forkserver`` adds this module to the forkserver's preload
list only when it starts the forkserver itself, from the main thread: the
forkserver's parent thread then lives as long as the parent process, which
is what the kernel's parent-death signal follows (Linux). When the parent
dies, even by SIGKILL, the kernel sends the forkserver SIGTERM; the
forkserver is idle in its select loop, so the handler below runs at once
and SIGKILLs every process it forked and their descendants, deepest first,
then exits. Killed from outside, a worker dies even inside a C call that
holds its GIL, and its own children are found before they are orphaned.

Every child the forkserver forks gets SIGTERM's default action back (at-fork
hooks): a handler there would delay ``Process.terminate()`` until a C call
returns.

Imported anywhere but inside ``multiprocessing.forkserver.main``, it does
nothing.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from typing import Any


def _in_forkserver() -> bool:
    frame: Any = sys._getframe(1)
    while frame is not None:
        module = frame.f_globals.get("__name__")
        if frame.f_code.co_name == "main" and module == "multiprocessing.forkserver":
            return True
        frame = frame.f_back
    return False


def _take_children_along(signum: int, frame: object) -> None:
    # Once: the kernel sends the signal again each time this process is
    # handed to a new parent (another thread of the dying one, then a
    # subreaper), and a second run must not cut the first one short.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        # Imported here, not at preload: it would delay every forkserver start by
        # ~17 ms. The import begins only once a second signal is ignored, so no
        # nested run can find the module half-loaded.
        import psutil

        descendants = psutil.Process().children(recursive=True)
        for child in reversed(descendants):  # deepest first: none is orphaned on the way
            with contextlib.suppress(psutil.Error):
                child.kill()
    finally:
        os._exit(0)


# SIGTERM is blocked across each fork: a child gets the default action back
# before it can take a SIGTERM (a terminate() sent as soon as it has a pid
# waits in the kernel, then kills it as usual), and the forkserver's own
# SIGTERM waits until the fork is done.
def _block() -> None:
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})


def _unblock() -> None:
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})


def _default_in_child() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _unblock()


if _in_forkserver():
    from ._guard import set_parent_death_signal

    signal.signal(signal.SIGTERM, _take_children_along)
    os.register_at_fork(before=_block, after_in_parent=_unblock, after_in_child=_default_in_child)
    set_parent_death_signal(signal.SIGTERM)
