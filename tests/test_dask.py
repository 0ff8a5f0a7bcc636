"""The executor facade over Dask distributed's executor: same code, a cluster underneath.

One local cluster for the module (starting one costs about half a second),
bound to loopback only, with worker processes so that calls really cross a
process boundary. ``pure=False`` always: Dask otherwise merges identical calls.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from typing import TYPE_CHECKING, Any

import pytest

import toolkit
from tests import _helpers
from tests._waiting import wait_until

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

distributed = pytest.importorskip("distributed")

pytestmark = [pytest.mark.dask, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def dask_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    # Expected task failures are logged at ERROR by the workers; they are tested, not news.
    logging.getLogger("distributed.worker").setLevel(logging.CRITICAL)
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
        local_directory=str(tmp_path_factory.mktemp("dask")),
    )
    client = distributed.Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


@pytest.fixture
async def dask_executor(dask_client: Any) -> AsyncIterator[toolkit.AsyncExecutor]:
    facade = toolkit.AsyncExecutor(dask_client.get_executor(pure=False))
    yield facade
    await facade.shutdown(wait=True, cancel_futures=True)


async def test_dask_run_returns_the_result(dask_executor: toolkit.AsyncExecutor) -> None:
    assert await dask_executor.run(_helpers.add, 2, b=3) == 5


async def test_dask_tasks_run_in_worker_processes(dask_executor: toolkit.AsyncExecutor) -> None:
    assert await dask_executor.run(_helpers.pid) != os.getpid()


async def test_dask_identical_calls_are_not_merged(dask_executor: toolkit.AsyncExecutor) -> None:
    import uuid

    first, second = await asyncio.gather(
        dask_executor.run(uuid.uuid4), dask_executor.run(uuid.uuid4)
    )
    assert first != second


async def test_dask_exception_keeps_its_type_and_traceback(
    dask_executor: toolkit.AsyncExecutor,
) -> None:
    with pytest.raises(_helpers.CustomError, match="remote") as info:
        await dask_executor.run(_helpers.fail, "remote")
    assert isinstance(info.value.__cause__, toolkit.RemoteTraceback)
    assert "in fail" in str(info.value.__cause__)


async def test_dask_runs_lambdas(dask_executor: toolkit.AsyncExecutor) -> None:
    factor = 3
    assert await dask_executor.run(lambda x: x * factor, 14) == 42


async def test_dask_unpicklable_argument_fails_at_the_call(
    dask_executor: toolkit.AsyncExecutor,
) -> None:
    with pytest.raises(toolkit.SerializationError, match="argument 0"):
        dask_executor.submit(_helpers.identity, threading.Lock())


async def test_dask_map_ordered_and_unordered(dask_executor: toolkit.AsyncExecutor) -> None:
    assert await dask_executor.map(_helpers.square, range(2000)) == [i * i for i in range(2000)]
    unordered = await dask_executor.map(_helpers.square, range(300), ordered=False)
    assert sorted(unordered) == [i * i for i in range(300)]


async def test_dask_map_yields_results_before_a_failure(
    dask_executor: toolkit.AsyncExecutor,
) -> None:
    seen: list[int] = []
    with pytest.raises(_helpers.CustomError):
        async for result in dask_executor.map(_helpers.fail_on, [7] * 20, range(20)):
            seen.append(result)
    assert seen == list(range(7))


async def test_dask_wait_and_as_completed(
    dask_executor: toolkit.AsyncExecutor, tmp_path: Any
) -> None:
    gate = tmp_path / "gate"
    slow = dask_executor.submit(_helpers.wait_for_file, str(gate))
    fast = dask_executor.submit(_helpers.square, 5)
    done, pending = await dask_executor.wait([slow, fast], return_when=toolkit.FIRST_COMPLETED)
    assert (done, pending) == ({fast}, {slow})
    gate.touch()
    finished = [f async for f in dask_executor.as_completed([slow, fast])]
    assert set(finished) == {slow, fast}


def _tasks_known_to_scheduler(client: Any) -> int:
    """How many tasks the scheduler still means to run (finished ones are not counted)."""

    def count(dask_scheduler: Any) -> int:
        pending = ("released", "waiting", "queued", "no-worker", "processing")
        return sum(task.state in pending for task in dask_scheduler.tasks.values())

    return int(client.run_on_scheduler(count))


async def test_dask_cancel_before_start(
    dask_executor: toolkit.AsyncExecutor, dask_client: Any, tmp_path: Any
) -> None:
    gate, log = tmp_path / "gate", tmp_path / "log"
    busy = [
        dask_executor.submit(_helpers.mark_then_wait, str(tmp_path / f"started-{i}"), str(gate))
        for i in range(2)
    ]
    for i in range(2):  # both single-threaded workers are running a blocker
        assert await toolkit.to_thread(_helpers.wait_for_file, str(tmp_path / f"started-{i}"))
    queued = asyncio.ensure_future(dask_executor.run(_helpers.append_line, str(log), "queued"))
    await asyncio.sleep(0.1)  # not a gate: the task reaches the scheduler (or not) either way
    queued.cancel()
    with pytest.raises(asyncio.CancelledError):
        await queued
    # Dask cancels asynchronously (client -> scheduler -> worker): the gate
    # opens only once the scheduler has forgotten the task, else a worker
    # freed by the gate could still start it.
    await wait_until(
        lambda: toolkit.to_thread(lambda: _tasks_known_to_scheduler(dask_client) <= 2),
        timeout=30,
        message="the scheduler forgets the cancelled task",
    )
    gate.touch()
    assert await asyncio.gather(*busy) == [True, True]
    assert not log.exists()


async def test_dask_submit_after_shutdown_is_refused(dask_executor: toolkit.AsyncExecutor) -> None:
    await dask_executor.shutdown()
    with pytest.raises(toolkit.PoolClosedError):
        dask_executor.submit(_helpers.square, 2)
