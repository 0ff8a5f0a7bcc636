"""Calls to a manager's server over pooled connections, awaited on readiness, no thread per call.

Theory of operation
-------------------
A ``multiprocessing`` manager server serves each connection with one thread
that reads requests one after another: ``(ident, method, args, kwds)`` in,
``(kind, result)`` out, in ``multiprocessing.connection``'s framing (a
4-byte big-endian length, then the pickle). The stdlib's proxies block a
thread per call on that reply. Here::

    ordinary calls (d.get, l.append, q.put_nowait...)
      coroutine ─┐                ┌ Pipeline ── socket ──▶ server thread 1
      coroutine ─┼─ fewest waiting┼ Pipeline ── socket ──▶ server thread 2
      coroutine ─┘  (<= `size`)   └ ...   requests back to back, replies in
                                          order; one reader task hands them out
    blocking calls (q.get, acquire, event wait)
      waiters of one object ── WaitLine ── one call at a time, in slices,
                                          on a connection of its own

* A call is a write and an await on the socket's readiness (_bridge): no
  thread per call, none per waiter. A call alone in flight reads its reply
  itself, in a blocking read bounded by BRIEF_WAIT (see there).
* Blocking calls never hold up ordinary ones: they wait on connections of
  their own, and all of this process's waiters on one object share one
  server-side call (WaitLine), so connections and server threads grow with
  the objects waited on, not with the waiters.

The sockets are this process's own (opened here, never shared). Opening one
(connect, then the HMAC handshake, whose details vary across Python
versions) runs the stdlib's own code in a helper thread: once per
connection, never per call. Creating an object and counting references are
the server's own functions, which it accepts only as the first request of a
fresh connection: one each, as the stdlib does.

Cancellation: replies are read in order whatever happens to their callers,
so a reply never reaches the wrong caller and a connection is never reused
half-read. A call that did something for a caller who left is undone: a
queue item goes to the next waiter of this process or back into the queue,
a lock acquired for nobody is handed on or released.

A server that dies closes its sockets: every pending read ends with EOF (an
owned manager's process sentinel is watched too, in case a child of the
server inherited the sockets) and the whole pool fails with
``ManagerDiedError``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import multiprocessing.connection
import multiprocessing.managers
import os
import threading
import weakref
from typing import TYPE_CHECKING, Any

from .._core._errors import ClosedError, ManagerDiedError
from .._core._forking import renew_locks_in_child
from .._core._threads import to_thread
from ._channel import (
    CONNECTION_ERRORS,
    DEPTH,
    Channel,
    copy_error,
    dumps_request,
    open_socket,
    server_call,
)
from ._pipeline import Pipeline, WaitLine

if TYPE_CHECKING:
    import socket
    from collections.abc import AsyncIterator, Awaitable, Callable
    from typing import TypeAlias

    # Undoes what a call did for a caller that left: (a connection, the call's result).
    OnLate: TypeAlias = "Callable[[Channel, Any], Awaitable[None]]"


__all__ = ["ConnectionPool", "forget_pool", "pool_for", "register_pool"]


class ConnectionPool:
    """The connections of one process to one manager server.

    Ordinary calls share at most ``size`` pipelined connections (past
    DEPTH calls waiting on each, callers wait their turn). Blocking calls
    take a connection of their own outside that bound: one per wait line,
    per RLock held, per barrier wait. At most ``size`` idle ones are kept.
    """

    def __init__(self, address: Any, authkey: bytes, size: int = 4) -> None:
        self.address = address
        self.authkey = bytes(authkey)
        self.size = size
        self._idle: collections.deque[Channel] = collections.deque()
        self._all: set[Channel] = set()
        self._shared: list[Pipeline] = []  # ordinary calls, at most size
        self._opening: asyncio.Future[None] | None = None
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._drains: set[asyncio.Task[None]] = set()
        # Weak: an idle line holds nothing; one in use is held by its waiters.
        self._lines: weakref.WeakValueDictionary[tuple[str, str], WaitLine] = (
            weakref.WeakValueDictionary()
        )
        self._in_flight = 0
        self._error: BaseException | None = None
        self.pid = os.getpid()  # a fork child must not use its parent's sockets
        self.label = f"at {address!r}"  # the manager says which process, when it knows

    # -- state ------------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._error is not None

    def connections(self) -> int:
        """How many connections are open (idle, busy or dedicated)."""
        return len(self._all)

    def check(self) -> None:
        if self._error is not None:
            raise copy_error(self._error)

    def fail(self, error: BaseException) -> None:
        """Close every connection; pending and later calls raise error."""
        if self._error is None:
            self._error = error
        for pipeline in self._shared:
            pipeline.close()
        for channel in list(self._all):
            channel.close()
        self._shared.clear()
        self._idle.clear()
        self._all.clear()
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)  # it wakes, checks, and raises the error
        self._waiters.clear()

    def died(self, cause: BaseException | None = None) -> ManagerDiedError:
        error = ManagerDiedError(f"the manager {self.label} is gone")
        if cause is not None:
            error.__cause__ = cause
        return error

    def error_for(self, exc: BaseException) -> BaseException:
        """What a waiter hears when the call serving it ended with exc."""
        if self._error is not None:
            return copy_error(self._error)
        if not isinstance(exc, Exception):  # cancelled (or interrupted): not the waiter's
            return ClosedError("the manager's connections were closed")
        return exc

    def translate(self, exc: BaseException) -> BaseException:
        """The error a caller sees for a broken connection; the pool fails with it.

        The server closes a connection only when it exits (or cannot even
        report an error), so a broken one means the server is gone: the
        other calls fail now too, rather than each finding out.
        """
        if self._error is None:
            self.fail(self.died(exc))
        assert self._error is not None
        return copy_error(self._error)

    # -- calls ------------------------------------------------------------------------------------

    async def call(
        self,
        ident: str | None,
        method: str,
        args: tuple[Any, ...] = (),
        kwds: dict[str, Any] | None = None,
        *,
        on_late: OnLate | None = None,
    ) -> tuple[str, Any]:
        """Call a method of a shared object on one of the shared connections.

        Cancellation:
            Safe: the reply is read in turn; on_late undoes a call that
            succeeded for a caller that left (a queue item put back).
        """
        data = dumps_request(ident, method, args, kwds)
        pipeline = self._pick()
        if pipeline is None:
            pipeline = await self._pipeline()
        self._in_flight += 1
        try:
            return await pipeline.call(data, alone=self._in_flight == 1, on_late=on_late)
        except CONNECTION_ERRORS as exc:
            raise self.translate(exc) from None
        finally:
            self._in_flight -= 1
            if self._waiters:
                self._wake()

    def _pick(self) -> Pipeline | None:
        """The shared connection with the fewest calls waiting, if one has room."""
        self.check()
        if any(pipeline.channel.closed for pipeline in self._shared):
            self._drop_closed()
        best = None
        for pipeline in self._shared:
            if best is None or len(pipeline.waiting) < len(best.waiting):
                best = pipeline
        if best is not None and best.waiting and len(self._shared) < self.size:
            self._grow()  # busy: open another one for later callers, meanwhile queue here
        waiters = self._waiters
        while waiters and waiters[0].done():  # cancelled while waiting for room
            waiters.popleft()
        if best is None or len(best.waiting) >= DEPTH or waiters:
            return None
        return best

    async def _pipeline(self) -> Pipeline:
        while True:
            if not self._shared:
                self._grow()
                assert self._opening is not None
                await asyncio.shield(self._opening)  # raises what opening raised
            else:
                waiter = asyncio.get_running_loop().create_future()
                self._waiters.append(waiter)
                try:
                    await waiter
                except asyncio.CancelledError:
                    if waiter.done() and not waiter.cancelled():
                        self._wake()  # woken as we left: pass it on
                    raise
            self.check()
            pipeline = self._pick_any()
            if pipeline is not None:
                return pipeline

    def _drop_closed(self) -> None:
        for pipeline in self._shared:
            if pipeline.channel.closed:
                self._all.discard(pipeline.channel)
        self._shared = [p for p in self._shared if not p.channel.closed]

    def _pick_any(self) -> Pipeline | None:
        self._drop_closed()
        room = [p for p in self._shared if len(p.waiting) < DEPTH]
        return min(room, key=lambda p: len(p.waiting)) if room else None

    def _grow(self) -> None:
        if self._opening is None:
            opening = self._opening = asyncio.ensure_future(self._open_shared())
            opening.add_done_callback(self._opened)

    async def _open_shared(self) -> None:
        channel = self._idle.pop() if self._idle else await self._open()
        self._shared.append(Pipeline(channel, self._late))

    def _late(self, on_late: OnLate, result: Any) -> None:
        self.background(self._compensate(on_late, result))

    async def _compensate(self, on_late: OnLate, result: Any) -> None:
        async with self.dedicated() as channel:
            await on_late(channel, result)

    def _opened(self, opening: asyncio.Future[None]) -> None:
        self._opening = None
        if not opening.cancelled():
            opening.exception()  # retrieved: the callers awaiting it raise it themselves
        self._wake()

    @contextlib.asynccontextmanager
    async def dedicated(self) -> AsyncIterator[Channel]:
        """Check out a connection of its own for a call that may block on the server."""
        channel = await self.checkout()
        try:
            yield channel
        except CONNECTION_ERRORS as exc:
            self._discard(channel)
            raise self.translate(exc) from None
        except BaseException:
            self.release_channel(channel)
            raise
        self.release_channel(channel)

    async def request(
        self,
        channel: Channel,
        ident: str | None,
        method: str,
        args: tuple[Any, ...] = (),
        kwds: dict[str, Any] | None = None,
        *,
        on_late: Callable[[Channel, Any], Awaitable[None]] | None = None,
    ) -> tuple[str, Any]:
        """Make one request on a channel already checked out (dedicated or pinned)."""
        data = dumps_request(ident, method, args, kwds)
        try:
            return await channel.request(data, on_late=on_late)
        except CONNECTION_ERRORS as exc:
            self._discard(channel)
            raise self.translate(exc) from None

    async def server_call(
        self, method: str, args: tuple[Any, ...] = (), kwds: dict[str, Any] | None = None
    ) -> Any:
        """Call one of the server's own functions (create, decref...) on a fresh connection."""
        self.check()
        try:
            return await to_thread(server_call, self.address, self.authkey, method, args, kwds)
        except multiprocessing.AuthenticationError:
            raise
        except CONNECTION_ERRORS as exc:
            raise self.translate(exc) from None

    # -- checkout ---------------------------------------------------------------------------------

    async def checkout(self) -> Channel:
        """A connection of its own, for calls that may block on the server (outside the bound)."""
        self.check()
        while self._idle:
            channel = self._idle.pop()  # the most recent: its server thread is warm
            if not channel.closed:
                return channel
        return await self._open()

    async def _open(self) -> Channel:
        opening = asyncio.ensure_future(to_thread(open_socket, self.address, self.authkey))
        try:
            # Shielded: a connection opened for a caller who left joins the idle ones.
            sock = await asyncio.shield(opening)
        except asyncio.CancelledError:
            opening.add_done_callback(self._adopt_opened)
            raise
        except multiprocessing.AuthenticationError:
            raise
        except CONNECTION_ERRORS as exc:
            raise self.translate(exc) from None
        channel = Channel(sock)
        if self._error is not None:  # closed meanwhile
            channel.close()
            raise copy_error(self._error)
        self._all.add(channel)
        return channel

    def _adopt_opened(self, opening: asyncio.Future[socket.socket]) -> None:
        if opening.cancelled() or opening.exception() is not None:
            return
        channel = Channel(opening.result())
        if self._error is not None or len(self._idle) >= self.size:
            channel.close()
            return
        self._all.add(channel)
        self._idle.append(channel)

    def line(
        self,
        key: tuple[str, str],
        attempt: Callable[[Channel, float], Awaitable[tuple[bool, Any]]],
        unclaimed: Callable[[Channel, Any], Awaitable[None]] | None = None,
        *,
        broadcast: bool = False,
    ) -> WaitLine:
        """This process's wait line for one blocking call on one object (made on first use)."""
        line = self._lines.get(key)
        if line is None:
            line = self._lines[key] = WaitLine(self, attempt, unclaimed, broadcast=broadcast)
        return line

    def background(self, work: Awaitable[None]) -> asyncio.Task[None]:
        """Run work in a task that closing the pool cancels and waits for."""
        task = asyncio.ensure_future(work)
        self._drains.add(task)
        task.add_done_callback(self._drains.discard)
        return task

    def release_channel(self, channel: Channel) -> None:
        """Return a channel; one that still owes replies is settled in the background first."""
        if channel.owes and not channel.closed:
            self.background(self._drain(channel))
            return
        self._put_back(channel)

    def _put_back(self, channel: Channel) -> None:
        if channel.closed or self._error is not None:
            self._all.discard(channel)
        elif len(self._idle) < self.size:
            self._idle.append(channel)
        else:
            channel.close()
            self._all.discard(channel)

    def _discard(self, channel: Channel) -> None:
        channel.close()
        self._put_back(channel)

    def _wake(self) -> None:
        """Let the first caller still waiting for room try again."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def _drain(self, channel: Channel) -> None:
        try:
            await channel.settle()
        except Exception:  # noqa: BLE001 - a broken or closed channel: drop it, others go on
            self._discard(channel)
            return
        except BaseException:  # cancelled (the pool closing): drop it, and the cancellation goes on
            self._discard(channel)
            raise
        self._put_back(channel)

    async def aclose(self, error: BaseException) -> None:
        """Close every connection and wait for background settling to end."""
        self.fail(error)
        drains = list(self._drains)
        for task in drains:
            task.cancel()
        if drains:
            await asyncio.gather(*drains, return_exceptions=True)


# --- one pool per server per process -------------------------------------------------------------
#
# Proxies reach their server through the pool of (address, authkey) in this
# process: the one their manager made, or, in a child that received proxies,
# one made on first use. A fork child must not reuse its parent's sockets.

_pools: dict[tuple[Any, bytes], ConnectionPool] = {}
_pools_lock = threading.Lock()
renew_locks_in_child(globals(), "_pools_lock")


def _address_key(address: Any) -> Any:
    return tuple(address) if isinstance(address, list) else address


def pool_for(address: Any, authkey: bytes, size: int = 4) -> ConnectionPool:
    """Return this process's pool for the server at address, making it on first use."""
    key = (_address_key(address), bytes(authkey))
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None or pool.closed or pool.pid != os.getpid():
            pool = _pools[key] = ConnectionPool(address, authkey, size)
        return pool


def register_pool(pool: ConnectionPool) -> None:
    with _pools_lock:
        _pools[(_address_key(pool.address), pool.authkey)] = pool


def forget_pool(pool: ConnectionPool) -> None:
    with _pools_lock:
        key = (_address_key(pool.address), pool.authkey)
        if _pools.get(key) is pool:
            del _pools[key]


def _forget_all_in_child() -> None:
    _pools.clear()


os.register_at_fork(after_in_child=_forget_all_in_child)
