"""``to_thread``: a blocking call in a cached worker thread, its outcome posted through the bridge.

The toolkit's own objects (a connection's large write, a process start, a
manager's connect) use it as users do. It does not go through an executor:
each job posts its outcome to the loop through the bridge (_bridge.py), and
the threads come from a cache that lets idle ones leave after 10 s
(_thread_cache.py). That is what makes it faster than
``loop.run_in_executor`` (2.1-2.5x for 1,000 concurrent calls,
docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from ._bridge import bridge_for
from ._errors import as_task_error
from ._forking import renew_locks_in_child
from ._thread_cache import ThreadCache
from ._validate import check_callable

if TYPE_CHECKING:
    from collections.abc import Callable

P = ParamSpec("P")
R = TypeVar("R")

__all__ = [
    "default_cache",
    "in_own_thread",
    "running_loop",
    "set_exception_if_pending",
    "set_result_if_pending",
    "take_default_cache",
    "to_thread",
]


def running_loop(what: str) -> asyncio.AbstractEventLoop:
    """The running loop, or a RuntimeError saying that what needs one."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError(f"{what} must be called from a running event loop") from None


# Loop-thread callbacks posted through the bridge: a future may have been
# cancelled by its awaiter meanwhile, in which case there is nothing to deliver.
def set_result_if_pending(fut: asyncio.Future[Any], value: Any) -> None:
    if not fut.done():
        fut.set_result(value)


def set_exception_if_pending(fut: asyncio.Future[Any], exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)


# --- to_thread ----------------------------------------------------------------------------------

_lock = threading.Lock()
_default_threads: ThreadCache | None = None
renew_locks_in_child(globals(), "_lock")


def default_cache() -> ThreadCache:
    """The cache of to_thread's worker threads (started on first use)."""
    global _default_threads
    cache = _default_threads
    if cache is None:
        with _lock:
            cache = _default_threads
            if cache is None:
                cache = _default_threads = ThreadCache(name="toolkit-to_thread")
    return cache


class _ThreadCall:
    """One to_thread call, run by a cached worker thread."""

    __slots__ = ("args", "bridge", "context", "fn", "future", "kwargs")

    def __init__(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        future: asyncio.Future[Any],
    ) -> None:
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.future = future
        self.context = contextvars.copy_context()  # as asyncio.to_thread: contextvars carry over
        self.bridge = bridge_for(future.get_loop())

    def __call__(self) -> None:
        if self.future.cancelled():  # cancelled before it started: skip it
            return
        try:
            result = self.context.run(self.fn, *self.args, **self.kwargs)
        except BaseException as exc:  # noqa: BLE001 - delivered to the awaiting task
            # sys.exit() or KeyboardInterrupt in fn ends the call, not the program.
            self.bridge.post(set_exception_if_pending, self.future, as_task_error(exc))
        else:
            self.bridge.post(set_result_if_pending, self.future, result)
        finally:
            del self.fn, self.args, self.kwargs  # drop references as soon as possible


async def to_thread(fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
    """Run a blocking function in a worker thread and return its result.

    Like ``asyncio.to_thread`` (contextvars carry over; at most
    ``min(32, cpu_count + 4)`` threads), several times faster under load, and
    with threads that leave after 10 s without work.

    Raises:
        TypeError: fn is not callable.
        RuntimeError: not called from a running asyncio event loop.
        TaskExitError: fn raised ``SystemExit`` or ``KeyboardInterrupt``.
        Exception: whatever else fn raises, as it raised it.

    Cancellation:
        A call that has not started is dropped. A call already running cannot
        be stopped: it runs to its end in its thread and its result is
        discarded; the awaiting task gets ``CancelledError`` at once.
    """
    check_callable(fn)
    future: asyncio.Future[R] = running_loop("to_thread()").create_future()
    default_cache().submit(_ThreadCall(fn, args, kwargs, future))
    return await future


def take_default_cache() -> ThreadCache | None:
    """Detach the default thread cache (to shut it down); the next call starts a fresh one."""
    global _default_threads
    with _lock:
        cache, _default_threads = _default_threads, None
    return cache


async def in_own_thread(fn: Callable[[], object], name: str) -> None:
    """Run a blocking call in a thread of its own, without blocking the loop.

    For shutting the default executors down: ``to_thread`` would start a new
    thread cache just as the old one goes away, and a cache cannot join its
    own threads from one of them.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    bridge = bridge_for(loop)
    failure: list[BaseException] = []

    def _run() -> None:
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised on the loop below
            failure.append(exc)
        finally:
            bridge.post(set_result_if_pending, done, None)

    thread = threading.Thread(target=_run, name=name, daemon=True)
    thread.start()
    await done  # cancelled: the daemon thread finishes the shutdown on its own
    thread.join()  # past its last statement: returns at once
    if failure:
        raise failure[0]
