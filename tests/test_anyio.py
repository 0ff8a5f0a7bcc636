"""Every awaitable of the facade inside anyio: anyio.run, task groups, cancel scopes, deadlines."""

from __future__ import annotations

import concurrent.futures as cf
import threading

import anyio
import anyio.lowlevel
import pytest

import toolkit
from tests import _helpers

BACKENDS = [
    pytest.param({"use_uvloop": False}, id="asyncio"),
    pytest.param({"use_uvloop": True}, id="uvloop"),
]


@pytest.mark.parametrize("options", BACKENDS)
def test_anyio_run_drives_the_facade(options: dict[str, bool]) -> None:
    async def main() -> list[int]:
        async with toolkit.AsyncExecutor(cf.ThreadPoolExecutor(2)) as executor:
            first = await executor.run(_helpers.square, 3)
            mapped = await executor.map(_helpers.square, range(5))
        return [first, await toolkit.to_thread(_helpers.add, 1, b=1), *mapped]

    assert anyio.run(main, backend="asyncio", backend_options=options) == [9, 2, 0, 1, 4, 9, 16]


@pytest.mark.parametrize("options", BACKENDS)
def test_anyio_task_group_runs_tasks_concurrently(options: dict[str, bool]) -> None:
    async def main() -> list[int]:
        results: list[int] = []
        barrier = threading.Barrier(3)

        def meet(i: int) -> int:
            barrier.wait(10)  # only returns if all three run at the same time
            return i

        async def one(i: int) -> None:
            results.append(await executor.run(meet, i))

        async with (
            toolkit.AsyncExecutor(cf.ThreadPoolExecutor(3)) as executor,
            anyio.create_task_group() as tg,
        ):
            for i in range(3):
                tg.start_soon(one, i)
        return sorted(results)

    assert anyio.run(main, backend="asyncio", backend_options=options) == [0, 1, 2]


@pytest.mark.parametrize("options", BACKENDS)
def test_anyio_cancel_scope_cancels_work_not_started(options: dict[str, bool]) -> None:
    async def main() -> list[str]:
        ran: list[str] = []
        release = threading.Event()
        async with toolkit.AsyncExecutor(cf.ThreadPoolExecutor(1)) as executor:
            blocker = executor.submit(release.wait, 10)
            with anyio.CancelScope() as scope:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(executor.run, ran.append, "cancelled")
                    await anyio.lowlevel.checkpoint()
                    scope.cancel()
            assert scope.cancelled_caught
            release.set()
            await blocker
            await executor.run(ran.append, "after")
        return ran

    assert anyio.run(main, backend="asyncio", backend_options=options) == ["after"]


@pytest.mark.parametrize("options", BACKENDS)
def test_anyio_deadline_cancels_like_task_cancel(options: dict[str, bool]) -> None:
    async def main() -> tuple[list[str], int]:
        ran: list[str] = []
        release = threading.Event()
        async with toolkit.AsyncExecutor(cf.ThreadPoolExecutor(1)) as executor:
            blocker = executor.submit(release.wait, 10)
            with pytest.raises(TimeoutError):
                with anyio.fail_after(0.05):
                    await executor.run(ran.append, "late")
            release.set()
            await blocker
            cancelled = executor.stats().cancelled
        return ran, cancelled

    assert anyio.run(main, backend="asyncio", backend_options=options) == ([], 1)


@pytest.mark.parametrize("options", BACKENDS)
def test_anyio_deadline_on_to_thread_and_map(options: dict[str, bool]) -> None:
    async def main() -> bool:
        release = threading.Event()
        with anyio.move_on_after(0.05) as scope:
            await toolkit.to_thread(release.wait, 10)
        release.set()
        async with toolkit.AsyncExecutor(cf.ThreadPoolExecutor(2)) as executor:
            gate = threading.Event()
            with anyio.move_on_after(0.05) as map_scope:
                await executor.map(gate.wait, [10] * 6)
            gate.set()
        return scope.cancelled_caught and map_scope.cancelled_caught

    assert anyio.run(main, backend="asyncio", backend_options=options)


async def test_anyio_scope_inside_pytest_asyncio(tmp_path: object) -> None:
    executor = toolkit.AsyncExecutor(cf.ThreadPoolExecutor(1))
    release = threading.Event()
    try:
        blocker = executor.submit(release.wait, 10)
        with anyio.move_on_after(0.05) as scope:
            await executor.run(_helpers.square, 2)
        assert scope.cancelled_caught
        release.set()
        await blocker
    finally:
        await executor.shutdown()
    assert executor.stats().cancelled == 1


@pytest.mark.parametrize("options", BACKENDS)
def test_anyio_pool_in_task_groups_and_cancel_scopes(options: dict[str, bool]) -> None:
    # Pool.apply's future-coroutine inside anyio: a task group runs it, a
    # cancel scope's deadline kills the worker of a running task.
    async def main() -> tuple[list[int], bool, int]:
        async with toolkit.Pool(2) as pool:
            results: list[int] = []

            async def one(i: int) -> None:
                results.append(await pool.apply(_helpers.square, (i,)))

            async with anyio.create_task_group() as group:
                for i in range(4):
                    group.start_soon(one, i)
            with anyio.move_on_after(0.3) as scope:
                await pool.apply(_helpers.sleep_then, (30,))
            cancelled = scope.cancelled_caught
            after = await pool.apply(_helpers.square, (5,))
        return sorted(results), cancelled, after

    results, cancelled, after = anyio.run(main, backend="asyncio", backend_options=options)
    assert results == [0, 1, 4, 9]
    assert cancelled
    assert after == 25
