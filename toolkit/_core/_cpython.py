"""Every private attribute of a stdlib (or third-party) object the toolkit reads, in one place.

The toolkit stands on ``multiprocessing`` and ``concurrent.futures``
internals where their public API has no way in: a queue's pipe and read
lock (to wait on the descriptor instead of a thread), a condition's
counters (to be one of its sleepers), a process's ``Popen``, an executor's
initializer. Those names are not a promise: any Python may move one. So the
rest of the toolkit reads them only through the small functions here, each
with a docstring naming the attribute, its class, and the Pythons it was
checked on. ``tests/test_cpython.py`` has one test per function, each
against the real stdlib object: a Python that moves an attribute fails the
test named after it, and the fix is here, not scattered.

Unless a docstring says otherwise, a class is ``multiprocessing``'s (its
``queues``, ``synchronize``, ``process``, ``managers`` module) or
``concurrent.futures``', and "3.11-3.13" means checked on CPython 3.11.7,
3.12.1 and 3.13.0 (the source read, and tests/test_cpython.py run on each).
Where another implementation may lack the attribute (an executor that is not
the stdlib's, a forkserver module without the singleton), the function takes
a default or returns None; elsewhere a missing attribute raises
``AttributeError``.

Cost: each is one call and one attribute read. Callers that use an object's
internals on every operation read them once (at construction, or when a
pickled object is rebuilt) and keep them.

This module is imported in worker processes (via _guard.py): it must not
import asyncio, nor anything heavy at import time.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable
    from multiprocessing.connection import Connection
    from multiprocessing.context import BaseContext
    from multiprocessing.process import BaseProcess

__all__ = [
    "ForkserverState",
    "barrier_action",
    "barrier_condition",
    "barrier_count",
    "barrier_parties",
    "barrier_state",
    "barrier_timeout",
    "condition_lock",
    "condition_sleeping_count",
    "condition_wait_semaphore",
    "condition_woken_count",
    "connection_detach",
    "dask_executor_client",
    "descriptor_of",
    "event_condition",
    "event_flag",
    "executor_broken",
    "executor_initializer",
    "executor_max_workers",
    "executor_mp_context",
    "executor_processes",
    "executor_shutting_down",
    "forget_inherited_forkserver",
    "forking_pickler_reducers",
    "forkserver_state",
    "ignore_signal",
    "is_bootstrapping",
    "joinable_queue_condition",
    "joinable_queue_unfinished",
    "manager_registry",
    "manager_server",
    "mark_manager_started",
    "process_args",
    "process_closed",
    "process_identity",
    "process_popen",
    "proxy_authkey",
    "proxy_exposed",
    "proxy_is_auto",
    "proxy_method_to_typeid",
    "proxy_token",
    "queue_closed",
    "queue_maxsize",
    "queue_read_lock",
    "queue_reader",
    "queue_slots",
    "queue_write_lock",
    "queue_writer",
    "semlock_is_zero",
    "set_barrier_count",
    "set_barrier_state",
    "set_executor_initializer",
    "set_process_args",
]


# --- connections (multiprocessing.connection) -----------------------------------------------------


def connection_detach(conn: Connection) -> int:
    """Take a connection's descriptor or handle over: the connection is closed
    without closing it (``Connection._handle``; socket.detach's counterpart). 3.11-3.13.

    Windows cannot dup a socket handle, so taking it over is the portable way
    to give a connection's socket to a ``socket.socket``.
    """
    handle: int = conn._handle  # type: ignore[attr-defined]
    if handle is None:
        raise OSError("handle is closed")
    conn._handle = None  # type: ignore[attr-defined]
    return handle


def descriptor_of(conn: Connection, flags: int) -> int:
    """Take a pipe connection's end over as a file descriptor (os.read, os.dup2).

    On POSIX it is one already; on Windows the handle becomes a C runtime
    descriptor (``msvcrt.open_osfhandle``), which then owns it. flags:
    ``os.O_RDONLY`` or ``os.O_WRONLY``.
    """
    handle = connection_detach(conn)
    if os.name != "nt":
        return handle
    import msvcrt

    return msvcrt.open_osfhandle(handle, flags)  # type: ignore[attr-defined,no-any-return]


# --- queues (multiprocessing.queues) --------------------------------------------------------------


def queue_reader(queue: Any) -> Connection:
    """``Queue._reader`` (and ``SimpleQueue``'s): the pipe's read end. 3.11-3.13."""
    return queue._reader  # type: ignore[no-any-return]


def queue_writer(queue: Any) -> Connection:
    """``Queue._writer`` (and ``SimpleQueue``'s): the pipe's write end. 3.11-3.13."""
    return queue._writer  # type: ignore[no-any-return]


def queue_read_lock(queue: Any) -> Any:
    """``Queue._rlock`` (and ``SimpleQueue``'s): the Lock every reader takes. 3.11-3.13."""
    return queue._rlock


def queue_write_lock(queue: Any) -> Any:
    """``Queue._wlock`` (and ``SimpleQueue``'s): the writers' Lock, None on Windows. 3.11-3.13."""
    return queue._wlock


def queue_slots(queue: Any) -> Any:
    """``Queue._sem``: a BoundedSemaphore, the free slots (put takes one, get gives). 3.11-3.13."""
    return queue._sem


def queue_maxsize(queue: Any) -> int:
    """``Queue._maxsize``: the bound given, SEM_VALUE_MAX for an unbounded queue. 3.11-3.13."""
    maxsize: int = queue._maxsize
    return maxsize


def queue_closed(queue: Any) -> bool:
    """``Queue._closed``: close() was called in this process. 3.11-3.13."""
    closed: bool = queue._closed  # annotated, not converted: get and put check it each time
    return closed


def joinable_queue_condition(queue: Any) -> Any:
    """``JoinableQueue._cond``: the Condition join() waits on (task_done notifies). 3.11-3.13."""
    return queue._cond


def joinable_queue_unfinished(queue: Any) -> Any:
    """``JoinableQueue._unfinished_tasks``: the Semaphore counting items not done. 3.11-3.13."""
    return queue._unfinished_tasks


# --- locks, conditions, events, barriers (multiprocessing.synchronize) ---------------------------


def semlock_is_zero(lock: Any) -> Callable[[], bool]:
    """``SemLock._semlock._is_zero`` (Lock, RLock, semaphores), bound: value is 0? 3.11-3.13."""
    return lock._semlock._is_zero  # type: ignore[no-any-return]


def condition_lock(condition: Any) -> Any:
    """``Condition._lock``: the lock the condition was made with. 3.11-3.13."""
    return condition._lock


def condition_sleeping_count(condition: Any) -> Any:
    """``Condition._sleeping_count``: a Semaphore, +1 per waiter going to sleep. 3.11-3.13."""
    return condition._sleeping_count


def condition_woken_count(condition: Any) -> Any:
    """``Condition._woken_count``: a Semaphore, +1 per waiter woken or timed out. 3.11-3.13."""
    return condition._woken_count


def condition_wait_semaphore(condition: Any) -> Any:
    """``Condition._wait_semaphore``: the Semaphore notify() releases, one per waiter. 3.11-3.13."""
    return condition._wait_semaphore


def event_condition(event: Any) -> Any:
    """``Event._cond``: the Condition guarding the flag (set() notifies it). 3.11-3.13."""
    return event._cond


def event_flag(event: Any) -> Any:
    """``Event._flag``: a Semaphore, 1 while the event is set. 3.11-3.13."""
    return event._flag


def barrier_condition(barrier: Any) -> Any:
    """``Barrier._cond`` (from threading.Barrier): the Condition over its state. 3.11-3.13."""
    return barrier._cond


def barrier_parties(barrier: Any) -> int:
    """``Barrier._parties`` (from threading.Barrier): how many must meet. 3.11-3.13."""
    parties: int = barrier._parties
    return parties


def barrier_timeout(barrier: Any) -> float | None:
    """``Barrier._timeout`` (from threading.Barrier): wait()'s default timeout. 3.11-3.13."""
    timeout: float | None = barrier._timeout
    return timeout


def barrier_action(barrier: Any) -> Callable[[], object] | None:
    """``Barrier._action`` (from threading.Barrier): run by the last to arrive. 3.11-3.13."""
    return barrier._action  # type: ignore[no-any-return]


def barrier_state(barrier: Any) -> int:
    """``Barrier._state`` (shared): 0 filling, 1 draining, -1 resetting, -2 broken. 3.11-3.13."""
    state: int = barrier._state
    return state


def set_barrier_state(barrier: Any, state: int) -> None:
    """Write ``Barrier._state`` (a property over shared memory, with a setter). 3.11-3.13."""
    barrier._state = state


def barrier_count(barrier: Any) -> int:
    """``Barrier._count``, in shared memory: the parties waiting now. 3.11-3.13."""
    count: int = barrier._count
    return count


def set_barrier_count(barrier: Any, count: int) -> None:
    """Write ``Barrier._count`` (a property over shared memory, with a setter). 3.11-3.13."""
    barrier._count = count


# --- processes, start methods (multiprocessing.process, .forkserver) ------------------------------


def process_popen(process: BaseProcess) -> Any:
    """``BaseProcess._popen``: its Popen (pid, sentinel, poll), None until started. 3.11-3.13."""
    return process._popen  # type: ignore[attr-defined]


def process_closed(process: BaseProcess) -> bool:
    """``BaseProcess._closed``: close() was called. 3.11-3.13."""
    closed: bool = process._closed  # type: ignore[attr-defined]
    return closed


def process_identity(process: BaseProcess) -> tuple[int, ...]:
    """``BaseProcess._identity``: its numbers, as its default name shows them. 3.11-3.13."""
    return process._identity


def process_args(process: BaseProcess) -> tuple[Any, ...]:
    """``BaseProcess._args``: the target's positional arguments. 3.11-3.13."""
    args: tuple[Any, ...] = process._args  # type: ignore[attr-defined]
    return args


def set_process_args(process: BaseProcess, args: tuple[Any, ...]) -> None:
    """Write ``BaseProcess._args`` (before start: the child gets these). 3.11-3.13."""
    process._args = args  # type: ignore[attr-defined]


def ignore_signal(signum: int) -> None:
    """Ignore a signal through ``_signal.signal``, the C function of ``signal.signal``. 3.11-3.13.

    ``signal.signal`` converts the handler it replaces to an enum member; for a
    Python handler that fails, and the failure formats its ``repr``. In a
    freshly forked worker the old SIGINT handler is asyncio.Runner's, a
    partial holding the main task, whose repr walks the task's coroutine over
    memory the fork has not copied yet: 0.6 ms of a new worker's start.
    """
    import signal
    import sys

    raw = sys.modules.get("_signal")  # signal imports it: the C module under the wrapper
    if raw is None or not hasattr(raw, "SIG_IGN"):  # another implementation: the public way
        signal.signal(signum, signal.SIG_IGN)
        return
    raw.signal(signum, raw.SIG_IGN)  # it refuses signal.SIG_IGN, an enum member


def is_bootstrapping() -> bool:
    """``current_process()._inheriting``: set while spawn/forkserver prepare a child. 3.11-3.13."""
    from multiprocessing import process

    return bool(getattr(process.current_process(), "_inheriting", False))


class ForkserverState:
    """What forkserver_state() reads of this process's forkserver.

    A plain class: a NamedTuple costs ~0.1 ms to create, at every import
    of the toolkit's pools (a cold start measures it).
    """

    __slots__ = ("pid", "preload")

    def __init__(self, preload: list[str], pid: int | None) -> None:
        self.preload = preload  # the modules it imports as it starts (the stdlib's own list)
        self.pid = pid  # None until it was started


def forkserver_state() -> ForkserverState | None:
    """``_forkserver``'s ``_preload_modules`` and ``_forkserver_pid`` (None: absent). 3.11-3.13."""
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)
    modules = getattr(server, "_preload_modules", None)
    if server is None or not isinstance(modules, list):
        return None  # another implementation: callers do without
    return ForkserverState(modules, getattr(server, "_forkserver_pid", None))


def forget_inherited_forkserver() -> None:
    """In a forked child: drop the parent's forkserver, so that the child starts its own.

    The ``_forkserver`` singleton came along with its parent's pid, and its
    ``ensure_running`` asks ``os.waitpid`` whether that forkserver still
    runs: only its parent may ask, so every forkserver start in a fork
    child failed with ChildProcessError (CPython gh-86354, open). The
    child's copy of the liveness pipe is closed: the parent's forkserver
    must end with the parent alone. Its own lock is renewed: another thread
    may have held it at the fork. The preload list stays. A forkserver's own
    children (it forks them without a pid of its own to forget) are left
    as they are. 3.11-3.13.
    """
    import contextlib
    import sys

    forkserver = sys.modules.get("multiprocessing.forkserver")
    server = getattr(forkserver, "_forkserver", None)
    if server is None or getattr(server, "_forkserver_pid", None) is None:
        return
    alive = getattr(server, "_forkserver_alive_fd", None)
    preload = getattr(server, "_preload_modules", None)
    vars(server).update(vars(type(server)()))  # a new server's state: nothing started
    if preload is not None:
        server._preload_modules = preload
    if alive is not None:
        with contextlib.suppress(OSError):
            os.close(alive)


def forking_pickler_reducers() -> dict[Any, Any]:
    """``ForkingPickler._extra_reducers``: the live dict register() adds to. 3.11-3.13."""
    from multiprocessing.reduction import ForkingPickler

    return ForkingPickler._extra_reducers  # type: ignore[attr-defined,no-any-return]


# --- managers (multiprocessing.managers) ---------------------------------------------------------


def manager_registry(manager_class: type[Any]) -> dict[str, tuple[Any, ...]]:
    """``BaseManager._registry``: typeid -> (callable, exposed, ..., proxytype). 3.11-3.13."""
    return manager_class._registry  # type: ignore[no-any-return]


def mark_manager_started(manager: Any) -> None:
    """Set ``BaseManager._state.value`` to STARTED (as connect() does, no round trip). 3.11-3.13."""
    import multiprocessing.managers

    managers: Any = multiprocessing.managers  # typeshed lacks State
    manager._state.value = managers.State.STARTED


def manager_server() -> Any:
    """``current_process()._manager_server``: the Server this process runs, else None. 3.11-3.13."""
    from multiprocessing import process

    return getattr(process.current_process(), "_manager_server", None)


def proxy_token(proxy: Any) -> Any:
    """``BaseProxy._token``: the Token (typeid, address, id) of the referent. 3.11-3.13."""
    return proxy._token


def proxy_authkey(proxy: Any) -> bytes:
    """``BaseProxy._authkey``: the key the proxy connects with. 3.11-3.13."""
    return bytes(proxy._authkey)


def proxy_exposed(proxy: Any) -> tuple[str, ...] | None:
    """``BaseProxy._exposed_`` of a proxy or type: the methods it may call, or None. 3.11-3.13."""
    exposed = getattr(proxy, "_exposed_", None)
    return None if exposed is None else tuple(exposed)


def proxy_method_to_typeid(proxy_type: Any) -> dict[str, str] | None:
    """``BaseProxy._method_to_typeid_`` of a proxy type: methods returning proxies. 3.11-3.13."""
    method_to_typeid: dict[str, str] | None = getattr(proxy_type, "_method_to_typeid_", None)
    return method_to_typeid


def proxy_is_auto(proxy: Any) -> bool:
    """``BaseProxy._isauto``: True for a proxy AutoProxy() made. 3.11-3.13."""
    return bool(getattr(proxy, "_isauto", False))


# --- executors (concurrent.futures, distributed) -------------------------------------------------


def executor_max_workers(executor: Any) -> int | None:
    """``_max_workers`` of Thread/ProcessPoolExecutor (loky's too), else None. 3.11-3.13."""
    workers = getattr(executor, "_max_workers", None)
    return workers if isinstance(workers, int) else None


def executor_initializer(executor: Any, default: Any = None) -> Any:
    """``ProcessPoolExecutor._initializer``: new workers run it first; else default. 3.11-3.13."""
    return getattr(executor, "_initializer", default)


def set_executor_initializer(executor: Any, initializer: Callable[..., object] | None) -> None:
    """Write ``ProcessPoolExecutor._initializer``: workers started later run it. 3.11-3.13."""
    executor._initializer = initializer


def executor_mp_context(executor: Any) -> BaseContext | None:
    """``ProcessPoolExecutor._mp_context``: the context its workers start with. 3.11-3.13."""
    context: BaseContext | None = getattr(executor, "_mp_context", None)
    return context


def executor_processes(executor: Any) -> dict[int, BaseProcess] | None:
    """``ProcessPoolExecutor._processes``: pid -> worker; None after shutdown. 3.11-3.13."""
    processes: dict[int, BaseProcess] | None = getattr(executor, "_processes", None)
    return processes


def executor_broken(executor: Any) -> bool:
    """``ProcessPoolExecutor._broken``: a worker died (False, or why it broke). 3.11-3.13."""
    return bool(getattr(executor, "_broken", False))


def executor_shutting_down(executor: Any) -> bool:
    """``ProcessPoolExecutor._shutdown_thread``: shutdown() began. 3.11-3.13."""
    return bool(getattr(executor, "_shutdown_thread", False))


def dask_executor_client(executor: Any) -> Any:
    """``distributed``'s ``ClientExecutor._client`` (checked on distributed 2026.8); else None."""
    return getattr(executor, "_client", None)
