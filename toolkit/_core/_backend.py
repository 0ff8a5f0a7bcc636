"""Which readiness backend this process waits with: ``linux``, ``posix`` or ``threads``.

Theory of operation
-------------------
Every wait of the toolkit on something another process writes (a queue's
pipe, a connection, an event's doorbell, a process's end, a worker's socket)
goes through one of three backends, chosen once per process, fastest first
among those the platform offers::

    linux    a private epoll watched by the loop (EPOLLONESHOT), reads that
             do not block for this call only (preadv2 RWF_NOWAIT), pidfds
    posix    a private selectors selector (kqueue on macOS and the BSDs,
             epoll or /dev/poll elsewhere) whose own descriptor the loop
             watches, reads of what FIONREAD says is there, sentinels
    threads  helper threads that wait with blocking calls, one per object
             with waiters (never one per waiter), results through the loop
             bridge: what a Proactor loop (Windows) can do, and anywhere the
             others cannot

Both descriptor backends keep shared descriptors away from the loop itself,
so that uvloop never turns them non-blocking for the other processes that
read them (docs/internals.md, "The uvloop hazard").

``TOOLKIT_BACKEND=linux|posix|threads`` in the environment, or
``toolkit.set_backend(name)`` before the first wait, forces one (children
inherit the environment variable, and ``set_backend`` sets it for them).

Handles
-------
On Windows a pipe is a handle, not a descriptor: nothing can poll it or ask
how many bytes it holds. There the objects read their pipes through their
connections' own calls (``poll``, ``recv_bytes``, ``send_bytes``), waits and
reads that may block going to helper threads (``uses_handles``). Only the
threads backend runs that way. ``TOOLKIT_HANDLES=1`` forces it on POSIX, so
that the path Windows takes is tested where Windows is not at hand.

This module is imported in worker processes: no asyncio, nothing heavy.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "BACKENDS",
    "available_backends",
    "get_backend",
    "msg_dontwait",
    "on_change",
    "set_backend",
    "uses_handles",
]

BACKENDS = ("linux", "posix", "threads")
_ENV = "TOOLKIT_BACKEND"
_HANDLES_ENV = "TOOLKIT_HANDLES"


_handles: bool | None = None  # decided once per process: every Event.wait asks


def uses_handles() -> bool:
    """Are pipes read through their connections' calls rather than as descriptors?

    Windows always; elsewhere when ``TOOLKIT_HANDLES=1`` (the Windows path, for
    tests), read at the first question: it must not change while objects live.
    """
    global _handles
    if _handles is None:
        _handles = os.name == "nt" or os.environ.get(_HANDLES_ENV) == "1"
    return _handles


_chosen: str | None = None
_listeners: list[Callable[[], object]] = []  # modules that keep a decision derived from it


def msg_dontwait() -> int:
    """socket.MSG_DONTWAIT, or 0 where sockets lack it (Windows), so the caller
    asks select first; 0 too where pipes are handles, so that the path Windows
    takes is tested elsewhere."""
    if uses_handles():
        return 0
    import socket

    return getattr(socket, "MSG_DONTWAIT", 0)


def _linux_works() -> bool:
    import select

    return (
        sys.platform.startswith("linux")
        and hasattr(select, "epoll")
        and hasattr(os, "preadv")
        and hasattr(os, "RWF_NOWAIT")
    )


def _posix_works() -> bool:
    if os.name != "posix":
        return False
    try:
        import fcntl  # noqa: F401 - FIONREAD is how the posix backend reads without blocking
        import termios
    except ImportError:
        return False
    if not hasattr(termios, "FIONREAD"):
        return False
    import select

    # A selector with a descriptor of its own, which the loop can watch
    # (kqueue, epoll, /dev/poll); else poll(), from a thread that rings the loop.
    return hasattr(select, "poll") or any(
        hasattr(select, name) for name in ("kqueue", "epoll", "devpoll")
    )


def _works(name: str) -> bool:
    if name != "threads" and uses_handles():
        return False  # the descriptor backends need descriptors
    if name == "linux":
        return _linux_works()
    if name == "posix":
        return _posix_works()
    return True  # threads: anywhere


def available_backends() -> tuple[str, ...]:
    """The backends this platform can run, fastest first (``threads`` always).

    Names ``set_backend`` and ``TOOLKIT_BACKEND`` accept here.
    It raises nothing: a backend whose probe fails is left out.
    """
    return tuple(name for name in BACKENDS if _works(name))


def _check(name: object, where: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"{where}: unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    assert isinstance(name, str)
    if not _works(name):
        raise ValueError(
            f"{where}: the {name!r} backend cannot run here ({sys.platform}); "
            f"available: {', '.join(available_backends())}"
        )
    return name


def get_backend() -> str:
    """The backend this process waits with: forced, or the fastest the platform offers.

    Raises:
        ValueError: ``TOOLKIT_BACKEND`` names no backend, or one this
            platform cannot run (said at the first wait, not ignored).
    """
    global _chosen
    if _chosen is None:
        forced = os.environ.get(_ENV)
        if forced:
            _chosen = _check(forced.strip().lower(), f"{_ENV}={forced}")
        else:  # the first that works: a later one's probe is not even made
            _chosen = next(name for name in BACKENDS if _works(name))
    return _chosen


def set_backend(name: str | None) -> None:
    """Force a backend for this process and the children it starts (None: automatic again).

    Call it before the toolkit first waits on anything: waits already set up
    (a loop's watcher, a pool's workers) keep the backend they started with.

    Raises:
        ValueError: an unknown name, or a backend this platform cannot run.
    """
    global _chosen
    if name is None:
        os.environ.pop(_ENV, None)
        _chosen = None
    else:
        _chosen = _check(name, "set_backend")
        os.environ[_ENV] = _chosen
    for listener in _listeners:
        listener()


def on_change(listener: Callable[[], object]) -> None:
    """Call listener() whenever set_backend changes the choice (a module's cached decision)."""
    _listeners.append(listener)
