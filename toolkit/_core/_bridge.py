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
import contextlib
import select
import threading
import weakref
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import concurrent.futures
    from collections.abc import Callable, Hashable

    from ._thread_cache import ThreadCache

T = TypeVar("T")

__all__ = [
    "FdWatcher",
    "LoopBridge",
    "SharedWaits",
    "bridge_for",
    "chain_future",
    "closing_fd",
    "forget_fd",
    "helper_threads",
    "shared_waits_for",
    "unwatch_readable",
    "unwatch_writable",
    "wait_blocking",
    "wait_readable",
    "watch_readable",
    "watch_writable",
    "watcher_for",
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


# --- descriptor readiness ------------------------------------------------------------------------
#
# Waiting on a multiprocessing descriptor (a Connection, a queue's reader
# end, a Process sentinel) costs no thread: the loop watches it. But uvloop's
# add_reader sets O_NONBLOCK on the descriptor's *open file description*,
# which every process sharing the pipe also uses: another process's plain
# blocking q.get() of a large item then fails with BlockingIOError (uvloop#686;
# docs/internals.md, "The uvloop hazard", has the evidence). So on Linux the loop never
# sees those descriptors: they sit in one private epoll object per loop
# (registration changes no flags), and the loop watches the epoll descriptor.
#
#     queue reader ─┐
#     pipe end ─────┼─ epoll (EPOLLIN | EPOLLONESHOT) ── add_reader ── loop
#     sentinel ─────┘        one per loop, whatever the count
#
# Waiters of one descriptor form a FIFO; readiness wakes the first live one
# only, which then tries its non-blocking operation itself (nothing is taken
# on its behalf, so a waiter cancelled after its wake-up loses nothing). While
# waiters remain the descriptor is re-armed; if data is still there it fires
# again and wakes the next one. Readable means "some bytes are there", not
# "yours": callers loop, as another process may have won the race.


class _FdWaiters:
    __slots__ = ("armed", "broadcast", "direct", "futures", "settling")

    def __init__(self) -> None:
        self.futures: collections.deque[asyncio.Future[None]] = collections.deque()
        self.armed = False
        self.broadcast = False  # wake every waiter at once (a state, not items to take)
        self.direct = False  # on the loop itself, not through the private epoll
        self.settling = False  # direct: woken, the loop registration goes after the waiters ran

    def wake_all(self) -> None:
        for future in self.futures:
            if not future.done():
                future.set_result(None)
        self.futures.clear()

    def wake_one(self) -> bool:
        """Wake the first live waiter; tell whether live waiters remain."""
        futures = self.futures
        while futures:
            future = futures.popleft()
            if not future.done():
                future.set_result(None)
                break
        while futures and futures[0].done():  # cancelled ones: drop them now
            futures.popleft()
        return bool(futures)


class FdWatcher:
    """Readiness of many descriptors for one loop, through one epoll descriptor (Linux).

    Elsewhere (no epoll) each descriptor is handed to ``loop.add_reader``
    directly: the stdlib loops leave its flags alone.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop_ref = weakref.ref(loop)  # weak, as LoopBridge's
        self._waiters: dict[int, _FdWaiters] = {}
        self._epoll: select.epoll | None = None
        if hasattr(select, "epoll"):
            self._epoll = select.epoll()
            loop.add_reader(self._epoll.fileno(), self._on_epoll)

    def waiter_count(self, fd: int) -> int:
        waiters = self._waiters.get(fd)
        return 0 if waiters is None else sum(not f.done() for f in waiters.futures)

    async def wait_readable(
        self, fd: int, *, broadcast: bool = False, direct: bool = False
    ) -> None:
        """Return once fd is readable (or hung up).

        Waiters are woken one at a time, FIFO, as fits items to take; with
        broadcast (a descriptor that signals a state, as Event's doorbell)
        all waiters of fd are woken together.

        direct: watch fd on the loop itself rather than through the private
        epoll: one hop less on the way to a wake-up (about 10 us of a cold
        Python path), for a descriptor that no process ever reads blocking
        (uvloop may turn it non-blocking for all of them: Event's doorbell).

        Cancellation:
            Safe: nothing is read on the waiter's behalf.
        """
        future = self.waiter(fd, broadcast=broadcast, direct=direct)
        try:
            await future
        finally:
            self.release(fd)

    def waiter(
        self, fd: int, *, broadcast: bool = False, direct: bool = False
    ) -> asyncio.Future[None]:
        """wait_readable in two halves, for hot paths: await the future, then release(fd)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters = self._waiters.get(fd)
        if waiters is None:
            waiters = self._waiters[fd] = _FdWaiters()
        waiters.broadcast = waiters.broadcast or broadcast
        if direct and not waiters.direct and not waiters.armed:
            waiters.direct = True
        waiters.futures.append(future)
        if not waiters.armed:
            self._arm(fd, waiters)
        return future

    def release(self, fd: int) -> None:
        """A waiter of fd is done (woken, cancelled or timed out)."""
        waiters = self._waiters.get(fd)
        if waiters is not None and (not waiters.futures or all(f.done() for f in waiters.futures)):
            self._forget(fd, waiters)

    def wake_all(self, fd: int) -> None:
        """Wake every waiter of fd (its object is being closed: they look and see)."""
        waiters = self._waiters.get(fd)
        if waiters is not None:
            waiters.wake_all()
        self.forget(fd)

    def forget(self, fd: int) -> None:
        """Drop fd before it is closed (its number may be reused)."""
        waiters = self._waiters.get(fd)
        if waiters is not None:
            waiters.settling = False  # the descriptor goes: no late remove_reader on its number
            self._forget(fd, waiters, unregister=True)
        elif self._epoll is not None:
            with contextlib.suppress(OSError):
                self._epoll.unregister(fd)

    # -- internals (loop thread) ------------------------------------------------------------------

    def _arm(self, fd: int, waiters: _FdWaiters) -> None:
        waiters.armed = True
        if self._epoll is None or waiters.direct:
            asyncio.get_running_loop().add_reader(fd, self._on_fd, fd)
            return
        mask = select.EPOLLIN | select.EPOLLONESHOT
        try:
            self._epoll.modify(fd, mask)
        except FileNotFoundError:  # not registered yet (or dropped when its file closed)
            self._epoll.register(fd, mask)

    def _disarm(self, fd: int, waiters: _FdWaiters) -> None:
        if not waiters.armed:
            return
        waiters.armed = False
        loop = self._loop_ref()
        if (self._epoll is None or waiters.direct) and loop is not None and not loop.is_closed():
            loop.remove_reader(fd)

    def _forget(self, fd: int, waiters: _FdWaiters, unregister: bool = False) -> None:
        """Drop fd's waiters once none is left.

        The epoll registration stays (disarmed by EPOLLONESHOT) unless the
        descriptor is being closed: the next wait re-arms it with one
        epoll_ctl instead of three. A stale registration is harmless: epoll
        drops it when the file is closed, and a reused descriptor number is
        a different file to epoll (the next arm registers it anew).
        """
        if not waiters.settling:
            self._disarm(fd, waiters)
        if self._waiters.get(fd) is waiters and not any(not f.done() for f in waiters.futures):
            del self._waiters[fd]
            if unregister and self._epoll is not None:
                with contextlib.suppress(OSError):  # already closed: nothing registered
                    self._epoll.unregister(fd)

    def _on_epoll(self) -> None:
        if self._epoll is None:
            return
        for fd, _events in self._epoll.poll(0):
            self._on_fd(fd)

    def _on_fd(self, fd: int) -> None:
        waiters = self._waiters.get(fd)
        if waiters is None:
            return
        if waiters.direct and waiters.broadcast:
            # Wake first; drop the loop registration after the waiters ran
            # (off the path of the wake-up they wait for).
            waiters.wake_all()
            if not waiters.settling:
                waiters.settling = True
                loop = self._loop_ref()
                if loop is not None:
                    loop.call_soon(self._settle, fd, waiters)
            return
        if self._epoll is not None and not waiters.direct:
            waiters.armed = False  # EPOLLONESHOT disarmed it
        else:
            self._disarm(fd, waiters)
        if waiters.broadcast:
            waiters.wake_all()
        elif waiters.wake_one():
            self._arm(fd, waiters)  # still readable: fires again for the next waiter

    def _settle(self, fd: int, waiters: _FdWaiters) -> None:
        waiters.settling = False
        current = self._waiters.get(fd)
        if current is None or current is waiters:
            if not any(not f.done() for f in waiters.futures):
                self._disarm(fd, waiters)  # else: new waiters keep the registration
        else:
            # A new entry took fd over (its own add_reader replaced ours): leave it.
            waiters.armed = False


_watchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, FdWatcher] = (
    weakref.WeakKeyDictionary()
)


def watcher_for(loop: asyncio.AbstractEventLoop) -> FdWatcher:
    """Return the loop's descriptor watcher, creating it on first use (loop thread)."""
    watcher = _watchers.get(loop)
    if watcher is None:
        watcher = _watchers[loop] = FdWatcher(loop)
    return watcher


async def wait_readable(fd: int, *, broadcast: bool = False, direct: bool = False) -> None:
    """Wait until fd is readable, from the running loop, with no thread (see FdWatcher)."""
    await watcher_for(asyncio.get_running_loop()).wait_readable(
        fd, broadcast=broadcast, direct=direct
    )


def closing_fd(fd: int) -> None:
    """Say fd is about to be closed: its waiters, on every loop, wake and see it closed.

    A closed descriptor leaves epoll silently; without this they would wait forever.
    """
    for watcher in list(_watchers.values()):
        loop = watcher._loop_ref()
        if loop is None or loop.is_closed():
            continue
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            watcher.wake_all(fd)
        else:
            bridge_for(loop).post(watcher.wake_all, fd)


def forget_fd(fd: int) -> None:
    """Tell the running loop's watcher that fd is about to be closed."""
    watcher = _watchers.get(asyncio.get_running_loop())
    if watcher is not None:
        watcher.forget(fd)


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
    __slots__ = ("attempt", "futures", "running")

    def __init__(self, attempt: Callable[[float], bool]) -> None:
        self.attempt = attempt
        self.futures: list[asyncio.Future[None]] = []
        self.running = False

    def live(self) -> bool:
        return any(not future.done() for future in self.futures)


class SharedWaits:
    """The coalesced helper waits of one loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._bridge = bridge_for(loop)
        self._entries: dict[Hashable, _SharedWait] = {}

    def helpers(self) -> int:
        """How many helper waits are running (one per contended object)."""
        return sum(entry.running for entry in self._entries.values())

    async def wait(self, key: Hashable, attempt: Callable[[float], bool]) -> None:
        """Wait until attempt(timeout) says the object may be ready. Wakes spuriously.

        Cancellation:
            Safe: attempt takes nothing.
        """
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _SharedWait(attempt)
        entry.futures.append(future)
        if not entry.running:
            self._start(key, entry)
        await future

    def _start(self, key: Hashable, entry: _SharedWait) -> None:
        entry.running = True
        bridge = self._bridge

        def _helper() -> None:
            ready = False
            try:
                while not ready and entry.live():
                    ready = entry.attempt(_ATTEMPT_SLICE)
            except BaseException:  # noqa: BLE001 - a broken object: wake waiters to see it themselves
                ready = True
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


# --- descriptors this process owns alone ------------------------------------------------------
#
# A pool's private socket to each worker is read and written by this process
# only, so the uvloop caveat above (a watched descriptor turns non-blocking for
# every process sharing it) does not apply: it is registered on the loop
# directly, level-triggered, for the life of the worker.


def watch_readable(
    loop: asyncio.AbstractEventLoop, fd: int, callback: Callable[..., object], *args: Any
) -> None:
    """Call callback(*args) on the loop whenever fd is readable, until unwatch_readable."""
    loop.add_reader(fd, callback, *args)


def unwatch_readable(loop: asyncio.AbstractEventLoop, fd: int) -> None:
    loop.remove_reader(fd)


def watch_writable(
    loop: asyncio.AbstractEventLoop, fd: int, callback: Callable[..., object], *args: Any
) -> None:
    """Call callback(*args) on the loop whenever fd is writable, until unwatch_writable."""
    loop.add_writer(fd, callback, *args)


def unwatch_writable(loop: asyncio.AbstractEventLoop, fd: int) -> None:
    loop.remove_writer(fd)
