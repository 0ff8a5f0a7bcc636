"""``toolkit.Pipe`` and ``Connection``: ``multiprocessing`` connections, awaitable.

Receiving waits on the descriptor's readiness (no thread) and reads one
whole message, on the loop when it is all there, else in a helper thread
(_wire.py). Sending writes small messages on the loop when the descriptor
has room, larger ones from a helper thread, one message at a time.

Cancellation never tears a message: a cancelled ``recv`` either read
nothing, or its message is kept for the next ``recv``; a cancelled ``send``
either wrote nothing, or its message goes out whole (in the background) and
the next send waits for it.

A closed end raises ``ConnectionClosedError`` from every call that uses it
(``send``, ``recv``, ``poll``, ``fileno``...; also a ``recv`` or ``poll``
that was waiting when it was closed): an ``OSError`` as the stdlib raises
("handle is closed"), and a ``ClosedError`` as every closed toolkit object.
"""

from __future__ import annotations

import asyncio
import multiprocessing.connection
import multiprocessing.reduction
import pickle
import select
from typing import TYPE_CHECKING, Any

from .._core._backend import uses_handles
from .._core._errors import ConnectionClosedError
from .._core._readiness import closing_fd, wait_readable
from .._core._threads import to_thread
from .._core._validate import check_timeout
from .._core._wire import MessageReader, Partial, fd_ready

if TYPE_CHECKING:
    from types import TracebackType
    from typing import Self

__all__ = ["Connection", "Pipe"]

# The stdlib's words for a closed connection, kept so that code matching on them still works.
_CLOSED = "handle is closed"

# Writes up to PIPE_BUF bytes into a pipe that polls writable never block
# (POSIX: the pipe has at least PIPE_BUF free and such writes are atomic).
# Where pipes are handles (Windows) nothing tells whether one has room: every
# send goes out from a helper thread.
_INLINE_WRITE: int = getattr(select, "PIPE_BUF", 0)


class Connection:
    """One end of a ``Pipe``: awaitable ``send``/``recv``, the stdlib's API otherwise.

    ``sync`` is the plain ``multiprocessing.connection.Connection``, for
    synchronous code (a child without an event loop). The object pickles
    into a child process the way the plain one does (as a ``Process``
    argument).
    """

    def __init__(self, connection: multiprocessing.connection.Connection) -> None:
        if not isinstance(connection, multiprocessing.connection.Connection):
            raise TypeError(
                f"expected a multiprocessing Connection, not {type(connection).__name__}"
            )
        self._conn = connection
        self._readers: asyncio.Lock | None = None
        self._writers: asyncio.Lock | None = None
        self._pending_read: asyncio.Future[bytes | bytearray] | None = None
        self._pending_write: asyncio.Future[None] | None = None
        self._wire: MessageReader | None = None  # made on the first read (a closed end has none)
        self._handles = uses_handles()

    def __reduce__(self) -> tuple[type[Connection], tuple[multiprocessing.connection.Connection]]:
        return type(self), (self._conn,)

    def __repr__(self) -> str:
        state = "closed" if self._conn.closed else f"fd={self._conn.fileno()}"
        return f"<toolkit.Connection {state}>"

    @property
    def sync(self) -> multiprocessing.connection.Connection:
        """The plain ``multiprocessing`` connection underneath."""
        return self._conn

    @property
    def closed(self) -> bool:
        """Whether this end was closed (by ``close()``, or ``async with`` leaving)."""
        return self._conn.closed

    @property
    def readable(self) -> bool:
        """Whether this end can receive (False for the sending end of a one-way pipe)."""
        return self._conn.readable

    @property
    def writable(self) -> bool:
        """Whether this end can send (False for the receiving end of a one-way pipe)."""
        return self._conn.writable

    def fileno(self) -> int:
        """The descriptor underneath.

        Raises:
            ConnectionClosedError: this end was closed.
        """
        if self._conn.closed:
            raise ConnectionClosedError(_CLOSED)
        return self._conn.fileno()

    def close(self) -> None:
        """Close the connection (as the stdlib).

        Receives and polls waiting on it fail with ``ConnectionClosedError``;
        so does every later call. Closing twice does nothing. It raises nothing.
        """
        if not self._conn.closed:
            closing_fd(self._conn.fileno())
        self._conn.close()

    def _fd(self, readable: bool) -> int:
        """Check this end is open and goes the right way (the stdlib's order); return its fd."""
        if self._conn.closed:
            raise ConnectionClosedError(_CLOSED)
        if readable and not self._conn.readable:
            raise OSError("connection is write-only")
        if not readable and not self._conn.writable:
            raise OSError("connection is read-only")
        return self._conn.fileno()

    # -- receiving ----------------------------------------------------------------------------

    async def recv_bytes(self, maxlength: int | None = None) -> bytes:
        """Receive one message's bytes.

        Raises:
            EOFError: the other end closed and nothing is left.
            OSError: the message is longer than maxlength (then it is dropped, as
                the stdlib); or this end only writes.
            ValueError: maxlength is negative.
            ConnectionClosedError: this end was closed (an OSError, as the stdlib).

        Cancellation:
            Safe: either nothing was read, or the message is kept for the next recv.
        """
        if maxlength is not None and maxlength < 0:
            raise ValueError("negative maxlength")
        data = await self._receive()
        if maxlength is not None and len(data) > maxlength:
            raise OSError("bad message length")
        return bytes(data)

    async def recv(self) -> Any:
        """Receive one pickled object.

        Raises:
            EOFError: the other end closed and nothing is left.
            ConnectionClosedError: this end was closed, before or during the wait.
            OSError: this end only writes.
            Exception: what unpickling the message raises (``pickle.UnpicklingError``,
                ``AttributeError`` or ``ImportError`` for a class this process
                lacks); the message is consumed.

        Cancellation:
            Safe, as recv_bytes.
        """
        message = self._try_receive()  # the fast path, without a second coroutine
        if message is None:
            message = await self._receive()
        return pickle.loads(message)

    def _reader(self) -> MessageReader:
        self._fd(readable=True)  # closed or write-only: raise
        if self._wire is None:
            self._wire = MessageReader(self._conn)
        return self._wire

    def _try_receive(self) -> bytes | bytearray | None:
        """Take a message that is wholly there, if no other task of ours is reading."""
        if self._pending_read is not None or (self._readers is not None and self._readers.locked()):
            return None
        wire = self._reader()
        message = wire.try_read()
        if isinstance(message, Partial):
            self._pending_read = asyncio.ensure_future(to_thread(wire.finish, message))
            return None
        return message

    async def _receive(self) -> bytes | bytearray:
        message = self._try_receive()
        if message is not None:
            return message
        self._fd(readable=True)
        if self._readers is None:
            self._readers = asyncio.Lock()
        async with self._readers:
            return await self._read_message()

    async def _read_message(self) -> bytes | bytearray:
        while True:
            if self._pending_read is not None:
                # A message being finished off the loop (maybe a cancelled
                # reader's): shielded, so cancelling us leaves it for the next.
                try:
                    data = await asyncio.shield(self._pending_read)
                except OSError as exc:
                    if self._conn.closed:  # closed under the helper thread's read (EBADF)
                        raise ConnectionClosedError(_CLOSED) from exc
                    raise
                self._pending_read = None
                return data
            wire = self._reader()  # closed while we waited: ConnectionClosedError
            message = wire.try_read()
            if isinstance(message, Partial):
                self._pending_read = asyncio.ensure_future(to_thread(wire.finish, message))
                continue
            if message is not None:
                return message
            await wait_readable(self._conn.fileno(), probe=wire.probe)

    async def recv_bytes_into(self, buffer: Any, offset: int = 0) -> int:
        """Receive one message into a writable buffer; return its size.

        Raises:
            multiprocessing.BufferTooShort: the buffer is too small; the
                message is in ``exc.args[0]`` (as the stdlib).
            ConnectionClosedError: this end was closed.
            OSError: this end only writes.
            ValueError: offset is out of the buffer's bounds.
            TypeError: buffer does not support the buffer protocol.
            EOFError: the other end closed and nothing is left.

        Cancellation:
            Safe, as recv_bytes: either nothing was read, or the message is
            kept for the next receive; the buffer is untouched.
        """
        self._fd(readable=True)  # closed or write-only: that first, as the stdlib
        view = memoryview(buffer).cast("B")
        if offset < 0 or offset > len(view):
            raise ValueError("offset out of bounds" if offset >= 0 else "negative offset")
        data = await self.recv_bytes()
        if len(data) > len(view) - offset:
            raise multiprocessing.BufferTooShort(data)
        view[offset : offset + len(data)] = data
        return len(data)

    async def poll(self, timeout: float | None = 0.0) -> bool:
        """Tell whether there is data to read, waiting up to timeout seconds (None: forever).

        A negative timeout means 0, as in the stdlib.

        Raises:
            ValueError: timeout is NaN.
            TypeError: timeout is not a number or None.
            ConnectionClosedError: this end was closed, before or during the wait.

        Cancellation:
            Safe: nothing is read.
        """
        timeout = check_timeout(timeout, negative_is_zero=True)
        wire = self._reader()
        if self._pending_read is not None or wire.ready() or self._conn.poll(0):
            return True
        if timeout is not None and timeout <= 0:
            return False
        try:
            async with asyncio.timeout(timeout):
                await wait_readable(self._conn.fileno(), probe=wire.probe)
        except TimeoutError:
            return False
        self._fd(readable=True)  # woken by close(): not "readable"
        return True

    # -- sending ------------------------------------------------------------------------------

    async def send_bytes(self, buffer: Any, offset: int = 0, size: int | None = None) -> None:
        """Send bytes (or part of a buffer) as one message.

        Raises:
            ConnectionClosedError: this end was closed (also while waiting
                for an earlier message to go out).
            OSError: this end only reads; or the write failed (the other end
                is gone: ``BrokenPipeError``).
            ValueError: offset or size is out of the buffer's bounds.

        Cancellation:
            A message that started going out goes out whole (in the
            background); one that had not started is not sent.
        """
        self._fd(readable=False)
        view = memoryview(buffer).cast("B")
        if offset < 0 or offset > len(view):
            raise ValueError("offset out of bounds" if offset >= 0 else "negative offset")
        if size is None:
            size = len(view) - offset
        elif size < 0 or offset + size > len(view):
            raise ValueError("size out of bounds" if size >= 0 else "negative size")
        data = bytes(view[offset : offset + size])
        if self._writers is None:
            self._writers = asyncio.Lock()
        async with self._writers:
            if self._pending_write is not None:  # a cancelled sender's message still going out
                await self._finish_write(self._pending_write)
            fd = self._fd(readable=False)  # closed while we waited for the lock or that write?
            if size + 4 <= _INLINE_WRITE and not self._handles and fd_ready(fd, 0, writable=True):
                self._conn.send_bytes(data)
                return
            self._pending_write = asyncio.ensure_future(to_thread(self._conn.send_bytes, data))
            await self._finish_write(self._pending_write)

    async def _finish_write(self, pending: asyncio.Future[None]) -> None:
        """Wait for a write going out in a helper thread (shielded: it must go out whole)."""
        try:
            await asyncio.shield(pending)
        except OSError as exc:
            if self._conn.closed:  # closed under the write: the stdlib's plain OSError, or EBADF
                raise ConnectionClosedError(_CLOSED) from exc
            raise
        self._pending_write = None

    async def send(self, obj: Any) -> None:
        """Send a picklable object.

        Raises:
            pickle.PicklingError: obj cannot be pickled (nothing is sent); pickle
                raises ``TypeError`` or ``AttributeError`` for some objects too.
            ConnectionClosedError: this end was closed.
            OSError: this end only reads; or the write failed (the other end is gone).

        Cancellation:
            As send_bytes.
        """
        self._fd(readable=False)  # a closed end fails before pickling, as the stdlib
        await self.send_bytes(multiprocessing.reduction.ForkingPickler.dumps(obj))

    # -- context manager ---------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def Pipe(duplex: bool = True) -> tuple[Connection, Connection]:
    """Return the two ends of a new pipe, as awaitable connections.

    Args:
        duplex: both ends read and write (a socket pair); otherwise the first
            end only reads and the second only writes (an OS pipe).

    Raises:
        OSError: the process is out of file descriptors (``EMFILE``).
    """
    first, second = multiprocessing.Pipe(duplex)
    return Connection(first), Connection(second)
