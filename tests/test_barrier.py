"""toolkit.Barrier: coroutines and plain processes meet; timeouts break it; reset and abort."""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING

import pytest

import toolkit
from tests import _helpers

if TYPE_CHECKING:
    from multiprocessing.context import BaseContext


async def test_barrier_between_coroutines_and_children(mp_context: BaseContext) -> None:
    barrier = toolkit.Barrier(5, context=mp_context)
    children = [
        toolkit.Process(target=_helpers.barrier_wait, args=(barrier,), context=mp_context)
        for _ in range(2)
    ]
    for child in children:
        child.start()
    indexes = await asyncio.wait_for(asyncio.gather(*(barrier.wait() for _ in range(3))), 30)
    for child in children:
        await asyncio.wait_for(child.join(), 30)
        assert child.exitcode == 0
    assert len(set(indexes)) == 3
    assert set(indexes) <= set(range(5))
    assert not barrier.broken


async def test_barrier_is_reusable_between_tasks() -> None:
    barrier = toolkit.Barrier(3)
    for _ in range(3):
        indexes = await asyncio.wait_for(asyncio.gather(*(barrier.wait() for _ in range(3))), 10)
        assert sorted(indexes) == [0, 1, 2]


async def test_barrier_timeout_breaks_it() -> None:
    barrier = toolkit.Barrier(3)
    with pytest.raises(threading.BrokenBarrierError):
        await barrier.wait(timeout=0.05)
    states = [barrier.broken]
    with pytest.raises(threading.BrokenBarrierError):
        await barrier.wait()
    await barrier.reset()
    states.append(barrier.broken)
    assert states == [True, False]
    assert await asyncio.wait_for(asyncio.gather(*(barrier.wait() for _ in range(3))), 10)


async def test_barrier_abort_and_bad_input() -> None:
    barrier = toolkit.Barrier(2)
    waiting = asyncio.ensure_future(barrier.wait())
    await asyncio.sleep(0.01)
    await barrier.abort()
    with pytest.raises(threading.BrokenBarrierError):
        await asyncio.wait_for(waiting, 10)
    with pytest.raises(ValueError, match="parties"):
        toolkit.Barrier(0)
    with pytest.raises(TypeError, match="parties"):
        toolkit.Barrier("two")  # type: ignore[arg-type]


async def test_cancelled_party_leaves_without_breaking_it() -> None:
    barrier = toolkit.Barrier(2)
    leaving = asyncio.ensure_future(barrier.wait())
    await asyncio.sleep(0.01)
    leaving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leaving
    assert not barrier.broken
    assert barrier.n_waiting == 0
    assert sorted(await asyncio.wait_for(asyncio.gather(barrier.wait(), barrier.wait()), 10)) == [
        0,
        1,
    ]
