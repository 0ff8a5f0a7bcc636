"""One connection to a manager's server: open it, frame and pickle requests, read replies.

A ``Channel`` is a socket this process opened itself (never shared), with
the manager protocol on it: ``(ident, method, args, kwds)`` out, ``(kind,
result)`` back, in multiprocessing's framing (_core/_framing.py), pickled
with multiprocessing's reducers. The pipelining of many callers on one
channel is _pipeline.py; the pool of channels per server, _connections.py.
"""

from __future__ import annotations

import asyncio
import collections
import copyreg
import io
import multiprocessing.connection
import multiprocessing.managers
import pickle
import select
import socket
import struct
from typing import TYPE_CHECKING, Any

from .._core._backend import msg_dontwait
from .._core._cpython import connection_detach, forking_pickler_reducers
from .._core._errors import ClosedError
from .._core._framing import LENGTH, PREFIX_SIZE, bounds, frame, length_of
from .._core._readiness import closing_fd, wait_readable
from .._core._threads import to_thread

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from typing import TypeAlias

    # Undoes what a call did for a caller that left: (a connection, the call's result).
    OnLate: TypeAlias = "Callable[[Channel, Any], Awaitable[None]]"

# typeshed lacks dispatch.
_dispatch: Any = multiprocessing.managers.dispatch  # type: ignore[attr-defined]


__all__ = [
    "BRIEF_WAIT",
    "CONNECTION_ERRORS",
    "DEPTH",
    "MARGIN",
    "SLICE",
    "Channel",
    "copy_error",
    "dumps_request",
    "loads_reply",
    "open_socket",
    "send_rest",
    "server_call",
]


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
MARGIN = 0.01

# At most this many calls wait on one shared connection; more wait their turn.
DEPTH = 64

CONNECTION_ERRORS = (EOFError, OSError, ClosedError)


def open_socket(address: Any, authkey: bytes) -> socket.socket:
    """Connect and authenticate (the stdlib's handshake), then serve this connection (blocking)."""
    conn = multiprocessing.connection.Client(address, authkey=authkey)
    try:
        name = f"{multiprocessing.current_process().name}|toolkit"
        _dispatch(conn, None, "accept_connection", (name,))
        # Taken over, not duplicated: Windows cannot dup a socket handle.
        sock = socket.socket(fileno=connection_detach(conn))
    finally:
        conn.close()
    if msg_dontwait():
        # The descriptor stays blocking (every other read and write passes
        # MSG_DONTWAIT), so that a plain recv() is the brief blocking wait.
        sock.setblocking(True)
        micros = round(BRIEF_WAIT * 1e6)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 0, micros))
    else:
        # No MSG_DONTWAIT (Windows): a non-blocking socket, and select for the brief wait.
        sock.setblocking(False)
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

    __slots__ = ("_buffer", "_closed", "_dontwait", "_fd", "_owed", "_sock")

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._fd = sock.fileno()
        self._dontwait = msg_dontwait()  # 0: the socket is non-blocking (open_socket)
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
        """Send one framed request (dumps_request) and return its reply ``(kind, result)``.

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
            sent = self._sock.send(message, self._dontwait)
        except BlockingIOError:
            sent = 0
        return memoryview(message)[sent:] if sent < len(message) else None

    async def _send_rest(self, rest: memoryview) -> None:
        # Larger than the socket's free space: the rest goes from a thread,
        # shielded, so a cancelled caller never leaves half a request.
        await asyncio.shield(to_thread(send_rest, self._sock, rest))

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
                return loads_reply(data)
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
            return loads_reply(memoryview(chunk)[PREFIX_SIZE:])
        self._buffer += chunk
        return self._take()

    def _recv(self, wait: bool) -> bytes | None:
        """What the socket has (None: nothing), waiting up to BRIEF_WAIT if asked.

        Raises:
            EOFError: the server closed the connection.
        """
        self._check_open()
        try:
            if self._dontwait:
                chunk = self._sock.recv(1 << 16, 0 if wait else self._dontwait)
            elif not wait or select.select([self._sock], [], [], BRIEF_WAIT)[0]:
                chunk = self._sock.recv(1 << 16)
            else:
                return None
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


def loads_reply(data: bytes | memoryview) -> tuple[str, Any]:
    """A reply; one that cannot be unpickled becomes its own caller's error, nobody else's."""
    try:
        return pickle.loads(data)  # type: ignore[no-any-return]
    except Exception as exc:  # noqa: BLE001 - raised by the caller of this reply
        return "#ERROR", exc


def send_rest(sock: socket.socket, rest: memoryview) -> None:
    dontwait = msg_dontwait()  # 0: the socket is non-blocking (open_socket)
    while rest:
        select.select([], [sock], [])
        try:
            sent = sock.send(rest, dontwait)
        except BlockingIOError:
            continue
        rest = rest[sent:]


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


def dumps_request(
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


def copy_error(error: BaseException) -> BaseException:
    """A fresh instance of a stored error, so tracebacks do not pile up on one object."""
    copy = type(error)(*error.args)
    copy.__cause__ = error.__cause__
    return copy
