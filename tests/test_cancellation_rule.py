"""The rule: ``asyncio.CancelledError`` is never wrapped or swallowed (the managers' side).

A background task the toolkit cancels to stop it (a manager connection's
reply reader, a wait line's server call, a connection being settled) tells
its callers why (``ClosedError``), cleans up, and then ends *cancelled*: the
cancellation goes on. A coroutine a caller awaits (``Manager.start``,
``Manager.shutdown``) raises the ``CancelledError`` it got, after the cleanup
it needs. The monitor server's client tasks: tests/test_monitor.py.

The connection tests run over a socket pair: the toolkit's side is real, the
"server" is a socket that never answers (or answers by hand).
"""

from __future__ import annotations

import asyncio
import pickle
import socket
from typing import TYPE_CHECKING, Any

import pytest

import toolkit
from toolkit._core._framing import frame
from toolkit._managers._channel import Channel
from toolkit._managers._connections import ConnectionPool
from toolkit._managers._pipeline import Pipeline

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture
def socket_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, theirs = socket.socketpair()
    yield ours, theirs
    ours.close()
    theirs.close()


def _request() -> bytes:
    return frame(pickle.dumps((None, "anything", (), {})))


def _reply(value: Any) -> bytes:
    return frame(pickle.dumps(("#RETURN", value)))


async def _turns(count: int = 3) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


def _no_compensation(on_late: Any, result: Any) -> None:
    raise AssertionError("nothing to undo here")


async def test_pipeline_reader_cancelled_ends_cancelled_and_its_callers_hear_closed(
    socket_pair: tuple[socket.socket, socket.socket],
) -> None:
    channel = Channel(socket_pair[0])
    pipeline = Pipeline(channel, _no_compensation)
    call = asyncio.ensure_future(pipeline.call(_request(), alone=False))
    await _turns()
    reader = pipeline._reader
    assert reader is not None  # waiting for the reply that never comes
    reader.cancel()  # what Pipeline.close() does
    await asyncio.wait([reader], timeout=10)
    assert reader.cancelled()
    with pytest.raises(toolkit.ClosedError):
        await asyncio.wait_for(call, 10)
    assert channel.closed  # out of step for good
    assert pipeline._reader is None


async def test_pipeline_cancelled_caller_gets_cancelled_error_and_the_reader_reads_on(
    socket_pair: tuple[socket.socket, socket.socket],
) -> None:
    channel = Channel(socket_pair[0])
    pipeline = Pipeline(channel, _no_compensation)
    call = asyncio.ensure_future(pipeline.call(_request(), alone=False))
    await _turns()
    reader = pipeline._reader
    assert reader is not None
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    socket_pair[1].sendall(_reply(1))  # the reply to the caller who left: read and dropped
    await asyncio.wait([reader], timeout=10)
    assert reader.done()
    assert not reader.cancelled()  # nothing left to read: it ended, as it does
    assert not channel.closed
    assert not pipeline.waiting
    channel.close()


async def test_wait_line_server_call_cancelled_ends_cancelled_and_its_waiters_hear_closed(
    socket_pair: tuple[socket.socket, socket.socket],
) -> None:
    pool = ConnectionPool("/nowhere", b"key")
    channel = Channel(socket_pair[0])
    pool._all.add(channel)
    pool._idle.append(channel)  # the wait line's dedicated connection: no server needed
    calling = asyncio.Event()

    async def attempt(channel: Channel, timeout: float) -> tuple[bool, Any]:
        calling.set()
        await asyncio.get_running_loop().create_future()  # the server never answers
        raise AssertionError("unreachable")

    line = pool.line(("1", "get"), attempt)
    waiter = asyncio.ensure_future(line.wait(None))
    await asyncio.wait_for(calling.wait(), 10)
    serving = line._task
    assert serving is not None
    serving.cancel()  # what closing the pool does
    await asyncio.wait([serving], timeout=10)
    assert serving.cancelled()
    with pytest.raises(toolkit.ClosedError):
        await asyncio.wait_for(waiter, 10)
    assert line._task is None  # no waiter left: nothing started again
    await pool.aclose(toolkit.ClosedError("done"))
    assert channel.closed


async def test_pool_settling_cancelled_ends_cancelled_and_drops_the_connection(
    socket_pair: tuple[socket.socket, socket.socket],
) -> None:
    pool = ConnectionPool("/nowhere", b"key")
    channel = Channel(socket_pair[0])
    pool._all.add(channel)
    request = asyncio.ensure_future(channel.request(_request()))
    await _turns()
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request
    assert channel.owes  # its reply is still to be read
    pool.release_channel(channel)  # settled in the background first
    (settling,) = pool._drains
    await _turns()  # waiting for that reply
    settling.cancel()  # what closing the pool does
    await asyncio.wait([settling], timeout=10)
    assert settling.cancelled()
    assert channel.closed  # out of step: dropped, never reused
    assert channel not in pool._all
    await pool.aclose(toolkit.ClosedError("done"))


@pytest.mark.parametrize("delay", [0.0, 0.01])
async def test_manager_start_cancelled_twice_raises_and_leaves_no_process(delay: float) -> None:
    # The second cancellation lands while start() waits for its helper thread to
    # finish starting the server: still raised, and the server is still stopped.
    manager = toolkit.Manager()
    starting = asyncio.ensure_future(manager.start())
    await asyncio.sleep(delay)
    starting.cancel()
    await _turns(1)
    starting.cancel()
    await asyncio.wait([starting], timeout=30)
    if starting.cancelled():  # it raised CancelledError
        assert not manager.is_alive()
    else:  # it had started already: then it runs, until shut down
        starting.result()
        await manager.shutdown()
    # (the no_leaks fixture checks that no server process is left behind)


async def test_manager_shutdown_cancelled_raises_and_the_server_still_stops() -> None:
    manager = toolkit.Manager()
    await manager.start()
    stopping = asyncio.ensure_future(manager.shutdown())
    await _turns(1)  # it is past cancelling its watcher: what was swallowed there
    stopping.cancel()
    await asyncio.wait([stopping], timeout=30)
    assert stopping.cancelled()  # it raised CancelledError
    # The stop was abandoned where the cancellation landed; the finalizer is
    # still armed, to stop the server when the manager is collected or at exit.
    finalizer = manager._finalizer
    assert finalizer is not None
    assert finalizer.still_active()
    await toolkit.to_thread(finalizer)  # what collection would do
    assert not manager.is_alive()
    # (the no_leaks fixture checks that no server process is left behind)
