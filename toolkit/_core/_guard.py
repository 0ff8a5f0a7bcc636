"""Children that end with their parent: no orphan after the parent is killed.

Theory of operation
-------------------
A child the toolkit starts (a pool worker, a ``ProcessPoolExecutor`` worker
behind ``AsyncExecutor``, a manager's server) calls ``guard_child`` first
thing. Two mechanisms then end it when the parent dies, even by SIGKILL:

* **The forkserver as guardian** (Linux, the default start method): when the
  toolkit starts the forkserver from the main thread (``start_forkserver``),
  the kernel sends it SIGTERM the moment the parent dies (the parent-death
  signal, ``PR_SET_PDEATHSIG``), and it SIGKILLs every process it forked,
  with their children (_forkserver_guard.py). Killed from outside, a worker
  dies even inside a C call that holds its GIL. The kernel follows the
  *thread* that started a child, not the process, which is why only a
  forkserver started from the main thread gets the signal::

      parent dies ──SIGTERM──▶ forkserver ──SIGKILL──▶ every process it forked, deepest first

* **A watcher thread** in each child, everywhere (the portable fallback): it
  waits for the parent process to end (a pidfd on Linux, kqueue on macOS
  and BSD, a process handle on Windows, polling elsewhere), then kills the
  child's own children and exits. It needs the GIL, so a long C call
  delays it when no guardian forkserver is there.

The forkserver and the resource tracker need no care of their own: they
leave when the last process holding their pipes (the parent and its
children) is gone.

This module is imported in children: it must not import asyncio.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from ._backend import get_backend
from ._cpython import forkserver_state

if TYPE_CHECKING:
    from collections.abc import Callable
    from multiprocessing.context import BaseContext

__all__ = [
    "Guarded",
    "end_with_children",
    "guard_child",
    "set_parent_death_signal",
    "start_forkserver",
    "watch_process",
]

_PR_SET_PDEATHSIG = 1


def set_parent_death_signal(sig: int) -> bool:
    """Ask the kernel to send sig to this process when its parent (thread) ends.

    Returns:
        True if the kernel took it (Linux), False where there is no such thing.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def end_with_children(status: int = 1) -> None:
    """Kill every process this one started (their trees too), then exit at once."""
    try:
        import psutil

        for child in psutil.Process().children(recursive=True):
            with contextlib.suppress(psutil.Error):
                child.kill()
    except Exception:  # noqa: BLE001 - exiting is what matters
        pass
    finally:
        os._exit(status)


def _wait_pidfd(pid: int) -> Callable[[], None] | None:
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is None or get_backend() != "linux":  # a forced backend: as elsewhere
        return None
    try:
        fd = pidfd_open(pid)
    except OSError:
        return None

    def wait() -> None:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while not poller.poll():
            pass

    return wait


def _wait_kqueue(pid: int) -> Callable[[], None] | None:
    kqueue = getattr(select, "kqueue", None)
    if kqueue is None:
        return None
    sel: Any = select  # the kqueue names exist only on macOS and BSD
    try:
        kq = kqueue()
        event = sel.kevent(
            pid,
            filter=sel.KQ_FILTER_PROC,
            flags=sel.KQ_EV_ADD | sel.KQ_EV_ONESHOT,
            fflags=sel.KQ_NOTE_EXIT,
        )
        kq.control([event], 0, 0)
    except OSError:
        return None

    def wait() -> None:
        while not kq.control(None, 1, None):
            pass

    return wait


def _wait_handle(pid: int) -> Callable[[], None] | None:
    try:
        import _winapi as winapi_module  # Windows only
    except ImportError:
        return None
    _winapi: Any = winapi_module
    try:
        handle = _winapi.OpenProcess(getattr(_winapi, "SYNCHRONIZE", 0x00100000), False, pid)
    except OSError:
        return None

    def wait() -> None:
        _winapi.WaitForSingleObject(handle, _winapi.INFINITE)

    return wait


def _wait_polling(pid: int) -> Callable[[], None]:
    if pid == os.getppid():
        # Our parent: its death reparents us at once (a zombie waiting to be
        # reaped still "runs" for the checks below, and may wait on us).
        def wait_parent() -> None:
            while os.getppid() == pid:
                time.sleep(0.2)

        return wait_parent
    try:
        import psutil

        process: Any = psutil.Process(pid)  # remembers its start time: a reused pid is not it
        zombie, gone = psutil.STATUS_ZOMBIE, psutil.NoSuchProcess
    except Exception:  # noqa: BLE001 - gone already, or no psutil: plain pid checks below
        process = None

    def alive() -> bool:
        if process is not None:
            try:
                return bool(process.is_running()) and process.status() != zombie
            except gone:
                return False
            except Exception:  # noqa: BLE001 - cannot tell (no /proc access): plain check
                pass
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except OSError:
            return True
        return True

    def wait() -> None:
        while alive():
            time.sleep(0.2)

    return wait


def watch_process(pid: int, on_exit: Callable[[], object], *, name: str = "toolkit-guard") -> None:
    """Call on_exit (in a daemon thread) once process pid has ended.

    The wait uses what the platform offers: a pidfd (Linux), kqueue (macOS,
    BSD), a process handle (Windows); else it polls every 0.2 s.
    """
    wait = _wait_pidfd(pid) or _wait_kqueue(pid) or _wait_handle(pid) or _wait_polling(pid)

    def run() -> None:
        wait()
        on_exit()

    threading.Thread(target=run, name=name, daemon=True).start()


def guard_child(parent_pid: int, *, on_exit: Callable[[], object] | None = None) -> None:
    """End this process when parent_pid ends (call it first thing in a child).

    on_exit: what to do then (default: kill our children, exit with status 1).
    """
    watch_process(parent_pid, on_exit if on_exit is not None else end_with_children)


class Guarded:
    """An initializer that guards the child first, then runs the user's initializer.

    For ``ProcessPoolExecutor``: its workers run the executor's initializer
    first thing. Picklable (spawn and forkserver send it to each worker).
    """

    __slots__ = ("initializer", "parent_pid")

    def __init__(self, parent_pid: int, initializer: Callable[..., object] | None) -> None:
        self.parent_pid = parent_pid
        self.initializer = initializer

    def __call__(self, *args: Any) -> None:
        guard_child(self.parent_pid)
        if self.initializer is not None:
            self.initializer(*args)

    def __reduce__(self) -> tuple[type[Guarded], tuple[int, Any]]:
        return Guarded, (self.parent_pid, self.initializer)


def start_forkserver(context: BaseContext) -> None:
    """Start the forkserver now, from this thread, so that it dies with this process.

    Only from the main thread, which lives as long as the process: the kernel
    sends the parent-death signal when the *thread* that started a child
    ends. From another thread (or if it runs already) the forkserver starts
    as multiprocessing starts it, without the signal; workers then rely on
    their watcher threads.
    """
    if context.get_start_method() != "forkserver":
        return
    if threading.current_thread() is not threading.main_thread():
        return
    if not sys.platform.startswith("linux"):
        return
    from multiprocessing import forkserver

    state = forkserver_state()
    if state is None:
        return  # another implementation: do without
    if state.pid is not None:
        return
    if "toolkit._core._forkserver_guard" not in state.preload:
        context.set_forkserver_preload([*state.preload, "toolkit._core._forkserver_guard"])
    with contextlib.suppress(Exception):
        forkserver.ensure_running()
