"""Waiting on descriptors other processes write, with this process's backend (_backend.py).

Theory of operation
-------------------
Waiting on a multiprocessing descriptor (a Connection, a queue's reader
end, a Process sentinel) costs no thread under the descriptor backends: the
loop watches it. But uvloop's add_reader sets O_NONBLOCK on the descriptor's
*open file description*, which every process sharing the pipe also uses:
another process's plain blocking q.get() of a large item then fails with
BlockingIOError (uvloop#686; docs/internals.md, "The uvloop hazard", has the
evidence). So the loop never sees those descriptors: they sit in one private
poller per loop (registration changes no flags), and the loop watches the
poller's own descriptor::

    queue reader ─┐   linux: epoll (EPOLLIN | EPOLLONESHOT)
    pipe end ─────┼─  posix: kqueue, epoll or /dev/poll   ── add_reader ── loop
    sentinel ─────┘          through selectors, one-shot by hand
                             one per loop, whatever the count

Waiters of one descriptor form a FIFO; readiness wakes the first live one
only, which then tries its non-blocking operation itself (nothing is taken
on its behalf, so a waiter cancelled after its wake-up loses nothing). While
waiters remain the descriptor is re-armed; if data is still there it fires
again and wakes the next one. Readable means "some bytes are there", not
"yours": callers loop, as another process may have won the race.

Under the threads backend (a Proactor loop has no add_reader) the same
interface is served by helper threads, one per descriptor with waiters
(SharedWaits in _bridge.py), which wake every waiter of it when it is
readable; they retry as above.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import os
import select
import threading
import weakref
from typing import TYPE_CHECKING, Any

from ._backend import get_backend
from ._bridge import bridge_for, helper_threads, shared_waits_for
from ._wire import fd_ready

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "FdWatcher",
    "closing_fd",
    "forget_fd",
    "unwatch_readable",
    "unwatch_writable",
    "wait_readable",
    "watch_readable",
    "watch_writable",
    "watcher_for",
]


class _FdWaiters:
    __slots__ = ("armed", "broadcast", "direct", "futures", "settling")

    def __init__(self) -> None:
        self.futures: collections.deque[asyncio.Future[None]] = collections.deque()
        self.armed = False
        self.broadcast = False  # wake every waiter at once (a state, not items to take)
        self.direct = False  # on the loop itself, not through the private poller
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


# --- the pollers of the descriptor backends ------------------------------------------------------


class _EpollPoller:
    """linux: one epoll; EPOLLONESHOT disarms a descriptor as it fires."""

    def __init__(self) -> None:
        self._epoll = select.epoll()

    def fileno(self) -> int:
        return self._epoll.fileno()

    def arm(self, fd: int) -> None:
        mask = select.EPOLLIN | select.EPOLLONESHOT
        try:
            self._epoll.modify(fd, mask)
        except FileNotFoundError:  # not registered yet (or dropped when its file closed)
            self._epoll.register(fd, mask)

    def fired(self, fd: int) -> None:
        pass  # EPOLLONESHOT disarmed it

    def disarm(self, fd: int) -> None:
        # Left registered: firing once more for nobody is harmless (the
        # watcher finds no waiter, and one-shot disarms it), and the next
        # wait re-arms it with one epoll_ctl instead of three.
        pass

    def forget(self, fd: int) -> None:
        with contextlib.suppress(OSError):  # already closed: nothing registered
            self._epoll.unregister(fd)

    def ready(self) -> list[int]:
        return [fd for fd, _events in self._epoll.poll(0)]


class _SelectorPoller:
    """posix: a selectors selector with a descriptor of its own (kqueue, epoll, /dev/poll).

    selectors has no one-shot mode: a descriptor is registered while armed
    and unregistered as it fires.
    """

    _KINDS = ("KqueueSelector", "EpollSelector", "DevpollSelector")

    @classmethod
    def possible(cls) -> bool:
        import selectors

        return any(hasattr(selectors, name) for name in cls._KINDS)

    def __init__(self) -> None:
        import selectors

        self._selectors = selectors
        kinds = self._KINDS
        kind = next(getattr(selectors, name) for name in kinds if hasattr(selectors, name))
        self._selector: selectors.BaseSelector = kind()

    def fileno(self) -> int:
        fileno: int = self._selector.fileno()  # type: ignore[attr-defined]  # kqueue/epoll/devpoll
        return fileno

    def arm(self, fd: int) -> None:
        try:
            self._selector.register(fd, self._selectors.EVENT_READ)
        except KeyError:
            # Still in the selector's map though the watcher thought it disarmed:
            # a file closed under it, its number reused. Register the new one.
            self.forget(fd)
            self._selector.register(fd, self._selectors.EVENT_READ)

    def fired(self, fd: int) -> None:
        self.forget(fd)

    def disarm(self, fd: int) -> None:
        self.forget(fd)

    def forget(self, fd: int) -> None:
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._selector.unregister(fd)

    def ready(self) -> list[int]:
        return [key.fd for key, _events in self._selector.select(0)]


class _PollThreadPoller:
    """posix without a selector of its own descriptor: a thread per loop polls for it.

    The thread polls the armed descriptors (``select.poll``, one-shot by
    hand) and rings a private pipe whose read end the loop watches; a second
    pipe wakes it when the set changes. One thread per loop whatever the
    count of descriptors or waiters, one hop more per wake-up. It leaves
    once its loop has closed.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._bell_r, self._bell_w = os.pipe()  # ours alone: non-blocking is ours to set
        self._control_r, self._control_w = os.pipe()
        for fd in (self._bell_r, self._bell_w, self._control_r, self._control_w):
            os.set_blocking(fd, False)
        self._lock = threading.Lock()
        self._armed: set[int] = set()
        self._ready: list[int] = []
        self._loop_ref = weakref.ref(loop)
        threading.Thread(target=self._run, name="toolkit-poll", daemon=True).start()

    def fileno(self) -> int:
        return self._bell_r

    def arm(self, fd: int) -> None:
        with self._lock:
            self._armed.add(fd)
        self._ring(self._control_w)

    def fired(self, fd: int) -> None:
        pass  # the thread disarmed it as it reported it

    def disarm(self, fd: int) -> None:
        with self._lock:
            self._armed.discard(fd)
        self._ring(self._control_w)

    forget = disarm

    def ready(self) -> list[int]:
        with contextlib.suppress(BlockingIOError):
            while os.read(self._bell_r, 4096):
                pass
        with self._lock:
            ready, self._ready = self._ready, []
        return ready

    @staticmethod
    def _ring(fd: int) -> None:
        with contextlib.suppress(BlockingIOError):  # full: it rings already
            os.write(fd, b"\0")

    def _run(self) -> None:
        try:
            while True:
                loop = self._loop_ref()
                if loop is None or loop.is_closed():
                    return
                del loop
                with self._lock:
                    armed = list(self._armed)
                poller = select.poll()
                poller.register(self._control_r, select.POLLIN)
                for fd in armed:
                    poller.register(fd, select.POLLIN)
                events = poller.poll(500)  # and look at the loop twice a second
                found = [fd for fd, _ in events if fd != self._control_r]
                with contextlib.suppress(BlockingIOError):
                    while os.read(self._control_r, 4096):
                        pass
                if found:
                    with self._lock:
                        found = [fd for fd in found if fd in self._armed]
                        self._armed.difference_update(found)
                        self._ready.extend(found)
                    if found:
                        self._ring(self._bell_w)
        finally:
            for fd in (self._bell_r, self._bell_w, self._control_r, self._control_w):
                with contextlib.suppress(OSError):
                    os.close(fd)


class FdWatcher:
    """Readiness of many descriptors for one loop through one private poller (linux, posix)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, backend: str) -> None:
        self._loop_ref = weakref.ref(loop)  # weak, as LoopBridge's
        self._waiters: dict[int, _FdWaiters] = {}
        self._poller: _EpollPoller | _SelectorPoller | _PollThreadPoller
        if backend == "linux":
            self._poller = _EpollPoller()
        elif _SelectorPoller.possible():
            self._poller = _SelectorPoller()
        else:
            self._poller = _PollThreadPoller(loop)
        loop.add_reader(self._poller.fileno(), self._on_poller)

    def waiter_count(self, fd: int) -> int:
        waiters = self._waiters.get(fd)
        return 0 if waiters is None else sum(not f.done() for f in waiters.futures)

    async def wait_readable(
        self,
        fd: int,
        *,
        broadcast: bool = False,
        direct: bool = False,
        probe: Callable[[float], bool] | None = None,
    ) -> None:
        """Return once fd is readable (or hung up). probe: for _ThreadWatcher only.

        Waiters are woken one at a time, FIFO, as fits items to take; with
        broadcast (a descriptor that signals a state, as Event's doorbell)
        all waiters of fd are woken together.

        direct: watch fd on the loop itself rather than through the private
        poller: one hop less on the way to a wake-up (about 10 us of a cold
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
        self,
        fd: int,
        *,
        broadcast: bool = False,
        direct: bool = False,
        probe: Callable[[float], bool] | None = None,
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
        else:
            self._poller.forget(fd)

    # -- internals (loop thread) ------------------------------------------------------------------

    def _arm(self, fd: int, waiters: _FdWaiters) -> None:
        waiters.armed = True
        if waiters.direct:
            asyncio.get_running_loop().add_reader(fd, self._on_fd, fd)
        else:
            self._poller.arm(fd)

    def _disarm(self, fd: int, waiters: _FdWaiters) -> None:
        if not waiters.armed:
            return
        waiters.armed = False
        if waiters.direct:
            loop = self._loop_ref()
            if loop is not None and not loop.is_closed():
                loop.remove_reader(fd)
        else:
            self._poller.disarm(fd)

    def _forget(self, fd: int, waiters: _FdWaiters, unregister: bool = False) -> None:
        """Drop fd's waiters once none is left (unregister: the descriptor is being closed)."""
        if not waiters.settling:
            self._disarm(fd, waiters)
        if self._waiters.get(fd) is waiters and not any(not f.done() for f in waiters.futures):
            del self._waiters[fd]
            if unregister:
                self._poller.forget(fd)

    def _on_poller(self) -> None:
        for fd in self._poller.ready():
            self._on_fd(fd)

    def _on_fd(self, fd: int) -> None:
        waiters = self._waiters.get(fd)
        if waiters is None:
            self._poller.fired(fd)  # nobody waits: not again (selectors are level-triggered)
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
        if waiters.direct:
            self._disarm(fd, waiters)
        else:
            waiters.armed = False
            self._poller.fired(fd)
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


class _ThreadWatcher:
    """Readiness through helper threads (threads backend): FdWatcher's interface.

    One helper per descriptor with waiters, shared by all of them (SharedWaits);
    a readable descriptor wakes every waiter, and each retries its read.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop_ref = weakref.ref(loop)
        self._waits = shared_waits_for(loop)

    def waiter_count(self, fd: int) -> int:
        return self._waits.waiter_count(("readable", fd))

    async def wait_readable(
        self,
        fd: int,
        *,
        broadcast: bool = False,
        direct: bool = False,
        probe: Callable[[float], bool] | None = None,
    ) -> None:
        await self.waiter(fd, probe=probe)

    def waiter(
        self,
        fd: int,
        *,
        broadcast: bool = False,
        direct: bool = False,
        probe: Callable[[float], bool] | None = None,
    ) -> asyncio.Future[None]:
        """probe(timeout): is it readable? A connection's own poll where fd is a
        handle (Windows: select takes sockets only); else the descriptor's."""
        if probe is None:
            probe = functools.partial(fd_ready, fd)
        return self._waits.waiter(("readable", fd), probe)

    def release(self, fd: int) -> None:
        pass  # the helper sees for itself that nobody waits any more

    def wake_all(self, fd: int) -> None:
        self._waits.wake(("readable", fd))

    def forget(self, fd: int) -> None:
        self._waits.wake(("readable", fd))  # they look again, and see it closed


_watchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, FdWatcher | _ThreadWatcher] = (
    weakref.WeakKeyDictionary()
)


def watcher_for(loop: asyncio.AbstractEventLoop) -> FdWatcher | _ThreadWatcher:
    """Return the loop's descriptor watcher, creating it on first use (loop thread)."""
    watcher = _watchers.get(loop)
    if watcher is None:
        backend = get_backend()
        watcher = _ThreadWatcher(loop) if backend == "threads" else FdWatcher(loop, backend)
        _watchers[loop] = watcher
    return watcher


async def wait_readable(
    fd: int,
    *,
    broadcast: bool = False,
    direct: bool = False,
    probe: Callable[[float], bool] | None = None,
) -> None:
    """Wait until fd is readable, from the running loop (see FdWatcher, _ThreadWatcher).

    probe(timeout) -> bool: how a helper thread tells (threads backend; where
    fd is a handle, the connection's own poll).
    """
    await watcher_for(asyncio.get_running_loop()).wait_readable(
        fd, broadcast=broadcast, direct=direct, probe=probe
    )


def closing_fd(fd: int) -> None:
    """Say fd is about to be closed: its waiters, on every loop, wake and see it closed.

    A closed descriptor leaves a poller silently; without this they would wait forever.
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


# --- descriptors this process owns alone ------------------------------------------------------
#
# A pool's private socket to each worker is read and written by this process
# only, so the uvloop caveat above (a watched descriptor turns non-blocking for
# every process sharing it) does not apply: under the descriptor backends it is
# registered on the loop directly, level-triggered, for the life of the worker.
# Under the threads backend a helper thread per descriptor waits for it and
# calls back on the loop, then waits until the callback has run (it reads what
# is there), so that one readiness is one callback.


class _Watch:
    """threads backend: one descriptor watched for readability or writability by a helper."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        fd: int,
        writable: bool,
        callback: Callable[..., object],
        args: tuple[Any, ...],
    ) -> None:
        self.fd = fd
        self.writable = writable
        self.callback = callback
        self.args = args
        self.active = True
        self.finished = threading.Event()  # its helper has returned
        self._ran = threading.Event()
        self._bridge = bridge_for(loop)
        helper_threads().submit(self._run)

    def stop(self) -> None:
        self.active = False
        self._ran.set()

    def _closed(self) -> bool:
        loop = self._bridge.loop
        return loop is None or loop.is_closed()

    def _run(self) -> None:
        try:
            self._serve()
        finally:
            self.finished.set()

    def _serve(self) -> None:
        while self.active and not self._closed():
            try:
                ready = fd_ready(self.fd, 0.2, self.writable)
            except (OSError, ValueError):
                ready = True  # closed under us: the callback sees it (or we were stopped)
            if not (ready and self.active):
                continue
            self._ran.clear()
            self._bridge.post(self._call)
            while self.active and not self._ran.wait(0.2) and not self._closed():
                pass

    def _call(self) -> None:
        try:
            if self.active:
                self.callback(*self.args)
        finally:
            self._ran.set()


_watches: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[int, bool], _Watch]] = (
    weakref.WeakKeyDictionary()
)


def _watch(
    loop: asyncio.AbstractEventLoop,
    fd: int,
    writable: bool,
    callback: Callable[..., object],
    args: tuple[Any, ...],
) -> None:
    watches = _watches.setdefault(loop, {})
    old = watches.pop((fd, writable), None)
    if old is not None:
        old.stop()
    watches[(fd, writable)] = _Watch(loop, fd, writable, callback, args)


def _unwatch(loop: asyncio.AbstractEventLoop, fd: int, writable: bool) -> None:
    watch = _watches.get(loop, {}).pop((fd, writable), None)
    if watch is not None:
        watch.stop()


def _threaded(loop: asyncio.AbstractEventLoop) -> bool:
    return isinstance(watcher_for(loop), _ThreadWatcher)


def _start(
    loop: asyncio.AbstractEventLoop,
    fd: int,
    writable: bool,
    callback: Callable[..., object],
    args: tuple[Any, ...],
) -> None:
    if _threaded(loop):
        _watch(loop, fd, writable, callback, args)
    elif writable:
        loop.add_writer(fd, callback, *args)
    else:
        loop.add_reader(fd, callback, *args)


def _stop(loop: asyncio.AbstractEventLoop, fd: int, writable: bool) -> None:
    if _threaded(loop):
        _unwatch(loop, fd, writable)
    elif writable:
        loop.remove_writer(fd)
    else:
        loop.remove_reader(fd)


def watch_readable(
    loop: asyncio.AbstractEventLoop, fd: int, callback: Callable[..., object], *args: Any
) -> None:
    """Call callback(*args) on the loop whenever fd is readable, until unwatch_readable."""
    _start(loop, fd, False, callback, args)


def unwatch_readable(loop: asyncio.AbstractEventLoop, fd: int) -> None:
    _stop(loop, fd, False)


def watch_writable(
    loop: asyncio.AbstractEventLoop, fd: int, callback: Callable[..., object], *args: Any
) -> None:
    """Call callback(*args) on the loop whenever fd is writable, until unwatch_writable."""
    _start(loop, fd, True, callback, args)


def unwatch_writable(loop: asyncio.AbstractEventLoop, fd: int) -> None:
    _stop(loop, fd, True)
