"""Locks, semaphores, events, shared values: awaitable, across real processes, cancel-safe."""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest

import toolkit
from tests import _helpers

if TYPE_CHECKING:
    from collections.abc import Callable
    from multiprocessing.context import BaseContext
    from pathlib import Path


async def test_lock_excludes_other_tasks() -> None:
    lock = toolkit.Lock()
    async with lock:
        assert not await lock.acquire(timeout=0.02)
        assert not await lock.acquire(block=False)
    assert await lock.acquire(timeout=0)
    lock.release()


async def test_lock_held_by_a_child_is_awaited(mp_context: BaseContext, tmp_path: Path) -> None:
    lock = toolkit.Lock(context=mp_context)
    started, gate = tmp_path / "started", tmp_path / "gate"
    async with toolkit.Process(
        target=_helpers.hold_until, args=(lock, str(started), str(gate)), context=mp_context
    ):
        assert await toolkit.to_thread(_helpers.wait_for_file, str(started))
        assert not await lock.acquire(timeout=0.05)
        waiting = asyncio.ensure_future(lock.acquire())
        await asyncio.sleep(0.01)
        assert not waiting.done()
        gate.touch()
        assert await asyncio.wait_for(waiting, 30)
        lock.release()


async def test_cancelled_acquires_leave_the_lock_free(
    mp_context: BaseContext, tmp_path: Path
) -> None:
    lock = toolkit.Lock(context=mp_context)
    rng = random.Random(7)
    async with lock:
        waiters = [asyncio.ensure_future(lock.acquire()) for _ in range(200)]
        await asyncio.sleep(0)
        for waiter in waiters:
            if rng.random() < 0.9:
                waiter.cancel()
    # Every waiter that got it releases at once; the cancelled ones hold nothing.
    for waiter in waiters:
        try:
            assert await asyncio.wait_for(waiter, 10)
        except asyncio.CancelledError:
            continue
        lock.release()
    started, gate = tmp_path / "started", tmp_path / "gate"
    gate.touch()
    async with toolkit.Process(
        target=_helpers.hold_until, args=(lock, str(started), str(gate)), context=mp_context
    ) as child:
        pass
    assert child.exitcode == 0  # the child could take it: nothing was left held


async def test_rlock_is_reentrant_per_task() -> None:
    rlock = toolkit.RLock()
    async with rlock, rlock:

        async def other() -> bool:
            return await rlock.acquire(timeout=0.02)

        assert not await asyncio.ensure_future(other())
    assert await rlock.acquire(timeout=1)
    with pytest.raises(AssertionError, match="not owned"):
        await asyncio.ensure_future(_release(rlock))
    rlock.release()


async def _release(lock: toolkit.RLock) -> None:
    lock.release()


async def test_rlock_released_by_nobody_refuses_and_stays_whole() -> None:
    # A release of an RLock nobody holds is refused before its count moves:
    # below zero, the next task to take it could never give it back.
    rlock = toolkit.RLock()
    with pytest.raises(AssertionError, match="not owned"):
        rlock.release()
    async with rlock:
        pass
    taken, done = asyncio.Event(), asyncio.Event()

    async def holder() -> None:
        async with rlock:
            taken.set()
            await done.wait()

    holding = asyncio.ensure_future(holder())
    await taken.wait()
    with pytest.raises(AssertionError, match="not owned"):
        rlock.release()  # this task does not hold it
    done.set()
    await holding
    assert await rlock.acquire(timeout=1)
    rlock.release()


async def test_semaphore_guards_a_resource() -> None:
    semaphore = toolkit.Semaphore(2)
    inside = peak = 0

    async def use() -> None:
        nonlocal inside, peak
        async with semaphore:
            inside += 1
            peak = max(peak, inside)
            await asyncio.sleep(0.001)
            inside -= 1

    await asyncio.wait_for(asyncio.gather(*(use() for _ in range(20))), 30)
    assert peak == 2
    assert semaphore.get_value() == 2


async def test_bounded_semaphore_refuses_extra_release() -> None:
    semaphore = toolkit.BoundedSemaphore(1)
    with pytest.raises(ValueError, match="released too many times"):
        semaphore.release()
    with pytest.raises(ValueError, match=">= 0"):
        toolkit.Semaphore(-1)


async def test_event_set_by_a_child(mp_context: BaseContext) -> None:
    event = toolkit.Event(context=mp_context)
    assert not await event.wait(timeout=0.01)
    async with toolkit.Process(target=_helpers.set_event, args=(event,), context=mp_context):
        assert await asyncio.wait_for(event.wait(), 30)
    assert event.is_set()
    event.clear()
    assert not event.is_set()


async def test_event_rapid_set_clear_rounds_never_miss_a_wake() -> None:
    # The loop registration of a woken doorbell is dropped only after the
    # waiters ran: a new round of waiters arriving meanwhile must keep it.
    event = toolkit.Event()
    loop = asyncio.get_running_loop()
    for round_ in range(300):
        waiters = [asyncio.ensure_future(event.wait()) for _ in range(round_ % 3 + 1)]
        await asyncio.sleep(0)
        if round_ % 2:
            loop.call_soon(event.set)
        else:
            event.set()
        assert await asyncio.wait_for(asyncio.gather(*waiters), 10) == [True] * len(waiters)
        event.clear()
    event.set()
    assert await event.wait()


async def test_event_waiters_around_a_set_and_clear() -> None:
    # Woken by a set that a clear undid before they looked, waiters wait on
    # (a wait without timeout returns only once it sees the event set), and
    # a waiter that arrived meanwhile shares the registration.
    event = toolkit.Event()
    first = asyncio.ensure_future(event.wait())
    await asyncio.sleep(0)
    event.set()
    await asyncio.sleep(0)
    event.clear()
    second = asyncio.ensure_future(event.wait())
    await asyncio.sleep(0.01)
    assert not first.done()
    assert not second.done()
    event.set()
    assert list(await asyncio.wait_for(asyncio.gather(first, second), 10)) == [True, True]


async def test_ten_thousand_event_waiters_share_one_thread() -> None:
    event = toolkit.Event()
    before = threading.active_count()
    waiters = [asyncio.ensure_future(event.wait()) for _ in range(10_000)]
    await asyncio.sleep(0.05)
    assert threading.active_count() <= before + 1
    start = time.monotonic()
    assert await toolkit.to_thread(_helpers.square, 4) == 16
    assert time.monotonic() - start < 1.0
    for waiter in waiters[::2]:
        waiter.cancel()
    event.set()
    outcomes = await asyncio.wait_for(asyncio.gather(*waiters, return_exceptions=True), 30)
    assert outcomes[1::2] == [True] * 5_000


async def test_value_and_array_shared_with_children(mp_context: BaseContext) -> None:
    counter = toolkit.Value("i", 0, context=mp_context)
    squares = toolkit.Array("i", 10, context=mp_context)
    async with (
        toolkit.Process(target=_helpers.increment_many, args=(counter, 500), context=mp_context),
        toolkit.Process(target=_helpers.increment_many, args=(counter, 500), context=mp_context),
        toolkit.Process(target=_helpers.fill_array, args=(squares,), context=mp_context),
    ):
        for _ in range(500):
            async with counter.get_lock():
                counter.value += 1
    assert counter.value == 1500
    assert list(squares) == [i * i for i in range(10)]
    assert len(squares) == 10
    raw = toolkit.RawValue("d", 1.5)
    assert raw.value == 1.5


def _write_value(value: Any, new: object) -> None:
    """A child: write a shared value; a raw one has no lock to take."""
    value.value = new


async def test_value_and_array_without_lock_are_raw_and_shared_with_a_child(
    mp_context: BaseContext,
) -> None:
    # multiprocessing.Value(..., lock=False) is the raw ctypes object, as RawValue.
    value = toolkit.Value("i", 0, lock=False, context=mp_context)
    squares = toolkit.Array("i", 10, lock=False, context=mp_context)
    assert type(value) is type(multiprocessing.Value("i", 0, lock=False))
    assert type(value) is type(toolkit.RawValue("i", 0))
    assert type(squares) is type(multiprocessing.Array("i", 10, lock=False))
    assert type(squares) is type(toolkit.RawArray("i", 10))
    assert not hasattr(value, "get_lock")
    async with (
        toolkit.Process(target=_write_value, args=(value, 42), context=mp_context) as writer,
        toolkit.Process(target=_helpers.fill_array, args=(squares,), context=mp_context) as filler,
    ):
        pass
    assert (writer.exitcode, filler.exitcode) == (0, 0)
    assert value.value == 42
    assert list(squares) == [i * i for i in range(10)]


@pytest.mark.parametrize(
    "make_lock",
    [
        lambda: True,
        lambda: None,
        toolkit.Lock,
        toolkit.RLock,
        multiprocessing.Lock,
        multiprocessing.RLock,
    ],
    ids=["true", "none", "toolkit-lock", "toolkit-rlock", "mp-lock", "mp-rlock"],
)
async def test_value_and_array_take_every_other_lock_form(make_lock: Callable[[], Any]) -> None:
    lock = make_lock()
    value = toolkit.Value("i", 1, lock=lock)
    squares = toolkit.Array("i", [0, 1, 4], lock=lock)
    assert isinstance(value, toolkit.Value)
    assert isinstance(squares, toolkit.Array)
    for shared in (value, squares):
        async with shared.get_lock():
            pass
        if isinstance(lock, toolkit.Lock | toolkit.RLock):
            assert shared.get_lock().sync is lock.sync
        elif lock not in (True, None):
            assert shared.get_lock().sync is lock
    value.value += 1
    assert (value.value, list(squares)) == (2, [0, 1, 4])


@pytest.mark.parametrize("kind", [toolkit.Lock, toolkit.RLock])
async def test_lock_is_fair_between_tasks(kind: type[toolkit.Lock | toolkit.RLock]) -> None:
    lock = kind()
    counts = [0, 0, 0]

    async def worker(i: int) -> None:
        for _ in range(30):
            async with lock:
                counts[i] += 1
                await asyncio.sleep(0)

    await asyncio.wait_for(asyncio.gather(*(worker(i) for i in range(3))), 30)
    assert counts == [30, 30, 30]


@pytest.mark.parametrize("kind", [toolkit.Lock, toolkit.RLock])
async def test_lock_handed_to_a_cancelled_waiter_goes_on(
    kind: type[toolkit.Lock | toolkit.RLock],
) -> None:
    lock = kind()
    got: list[str] = []

    async def contender(name: str) -> None:
        async with lock:
            got.append(name)

    await lock.acquire()
    first = asyncio.ensure_future(contender("first"))
    second = asyncio.ensure_future(contender("second"))
    await asyncio.sleep(0)  # both wait
    lock.release()  # handed to `first`...
    first.cancel()  # ...cancelled before it runs: `second` must get it
    await asyncio.wait_for(asyncio.gather(first, second, return_exceptions=True), 10)
    assert got == ["second"]
    assert await lock.acquire(timeout=1)  # and nothing is left held
    lock.release()


async def test_rlock_reentry_does_not_queue_behind_waiters() -> None:
    rlock = toolkit.RLock()
    await rlock.acquire()
    other = asyncio.ensure_future(rlock.acquire())
    await asyncio.sleep(0)
    assert await rlock.acquire(timeout=1)  # re-entry while `other` waits (same task)
    rlock.release()
    rlock.release()
    assert await asyncio.wait_for(other, 10)
