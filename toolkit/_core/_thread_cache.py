"""A cache of worker threads: the engine under ``to_thread``.

Why not ``ThreadPoolExecutor``: every call through it pays for a
``concurrent.futures.Future``, its lock and condition, a work item, and one
loop wake-up per completion. ``to_thread`` needs none of that: a job is a
callable that posts its own outcome through the loop's bridge (coalesced
wake-ups, see _bridge.py). Measured: 2.1-2.5x the throughput of
``loop.run_in_executor`` for 1,000 concurrent no-op calls (docs/benchmarks.md).

Threads are started on demand up to ``max_threads`` and leave after
``idle_timeout`` seconds without work, so an idle program holds no threads.
Accounting follows ``ThreadPoolExecutor``'s idle semaphore: ``submit`` puts the
job first, then takes one idle token or starts a thread; a worker whose idle
wait times out leaves only if its token is still unclaimed and no job is
queued, so a job is never left without a thread to run it.
"""

from __future__ import annotations

import itertools
import os
import queue
import sys
import threading
import weakref
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["ThreadCache", "default_max_threads"]

_names = itertools.count(1)

# Every cache alive, to empty in a forked child (see _empty_all_in_child).
_caches: weakref.WeakSet[ThreadCache] = weakref.WeakSet()


def default_max_threads() -> int:
    """``ThreadPoolExecutor``'s default size: same concurrency as ``asyncio.to_thread``."""
    return min(32, (os.cpu_count() or 1) + 4)


class ThreadCache:
    """Run jobs on a bounded set of reusable daemon threads.

    Jobs must not raise: they report their own outcome (``to_thread`` posts it
    to the loop). A job that raises anyway is reported by
    ``threading.excepthook`` and the thread goes on.
    """

    def __init__(
        self,
        max_threads: int | None = None,
        *,
        idle_timeout: float = 10.0,
        name: str = "toolkit-thread",
    ) -> None:
        if max_threads is None:
            max_threads = default_max_threads()
        if not isinstance(max_threads, int) or max_threads < 1:
            raise ValueError(f"max_threads must be a positive int, not {max_threads!r}")
        self._max_threads = max_threads
        self._idle_timeout = idle_timeout
        self._name = name
        self._shutdown = False
        self._empty()
        _caches.add(self)

    def _empty(self) -> None:
        """No thread, no job: a new cache's state, and a forked child's (its parent's
        threads did not come along; its lock may have been held by one of them)."""
        self._queue: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._quiet = threading.Condition(self._lock)  # notified when no job is running
        self._threads: set[threading.Thread] = set()
        self._idle = 0
        self._busy = 0

    @property
    def max_threads(self) -> int:
        return self._max_threads

    def counts(self) -> tuple[int, int]:
        """Return (threads alive, threads running a job)."""
        with self._lock:
            return len(self._threads), self._busy

    def threads(self) -> list[threading.Thread]:
        with self._lock:
            return list(self._threads)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no job is running; return False if timeout expired first."""
        with self._lock:
            return self._quiet.wait_for(lambda: self._busy == 0, timeout)

    def submit(self, job: Callable[[], None]) -> None:
        """Queue a job; start a thread for it if none is idle and there is room.

        Raises:
            RuntimeError: the cache was shut down.
        """
        if self._shutdown:
            raise RuntimeError("cannot run new jobs after shutdown")
        self._queue.put(job)
        with self._lock:
            if self._idle > 0:
                self._idle -= 1
                return
            if len(self._threads) >= self._max_threads:
                return  # every thread is busy: the job waits its turn in the queue
            thread = threading.Thread(
                target=self._work, name=f"{self._name}-{next(_names)}", daemon=True
            )
            self._threads.add(thread)
        try:
            thread.start()
        except BaseException:
            with self._lock:
                self._threads.discard(thread)
            raise

    def _work(self) -> None:
        me = threading.current_thread()
        get = self._queue.get
        lock = self._lock
        while True:
            try:
                job = get(timeout=self._idle_timeout)
            except queue.Empty:
                with lock:
                    if self._idle > 0 and self._queue.empty():
                        # Leave: give back the idle token and the thread slot together,
                        # or a submit in between would find neither.
                        self._idle -= 1
                        self._threads.discard(me)
                        return
                continue  # our idle token was claimed: a job is on its way
            if job is None:  # shutdown sentinel
                with lock:
                    self._threads.discard(me)
                return
            with lock:
                self._busy += 1
            try:
                job()
            except BaseException:  # noqa: BLE001 - a job's bug must not cost the cache a thread
                threading.excepthook(threading.ExceptHookArgs((*sys.exc_info(), me)))
            finally:
                with lock:
                    self._busy -= 1
                    self._idle += 1
                    if self._busy == 0:
                        self._quiet.notify_all()

    def shutdown(self, wait: bool = True, timeout: float | None = None) -> None:
        """Stop every thread once it finishes its current job; queued jobs still run.

        Args:
            wait: join the threads before returning.
            timeout: with wait, give up joining a thread after this long
                (a job blocked forever keeps its daemon thread alive).
        """
        with self._lock:
            self._shutdown = True
            threads = list(self._threads)
        for _ in threads:
            self._queue.put(None)
        if wait:
            for thread in threads:
                if thread is not threading.current_thread():
                    thread.join(timeout)


def _empty_all_in_child() -> None:
    # The jobs queued in the parent are the parent's: its threads run them there.
    for cache in list(_caches):
        cache._empty()


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_empty_all_in_child)
