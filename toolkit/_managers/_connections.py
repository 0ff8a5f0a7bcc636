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
import copyreg
import io
import multiprocessing.connection
import multiprocessing.managers
import os
import pickle
import select
import socket
import struct
import threading
import weakref
from typing import TYPE_CHECKING, Any

from .._core._bridge import closing_fd, wait_readable
from .._core._cpython import forking_pickler_reducers
from .._core._errors import ClosedError, ManagerDiedError
from .._core._framing import LENGTH, PREFIX_SIZE, bounds, frame, length_of
from .._core._threads import to_thread

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable
    from typing import TypeAlias

    # Undoes what a call did for a caller that left: (a connection, the call's result).
    OnLate: TypeAlias = "Callable[[Channel, Any], Awaitable[None]]"

# typeshed lacks dispatch.
_dispatch: Any = multiprocessing.managers.dispatch  # type: ignore[attr-defined]

__all__ = ["Channel", "ConnectionPool", "pool_for"]


# A server-side blocking call (queue get, lock acquire, event wait) is made in
# slices this long, so one made for waiters that all left ends soon on the
# server and its connection comes back.
SLICE = 0.25

# A call that is alone in flight first waits for its reply in a blocking
# read bounded by this (SO_RCVTIMEO), then yields to the loop. A manager round
# trip takes tens of microseconds, and a reader blocked in recv() is handed
# the CPU at once when the server writes (the kernel's synchronous wake-up),
# where waking through epoll and the loop costs as much again: measured on 2
# cores, readiness alone made sequential calls 0.5-0.6x the stdlib's blocking
# proxy; this makes them faster than it (docs/benchmarks.md). The loop is held
# at most this long per call, and never while other calls are in flight.
BRIEF_WAIT = 100e-6

# A wait line's server call ends this long before its last waiter's deadline:
# more than a round trip, so its "nothing came" is back before that deadline.
_MARGIN = 0.01

# At most this many calls wait on one shared connection; more wait their turn.
_DEPTH = 64

_CONNECTION_ERRORS = (EOFError, OSError, ClosedError)


def _open_socket(address: Any, authkey: bytes) -> socket.socket:
    """Connect and authenticate (the stdlib's handshake), then serve this connection (blocking)."""
    conn = multiprocessing.connection.Client(address, authkey=authkey)
    try:
        name = f"{multiprocessing.current_process().name}|toolkit"
        _dispatch(conn, None, "accept_connection", (name,))
        sock = socket.socket(fileno=os.dup(conn.fileno()))
    finally:
        conn.close()
    # The descriptor stays blocking (every other read and write passes
    # MSG_DONTWAIT), so that a plain recv() is the brief blocking wait.
    sock.setblocking(True)
    micros = round(BRIEF_WAIT * 1e6)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 0, micros))
    return sock


def server_call(
    address: Any,
    authkey: bytes,
    method: str,
    args: tuple[Any, ...] = (),
    kwds: dict[str, Any] | None = None,
) -> Any:
    """Call one of the server's own functions (create, incref, decref...) on a fresh connection."""
    conn = multiprocessing.connection.Client(address, authkey=authkey)
    try:
        return _dispatch(conn, None, method, args, kwds or {})
    finally:
        conn.close()


class _Owed:
    __slots__ = ("on_late",)

    def __init__(self) -> None:
        self.on_late: OnLate | None = None


class Channel:
    """One authenticated connection to the server: ordered requests and replies."""

    __slots__ = ("_buffer", "_closed", "_fd", "_owed", "_sock")

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._fd = sock.fileno()
        self._buffer = bytearray()
        self._owed: collections.deque[_Owed] = collections.deque()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def owes(self) -> bool:
        return bool(self._owed)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        closing_fd(self._fd)  # a read waiting on it wakes and sees it closed
        self._sock.close()

    async def request(
        self,
        data: bytes,
        *,
        on_late: OnLate | None = None,
    ) -> tuple[str, Any]:
        """Send one framed request (_dumps) and return its reply ``(kind, result)``.

        For a connection used by one caller at a time (a wait line's, an
        RLock holder's): ordinary calls go through a Pipeline.

        Args:
            on_late: run with the result if the reply comes after the caller
                was cancelled (to undo what the server did for nobody).

        Raises:
            EOFError, OSError: the connection broke.
            ClosedError: the channel was closed.

        Cancellation:
            Safe: the reply is still read, in order, before the channel's
            next request, and handed to on_late.
        """
        if self._owed:
            await self.settle()
        owed = _Owed()
        owed.on_late = on_late
        self._owed.append(owed)
        rest = self._send_nowait(data)
        if rest is not None:
            await self._send_rest(rest)
        reply = self._take()
        if reply is None:
            reply = await self._receive()
        self._owed.popleft()
        return reply

    async def settle(self) -> None:
        """Read the replies still owed to cancelled callers; compensate for each.

        Cancellation:
            Safe: what is not read yet stays owed.
        """
        while self._owed:
            reply = await self._receive()
            owed = self._owed.popleft()
            kind, result = reply
            if owed.on_late is not None and kind == "#RETURN":
                await owed.on_late(self, result)

    # -- framing ----------------------------------------------------------------------------------

    def _send_nowait(self, message: bytes) -> memoryview | None:
        """Write what fits now; return the rest, if any."""
        self._check_open()
        try:
            sent = self._sock.send(message, socket.MSG_DONTWAIT)
        except BlockingIOError:
            sent = 0
        return memoryview(message)[sent:] if sent < len(message) else None

    async def _send_rest(self, rest: memoryview) -> None:
        # Larger than the socket's free space: the rest goes from a thread,
        # shielded, so a cancelled caller never leaves half a request.
        await asyncio.shield(to_thread(_send_rest, self._sock, rest))

    def _take(self, wait: bool = False) -> tuple[str, Any] | None:
        """Parse one whole message from the buffer, reading what the socket has first.

        Args:
            wait: let the first read block up to BRIEF_WAIT.
        """
        buffer = self._buffer
        while True:
            found = bounds(buffer, 0, len(buffer))
            if found is not None and found[1] <= len(buffer):
                start, end = found
                data = bytes(memoryview(buffer)[start:end])
                del buffer[:end]  # first: a bad reply must not stall the rest
                return _loads(data)
            chunk = self._recv(wait)
            if chunk is None:
                return None
            buffer += chunk
            wait = False

    def _take_one(self, wait: bool) -> tuple[str, Any] | None:
        """_take, for the usual case: nothing buffered, one whole small reply in one read."""
        if self._buffer:
            return self._take(wait)
        chunk = self._recv(wait)
        if chunk is None:
            return None
        if len(chunk) >= PREFIX_SIZE and length_of(chunk) == len(chunk) - PREFIX_SIZE:
            return _loads(memoryview(chunk)[PREFIX_SIZE:])
        self._buffer += chunk
        return self._take()

    def _recv(self, wait: bool) -> bytes | None:
        """What the socket has (None: nothing), waiting up to BRIEF_WAIT if asked.

        Raises:
            EOFError: the server closed the connection.
        """
        self._check_open()
        try:
            chunk = self._sock.recv(1 << 16, 0 if wait else socket.MSG_DONTWAIT)
        except BlockingIOError:
            return None
        if not chunk:
            raise EOFError("the manager closed the connection")
        return chunk

    async def _receive(self) -> tuple[str, Any]:
        while True:
            reply = self._take()
            if reply is not None:
                return reply
            await wait_readable(self._fd)

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError("the connection to the manager was closed")


class Pipeline:
    """A connection shared by many ordinary calls at once: requests written back to back.

    The server reads a connection's requests one after another and answers
    each in turn, so callers need not wait for each other's round trips:
    replies come back in the order requests went out, and one reader (a task,
    only while replies are awaited) hands each to its caller. A caller alone
    on the pipeline reads its reply itself, first in a brief blocking wait.
    """

    __slots__ = ("_late", "_reader", "_sending", "channel", "waiting")

    def __init__(self, channel: Channel, late: Callable[[OnLate, Any], None]) -> None:
        self.channel = channel
        # In request order: each caller's future, and what undoes its call if it left.
        self.waiting: collections.deque[tuple[asyncio.Future[tuple[str, Any]], OnLate | None]] = (
            collections.deque()
        )
        self._late = late  # runs a compensation (the pool's: on a connection of its own)
        self._reader: asyncio.Task[None] | None = None
        self._sending: asyncio.Future[None] | None = None

    async def call(
        self, data: bytes, *, alone: bool, on_late: OnLate | None = None
    ) -> tuple[str, Any]:
        """Send a framed request, return its reply.

        Cancellation:
            Safe: the reply is read in turn; if the call did something
            (a ``#RETURN``), on_late undoes it, else it is dropped.
        """
        while self._sending is not None:  # a large request is going out: ours goes after it
            await asyncio.shield(self._sending)
        channel = self.channel
        waiting = self.waiting
        rest = channel._send_nowait(data)
        if rest is None and alone and not waiting:
            # The only call in flight: its reply is the next message. No other
            # coroutine runs before the future below exists, so order holds.
            reply = channel._take_one(wait=True)
            if reply is not None:
                return reply
        future: asyncio.Future[tuple[str, Any]] = asyncio.get_running_loop().create_future()
        waiting.append((future, on_late))
        if rest is not None:
            sending = self._sending = asyncio.ensure_future(channel._send_rest(rest))
            sending.add_done_callback(self._sent)
        if self._reader is None:
            self._reader = asyncio.ensure_future(self._read())
        try:
            return await future
        except asyncio.CancelledError:
            # Cancelled after the reader handed the reply over: undo it here.
            if future.done() and not future.cancelled() and on_late is not None:
                kind, result = future.result()
                if kind == "#RETURN":
                    self._late(on_late, result)
            raise

    def _sent(self, sending: asyncio.Future[None]) -> None:
        if self._sending is sending:
            self._sending = None

    async def _read(self) -> None:
        channel, waiting = self.channel, self.waiting
        try:
            while waiting:
                reply = channel._take()
                if reply is None:
                    await wait_readable(channel._fd)
                    continue
                future, on_late = waiting.popleft()
                if not future.done():
                    future.set_result(reply)
                elif on_late is not None and reply[0] == "#RETURN":
                    self._late(on_late, reply[1])  # its caller left: undo what it did
        except BaseException as exc:
            # Broken, closed or cancelled (close(), the loop ending): replies
            # still owed would answer the next callers' requests, so this
            # connection is out of step for good; every caller hears it.
            channel.close()
            error = exc if isinstance(exc, Exception) else ClosedError()
            while waiting:
                future, _ = waiting.popleft()
                if not future.done():
                    future.set_exception(error)
            if not isinstance(exc, Exception):
                raise  # a cancellation (or an interrupt) goes on: this task ends with it
        finally:
            self._reader = None

    def close(self) -> None:
        self.channel.close()
        if self._reader is not None:
            self._reader.cancel()


class WaitLine:
    """This process's waiters on one blocking server call, served by one call at a time.

    However many coroutines wait for a queue item, a lock or an event, one
    call waits on the server for all of them (on a connection of its own, in
    slices), and its result goes to the first waiter still there, or to all
    of them (broadcast, an event). A result nobody is left to take is given
    back (``unclaimed``: a queue item put back, a lock released). So blocked
    callers cost a future each, not a connection and a server thread each.

    Slices end before the last waiter's deadline (by _MARGIN, more than a
    round trip), so a waiter that times out leaves no call behind on the
    server to take an item for nobody; only a cancelled one can.
    """

    def __init__(
        self,
        pool: ConnectionPool,
        attempt: Callable[[Channel, float], Awaitable[tuple[bool, Any]]],
        unclaimed: Callable[[Channel, Any], Awaitable[None]] | None = None,
        *,
        broadcast: bool = False,
    ) -> None:
        self._pool = pool
        self._attempt = attempt
        self._unclaimed = unclaimed
        self._broadcast = broadcast
        self._futures: collections.deque[asyncio.Future[Any]] = collections.deque()
        self._deadlines: dict[asyncio.Future[Any], float | None] = {}
        self._changed: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None

    def waiting(self) -> bool:
        """Tell whether some coroutine of this process waits here."""
        return any(not future.done() for future in self._futures)

    async def wait(self, timeout: float | None) -> Any:
        """Wait for a result, up to timeout seconds.

        Raises:
            TimeoutError: none came in time.

        Cancellation:
            Safe: a result handed over as the waiter left goes to the next
            one, or is given back.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._futures.append(future)
        self._deadlines[future] = None if timeout is None else loop.time() + timeout
        future.add_done_callback(self._forget)
        if self._changed is not None and not self._changed.done():
            self._changed.set_result(None)
        if self._task is None:
            self._task = self._pool.background(self._serve())
        try:
            async with asyncio.timeout(timeout):
                return await future
        except BaseException:
            if future.done() and not future.cancelled() and future.exception() is None:
                if not self._broadcast:
                    self._hand_over(future.result())  # ours came just as we left
            else:
                future.cancel()
            raise

    def _forget(self, future: asyncio.Future[Any]) -> None:
        self._deadlines.pop(future, None)

    def _slice(self) -> float | None:
        """How long the next server call may wait; None: only waiters about to time out."""
        deadlines = self._deadlines.values()
        if not deadlines or None in deadlines:
            return SLICE
        remaining = max(d for d in deadlines if d is not None) - asyncio.get_running_loop().time()
        return min(SLICE, remaining - _MARGIN) if remaining > _MARGIN else None

    def _hand_over(self, result: Any) -> None:
        futures = self._futures
        while futures:
            future = futures.popleft()
            if not future.done():
                future.set_result(result)
                return
        if self._unclaimed is not None:
            self._pool.background(self._give_back(result))

    async def _give_back(self, result: Any) -> None:
        assert self._unclaimed is not None
        async with self._pool.dedicated() as channel:
            await self._unclaimed(channel, result)

    async def _serve(self) -> None:
        try:
            async with self._pool.dedicated() as channel:
                while self.waiting():
                    timeout = self._slice()
                    if timeout is None:
                        await self._until_changed()
                        continue
                    ready, result = await self._attempt(channel, timeout)
                    if not ready:
                        continue
                    if self._broadcast:
                        futures, self._futures = self._futures, collections.deque()
                        for future in futures:
                            if not future.done():
                                future.set_result(result)
                    elif self.waiting():
                        self._hand_over(result)
                    elif self._unclaimed is not None:
                        await self._unclaimed(channel, result)
        except BaseException as exc:
            # Every waiter hears why: the pool failed, or this task was
            # cancelled (the pool closing, the loop ending): ClosedError then.
            error = self._pool.error_for(exc)
            for future in self._futures:
                if not future.done():
                    future.set_exception(error)
            if not isinstance(exc, Exception):
                raise  # a cancellation (or an interrupt) goes on: this task ends with it
        finally:
            self._futures = collections.deque(f for f in self._futures if not f.done())
            self._task = None
            if self._futures:  # came after the last check: serve them
                self._task = self._pool.background(self._serve())

    async def _until_changed(self) -> None:
        """Let the waiters left time out, unless a new one comes first (a timer, not a poll)."""
        deadlines = [d for d in self._deadlines.values() if d is not None]
        changed = self._changed = asyncio.get_running_loop().create_future()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(max(deadlines, default=0.0)):
                await changed


def _loads(data: bytes | memoryview) -> tuple[str, Any]:
    """A reply; one that cannot be unpickled becomes its own caller's error, nobody else's."""
    try:
        return pickle.loads(data)  # type: ignore[no-any-return]
    except Exception as exc:  # noqa: BLE001 - raised by the caller of this reply
        return "#ERROR", exc


def _send_rest(sock: socket.socket, rest: memoryview) -> None:
    while rest:
        select.select([], [sock], [])
        try:
            sent = sock.send(rest, socket.MSG_DONTWAIT)
        except BlockingIOError:
            continue
        rest = rest[sent:]


class ConnectionPool:
    """The connections of one process to one manager server.

    Ordinary calls share at most ``size`` pipelined connections (past
    _DEPTH calls waiting on each, callers wait their turn). Blocking calls
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
            raise _copy(self._error)

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
            return _copy(self._error)
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
        return _copy(self._error)

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
        data = _dumps(ident, method, args, kwds)
        pipeline = self._pick()
        if pipeline is None:
            pipeline = await self._pipeline()
        self._in_flight += 1
        try:
            return await pipeline.call(data, alone=self._in_flight == 1, on_late=on_late)
        except _CONNECTION_ERRORS as exc:
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
        if best is None or len(best.waiting) >= _DEPTH or waiters:
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
        room = [p for p in self._shared if len(p.waiting) < _DEPTH]
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
        except _CONNECTION_ERRORS as exc:
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
        data = _dumps(ident, method, args, kwds)
        try:
            return await channel.request(data, on_late=on_late)
        except _CONNECTION_ERRORS as exc:
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
        except _CONNECTION_ERRORS as exc:
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
        opening = asyncio.ensure_future(to_thread(_open_socket, self.address, self.authkey))
        try:
            # Shielded: a connection opened for a caller who left joins the idle ones.
            sock = await asyncio.shield(opening)
        except asyncio.CancelledError:
            opening.add_done_callback(self._adopt_opened)
            raise
        except multiprocessing.AuthenticationError:
            raise
        except _CONNECTION_ERRORS as exc:
            raise self.translate(exc) from None
        channel = Channel(sock)
        if self._error is not None:  # closed meanwhile
            channel.close()
            raise _copy(self._error)
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


_PLAIN = frozenset({str, int, float, bool, bytes, type(None)})
_table: dict[Any, Any] = {}
_table_sizes = (-1, -1)
# The live dict ForkingPickler.register() adds to (never replaced): read once.
_extra_reducers = forking_pickler_reducers()


def _dispatch_table() -> dict[Any, Any]:
    """ForkingPickler's reducers, merged once (it copies copyreg's whole table per call)."""
    global _table, _table_sizes
    extra = _extra_reducers
    sizes = (len(copyreg.dispatch_table), len(extra))
    if sizes != _table_sizes:
        _table = {**copyreg.dispatch_table, **extra}
        _table_sizes = sizes
    return _table


def _dumps(
    ident: str | None, method: str, args: tuple[Any, ...], kwds: dict[str, Any] | None
) -> bytes:
    """Pickle a request as multiprocessing does (its reducers), framed: length, then pickle."""
    if not kwds and all(type(arg) in _PLAIN for arg in args):
        # Nothing there for multiprocessing's reducers: the plain pickler is 4x faster.
        return frame(pickle.dumps((ident, method, args, {})))
    buffer = io.BytesIO()
    buffer.write(b"\0" * PREFIX_SIZE)  # the length goes here once known: no copy
    pickler = pickle.Pickler(buffer)
    pickler.dispatch_table = _dispatch_table()
    pickler.dump((ident, method, args, kwds or {}))
    size = buffer.tell() - PREFIX_SIZE
    if size >= 0x7FFFFFFF:  # the long prefix is longer: frame it anew
        return frame(buffer.getvalue()[PREFIX_SIZE:])
    buffer.seek(0)
    buffer.write(LENGTH.pack(size))
    return buffer.getvalue()


def _copy(error: BaseException) -> BaseException:
    """A fresh instance of a stored error, so tracebacks do not pile up on one object."""
    copy = type(error)(*error.args)
    copy.__cause__ = error.__cause__
    return copy


# --- one pool per server per process -------------------------------------------------------------
#
# Proxies reach their server through the pool of (address, authkey) in this
# process: the one their manager made, or, in a child that received proxies,
# one made on first use. A fork child must not reuse its parent's sockets.

_pools: dict[tuple[Any, bytes], ConnectionPool] = {}
_pools_lock = threading.Lock()


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
