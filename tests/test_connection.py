"""toolkit.Pipe and Connection: real processes, both loops, both start methods."""

from __future__ import annotations

import asyncio
import fcntl
import multiprocessing
import os
import threading
from typing import TYPE_CHECKING

import pytest

import toolkit
from tests import _helpers

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
        sender = threading.Thread(target=left.sync.send_bytes, args=(big,))
        sender.start()
        first = asyncio.ensure_future(right.recv_bytes())
        await toolkit.to_thread(_wait_until_reading, right)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        assert await right.recv_bytes() == big
        await toolkit.to_thread(sender.join)
        left.sync.send_bytes(b"next")
        assert await right.recv_bytes() == b"next"


def _wait_until_reading(conn: toolkit.Connection) -> None:
    # The gate: the receiver has a message half-read, in its helper thread.
    while conn._pending_read is None:
        threading.Event().wait(0.001)


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


async def test_closed_connection_is_a_clear_error() -> None:
    left, right = toolkit.Pipe()
    left.close()
    with pytest.raises(toolkit.ClosedError):
        await left.send(1)
    with pytest.raises(toolkit.ClosedError):
        await left.recv()
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
    with pytest.raises(toolkit.ClosedError):
        await asyncio.wait_for(pending, 10)
    left.close()
