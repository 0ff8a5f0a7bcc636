"""toolkit.Pipe and Connection: real processes, both loops, both start methods."""

from __future__ import annotations

import asyncio
import fcntl
import inspect
import multiprocessing
import os
import threading
from typing import TYPE_CHECKING, Any

import pytest

import toolkit
from tests import _helpers
from tests._waiting import wait_until

if TYPE_CHECKING:
    from collections.abc import Callable
    from multiprocessing.context import BaseContext

MB = 1 << 20


async def test_pipe_send_and_recv_objects() -> None:
    left, right = toolkit.Pipe()
    async with left, right:
        await left.send({"a": [1, 2]})
        assert await right.recv() == {"a": [1, 2]}
        await right.send_bytes(b"hello world", 6, 5)
        assert await left.recv_bytes() == b"world"


async def test_one_way_pipe_ends() -> None:
    reader, writer = toolkit.Pipe(duplex=False)
    async with reader, writer:
        with pytest.raises(OSError, match="read-only"):
            await reader.send(1)
        with pytest.raises(OSError, match="write-only"):
            await writer.recv()
        await writer.send(5)
        assert await reader.recv() == 5


@pytest.mark.parametrize("child", [_helpers.echo_sync, _helpers.echo_async])
async def test_pipe_with_a_child_process(
    mp_context: BaseContext, child: Callable[[toolkit.Connection, int], None]
) -> None:
    ours, theirs = toolkit.Pipe()
    process = toolkit.Process(target=child, args=(theirs, 50), context=mp_context)
    process.start()
    theirs.close()
    for i in range(50):
        await ours.send(i)
        assert await asyncio.wait_for(ours.recv(), 30) == 2 * i
    await asyncio.wait_for(process.join(), 30)
    assert process.exitcode == 0
    with pytest.raises(EOFError):
        await ours.recv()
    ours.close()


async def test_big_messages_arrive_whole_and_flags_stay_blocking(mp_context: BaseContext) -> None:
    """200 messages of 1 MB (uvloop#686: the loop must not make the pipe non-blocking)."""
    for duplex in (True, False):
        ours, theirs = toolkit.Pipe(duplex)
        process = toolkit.Process(
            target=_helpers.send_big, args=(theirs, 200, MB), context=mp_context
        )
        process.start()
        theirs.close()
        for i in range(200):
            data = await asyncio.wait_for(ours.recv_bytes(), 30)
            assert len(data) == 4 + MB
            assert int.from_bytes(data[:4], "big") == i
        assert not fcntl.fcntl(ours.fileno(), fcntl.F_GETFL) & os.O_NONBLOCK
        await asyncio.wait_for(process.join(), 30)
        ours.close()


async def test_cancelled_recv_while_waiting_loses_nothing() -> None:
    left, right = toolkit.Pipe()
    async with left, right:
        waiting = asyncio.ensure_future(right.recv())
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await left.send("kept")
        assert await right.recv() == "kept"


async def test_cancelled_recv_mid_message_keeps_it_for_the_next() -> None:
    left, right = toolkit.Pipe()
    async with left, right:
        big = os.urandom(4 * MB)
        rest = threading.Event()
        sender = threading.Thread(target=_send_in_two_parts, args=(left.fileno(), big, rest))
        sender.start()
        try:
            first = asyncio.ensure_future(right.recv_bytes())
            # The gate: the receiver has a message half-read, in its helper thread.
            await wait_until(lambda: right._pending_read is not None, 30.0, interval=0.001)
            first.cancel()
            with pytest.raises(asyncio.CancelledError):
                await first
        finally:
            rest.set()
        assert await asyncio.wait_for(right.recv_bytes(), 30) == big
        await toolkit.to_thread(sender.join)
        left.sync.send_bytes(b"next")
        assert await right.recv_bytes() == b"next"


def _send_in_two_parts(fd: int, data: bytes, rest: threading.Event) -> None:
    """Write one message in the stdlib's wire format, holding its last part back until rest.

    Held back, the message cannot be read whole before the test cancels its
    reader (whole 4 MB messages sometimes were, and the gate never opened).
    """
    _write_all(fd, len(data).to_bytes(4, "big") + data[:MB])
    rest.wait(30)
    _write_all(fd, data[MB:])


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


async def test_poll_waits_up_to_its_timeout() -> None:
    left, right = toolkit.Pipe()
    async with left, right:
        assert not await right.poll()
        assert not await right.poll(0.02)
        later = asyncio.get_running_loop().call_later(0.02, left.sync.send, 1)
        assert await right.poll(None)
        later.cancel()
        assert await right.recv() == 1


async def test_recv_bytes_into_and_buffer_too_short() -> None:
    left, right = toolkit.Pipe()
    async with left, right:
        buffer = bytearray(8)
        await left.send_bytes(b"abc")
        assert await right.recv_bytes_into(buffer, 2) == 3
        assert buffer[2:5] == b"abc"
        await left.send_bytes(b"0123456789")
        with pytest.raises(multiprocessing.BufferTooShort) as info:
            await right.recv_bytes_into(buffer)
        assert info.value.args[0] == b"0123456789"


async def test_recv_maxlength() -> None:
    left, right = toolkit.Pipe()
    async with left, right:
        await left.send_bytes(b"x" * 10)
        with pytest.raises(OSError, match="bad message length"):
            await right.recv_bytes(maxlength=5)


# Every call that uses a closed end; the stdlib raises OSError("handle is closed") for each.
_CLOSED_CALLS: dict[str, Callable[[Any], object]] = {
    "send": lambda conn: conn.send(1),
    "send_unpicklable": lambda conn: conn.send(threading.Lock()),
    "send_bytes": lambda conn: conn.send_bytes(b"x"),
    "recv": lambda conn: conn.recv(),
    "recv_bytes": lambda conn: conn.recv_bytes(),
    "recv_bytes_into": lambda conn: conn.recv_bytes_into(bytearray(4)),
    "poll": lambda conn: conn.poll(),
    "poll_negative": lambda conn: conn.poll(-1),
    "poll_forever": lambda conn: conn.poll(None),
    "fileno": lambda conn: conn.fileno(),
}


@pytest.mark.parametrize("call", list(_CLOSED_CALLS))
async def test_closed_connection_raises_the_stdlibs_oserror(call: str) -> None:
    plain, plain_other = multiprocessing.Pipe()
    ours, ours_other = toolkit.Pipe()
    for end in (plain, plain_other, ours, ours_other):
        end.close()
    with pytest.raises(OSError, match="handle is closed") as stdlib:
        _CLOSED_CALLS[call](plain)
    with pytest.raises(toolkit.ConnectionClosedError, match="handle is closed") as info:
        result = _CLOSED_CALLS[call](ours)
        if inspect.isawaitable(result):
            await result
    assert isinstance(info.value, type(stdlib.value))  # an except clause for the stdlib catches it
    assert isinstance(info.value, toolkit.ClosedError)  # and one for every closed toolkit object


async def test_closed_connection_leaves_the_other_end_at_eof() -> None:
    left, right = toolkit.Pipe()
    left.close()
    with pytest.raises(EOFError):
        await right.recv()
    right.close()


async def test_many_waiters_on_one_connection_need_no_thread() -> None:
    left, right = toolkit.Pipe()
    async with left, right:
        before = threading.active_count()
        readers = [asyncio.ensure_future(right.recv()) for _ in range(1000)]
        await asyncio.sleep(0)
        assert threading.active_count() == before
        for i in range(1000):
            await left.send(i)
        assert sorted(await asyncio.wait_for(asyncio.gather(*readers), 30)) == list(range(1000))


def test_connection_wraps_only_connections() -> None:
    with pytest.raises(TypeError, match="Connection"):
        toolkit.Connection(42)  # type: ignore[arg-type]


async def test_close_wakes_a_pending_recv() -> None:
    left, right = toolkit.Pipe()
    pending = asyncio.ensure_future(right.recv())
    await asyncio.sleep(0)
    right.close()
    with pytest.raises(toolkit.ConnectionClosedError, match="handle is closed") as info:
        await asyncio.wait_for(pending, 10)
    assert isinstance(info.value, OSError)
    left.close()


async def test_close_wakes_a_pending_poll_with_an_error() -> None:
    # Woken by the close, the poll must not answer "there is data".
    left, right = toolkit.Pipe()
    pending = asyncio.ensure_future(right.poll(None))
    await asyncio.sleep(0)
    right.close()
    with pytest.raises(toolkit.ConnectionClosedError, match="handle is closed"):
        await asyncio.wait_for(pending, 10)
    left.close()


async def test_poll_timeout_checked_as_everywhere() -> None:
    left, right = toolkit.Pipe()
    plain, plain_other = multiprocessing.Pipe()
    async with left, right:
        # The stdlib says "cannot convert float NaN to integer": not which argument, nor why.
        with pytest.raises(ValueError, match=r"^timeout must be a number >= 0, not nan$"):
            await right.poll(float("nan"))
        with pytest.raises(TypeError, match="timeout must be a number of seconds or None"):
            await right.poll("1")  # type: ignore[arg-type]
        # A negative timeout is 0, as in the stdlib: no error, no wait.
        assert plain.poll(-1) is False
        assert await right.poll(-1) is False
        await left.send("x")
        assert await right.poll(-1.5) is True
        assert await right.recv() == "x"
    plain.close()
    plain_other.close()
