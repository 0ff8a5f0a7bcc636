"""toolkit.Condition: coroutines and plain processes notify and wait on one condition."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

import toolkit
from tests import _helpers

if TYPE_CHECKING:
    from multiprocessing.context import BaseContext
    from pathlib import Path


async def test_condition_stages_work_between_tasks() -> None:
    cond = toolkit.Condition()
    stage = 0
    log: list[str] = []

    async def worker(my_stage: int) -> None:
        nonlocal stage
        async with cond:
            await cond.wait_for(lambda: stage == my_stage)
            log.append(f"stage {my_stage}")
            stage += 1
            cond.notify_all()

    await asyncio.wait_for(asyncio.gather(*(worker(i) for i in (2, 0, 1))), 30)
    assert log == ["stage 0", "stage 1", "stage 2"]


async def test_condition_wait_timeout_and_lock_checks() -> None:
    cond = toolkit.Condition(toolkit.Lock())
    with pytest.raises(RuntimeError, match="not held"):
        await cond.wait()
    with pytest.raises(RuntimeError, match="not held"):
        cond.notify()
    async with cond:
        assert not await cond.wait(timeout=0.02)
        cond.notify()  # nobody waits: returns at once
    with pytest.raises(TypeError, match=r"toolkit\.Lock"):
        toolkit.Condition(42)  # type: ignore[arg-type]


async def test_coroutine_notifies_a_plain_child(mp_context: BaseContext, tmp_path: Path) -> None:
    cond = toolkit.Condition(context=mp_context)
    started = tmp_path / "started"
    async with toolkit.Process(
        target=_helpers.condition_wait, args=(cond, str(started)), context=mp_context
    ) as child:
        assert await toolkit.to_thread(_helpers.wait_for_file, str(started))
        async with cond:  # the child is waiting (it released the lock to wait)
            cond.notify_all()
    assert child.exitcode == 0


async def test_plain_child_notifies_coroutines(mp_context: BaseContext) -> None:
    cond = toolkit.Condition(context=mp_context)

    async def waiter() -> bool:
        async with cond:
            return await cond.wait(timeout=30)

    waiters = [asyncio.ensure_future(waiter()) for _ in range(5)]
    await asyncio.sleep(0.05)  # not a gate: a late waiter would time out, not pass wrongly
    async with toolkit.Process(
        target=_helpers.condition_notify_all, args=(cond,), context=mp_context
    ):
        pass
    assert await asyncio.wait_for(asyncio.gather(*waiters), 30) == [True] * 5


async def test_cancelled_and_timed_out_waiters_keep_the_counts_exact(
    mp_context: BaseContext, tmp_path: Path
) -> None:
    cond = toolkit.Condition(context=mp_context)

    async def waiter(timeout: float | None) -> bool:
        async with cond:
            return await cond.wait(timeout)

    timed_out = [asyncio.ensure_future(waiter(0.01)) for _ in range(3)]
    cancelled = [asyncio.ensure_future(waiter(None)) for _ in range(3)]
    await asyncio.sleep(0.05)
    for task in cancelled:
        task.cancel()
    assert await asyncio.gather(*timed_out) == [False] * 3
    await asyncio.gather(*cancelled, return_exceptions=True)
    # The stdlib's own notify, in a child, asserts its counts: it must still work,
    # and a child waiting now must be woken by a coroutine's notify.
    async with toolkit.Process(
        target=_helpers.condition_notify_all, args=(cond,), context=mp_context
    ) as p:
        pass
    assert p.exitcode == 0
    await test_coroutine_notifies_a_plain_child(mp_context, tmp_path)
