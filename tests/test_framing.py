"""The one framing module: multiprocessing's wire format, sans I/O, against the stdlib's own."""

from __future__ import annotations

import multiprocessing.connection
import socket

from hypothesis import given, strategies as st

from toolkit._core import _framing


def test_framing_frame_is_what_multiprocessing_reads() -> None:
    left, right = socket.socketpair()
    with left, right:
        reader = multiprocessing.connection.Connection(left.detach())
        try:
            for payload in (b"", b"x", b"hello" * 1000):
                right.sendall(_framing.frame(payload))
                assert reader.recv_bytes() == payload
        finally:
            reader.close()


def test_framing_bounds_reads_what_multiprocessing_writes() -> None:
    left, right = socket.socketpair()
    with left, right:
        writer = multiprocessing.connection.Connection(right.detach())
        try:
            writer.send_bytes(b"abc" * 10)
            data = left.recv(1 << 16)
        finally:
            writer.close()
    assert _framing.bounds(data, 0, len(data)) == (4, 34)


def test_framing_long_prefix_round_trip() -> None:
    # The long form (-1, then 8 bytes), as multiprocessing writes it for >= 2 GiB,
    # checked on a short payload with a hand-made prefix.
    data = _framing.LENGTH.pack(-1) + _framing.LONG_LENGTH.pack(3) + b"abc"
    assert _framing.bounds(data, 0, len(data)) == (12, 15)
    assert _framing.bounds(data, 0, 11) is None  # the long prefix is not whole
    assert _framing.length_of(data) == -1


@given(st.lists(st.binary(max_size=300), max_size=20), st.data())
def test_framing_bounds_splits_any_stream_at_any_cut(
    payloads: list[bytes], data: st.DataObject
) -> None:
    stream = b"".join(_framing.frame(p) for p in payloads)
    cut = data.draw(st.integers(0, len(stream)))
    found: list[bytes] = []
    pos = 0
    for size in (cut, len(stream)):  # first what one read brought, then the rest
        while (where := _framing.bounds(stream, pos, size)) is not None and where[1] <= size:
            found.append(stream[where[0] : where[1]])
            pos = where[1]
    assert found == payloads
