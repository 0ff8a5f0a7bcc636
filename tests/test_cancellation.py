"""Random cancellation under load, across object kinds: nothing lost, nothing left held."""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import sys

import pytest

import toolkit
from tests import _helpers


async def test_randomly_cancelled_recvs_lose_no_message() -> None:
    rng = random.Random(99)
    left, right = toolkit.Pipe()
    got: list[int] = []
    cancelled = 0
    live: set[asyncio.Future[None]] = set()

    async def receiver() -> None:
        got.append(await right.recv())

    kept: set[asyncio.Future[None]] = set()  # receivers never cancelled

    async with left, right:
        for i in range(2500):
            for _ in range(rng.randint(0, 3)):
                live.add(asyncio.ensure_future(receiver()))
            if i - len(got) > 16:
                # Where each read takes a helper thread (pipes as handles),
                # cancellations outrun reads: a receiver that stays keeps the
                # pipe from filling up, which would block send() for good (a
                # Unix socket holds about 90 small messages: it counts buffers).
                kept.add(asyncio.ensure_future(receiver()))
            await left.send(i)
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
        await asyncio.wait_for(asyncio.gather(*kept), 10)
        while len(got) < 2500:
            got.append(await asyncio.wait_for(right.recv(), 10))
    assert cancelled >= 1000
    assert sorted(got) == list(range(2500))


async def test_randomly_cancelled_acquires_leave_nothing_held() -> None:
    rng = random.Random(5)
    lock = toolkit.Lock()
    semaphore = toolkit.Semaphore(3)
    inside = 0
    cancelled = 0

    async def use() -> None:
        nonlocal inside
        async with lock, semaphore:
            inside += 1
            assert inside == 1
            await asyncio.sleep(0)
            inside -= 1

    for _ in range(160):
        tasks = [asyncio.ensure_future(use()) for _ in range(rng.randint(5, 30))]
        for _ in range(rng.randint(0, 3)):
            await asyncio.sleep(0)
        for task in tasks:
            if rng.random() < 0.5 and task.cancel():
                cancelled += 1
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)
    assert cancelled >= 300
    assert await lock.acquire(timeout=1)
    lock.release()
    assert semaphore.get_value() == 3


async def test_randomly_cancelled_event_waits() -> None:
    rng = random.Random(3)
    event = toolkit.Event()
    waiters = [asyncio.ensure_future(event.wait()) for _ in range(1000)]
    await asyncio.sleep(0)
    for waiter in waiters:
        if rng.random() < 0.5:
            waiter.cancel()
    event.set()
    outcomes = await asyncio.wait_for(asyncio.gather(*waiters, return_exceptions=True), 30)
    assert all(o is True or isinstance(o, asyncio.CancelledError) for o in outcomes)
    assert sum(o is True for o in outcomes) >= 400


@pytest.mark.skipif(sys.platform != "linux", reason="fork is the Linux case")
async def test_objects_reach_a_fork_child() -> None:
    context = multiprocessing.get_context("fork")
    q = toolkit.Queue[str](context=context)
    event = toolkit.Event(context=context)
    lock = toolkit.Lock(context=context)
    value = toolkit.Value("i", 0, context=context)
    ours, theirs = toolkit.Pipe()
    async with q, ours, theirs:
        async with toolkit.Process(
            target=_helpers.fork_child_uses_everything,
            args=(q, event, lock, value, theirs),
            context=context,
        ) as child:
            assert await asyncio.wait_for(event.wait(), 30)
            assert await asyncio.wait_for(q.get(), 30) == "from child"
            assert await asyncio.wait_for(ours.recv(), 30) == "hello"
        assert child.exitcode == 0
        assert value.value == 1


async def test_ten_thousand_getters_and_event_waiters_add_at_most_one_thread() -> None:
    import threading
    import time

    async with toolkit.Queue[int]() as q:
        event = toolkit.Event()
        before = threading.active_count()
        getters = [asyncio.ensure_future(q.get()) for _ in range(10_000)]
        waiters = [asyncio.ensure_future(event.wait()) for _ in range(10_000)]
        await asyncio.sleep(0.05)
        assert threading.active_count() <= before + 1
        start = time.monotonic()
        assert await toolkit.to_thread(_helpers.square, 5) == 25  # an unrelated call, prompt
        assert time.monotonic() - start < 1.0
        event.set()
        for i in range(10_000):
            q.put_nowait(i)
        assert all(await asyncio.wait_for(asyncio.gather(*waiters), 30))
        assert sorted(await asyncio.wait_for(asyncio.gather(*getters), 60)) == list(range(10_000))
