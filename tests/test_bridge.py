"""LoopBridge and chain_future: completions from other threads reach the loop once, in order."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import threading
from typing import TYPE_CHECKING, Any

import pytest

from toolkit._core._bridge import LoopBridge, bridge_for, chain_future

if TYPE_CHECKING:
    from collections.abc import Callable

try:
    import uvloop
except ImportError:  # pragma: no cover - the dev extra installs it
    uvloop = None  # type: ignore[assignment]

WAIT = 10.0


def _start_threads(count: int, target: Callable[[int], object]) -> list[threading.Thread]:
    threads = [threading.Thread(target=target, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    return threads


def _join(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.join(WAIT)
    assert not any(thread.is_alive() for thread in threads)


def _new_loop_like_the_running_one() -> asyncio.AbstractEventLoop:
    running = asyncio.get_running_loop()
    if type(running).__module__.startswith("uvloop") and uvloop is not None:
        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
        return loop
    return asyncio.new_event_loop()


# --- LoopBridge.post ----------------------------------------------------------------------------


async def test_bridge_delivers_every_post_once_in_order_per_thread() -> None:
    loop = asyncio.get_running_loop()
    bridge = bridge_for(loop)
    threads_count, per_thread = 16, 500
    total = threads_count * per_thread
    received: list[tuple[int, int]] = []
    on_loop: list[bool] = []
    all_in = asyncio.Event()
    start = threading.Barrier(threads_count)

    def record(sender: int, i: int) -> None:
        on_loop.append(threading.current_thread() is threading.main_thread())
        received.append((sender, i))
        if len(received) == total:
            all_in.set()

    def sender(n: int) -> None:
        start.wait(WAIT)  # all threads post at once: contention on the inbox
        for i in range(per_thread):
            bridge.post(record, n, i)

    threads = _start_threads(threads_count, sender)
    await asyncio.wait_for(all_in.wait(), WAIT)
    _join(threads)
    assert len(received) == total
    assert len(set(received)) == total  # exactly once each
    for n in range(threads_count):
        assert [i for sender_, i in received if sender_ == n] == list(range(per_thread))
    assert all(on_loop)  # the loop runs on the test's (main) thread


async def test_bridge_delivers_a_post_from_the_loop_thread() -> None:
    bridge = bridge_for(asyncio.get_running_loop())
    future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    bridge.post(future.set_result, "hello")
    assert await asyncio.wait_for(future, WAIT) == "hello"


async def test_bridge_for_returns_one_bridge_per_loop() -> None:
    loop = asyncio.get_running_loop()
    assert bridge_for(loop) is bridge_for(loop)
    assert bridge_for(loop).loop is loop
    other = _new_loop_like_the_running_one()
    try:
        assert bridge_for(other) is not bridge_for(loop)
    finally:
        other.close()


async def test_bridge_keeps_going_after_a_callback_raises() -> None:
    loop = asyncio.get_running_loop()
    bridge = LoopBridge(loop)
    reported: list[dict[str, Any]] = []
    done = asyncio.Event()
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))

    def boom() -> None:
        raise ValueError("callback failed")

    try:
        bridge.post(boom)
        bridge.post(done.set)
        await asyncio.wait_for(done.wait(), WAIT)
    finally:
        loop.set_exception_handler(previous)
    assert len(reported) == 1
    assert isinstance(reported[0]["exception"], ValueError)
    assert "toolkit" in reported[0]["message"]


async def test_bridge_post_after_the_loop_closed_does_not_raise() -> None:
    loop = _new_loop_like_the_running_one()
    bridge = LoopBridge(loop)
    loop.close()
    ran: list[int] = []
    bridge.post(ran.append, 1)
    bridge.post(ran.append, 2)  # and again
    assert ran == []


async def test_bridge_post_from_a_thread_after_the_loop_closed_does_not_raise() -> None:
    loop = _new_loop_like_the_running_one()
    bridge = LoopBridge(loop)
    loop.close()
    errors: list[BaseException] = []
    ran: list[int] = []

    def post(n: int) -> None:
        try:
            bridge.post(ran.append, n)
        except BaseException as exc:  # noqa: BLE001 - any error fails the test below
            errors.append(exc)

    _join(_start_threads(4, post))
    assert errors == []
    assert ran == []


# --- chain_future -------------------------------------------------------------------------------


async def test_chain_future_follows_a_result() -> None:
    source: cf.Future[int] = cf.Future()
    dest = chain_future(source, asyncio.get_running_loop())
    assert not dest.done()
    threads = _start_threads(1, lambda _: source.set_result(42))
    assert await asyncio.wait_for(dest, WAIT) == 42
    _join(threads)


async def test_chain_future_follows_an_exception() -> None:
    source: cf.Future[int] = cf.Future()
    dest = chain_future(source, asyncio.get_running_loop())
    threads = _start_threads(1, lambda _: source.set_exception(KeyError("missing")))
    with pytest.raises(KeyError, match="missing"):
        await asyncio.wait_for(dest, WAIT)
    _join(threads)


async def test_chain_future_follows_a_cancellation() -> None:
    source: cf.Future[int] = cf.Future()
    dest = chain_future(source, asyncio.get_running_loop())
    threads = _start_threads(1, lambda _: source.cancel())
    await asyncio.wait_for(asyncio.wait([dest]), WAIT)
    _join(threads)
    assert dest.cancelled()


async def test_chain_future_of_a_finished_future() -> None:
    source: cf.Future[str] = cf.Future()
    source.set_result("early")
    assert await asyncio.wait_for(chain_future(source, asyncio.get_running_loop()), WAIT) == (
        "early"
    )


async def test_chain_future_cancel_cancels_the_source() -> None:
    source: cf.Future[int] = cf.Future()
    dest = chain_future(source, asyncio.get_running_loop())
    seen = asyncio.Event()
    dest.add_done_callback(lambda _: seen.set())  # runs after chain_future's own callback
    assert dest.cancel()
    await asyncio.wait_for(seen.wait(), WAIT)
    assert source.cancelled()


async def test_chain_future_cancel_does_not_stop_a_running_source() -> None:
    source: cf.Future[int] = cf.Future()
    assert source.set_running_or_notify_cancel()  # an executor has started it
    dest = chain_future(source, asyncio.get_running_loop())
    seen = asyncio.Event()
    dest.add_done_callback(lambda _: seen.set())
    dest.cancel()
    await asyncio.wait_for(seen.wait(), WAIT)
    assert not source.cancelled()
    # Its late result is dropped without error: the awaiter is gone.
    landed = asyncio.Event()
    source.set_result(7)
    bridge_for(asyncio.get_running_loop()).post(landed.set)
    await asyncio.wait_for(landed.wait(), WAIT)
    assert dest.cancelled()


async def test_chain_future_awaiter_cancelled_while_waiting() -> None:
    source: cf.Future[int] = cf.Future()
    dest = chain_future(source, asyncio.get_running_loop())
    awaiting = asyncio.Event()

    async def wait() -> int:
        awaiting.set()
        return await dest  # suspended here by the time the test wakes up

    waiter = asyncio.create_task(wait())
    await asyncio.wait_for(awaiting.wait(), WAIT)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await asyncio.wait_for(asyncio.wait([dest]), WAIT)
    assert dest.cancelled()
    assert source.cancelled()


async def test_chain_future_many_completions_from_threads() -> None:
    loop = asyncio.get_running_loop()
    sources: list[cf.Future[int]] = [cf.Future() for _ in range(1000)]
    dests = [chain_future(source, loop) for source in sources]

    def finish(n: int) -> None:
        for i in range(n, len(sources), 8):
            sources[i].set_result(i)

    threads = _start_threads(8, finish)
    assert await asyncio.wait_for(asyncio.gather(*dests), WAIT) == list(range(1000))
    _join(threads)


def test_bridge_and_watcher_do_not_keep_closed_loops_alive() -> None:
    import gc
    import weakref

    from toolkit._core._readiness import watcher_for

    loop = asyncio.new_event_loop()

    async def use() -> None:
        running = asyncio.get_running_loop()
        bridge_for(running)
        watcher_for(running)

    loop.run_until_complete(use())
    loop.close()
    ref = weakref.ref(loop)
    del loop
    gc.collect()
    assert ref() is None


# --- descriptor readiness ----------------------------------------------------------------------


async def test_watcher_wakes_a_waiter_when_its_pipe_is_readable() -> None:
    import os

    from toolkit._core._readiness import wait_readable

    r, w = os.pipe()
    try:
        waiter = asyncio.ensure_future(wait_readable(r))
        await asyncio.sleep(0)
        assert not waiter.done()
        os.write(w, b"x")
        await asyncio.wait_for(waiter, WAIT)
    finally:
        os.close(r)
        os.close(w)


async def test_watcher_leaves_the_descriptor_blocking() -> None:
    """uvloop#686: the loop must never set O_NONBLOCK on a descriptor other processes share."""
    import fcntl
    import os

    from toolkit._core._readiness import wait_readable

    r, w = os.pipe()
    try:
        os.write(w, b"x")
        await asyncio.wait_for(wait_readable(r), WAIT)
        assert not fcntl.fcntl(r, fcntl.F_GETFL) & os.O_NONBLOCK
    finally:
        os.close(r)
        os.close(w)


async def test_watcher_wakes_waiters_one_at_a_time_in_order() -> None:
    import os

    from toolkit._core._readiness import watcher_for

    watcher = watcher_for(asyncio.get_running_loop())
    r, w = os.pipe()
    order: list[int] = []

    async def take(i: int) -> None:
        await watcher.wait_readable(r)
        os.read(r, 1)  # each consumes one byte, as a queue getter takes one item
        order.append(i)

    try:
        tasks = [asyncio.ensure_future(take(i)) for i in range(5)]
        await asyncio.sleep(0)
        for _ in range(5):
            os.write(w, b"x")
        await asyncio.wait_for(asyncio.gather(*tasks), WAIT)
        assert order == [0, 1, 2, 3, 4]
    finally:
        os.close(r)
        os.close(w)


async def test_watcher_cancelled_waiter_passes_its_wake_up_on() -> None:
    import os

    from toolkit._core._readiness import watcher_for

    watcher = watcher_for(asyncio.get_running_loop())
    r, w = os.pipe()
    try:
        first = asyncio.ensure_future(watcher.wait_readable(r))
        second = asyncio.ensure_future(watcher.wait_readable(r))
        await asyncio.sleep(0)
        os.write(w, b"x")
        first.cancel()  # woken or not, it gives up: the other must still wake
        await asyncio.wait_for(second, WAIT)
        assert watcher.waiter_count(r) == 0
    finally:
        os.close(r)
        os.close(w)


async def test_watcher_many_waiters_need_no_thread() -> None:
    import os

    from toolkit._core._readiness import watcher_for

    watcher = watcher_for(asyncio.get_running_loop())
    before = threading.active_count()
    r, w = os.pipe()
    try:
        tasks = [asyncio.ensure_future(watcher.wait_readable(r)) for _ in range(10_000)]
        await asyncio.sleep(0)
        assert watcher.waiter_count(r) == 10_000
        assert threading.active_count() == before
        for task in tasks[1:]:
            task.cancel()
        os.write(w, b"x")
        await asyncio.wait_for(tasks[0], WAIT)
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        os.close(r)
        os.close(w)


@pytest.mark.parametrize("loop_name", ["asyncio", "uvloop"])
def test_shared_wait_of_a_loop_closed_before_its_finish_counts_no_helper(loop_name: str) -> None:
    # The helper posts its finish to a loop that is still open, and the loop
    # closes before running it (asyncio.run ending): the helper's thread has
    # returned, and the count of running helpers must say so, or every later
    # look at the closed loop sees a helper that will never end.
    from toolkit._core._bridge import helper_threads, shared_waits_for

    go = threading.Event()
    if loop_name == "uvloop":
        if uvloop is None:
            pytest.skip("uvloop is not installed")
        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    try:
        waits = shared_waits_for(loop)

        entered = threading.Event()

        def attempt(timeout: float) -> bool:
            entered.set()
            return go.wait(timeout)

        async def start() -> asyncio.Future[None]:
            return waits.waiter("key", attempt)

        loop.run_until_complete(start())
        assert waits.helpers() == 1
        assert entered.wait(WAIT)  # its thread runs it: idle now means it has returned
        go.set()
        assert helper_threads().wait_idle(WAIT)  # the finish is posted, not run
    finally:
        loop.close()
    assert waits.helpers() == 0
