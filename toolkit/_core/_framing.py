"""multiprocessing's message framing, sans I/O: the one encoder and decoder of the toolkit.

A message on a ``multiprocessing.connection.Connection`` (and on the
toolkit's own pool and manager sockets, which speak the same format) is::

    +----------------+-------------------------+----------------------+
    | length: !i (4) | [length: !Q (8) if -1]  | payload (length)     |
    +----------------+-------------------------+----------------------+

A 4-byte signed big-endian length, or -1 followed by an 8-byte length for
payloads of 2 GiB and more. Nothing here reads or writes a descriptor:
callers bring the bytes (a socket read, a pipe read) and take the bounds
back, so the same code serves the worker (_engines/_worker.py), the pool's
side of each worker (_engines/_workers.py), the manager connections
(_managers/_channel.py) and the readers of shared pipes (_wire.py).

This module is imported in worker processes: no asyncio.
"""

from __future__ import annotations

import struct

__all__ = [
    "LENGTH",
    "LONG_LENGTH",
    "LONG_PREFIX_SIZE",
    "PREFIX_SIZE",
    "bounds",
    "frame",
    "length_of",
]

LENGTH = struct.Struct("!i")
LONG_LENGTH = struct.Struct("!Q")
PREFIX_SIZE = LENGTH.size  # 4
LONG_PREFIX_SIZE = LENGTH.size + LONG_LENGTH.size  # 12
_LONG_MARK = -1
_SHORT_MAX = 0x7FFFFFFF


def frame(payload: bytes | bytearray | memoryview) -> bytes:
    """Return payload with its length prefix, ready to write."""
    size = len(payload)
    if size >= _SHORT_MAX:
        return LENGTH.pack(_LONG_MARK) + LONG_LENGTH.pack(size) + bytes(payload)
    return LENGTH.pack(size) + bytes(payload)


def bounds(data: bytes | bytearray | memoryview, pos: int, size: int) -> tuple[int, int] | None:
    """Where the payload of the message at data[pos] starts and ends.

    Returns:
        (start, end) offsets into data, or None while the length prefix is
        not whole. The payload itself is whole only if end <= size.
    """
    if size - pos < PREFIX_SIZE:
        return None
    (length,) = LENGTH.unpack_from(data, pos)
    start = pos + PREFIX_SIZE
    if length == _LONG_MARK:
        if size - pos < LONG_PREFIX_SIZE:
            return None
        (length,) = LONG_LENGTH.unpack_from(data, start)
        start = pos + LONG_PREFIX_SIZE
    return start, start + length


def length_of(prefix: bytes | bytearray | memoryview) -> int:
    """The payload length a 4-byte prefix announces; -1 means 8 more bytes say it (long)."""
    (length,) = LENGTH.unpack_from(prefix)
    return int(length)
