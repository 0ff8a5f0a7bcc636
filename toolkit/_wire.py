"""Reading and writing ``multiprocessing.connection`` messages without stalling the loop.

The wire format (Lib/multiprocessing/connection.py, stable since 3.8): a
4-byte big-endian signed length, or -1 followed by an 8-byte length for
messages over 2 GiB, then the payload. Connections keep no buffer of their
own, so reading exactly one message's bytes here leaves the descriptor
exactly where ``Connection.recv_bytes`` would: the plain object (``.sync``)
and the awaitable one can be mixed.

Theory of operation::

    readable ──▶ FIONREAD says how many bytes are there
                 ├─ fewer than a header: wait again (or EOF if zero at hang-up)
                 ├─ header + whole payload there: read it now, on the loop
                 │    (reads of available bytes never block)
                 └─ payload still arriving (larger than the pipe's buffer):
                      read the rest in a helper thread; if the awaiter is
                      cancelled meanwhile, the message is kept for the next
                      reader, never dropped or left half-read

A reader must be the only one reading the descriptor while it reads (the
stdlib's rule too: ``Queue`` holds its read lock, a ``Connection`` has one
reader).
"""

from __future__ import annotations

import array
import fcntl
import os
import struct
import termios

__all__ = ["available", "encode_header", "read_exactly", "try_read_header"]

_HEADER = struct.Struct("!i")
_LONG = struct.Struct("!Q")


def available(fd: int) -> int:
    """Return how many bytes can be read from fd right now without blocking."""
    count = array.array("i", [0])
    fcntl.ioctl(fd, termios.FIONREAD, count, True)
    return count[0]


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


def try_read_header(fd: int, ready: int) -> int | None:
    """Read a message header if one is wholly there; return the payload size.

    Args:
        ready: what ``available(fd)`` said.

    Returns:
        The payload size, or None if fewer bytes than a header are there
        (nothing is read then).
    """
    if ready < _HEADER.size:
        return None
    size: int = _HEADER.unpack(read_exactly(fd, _HEADER.size))[0]
    if size == -1:  # over 2 GiB: the real length follows (written with the header)
        size = _LONG.unpack(read_exactly(fd, _LONG.size))[0]
    return size


def encode_header(size: int) -> bytes:
    if size > 0x7FFFFFFF:
        return _HEADER.pack(-1) + _LONG.pack(size)
    return _HEADER.pack(size)
