"""Static checks: mypy verifies these types; pytest imports the module but runs nothing in it."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
from typing import Any, assert_type

import toolkit


def _length(text: str, *, times: int = 1) -> int:
    return len(text) * times


async def _checks(executor: toolkit.AsyncExecutor) -> None:
    assert_type(await toolkit.to_thread(_length, "abc", times=2), int)
    assert_type(await toolkit.to_process(_length, "abc"), int)
    assert_type(await executor.run(_length, "abc"), int)
    assert_type(executor.submit(_length, "abc"), asyncio.Future[int])
    results = executor.map(_length, ["a", "bb"])
    assert_type(results, toolkit.MapResult[int])
    assert_type(await results, list[int])
    async for value in executor.map(_length, ["a"]):
        assert_type(value, int)
    done, _pending = await executor.wait([executor.submit(_length, "a")])
    assert_type(done, set[asyncio.Future[Any]])
    assert_type(executor.stats(), toolkit.ExecutorStats)
    assert_type(executor.executor, cf.Executor)
    assert_type(toolkit.run(asyncio.sleep(0, "x")), str)
