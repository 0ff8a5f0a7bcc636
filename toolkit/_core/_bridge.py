"""The one door from other threads into the event loop.

Theory of operation
-------------------
Worker threads, executor callbacks and helper waits all finish on some
thread other than the loop's. ``loop.call_soon_threadsafe`` per completion
costs a self-pipe write and a loop wake-up each time; under a burst of
thousands of completions that is most of the cost of a ``to_thread`` call.
Each loop gets one ``LoopBridge``; threads append completions to its inbox
and only the first one into an empty inbox wakes the loop:

    worker thread ──post(cb, args)──▶ inbox (deque) ──▶ one call_soon_threadsafe
    worker thread ──post(cb, args)──▶   │                 per batch, not per item
                                        ▼
                              loop thread: _drain() runs every callback queued

The ``_scheduled`` flag is cleared *before* the drain pops anything, so an item
appended after the clear either is popped by this drain or schedules the
next one; an item is never stranded. (deque.append/popleft are atomic.)

This module is the only caller of ``call_soon_threadsafe`` in the toolkit;
keeping loop access here keeps another loop (trio, a Proactor loop) possible.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import weakref
from typing import TYPE_CHECKING, Any, TypeVar

from ._forking import renew_locks_in_child

if TYPE_CHECKING:
    import concurrent.futures
    from collections.abc import Callable, Hashable

    from ._thread_cache import ThreadCache

T = TypeVar("T")

__all__ = [
    "LoopBridge",
    "SharedWaits",
    "bridge_for",
    "chain_future",
    "helper_threads",
    "shared_waits_for",
    "wait_blocking",
]


class LoopBridge:
    """A per-loop inbox that other threads post callbacks to, woken once per batch."""

    __slots__ = ("__weakref__", "_inbox", "_loop_ref", "_scheduled")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # Weak: the registry below maps loops to bridges weakly, and a value
        # that held its key alive would keep every loop ever used.
        self._loop_ref = weakref.ref(loop)
        self._inbox: collections.deque[tuple[Callable[..., object], tuple[Any, ...]]] = (
            collections.deque()
        )
        self._scheduled = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The bridge's loop, or None once it was garbage-collected."""
        return self._loop_ref()

    def post(self, callback: Callable[..., object], *args: Any) -> None:
        """Run callback(*args) on the loop thread soon; safe from any thread.

        Callbacks run in the order they were posted. A callback posted after
        the loop closed is dropped: nobody is left to receive it.
        """
        self._inbox.append((callback, args))
        if self._scheduled:
            return
        self._scheduled = True
        loop = self._loop_ref()
        try:
            if loop is None:
                raise RuntimeError("the loop is gone")
            loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # the loop is closed; nothing can be delivered any more
            self._inbox.clear()
            self._scheduled = False

    def _drain(self) -> None:
        self._scheduled = False  # first: see the module docstring
        inbox = self._inbox
        while inbox:
            callback, args = inbox.popleft()
            try:
                callback(*args)
            except BaseException as exc:
                if isinstance(exc, KeyboardInterrupt | SystemExit):
                    raise
                loop = self._loop_ref()
                if loop is not None:
                    loop.call_exception_handler(
                        {
                            "message": f"toolkit: exception in callback {callback!r}",
                            "exception": exc,
                        }
                    )


_bridges: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopBridge] = (
    weakref.WeakKeyDictionary()
)
_bridges_lock = threading.Lock()


def bridge_for(loop: asyncio.AbstractEventLoop) -> LoopBridge:
    """Return the loop's bridge, creating it on first use."""
    bridge = _bridges.get(loop)
    if bridge is None:
        with _bridges_lock:
            bridge = _bridges.get(loop)
            if bridge is None:
                bridge = _bridges[loop] = LoopBridge(loop)
    return bridge


def _copy_state(source: concurrent.futures.Future[T], dest: asyncio.Future[T]) -> None:
    """Copy a finished concurrent future into an asyncio one (loop thread)."""
    if dest.done():  # cancelled by its awaiter meanwhile: nothing to deliver
        return
    if source.cancelled():
        dest.cancel()
        return
    exc = source.exception()
    if exc is not None:
        dest.set_exception(exc)
    else:
        dest.set_result(source.result())


def chain_future(
    source: concurrent.futures.Future[T], loop: asyncio.AbstractEventLoop
) -> asyncio.Future[T]:
    """Return an asyncio future that follows a concurrent future.

    Like ``asyncio.wrap_future``, but completions are coalesced through the
    loop's bridge. Cancelling the asyncio future cancels the concurrent one
    (which only stops work that has not started).
    """
    dest: asyncio.Future[T] = loop.create_future()
    bridge = bridge_for(loop)

    def _on_source_done(fut: concurrent.futures.Future[T]) -> None:
        bridge.post(_copy_state, fut, dest)

    def _on_dest_done(fut: asyncio.Future[T]) -> None:
        if fut.cancelled():
            source.cancel()

    dest.add_done_callback(_on_dest_done)
    source.add_done_callback(_on_source_done)
    return dest


# --- coalesced helper waits ----------------------------------------------------------------------
#
# A semaphore-backed object (a bounded queue's put, locks, events, a
# JoinableQueue's join) has no descriptor to watch. Its waiters try the
# non-blocking call first; only a wait that would block comes here, and all
# coroutines of a loop waiting on the same object share ONE helper thread:
#
#     waiter ─┐                      helper thread (toolkit-wait-N):
#     waiter ─┼─ key ── _SharedWait ── attempt(0.2) until it says "may
#     waiter ─┘                         succeed now", then wakes them all
#
# attempt() must only *observe* (acquire then release, wait on a condition):
# it takes nothing on a waiter's behalf, so a waiter cancelled at any moment
# loses nothing. Each waiter then retries its non-blocking call and, if
# another process won, waits again. The helper re-checks every 0.2 s whether
# anyone still waits, so a cancelled wait frees its thread within 0.2 s.

_wait_threads: ThreadCache | None = None
_wait_threads_lock = threading.Lock()
renew_locks_in_child(globals(), "_bridges_lock", "_wait_threads_lock")


def helper_threads() -> ThreadCache:
    """The cache of helper-wait threads (one thread per contended object)."""
    global _wait_threads
    with _wait_threads_lock:
        if _wait_threads is None:
            from ._thread_cache import ThreadCache  # here: a pool never needs it

            # Its own cache: helper waits must never starve to_thread's threads.
            _wait_threads = ThreadCache(max_threads=4096, name="toolkit-wait")
        return _wait_threads


_ATTEMPT_SLICE = 0.2


class _SharedWait:
    __slots__ = ("attempt", "futures", "in_thread", "running")

    def __init__(self, attempt: Callable[[float], bool]) -> None:
        self.attempt = attempt
        self.futures: list[asyncio.Future[None]] = []
        # running: a helper was started and its _finish has not run on the loop
        # yet (no second helper meanwhile). in_thread: its thread has not
        # returned. They differ when the loop closes between the helper's
        # post and _finish: running then stays set forever, in_thread does not.
        self.running = False
        self.in_thread = False

    def live(self) -> bool:
        # A future of a loop that has closed waits for nobody (a test's loop,
        # an asyncio.run that ended): its helper must not run on for it.
        return any(not f.done() and not f.get_loop().is_closed() for f in self.futures)


class SharedWaits:
    """The coalesced helper waits of one loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._bridge = bridge_for(loop)
        self._entries: dict[Hashable, _SharedWait] = {}

    def helpers(self) -> int:
        """How many helper waits are running in a thread (one per contended object)."""
        return sum(entry.in_thread for entry in list(self._entries.values()))

    async def wait(self, key: Hashable, attempt: Callable[[float], bool]) -> None:
        """Wait until attempt(timeout) says the object may be ready. Wakes spuriously.

        Cancellation:
            Safe: attempt takes nothing.
        """
        await self.waiter(key, attempt)

    def waiter(self, key: Hashable, attempt: Callable[[float], bool]) -> asyncio.Future[None]:
        """wait() as a future: resolved when the helper's attempt says ready (or wake(key))."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _SharedWait(attempt)
        entry.futures.append(future)
        if not entry.running:
            self._start(key, entry)
        return future

    def wake(self, key: Hashable) -> None:
        """Wake every waiter of key now (its object is closing: they look and see)."""
        entry = self._entries.get(key)
        if entry is not None:
            futures, entry.futures = entry.futures, []
            for future in futures:
                if not future.done():
                    future.set_result(None)

    def waiter_count(self, key: Hashable) -> int:
        entry = self._entries.get(key)
        return 0 if entry is None else sum(not future.done() for future in entry.futures)

    def _start(self, key: Hashable, entry: _SharedWait) -> None:
        entry.running = True
        entry.in_thread = True
        bridge = self._bridge

        def _helper() -> None:
            ready = False
            try:
                while not ready and entry.live():
                    ready = entry.attempt(_ATTEMPT_SLICE)
            except BaseException:  # noqa: BLE001 - a broken object: wake waiters to see it themselves
                ready = True
            # Cleared before the post, never after: _finish may start the next
            # helper (setting it again) before this thread gets to run on.
            entry.in_thread = False
            loop = bridge.loop
            if loop is None or loop.is_closed():
                entry.running = False  # nobody is left to run _finish: say it here
                return
            bridge.post(self._finish, key, entry, ready)

        helper_threads().submit(_helper)

    def _finish(self, key: Hashable, entry: _SharedWait, ready: bool) -> None:
        entry.running = False
        if ready:
            futures, entry.futures = entry.futures, []
            for future in futures:
                if not future.done():
                    future.set_result(None)
        else:
            entry.futures = [future for future in entry.futures if not future.done()]
        if entry.futures:  # someone started waiting after the helper decided to stop
            self._start(key, entry)
        elif self._entries.get(key) is entry:
            del self._entries[key]


_shared_waits: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, SharedWaits] = (
    weakref.WeakKeyDictionary()
)


def shared_waits_for(loop: asyncio.AbstractEventLoop) -> SharedWaits:
    waits = _shared_waits.get(loop)
    if waits is None:
        waits = _shared_waits[loop] = SharedWaits(loop)
    return waits


async def wait_blocking(key: Hashable, attempt: Callable[[float], bool]) -> None:
    """Wait, sharing one helper thread per key, until attempt(timeout) returns True."""
    await shared_waits_for(asyncio.get_running_loop()).wait(key, attempt)
