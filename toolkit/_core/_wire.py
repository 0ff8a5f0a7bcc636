"""Reading and writing ``multiprocessing.connection`` messages without stalling the loop.

The wire format (Lib/multiprocessing/connection.py, stable since 3.8): a
4-byte big-endian signed length, or -1 followed by an 8-byte length for
messages over 2 GiB, then the payload. Connections keep no buffer of their
own, so reading exactly one message's bytes here leaves the descriptor
exactly where ``Connection.recv_bytes`` would: the plain object (``.sync``)
and the awaitable one can be mixed.

Theory of operation::

    try_read_message: read the header without blocking (preadv2 RWF_NOWAIT,
                      a per-call flag: the descriptor stays blocking for
                      every other process)
                 ├─ nothing there: the caller waits for readiness, retries
                 ├─ header + whole payload there: read now, on the loop
                 └─ payload still arriving (larger than the pipe's buffer):
                      a Partial; the caller finishes it in a helper thread;
                      if the awaiter is cancelled meanwhile, the message is
                      kept for the next reader, never dropped or left half-read

A reader must be the only one reading the descriptor while it reads (the
stdlib's rule too: ``Queue`` holds its read lock, a ``Connection`` has one
reader).

Where pipes are handles (Windows; ``uses_handles``), nothing tells how much
of a message is there: ``MessageReader`` asks the connection's own ``poll``
and reads every message with its own ``recv_bytes`` in a helper thread (a
Partial with nothing read yet), so the same callers stay cancel-safe.
"""

from __future__ import annotations

import array
import errno
import os
import select
from typing import Any

from ._backend import get_backend, on_change, uses_handles
from ._framing import LONG_PREFIX_SIZE, PREFIX_SIZE, bounds, length_of

__all__ = [
    "MessageReader",
    "Partial",
    "available",
    "fd_ready",
    "finish",
    "read_exactly",
    "read_nowait_into",
    "try_read_message",
]


# Linux >= 4.14 (pipes since 5.x): preadv2(RWF_NOWAIT) reads without blocking
# *this call only*, leaving the descriptor's flags alone: one syscall instead
# of FIONREAD + read. The linux backend only (probed on first use); the posix
# and threads backends ask FIONREAD, then read what it says is there.
_nowait_works: bool | None = None  # None: not decided yet (the backend is chosen lazily)
_ioctl: Any = None  # fcntl.ioctl and termios.FIONREAD, imported on first use: not on Windows
_fionread = 0


def available(fd: int) -> int:
    """Return how many bytes can be read from fd right now without blocking."""
    global _ioctl, _fionread
    if _ioctl is None:
        import fcntl
        import termios

        _ioctl, _fionread = fcntl.ioctl, termios.FIONREAD
    count = array.array("i", [0])
    _ioctl(fd, _fionread, count, True)
    return count[0]


def _reset() -> None:
    global _nowait_works
    _nowait_works = None


on_change(_reset)


def fd_ready(fd: int, timeout: float, writable: bool = False) -> bool:
    """Is fd readable (or writable) within timeout seconds? Raises OSError if it is closed.

    poll where there is one (select cannot take a descriptor above 1023);
    select elsewhere (Windows, where it takes sockets).
    """
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLOUT if writable else select.POLLIN)
        events = poller.poll(timeout * 1000)
        if events and events[0][1] & select.POLLNVAL:
            raise OSError(f"descriptor {fd} is closed")
        return bool(events)
    if writable:
        return bool(select.select([], [fd], [], timeout)[1])
    return bool(select.select([fd], [], [], timeout)[0])


def read_nowait_into(fd: int, view: memoryview) -> int:
    """Read what is there into view without blocking: -1 if nothing, 0 at EOF, else a count."""
    return _read_nowait(fd, view)[0]


def _read_nowait(fd: int, view: memoryview) -> tuple[int, int]:
    """read_nowait_into, and how many bytes FIONREAD said were there (-1: not asked)."""
    global _nowait_works
    if _nowait_works is None:
        _nowait_works = get_backend() == "linux"
    if _nowait_works:
        try:
            return os.preadv(fd, [view], -1, os.RWF_NOWAIT), -1
        except BlockingIOError:
            return -1, -1
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ESPIPE):
                raise
            _nowait_works = False
    ready = available(fd)
    if ready == 0:
        if not fd_ready(fd, 0):
            return -1, 0
        # Readable: bytes that came meanwhile, or the end (readable with
        # nothing to read: the writer closed).
        ready = available(fd)
        if ready == 0:
            return 0, 0
    return os.readv(fd, [view[:ready]]), ready


def _read_into(fd: int, buffer: bytearray, size: int) -> bytearray:
    """Read size bytes known to be there into buffer."""
    view = memoryview(buffer)
    filled = 0
    while filled < size:
        got = os.readv(fd, [view[filled:]])
        if not got:
            raise EOFError("the other end closed in the middle of a message")
        filled += got
    return buffer


class Partial:
    """A message whose first bytes were read; the rest is still arriving."""

    __slots__ = ("buffer", "filled", "header")

    def __init__(self, header: bytearray | None, buffer: bytearray | None, filled: int) -> None:
        self.header = header  # set while the header itself is incomplete
        self.buffer = buffer
        self.filled = filled


def try_read_message(fd: int, header: bytearray | None = None) -> bytearray | Partial | None:
    """Read one message if it is there, without blocking.

    Args:
        header: a 4-byte scratch buffer to read the header into.

    Returns:
        The payload; None if no byte of a message is there (nothing was
        read); or a Partial, to be completed off the loop with ``finish``.

    Raises:
        EOFError: the writer closed, at a message boundary.
    """
    if header is None:  # callers that read often pass a buffer of their own
        header = bytearray(PREFIX_SIZE)
    got, there = _read_nowait(fd, memoryview(header))
    if got == -1:
        return None
    if got == 0:
        raise EOFError
    if got < PREFIX_SIZE:
        return Partial(bytearray(header), None, got)
    size = _payload_size(fd, header)
    buffer = bytearray(size)
    if size == 0:
        return buffer
    if there - PREFIX_SIZE >= size:
        # FIONREAD already said the whole message is there (the usual case):
        # one more call reads it, not two.
        return _read_into(fd, buffer, size)
    filled = read_nowait_into(fd, memoryview(buffer))
    if filled == size:
        return buffer
    return Partial(None, buffer, max(filled, 0))


def _payload_size(fd: int, prefix: bytearray) -> int:
    """The length a whole 4-byte prefix announces; a long one's 8 bytes are read from fd."""
    size = length_of(prefix)
    if size == -1:  # 2 GiB or more: the real length follows (a blocking read: it is there)
        long_prefix = prefix + read_exactly(fd, LONG_PREFIX_SIZE - PREFIX_SIZE)
        found = bounds(long_prefix, 0, LONG_PREFIX_SIZE)
        assert found is not None
        size = found[1] - found[0]
    return size


def finish(fd: int, partial: Partial) -> bytearray:
    """Read the rest of a partial message (blocking: call it off the loop)."""
    if partial.header is not None:
        header = partial.header
        header[partial.filled :] = read_exactly(fd, PREFIX_SIZE - partial.filled)
        return bytearray(read_exactly(fd, _payload_size(fd, header)))
    assert partial.buffer is not None
    view = memoryview(partial.buffer)
    filled = partial.filled
    while filled < len(view):
        got = os.readv(fd, [view[filled:]])
        if not got:
            raise EOFError("the other end closed in the middle of a message")
        filled += got
    return partial.buffer


def read_exactly(fd: int, size: int) -> bytes:
    """Read size bytes (blocking if they are not all there yet).

    Raises:
        EOFError: the writer closed before size bytes came.
    """
    if size == 0:
        return b""
    chunks = []
    remaining = size
    while remaining:
        chunk = os.read(fd, remaining)
        if not chunk:
            raise EOFError("the other end closed in the middle of a message")
        chunks.append(chunk)
        remaining -= len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


# A handle's message: nothing read yet, the whole of it is read off the loop.
_UNREAD = Partial(None, None, 0)


class MessageReader:
    """One connection's messages, read without blocking the loop: through its
    descriptor, or (``uses_handles``) through the connection's own calls."""

    __slots__ = ("_conn", "_fd", "_header", "handles")

    def __init__(self, conn: Any) -> None:
        self._conn = conn  # a multiprocessing Connection (its read end)
        self._fd: int = conn.fileno()
        self._header = bytearray(PREFIX_SIZE)
        get_backend()  # a bad TOOLKIT_BACKEND is said at the first wait, whatever the path
        self.handles = uses_handles()

    def try_read(self) -> bytes | bytearray | Partial | None:
        """try_read_message: a message wholly there, None, or a Partial to ``finish``."""
        if self.handles:
            return _UNREAD if self._conn.poll() else None
        return try_read_message(self._fd, self._header)

    def finish(self, partial: Partial) -> bytes | bytearray:
        """The rest of a Partial (blocking: call it off the loop)."""
        if partial is _UNREAD:
            data: bytes = self._conn.recv_bytes()
            return data
        return finish(self._fd, partial)

    def ready(self) -> bool:
        """Is a byte there now?"""
        if self.handles:
            return bool(self._conn.poll())
        return available(self._fd) > 0

    @property
    def probe(self) -> Any:
        """For wait_readable: how a helper thread tells readiness (None: by the descriptor)."""
        return self._conn.poll if self.handles else None
