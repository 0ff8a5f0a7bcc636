"""toolkit.Queue, JoinableQueue, SimpleQueue: real processes, both loops, two start methods."""

from __future__ import annotations

import asyncio
import queue
import random
import threading
import time
from typing import TYPE_CHECKING

import pytest

import toolkit
from tests import _helpers

if TYPE_CHECKING:
    from multiprocessing.context import BaseContext

MB = 1 << 20


async def test_queue_put_and_get() -> None:
    async with toolkit.Queue[int]() as q:
        await q.put(1)
        q.put_nowait(2)
        assert await q.get() == 1
        assert await asyncio.wait_for(q.get(), 10) == 2
        with pytest.raises(toolkit.QueueEmpty):
            q.get_nowait()
        with pytest.raises(queue.Empty):
            await q.get(timeout=0.01)


async def test_bounded_queue_put_waits_for_room() -> None:
    async with toolkit.Queue[int](maxsize=1) as q:
        await q.put(1)
        assert q.full()
        with pytest.raises(toolkit.QueueFull):
            q.put_nowait(2)
        with pytest.raises(queue.Full):
            await q.put(2, timeout=0.02)
        waiting = asyncio.ensure_future(q.put(3))
        await asyncio.sleep(0.01)
        assert not waiting.done()
        assert await q.get() == 1
        await asyncio.wait_for(waiting, 10)
        assert await q.get() == 3


async def test_queue_bad_input_and_closed() -> None:
    with pytest.raises(TypeError, match="maxsize"):
        toolkit.Queue("big")  # type: ignore[arg-type]
    q = toolkit.Queue[int]()
    with pytest.raises(ValueError, match="timeout"):
        await q.get(timeout=-1)
    q.close()
    with pytest.raises(toolkit.ClosedError):
        await q.get()
    with pytest.raises(toolkit.ClosedError):
        q.put_nowait(1)
    await toolkit.to_thread(q.join_thread)


async def test_async_parent_gets_from_a_sync_child(mp_context: BaseContext) -> None:
    q = toolkit.Queue[int](context=mp_context)
    async with q, toolkit.Process(target=_helpers.produce_sync, args=(q, 500), context=mp_context):
        got = [await asyncio.wait_for(q.get(), 30) for _ in range(500)]
    assert got == list(range(500))


async def test_async_parent_puts_to_a_sync_child(mp_context: BaseContext) -> None:
    async with (
        toolkit.Queue[int](context=mp_context) as q,
        toolkit.Queue[int](context=mp_context) as out,
        toolkit.Process(target=_helpers.consume_sync, args=(q, out, 300), context=mp_context),
    ):
        for i in range(300):
            await q.put(i)
        assert await asyncio.wait_for(out.get(), 30) == sum(range(300))


async def test_async_parent_and_async_child(mp_context: BaseContext) -> None:
    async with (
        toolkit.Queue[int](context=mp_context) as inbox,
        toolkit.Queue[int](context=mp_context) as outbox,
        toolkit.Process(target=_helpers.relay_async, args=(inbox, outbox, 100), context=mp_context),
    ):
        for i in range(100):
            await inbox.put(i)
        got = [await asyncio.wait_for(outbox.get(), 30) for _ in range(100)]
    assert got == [2 * i for i in range(100)]


async def test_big_items_arrive_and_a_plain_getter_still_works(mp_context: BaseContext) -> None:
    """uvloop#686: watching the queue must not break another process's blocking get."""
    async with toolkit.Queue[tuple[int, bytes]](context=mp_context) as q:
        async with toolkit.Process(
            target=_helpers.produce_sync, args=(q, 200, MB), context=mp_context
        ):
            for i in range(200):
                index, pad = await asyncio.wait_for(q.get(), 30)
                assert (index, len(pad)) == (i, MB)
        async with (
            toolkit.Queue[int](context=mp_context) as out,
            toolkit.Process(target=_helpers.get_one_big, args=(q, out), context=mp_context),
        ):
            await q.put(b"y" * MB)  # type: ignore[arg-type]
            assert await asyncio.wait_for(out.get(), 30) == MB


async def test_randomly_cancelled_gets_lose_nothing() -> None:
    """Getters cancelled at random points (waiting, just woken) while items flow: none lost."""
    rng = random.Random(1234)
    got: list[int] = []
    cancelled = 0
    live: set[asyncio.Future[None]] = set()
    async with toolkit.Queue[int]() as q:

        async def getter() -> None:
            got.append(await q.get())

        for i in range(3000):
            for _ in range(rng.randint(0, 3)):
                live.add(asyncio.ensure_future(getter()))
            q.put_nowait(i)
            for _ in range(rng.randint(0, 2)):
                await asyncio.sleep(0)
            for task in list(live):
                if task.done():
                    live.discard(task)
                elif rng.random() < 0.3 and task.cancel():
                    live.discard(task)
                    cancelled += 1
        for task in live:
            task.cancel()
        await asyncio.gather(*live, return_exceptions=True)
        while len(got) < 3000:  # what the cancelled getters left behind is still there
            got.append(await asyncio.wait_for(q.get(), 10))
        assert q.empty()
    assert cancelled >= 1000
    assert sorted(got) == list(range(3000))


async def test_ten_thousand_getters_need_no_thread() -> None:
    async with toolkit.Queue[int]() as q:
        before = threading.active_count()
        getters = [asyncio.ensure_future(q.get()) for _ in range(10_000)]
        await asyncio.sleep(0)
        assert threading.active_count() <= before + 1  # at most the queue's own feeder
        start = time.monotonic()
        assert await toolkit.to_thread(_helpers.square, 3) == 9
        assert time.monotonic() - start < 1.0
        for i in range(10_000):
            q.put_nowait(i)
        results = await asyncio.wait_for(asyncio.gather(*getters), 60)
    assert sorted(results) == list(range(10_000))


async def test_async_for_over_a_queue() -> None:
    async with toolkit.Queue[int]() as q:
        for i in range(5):
            await q.put(i)
        seen = []
        async for item in q:
            seen.append(item)
            if len(seen) == 5:
                break
    assert seen == [0, 1, 2, 3, 4]


async def test_joinable_queue_join_waits_for_task_done(mp_context: BaseContext) -> None:
    async with toolkit.JoinableQueue[int](context=mp_context) as q:
        for i in range(20):
            await q.put(i)
        assert not await q.join(timeout=0.01)
        async with toolkit.Process(
            target=_helpers.work_and_mark_done, args=(q, 20), context=mp_context
        ):
            assert await asyncio.wait_for(q.join(), 30)
        with pytest.raises(ValueError, match="too many times"):
            q.task_done()


async def test_simple_queue_round_trip(mp_context: BaseContext) -> None:
    q = toolkit.SimpleQueue[int](context=mp_context)
    try:
        assert q.empty()
        await q.put(7)
        assert await asyncio.wait_for(q.get(), 10) == 7
        with pytest.raises(toolkit.QueueEmpty):
            q.get_nowait()
    finally:
        q.close()


async def test_queue_timeout_is_checked_even_with_an_item_there() -> None:
    async with toolkit.Queue[int]() as q:
        assert q.maxsize == 0
        await q.put(1)
        with pytest.raises(ValueError, match="timeout"):
            await q.get(timeout=-1)
        with pytest.raises(TypeError, match="timeout"):
            await q.get(timeout="soon")  # type: ignore[arg-type]
        assert await q.get() == 1


async def test_reader_dying_with_the_read_lock_gives_a_clear_error(mp_context: BaseContext) -> None:
    async with toolkit.Queue[int](context=mp_context) as q:
        async with toolkit.Process(
            target=_helpers.die_holding_read_lock, args=(q,), context=mp_context
        ):
            pass
        await q.put(1)
        assert await toolkit.to_thread(q.sync._reader.poll, 10)  # type: ignore[attr-defined]
        with pytest.raises(toolkit.QueueEmpty, match="read lock"):
            await q.get(timeout=0.3)
        q.cancel_join_thread()
