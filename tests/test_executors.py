"""AsyncExecutor over thread and process executors (Dask: test_dask.py), to_thread, to_process."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import contextvars
import itertools
import threading
from typing import TYPE_CHECKING, Any

import pytest

import toolkit
from tests import _helpers

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from pathlib import Path

ENGINES = ["thread", "forkserver", "spawn"]


def _make(engine: str, workers: int = 2, **kwargs: Any) -> toolkit.AsyncExecutor:
    if engine == "thread":
        return toolkit.AsyncExecutor(cf.ThreadPoolExecutor(workers), **kwargs)
    context = toolkit.get_context(engine)
    return toolkit.AsyncExecutor(cf.ProcessPoolExecutor(workers, mp_context=context), **kwargs)


@pytest.fixture(params=ENGINES)
async def executor(request: pytest.FixtureRequest) -> AsyncIterator[toolkit.AsyncExecutor]:
    facade = _make(request.param)
    yield facade
    await facade.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(params=["forkserver", "spawn"])
async def process_executor(request: pytest.FixtureRequest) -> AsyncIterator[toolkit.AsyncExecutor]:
    facade = _make(request.param)
    yield facade
    await facade.shutdown(wait=True, cancel_futures=True)


@pytest.fixture
async def thread_executor() -> AsyncIterator[toolkit.AsyncExecutor]:
    facade = _make("thread")
    yield facade
    await facade.shutdown(wait=True, cancel_futures=True)


# --- run and submit ---------------------------------------------------------------------------


async def test_run_returns_the_result(executor: toolkit.AsyncExecutor) -> None:
    assert await executor.run(_helpers.add, 2, b=3) == 5


async def test_submit_returns_an_awaitable_future(executor: toolkit.AsyncExecutor) -> None:
    futures = [executor.submit(_helpers.square, i) for i in range(10)]
    assert all(isinstance(f, asyncio.Future) for f in futures)
    assert await asyncio.gather(*futures) == [i * i for i in range(10)]


async def test_run_raises_the_tasks_own_exception(executor: toolkit.AsyncExecutor) -> None:
    with pytest.raises(_helpers.CustomError, match="kaboom") as info:
        await executor.run(_helpers.fail, "kaboom")
    if executor.executor.__class__ is cf.ProcessPoolExecutor:
        cause = info.value.__cause__
        assert isinstance(cause, toolkit.RemoteTraceback)
        assert "kaboom" in str(cause)
        assert "in fail" in str(cause)


async def test_process_tasks_run_in_other_processes(
    process_executor: toolkit.AsyncExecutor,
) -> None:
    import os

    assert await process_executor.run(_helpers.pid) != os.getpid()


async def test_lambdas_and_closures_run_in_processes(
    process_executor: toolkit.AsyncExecutor,
) -> None:
    offset = 10

    def closure(x: int) -> int:
        return x + offset

    assert await process_executor.run(lambda: 6 * 7) == 42
    assert await process_executor.run(closure, 5) == 15
    assert await process_executor.map(lambda x: -x, range(3)) == [0, -1, -2]


async def test_unpicklable_argument_fails_at_the_call(
    process_executor: toolkit.AsyncExecutor,
) -> None:
    with pytest.raises(toolkit.SerializationError) as info:
        process_executor.submit(_helpers.identity, threading.Lock())
    assert info.value.argument == "argument 0"
    assert "lock" in info.value.type
    assert process_executor.stats().submitted == 0
    with pytest.raises(toolkit.SerializationError, match="keyword argument 'b'"):
        process_executor.submit(_helpers.add, 1, b=threading.Lock())  # type: ignore[arg-type]


async def test_unpicklable_result_is_named(process_executor: toolkit.AsyncExecutor) -> None:
    with pytest.raises(toolkit.SerializationError, match="the result") as info:
        await process_executor.run(_helpers.return_lock)
    assert "lock" in info.value.type
    assert await process_executor.run(_helpers.square, 3) == 9  # the executor is fine


async def test_unpicklable_exception_is_named(process_executor: toolkit.AsyncExecutor) -> None:
    with pytest.raises(toolkit.SerializationError, match="the exception") as info:
        await process_executor.run(_helpers.raise_unpicklable)
    assert isinstance(info.value.__cause__, toolkit.RemoteTraceback)
    assert "boom" in str(info.value.__cause__)


async def test_bad_input_fails_at_the_call(thread_executor: toolkit.AsyncExecutor) -> None:
    with pytest.raises(TypeError, match="callable"):
        thread_executor.submit(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Executor"):
        toolkit.AsyncExecutor(object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout"):
        toolkit.AsyncExecutor(thread_executor.executor, timeout=-1)
    with pytest.raises(TypeError, match="timeout"):
        toolkit.AsyncExecutor(thread_executor.executor, timeout="soon")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="window"):
        thread_executor.map(_helpers.square, range(3), window=-1)
    with pytest.raises(ValueError, match="window"):
        thread_executor.map(_helpers.square, range(3), window=0)
    with pytest.raises(ValueError, match="chunksize"):
        thread_executor.map(_helpers.square, range(3), chunksize=0)
    with pytest.raises(TypeError, match="iterable"):
        thread_executor.map(_helpers.square, 5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="at least one iterable"):
        thread_executor.map(_helpers.square)
    with pytest.raises(ValueError, match="return_when"):
        await thread_executor.wait([], return_when="SOMETIMES")
    with pytest.raises(TypeError, match="futures"):
        thread_executor.as_completed([1, 2])  # type: ignore[list-item]


def test_submit_outside_a_loop_is_a_clear_error() -> None:
    facade = toolkit.AsyncExecutor(cf.ThreadPoolExecutor(1))
    try:
        with pytest.raises(RuntimeError, match="running event loop"):
            facade.submit(_helpers.square, 2)
    finally:
        facade.executor.shutdown()


# --- timeouts and cancellation -----------------------------------------------------------------


async def test_timeout_raises_task_timeout_error(thread_executor: toolkit.AsyncExecutor) -> None:
    release = threading.Event()
    facade = toolkit.AsyncExecutor(thread_executor.executor, timeout=0.05)
    with pytest.raises(toolkit.TaskTimeoutError, match="still running") as info:
        await facade.run(release.wait, 10)
    assert isinstance(info.value, TimeoutError)
    stats = facade.stats()
    assert (stats.timed_out, stats.abandoned) == (1, 1)
    release.set()


async def _occupy(
    executor: toolkit.AsyncExecutor, tmp_path: Path, n: int
) -> list[asyncio.Future[bool]]:
    """Submit n blockers (gate: tmp_path/gate); return once `workers` of them are running.

    A ProcessPoolExecutor also moves up to workers + 1 waiting tasks into its
    call queue, where they can no longer be cancelled: pass n >= 2 * workers + 2
    for a task submitted afterwards to stay cancellable.
    """
    gate = str(tmp_path / "gate")
    busy = [
        executor.submit(_helpers.mark_then_wait, str(tmp_path / f"started-{i}"), gate)
        for i in range(n)
    ]
    for i in range(executor.workers):
        assert await toolkit.to_thread(_helpers.wait_for_file, str(tmp_path / f"started-{i}"))
    return busy


async def test_cancel_before_start_never_runs(
    executor: toolkit.AsyncExecutor, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    busy = await _occupy(executor, tmp_path, 2 * executor.workers + 2)
    queued = executor.submit(_helpers.append_line, str(log), "queued ran")
    await asyncio.sleep(0)
    queued.cancel()
    with pytest.raises(asyncio.CancelledError):
        await queued
    (tmp_path / "gate").touch()
    assert all(await asyncio.gather(*busy))
    assert await executor.run(_helpers.append_line, str(log), "after") == "after"
    assert log.read_text() == "after\n"
    assert executor.stats().cancelled == 1


async def test_cancelling_a_running_thread_task_returns_at_once(
    thread_executor: toolkit.AsyncExecutor,
) -> None:
    started, release = threading.Event(), threading.Event()

    def blocker() -> str:
        started.set()
        release.wait(10)
        return "done"

    task = asyncio.ensure_future(thread_executor.run(blocker))
    await toolkit.to_thread(started.wait, 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert thread_executor.stats().abandoned == 1
    release.set()


async def test_anyio_cancel_scope_cancels_queued_work(
    thread_executor: toolkit.AsyncExecutor,
) -> None:
    import anyio

    release = threading.Event()
    blockers = [thread_executor.submit(release.wait, 10) for _ in range(2)]
    ran: list[int] = []
    with anyio.move_on_after(0.05) as scope:
        await thread_executor.run(ran.append, 1)
    assert scope.cancelled_caught
    release.set()
    await asyncio.gather(*blockers)
    await thread_executor.run(ran.append, 2)
    assert ran == [2]


# --- map ------------------------------------------------------------------------------------


async def test_map_yields_results_in_order(executor: toolkit.AsyncExecutor) -> None:
    results = [r async for r in executor.map(_helpers.square, range(500))]
    assert results == [i * i for i in range(500)]


async def test_map_unordered_yields_every_result(executor: toolkit.AsyncExecutor) -> None:
    results = await executor.map(_helpers.square, range(300), ordered=False)
    assert sorted(results) == [i * i for i in range(300)]


async def test_map_zips_several_iterables(executor: toolkit.AsyncExecutor) -> None:
    assert await executor.map(_helpers.add, [1, 2, 3], [10, 20]) == [11, 22]


async def test_map_accepts_async_iterables(executor: toolkit.AsyncExecutor) -> None:
    async def numbers() -> AsyncIterator[int]:
        for i in range(20):
            await asyncio.sleep(0)
            yield i

    assert await executor.map(_helpers.add, numbers(), range(100, 120)) == [
        i + 100 + i for i in range(20)
    ]


async def test_map_of_nothing_is_empty(executor: toolkit.AsyncExecutor) -> None:
    assert await executor.map(_helpers.square, []) == []


@pytest.mark.parametrize("chunksize", [1, 7, 1000])
async def test_map_with_fixed_chunks(executor: toolkit.AsyncExecutor, chunksize: int) -> None:
    assert await executor.map(_helpers.square, range(100), chunksize=chunksize, window=3) == [
        i * i for i in range(100)
    ]


async def test_map_yields_results_before_a_failure(executor: toolkit.AsyncExecutor) -> None:
    seen: list[int] = []
    with pytest.raises(_helpers.CustomError, match="bad input 50"):
        async for result in executor.map(_helpers.fail_on, itertools.repeat(50), range(100)):
            seen.append(result)
    assert seen == list(range(50))


async def test_map_names_an_unpicklable_input(process_executor: toolkit.AsyncExecutor) -> None:
    inputs: list[Any] = [1, 2, 3, threading.Lock(), 5]
    seen: list[Any] = []
    with pytest.raises(toolkit.SerializationError, match="map input 3") as info:
        async for result in process_executor.map(_helpers.identity, inputs, chunksize=2):
            seen.append(result)
    assert seen == [1, 2, 3]
    assert "lock" in info.value.type


async def test_map_pulls_input_lazily(executor: toolkit.AsyncExecutor) -> None:
    pulled = 0

    def endless() -> Iterator[int]:
        nonlocal pulled
        for i in itertools.count():
            pulled += 1
            yield i

    results = executor.map(_helpers.square, endless(), window=4)
    async with results:
        async for result in results:
            if result >= 100 * 100:
                break
    # A bounded window: at most window x (largest chunk) inputs beyond those consumed.
    assert 101 <= pulled <= 101 + 5 * 2048  # window + the chunk being yielded


async def test_map_stopped_early_cancels_queued_tasks(
    thread_executor: toolkit.AsyncExecutor,
) -> None:
    ran: list[int] = []
    release = threading.Event()

    def record(i: int) -> int:
        if i > 0:
            release.wait(10)
        ran.append(i)
        return i

    results = thread_executor.map(record, range(100), window=10)
    async for first in results:
        assert first == 0
        break
    await results.aclose()
    release.set()
    await thread_executor.shutdown(wait=True)
    assert len(ran) <= 3  # the first, plus what two threads had already started


async def test_map_timeout_raises_task_timeout_error(
    thread_executor: toolkit.AsyncExecutor,
) -> None:
    release = threading.Event()
    with pytest.raises(toolkit.TaskTimeoutError, match="map did not finish"):
        await thread_executor.map(release.wait, [10, 10, 10], timeout=0.05)
    release.set()


async def test_map_after_shutdown_is_refused(thread_executor: toolkit.AsyncExecutor) -> None:
    await thread_executor.shutdown()
    with pytest.raises(toolkit.PoolClosedError):
        thread_executor.map(_helpers.square, range(3))


# --- as_completed and wait ------------------------------------------------------------------


async def test_as_completed_yields_in_completion_order(
    thread_executor: toolkit.AsyncExecutor,
) -> None:
    first_gate, second_gate = threading.Event(), threading.Event()
    slow = thread_executor.submit(first_gate.wait, 10)
    fast = thread_executor.submit(second_gate.wait, 10)
    order: list[asyncio.Future[bool]] = []
    second_gate.set()
    async for future in thread_executor.as_completed([slow, fast]):
        order.append(future)
        first_gate.set()
    assert order == [fast, slow]


async def test_as_completed_timeout(thread_executor: toolkit.AsyncExecutor) -> None:
    release = threading.Event()
    done = thread_executor.submit(_helpers.square, 3)
    stuck = thread_executor.submit(release.wait, 10)
    seen = []
    with pytest.raises(toolkit.TaskTimeoutError, match="1 \\(of 2\\)"):
        async for future in thread_executor.as_completed([done, stuck], timeout=0.1):
            seen.append(await future)
    assert seen == [9]
    release.set()
    await stuck


async def test_wait_first_completed(executor: toolkit.AsyncExecutor, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    slow = executor.submit(_helpers.wait_for_file, str(gate))
    fast = executor.submit(_helpers.square, 4)
    done, pending = await executor.wait([slow, fast], return_when=toolkit.FIRST_COMPLETED)
    assert (done, pending) == ({fast}, {slow})
    gate.touch()
    done, pending = await executor.wait([slow, fast], return_when=toolkit.ALL_COMPLETED)
    assert (done, pending) == ({slow, fast}, set())


async def test_wait_first_exception(thread_executor: toolkit.AsyncExecutor) -> None:
    release = threading.Event()
    slow = thread_executor.submit(release.wait, 10)
    bad = thread_executor.submit(_helpers.fail, "x")
    done, pending = await thread_executor.wait([slow, bad], return_when=toolkit.FIRST_EXCEPTION)
    assert (done, pending) == ({bad}, {slow})
    release.set()
    await slow
    with pytest.raises(_helpers.CustomError):
        await bad


async def test_wait_timeout_returns_what_is_done(thread_executor: toolkit.AsyncExecutor) -> None:
    release = threading.Event()
    stuck = thread_executor.submit(release.wait, 10)
    done, pending = await thread_executor.wait([stuck], timeout=0.05)
    assert (done, pending) == (set(), {stuck})
    release.set()
    await stuck


# --- shutdown and async with ----------------------------------------------------------------


async def test_submit_after_shutdown_raises_pool_closed(executor: toolkit.AsyncExecutor) -> None:
    await executor.shutdown()
    assert executor.closed
    with pytest.raises(toolkit.PoolClosedError) as info:
        executor.submit(_helpers.square, 2)
    assert isinstance(info.value, RuntimeError)
    assert isinstance(info.value, ValueError)


async def test_shutdown_of_the_executor_behind_the_facade(
    thread_executor: toolkit.AsyncExecutor,
) -> None:
    thread_executor.executor.shutdown()
    with pytest.raises(toolkit.PoolClosedError):
        thread_executor.submit(_helpers.square, 2)


async def test_shutdown_cancel_futures_fails_queued_tasks(
    executor: toolkit.AsyncExecutor, tmp_path: Path
) -> None:
    running = await _occupy(executor, tmp_path, 2 * executor.workers + 2)
    queued = [executor.submit(_helpers.square, i) for i in range(5)]
    shutdown = asyncio.ensure_future(executor.shutdown(wait=True, cancel_futures=True))
    await asyncio.sleep(0)
    (tmp_path / "gate").touch()
    await shutdown
    outcomes = await asyncio.gather(*queued, return_exceptions=True)
    assert all(isinstance(o, toolkit.PoolClosedError) for o in outcomes), outcomes
    blockers = await asyncio.gather(*running, return_exceptions=True)
    assert blockers[: executor.workers] == [True] * executor.workers


async def test_async_with_waits_for_every_task() -> None:
    async with _make("thread") as facade:
        futures = [facade.submit(_helpers.sleep_then, 0.01, i) for i in range(6)]
    assert facade.closed
    assert [f.result() for f in futures] == list(range(6))


async def test_async_with_error_cancels_queued_tasks() -> None:
    release = threading.Event()
    with pytest.raises(_helpers.CustomError):
        async with _make("thread", workers=1) as facade:
            running = facade.submit(release.wait, 10)
            queued = facade.submit(_helpers.square, 3)
            await asyncio.sleep(0)
            release.set()
            _helpers.fail("inside")
    assert running.result() is True
    with pytest.raises(toolkit.PoolClosedError):
        queued.result()


async def test_stats_count_outcomes(thread_executor: toolkit.AsyncExecutor) -> None:
    await thread_executor.run(_helpers.square, 2)
    with pytest.raises(_helpers.CustomError):
        await thread_executor.run(_helpers.fail, "x")
    stats = thread_executor.stats()
    assert (stats.submitted, stats.completed, stats.failed, stats.in_flight) == (2, 1, 1, 0)


# --- to_thread and to_process ---------------------------------------------------------------

_var: contextvars.ContextVar[str] = contextvars.ContextVar("_var", default="unset")


async def test_to_thread_returns_and_raises() -> None:
    assert await toolkit.to_thread(_helpers.add, 1, b=2) == 3
    with pytest.raises(_helpers.CustomError, match="oops"):
        await toolkit.to_thread(_helpers.fail, "oops")
    assert await toolkit.to_thread(threading.current_thread) is not threading.current_thread()


async def test_to_thread_carries_contextvars() -> None:
    _var.set("here")
    assert await toolkit.to_thread(_var.get) == "here"


async def test_to_thread_rejects_non_callables() -> None:
    with pytest.raises(TypeError, match="callable"):
        await toolkit.to_thread(3)  # type: ignore[arg-type]


async def test_to_thread_many_concurrent_calls_bounded_threads() -> None:
    before = threading.active_count()
    results = await asyncio.gather(*[toolkit.to_thread(_helpers.square, i) for i in range(1000)])
    assert results == [i * i for i in range(1000)]
    from toolkit._core._thread_cache import default_max_threads

    assert threading.active_count() - before <= default_max_threads()


async def test_to_thread_cancel_before_start_never_runs() -> None:
    from toolkit._core._thread_cache import default_max_threads

    release = threading.Event()
    blockers = [
        asyncio.ensure_future(toolkit.to_thread(release.wait, 10))
        for _ in range(default_max_threads())
    ]
    ran: list[int] = []
    late = asyncio.ensure_future(toolkit.to_thread(ran.append, 1))
    await asyncio.sleep(0.05)
    late.cancel()
    with pytest.raises(asyncio.CancelledError):
        await late
    release.set()
    await asyncio.gather(*blockers)
    await toolkit.to_thread(ran.append, 2)
    assert ran == [2]


async def test_to_thread_cancel_while_running_returns_at_once() -> None:
    started, release = threading.Event(), threading.Event()

    def blocker() -> None:
        started.set()
        release.wait(10)

    task = asyncio.ensure_future(toolkit.to_thread(blocker))
    await toolkit.to_thread(started.wait, 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    release.set()


async def test_to_process_runs_lambdas(default_executors: None) -> None:
    import os

    assert await toolkit.to_process(lambda: os.getpid()) != os.getpid()
    assert await toolkit.to_process(_helpers.add, 1, b=2) == 3
    with pytest.raises(_helpers.CustomError):
        await toolkit.to_process(_helpers.fail, "x")


# --- edge cases found while writing the docs -------------------------------------------------


async def test_wait_and_as_completed_accept_a_zero_timeout(
    thread_executor: toolkit.AsyncExecutor,
) -> None:
    release = threading.Event()
    done = thread_executor.submit(_helpers.square, 3)
    await done
    stuck = thread_executor.submit(release.wait, 10)
    finished, pending = await thread_executor.wait([done, stuck], timeout=0)
    assert (finished, pending) == ({done}, {stuck})
    seen = []
    with pytest.raises(toolkit.TaskTimeoutError):
        async for future in thread_executor.as_completed([done, stuck], timeout=0):
            seen.append(future)
    assert seen == [done]
    release.set()
    await stuck


async def test_map_timeout_runs_from_the_call(thread_executor: toolkit.AsyncExecutor) -> None:
    release = threading.Event()
    results = thread_executor.map(release.wait, [10], timeout=0.05)
    await toolkit.to_thread(threading.Event().wait, 0.1)  # the deadline passes before iterating
    with pytest.raises(toolkit.TaskTimeoutError):
        await results
    release.set()


async def test_stats_count_every_task_once(thread_executor: toolkit.AsyncExecutor) -> None:
    with pytest.raises(_helpers.CustomError):
        await thread_executor.map(_helpers.fail_on, [3] * 6, range(6))
    results = thread_executor.map(_helpers.square, range(40), window=4)
    async for value in results:
        if value == 9:
            break
    await results.aclose()
    await thread_executor.shutdown(wait=True)
    stats = thread_executor.stats()
    assert stats.failed == 1
    assert stats.submitted == stats.completed + stats.failed + stats.cancelled


async def test_cancelling_a_submitted_future_cancels_the_task_at_once(
    thread_executor: toolkit.AsyncExecutor,
) -> None:
    release = threading.Event()
    blockers = [thread_executor.submit(release.wait, 10) for _ in range(2)]
    queued = thread_executor.submit(_helpers.square, 2)
    assert queued.cancel()
    release.set()  # no loop iteration between the cancel and the workers going free
    await asyncio.gather(*blockers)
    assert thread_executor.stats().cancelled == 1


def test_run_refuses_a_running_loop() -> None:
    async def inner() -> None:
        return None

    async def outer() -> None:
        with pytest.raises(RuntimeError, match="running event loop"):
            toolkit.run(inner())

    toolkit.run(outer(), uvloop=False)


def test_run_leaves_no_thread_after_to_process() -> None:
    from toolkit._core._backend import get_backend
    from toolkit._core._bridge import helper_threads

    before = set(threading.enumerate())
    assert toolkit.run(toolkit.to_process(abs, -3)) == 3
    left = set(threading.enumerate()) - before
    if get_backend() == "threads":
        # Helper threads stand in for the loop's watching there; they are
        # cached for the next wait and leave after idling, as to_thread's do.
        # Idle is what counts: none may still work for the ended loop.
        assert helper_threads().wait_idle(2.0)
        left -= set(helper_threads().threads())
    assert left == set()


async def test_worker_death_fails_with_broken_pool_not_a_hang(
    process_executor: toolkit.AsyncExecutor,
) -> None:
    import os
    from concurrent.futures.process import BrokenProcessPool

    with pytest.raises(BrokenProcessPool):
        await process_executor.run(os._exit, 3)
    with pytest.raises(BrokenProcessPool):
        process_executor.submit(_helpers.square, 2)


async def test_to_process_worker_death_fails_only_its_call(default_executors: None) -> None:
    import os

    with pytest.raises(toolkit.WorkerDiedError, match="exit code 3"):
        await toolkit.to_process(os._exit, 3)
    assert await toolkit.to_process(_helpers.square, 5) == 25


async def test_shutdown_default_executors_cancelled_still_lets_the_threads_go(
    default_executors: None, tmp_path: Path
) -> None:
    # Cancelled while the process pool waits for a running call, the old
    # to_thread threads are told to leave too, not left for their 10 s idle.
    from tests._waiting import wait_until
    from toolkit._core import _threads

    assert await toolkit.to_thread(abs, -1) == 1
    cache = _threads._default_threads
    assert cache is not None
    threads = cache.threads()
    started, gate = tmp_path / "started", tmp_path / "gate"
    running = asyncio.ensure_future(
        toolkit.to_process(_helpers.mark_then_wait, str(started), str(gate))
    )
    await wait_until(started.exists, 30)
    shutting = asyncio.ensure_future(toolkit.shutdown_default_executors())
    await asyncio.sleep(0.05)
    shutting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await shutting
    await wait_until(lambda: not any(t.is_alive() for t in threads), 5)
    gate.touch()
    assert await running is True


async def test_async_executor_shutdown_cancelled_before_its_thread_ran_still_shuts_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from toolkit import _executors

    async def every_thread_busy(fn: Any, *args: Any) -> Any:
        await asyncio.Event().wait()  # the call never gets a thread

    executor = cf.ThreadPoolExecutor(1)
    ex = toolkit.AsyncExecutor(executor)
    assert await ex.run(abs, -2) == 2
    monkeypatch.setattr(_executors, "to_thread", every_thread_busy)
    shutting = asyncio.ensure_future(ex.shutdown())
    await asyncio.sleep(0.01)
    shutting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await shutting
    with pytest.raises(RuntimeError, match="shutdown"):
        executor.submit(abs, -1)  # the executor itself was shut down
