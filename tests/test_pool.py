"""toolkit.Pool and ThreadPool: the multiprocessing.Pool API awaited, and what it adds.

CPython's test_concurrent_futures/test_deadlock.py catalogue is the model for
the crash cases: a crash in the task, in pickling or unpickling on either
side, os._exit, SIGKILL from outside, a segfault. Every one must fail only
its own task, with a named error, and leave the pool working.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import os
import signal
import sys
import time
from typing import TYPE_CHECKING, Any

import psutil
import pytest

import toolkit
from tests import _helpers
from tests._waiting import wait_until

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from multiprocessing.context import BaseContext
    from pathlib import Path

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def pool(mp_context: BaseContext) -> AsyncIterator[toolkit.Pool]:
    async with toolkit.Pool(2, context=mp_context) as pool:
        yield pool


@pytest.fixture
async def pool1() -> AsyncIterator[toolkit.Pool]:
    """One worker (forkserver): ordering and capacity are deterministic."""
    async with toolkit.Pool(1) as pool:
        yield pool


async def _wait_file(path: Path, timeout: float = 10.0) -> None:
    await wait_until(path.exists, timeout)


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


# --- the multiprocessing.Pool API ---------------------------------------------------------------


async def test_pool_apply_returns_the_result(pool: toolkit.Pool) -> None:
    assert await pool.apply(_helpers.square, (7,)) == 49
    assert await pool.apply(_helpers.add, (1,), {"b": 2}) == 3


async def test_pool_apply_raises_the_tasks_own_exception(pool: toolkit.Pool) -> None:
    with pytest.raises(_helpers.CustomError, match="nope") as info:
        await pool.apply(_helpers.fail, ("nope",))
    assert isinstance(info.value.__cause__, toolkit.RemoteTraceback)
    assert "fail" in str(info.value.__cause__)
    assert await pool.apply(_helpers.square, (3,)) == 9  # and the pool goes on


async def test_pool_apply_runs_in_another_process(pool: toolkit.Pool) -> None:
    assert await pool.apply(_helpers.pid) != os.getpid()


async def test_pool_lambdas_and_closures_run(pool: toolkit.Pool) -> None:
    offset = 10
    assert await pool.apply(lambda x: x + offset, (5,)) == 15
    assert await pool.map(lambda x: x * offset, range(3)) == [0, 10, 20]


async def test_pool_map_and_starmap(pool: toolkit.Pool) -> None:
    assert await pool.map(_helpers.square, range(100)) == [x * x for x in range(100)]
    assert await pool.starmap(_helpers.add, [(1, 2), (3, 4)]) == [3, 7]
    assert await pool.map(_helpers.square, []) == []


async def test_pool_map_raises_the_first_failure(pool: toolkit.Pool) -> None:
    with pytest.raises(_helpers.CustomError, match="bad input 5"):
        await pool.map(functools.partial(_helpers.fail_on, 5), range(10), chunksize=3)


async def test_pool_imap_is_ordered_and_imap_unordered_complete(pool1: toolkit.Pool) -> None:
    assert [x async for x in pool1.imap(_helpers.square, range(50))] == [x * x for x in range(50)]
    unordered = [x async for x in pool1.imap_unordered(_helpers.square, range(50))]
    assert sorted(unordered) == [x * x for x in range(50)]


async def test_pool_imap_pulls_input_lazily(pool1: toolkit.Pool) -> None:
    pulled = 0

    def numbers() -> Any:
        nonlocal pulled
        for n in itertools.count():
            pulled = n
            yield n

    results = pool1.imap(_helpers.square, numbers(), chunksize=10)
    got = []
    async for value in results:
        got.append(value)
        if len(got) == 100:
            break
    await results.aclose()
    assert got == [x * x for x in range(100)]
    assert pulled < 1000  # a bounded window of chunks, never the whole (endless) input


async def test_pool_imap_takes_an_async_iterable(pool1: toolkit.Pool) -> None:
    async def numbers() -> AsyncIterator[int]:
        for n in range(20):
            yield n

    assert await pool1.imap(_helpers.square, numbers()) == [x * x for x in range(20)]


async def test_pool_apply_async_handle(pool1: toolkit.Pool) -> None:
    seen: list[Any] = []
    handle = pool1.apply_async(_helpers.square, (4,), callback=seen.append)
    assert await handle == 16
    assert handle.ready()
    assert handle.successful()
    assert await handle.get(timeout=1) == 16
    assert seen == [16]
    errors: list[BaseException] = []
    bad = pool1.apply_async(_helpers.fail, ("x",), error_callback=errors.append)
    await bad.wait()
    assert not bad.successful()
    with pytest.raises(_helpers.CustomError):
        await bad.get()
    assert isinstance(errors[0], _helpers.CustomError)


async def test_pool_apply_async_get_timeout_leaves_the_task_running(pool1: toolkit.Pool) -> None:
    handle = pool1.apply_async(_helpers.sleep_then, (0.5, "done"))
    with pytest.raises(toolkit.TaskTimeoutError):
        await handle.get(timeout=0.05)
    with pytest.raises(ValueError, match="not ready"):
        handle.successful()
    assert await handle.get(timeout=10) == "done"


async def test_pool_map_async_and_submit(pool: toolkit.Pool) -> None:
    handle = pool.map_async(_helpers.square, range(10))
    assert await handle.get() == [x * x for x in range(10)]
    futures = [pool.submit(_helpers.add, i, b=1) for i in range(5)]
    assert await asyncio.gather(*futures) == [1, 2, 3, 4, 5]
    assert await pool.starmap_async(_helpers.add, [(1, 1)]) == [2]


async def test_pool_large_arguments_and_results_cross_whole(pool1: toolkit.Pool) -> None:
    data = os.urandom(8 * 1024 * 1024)
    assert await pool1.apply(_helpers.size_of, (data,)) == len(data)
    big = await pool1.apply(_helpers.make_bytes, (16 * 1024 * 1024,))
    assert len(big) == 16 * 1024 * 1024


async def test_pool_thousands_of_concurrent_applies(pool: toolkit.Pool) -> None:
    results = await asyncio.gather(*(pool.apply(_helpers.square, (i,)) for i in range(5000)))
    assert results == [i * i for i in range(5000)]


async def test_pool_finished_tasks_are_freed_without_the_garbage_collector(
    pool1: toolkit.Pool,
) -> None:
    # A future and its task refer to each other while the task is pending: the
    # link must be dropped at the end (whatever the end), or every call leaves
    # a cycle that only a collection frees (a third of the time of 20,000 applies).
    import gc
    import weakref

    async def ended(make: Callable[[], asyncio.Future[Any]]) -> weakref.ref[Any]:
        future = make()
        done = asyncio.Event()  # not `await future`: a raise here would hold it in its traceback
        future.add_done_callback(lambda _: done.set())
        await done.wait()
        future.exception()  # retrieved
        return weakref.ref(future)

    gc.disable()
    try:
        refs = [
            await ended(lambda: pool1.apply(_helpers.square, (3,))),
            await ended(lambda: pool1.apply(_helpers.fail, ("no",))),
            await ended(lambda: pool1.apply(_helpers.sleep_then, (5,), timeout=0.05)),
            await ended(lambda: pool1.submit(_helpers.square, 4)),
        ]
        cancelled = pool1.apply(_helpers.sleep_then, (5,))
        cancelled.cancel()
        refs.append(weakref.ref(cancelled))
        del cancelled
        assert await pool1.apply(_helpers.square, (2,)) == 4  # the queue has let it go
        assert [ref() for ref in refs] == [None] * len(refs)
    finally:
        gc.enable()


# --- bad input: a clear error at the call ---------------------------------------------------------


@pytest.mark.parametrize("size", [0, -1, 1.5, "2", True])
def test_pool_rejects_a_bad_size(size: Any) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        toolkit.Pool(size)


def test_pool_rejects_bad_options() -> None:
    with pytest.raises(TypeError):
        toolkit.Pool(1, initializer=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="maxtasksperchild"):
        toolkit.Pool(1, maxtasksperchild=0)
    with pytest.raises(ValueError, match="timeout"):
        toolkit.Pool(1, timeout=-1)
    with pytest.raises(TypeError):
        toolkit.Pool(1, capture_output="yes")  # type: ignore[arg-type]


async def test_pool_rejects_bad_calls(pool1: toolkit.Pool) -> None:
    with pytest.raises(TypeError, match="callable"):
        await pool1.apply(3)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="not iterable"):
        await pool1.map(_helpers.square, 5)  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="chunksize"):
        await pool1.map(_helpers.square, [1], chunksize=0)
    with pytest.raises(ValueError, match="timeout"):
        await pool1.apply(_helpers.square, (1,), timeout=-2)
    assert await pool1.apply(_helpers.square, (2,)) == 4


def test_pool_used_outside_a_loop_says_so() -> None:
    pool = toolkit.Pool(1)
    with pytest.raises(RuntimeError, match="running event loop"):
        pool.apply_async(_helpers.square, (1,))
    pool.close()


def test_pool_made_outside_a_loop_starts_in_the_first_one() -> None:
    pool = toolkit.Pool(1)

    async def main() -> int:
        async with pool:
            return await pool.apply(_helpers.square, (5,))

    assert asyncio.run(main()) == 25


async def test_pool_belongs_to_one_loop(pool1: toolkit.Pool) -> None:
    def elsewhere() -> None:
        async def use() -> None:
            await pool1.apply(_helpers.square, (1,))

        asyncio.run(use())

    with pytest.raises(RuntimeError, match="another event loop"):
        await asyncio.to_thread(elsewhere)


# --- pickling failures: that task fails, the pool goes on ----------------------------------------


async def test_pool_unpicklable_argument_fails_at_the_call(pool: toolkit.Pool) -> None:
    import threading

    with pytest.raises(toolkit.SerializationError) as info:
        pool.apply_async(_helpers.identity, (threading.Lock(),))
    assert info.value.argument == "argument 0"
    assert await pool.apply(_helpers.square, (2,)) == 4


async def test_pool_unpicklable_result_fails_that_task(pool: toolkit.Pool) -> None:
    with pytest.raises(toolkit.SerializationError, match="result"):
        await pool.apply(_helpers.return_lock)
    assert await pool.apply(_helpers.square, (2,)) == 4


async def test_pool_unpicklable_exception_fails_that_task(pool: toolkit.Pool) -> None:
    with pytest.raises(toolkit.SerializationError, match="exception"):
        await pool.apply(_helpers.raise_unpicklable)
    assert await pool.apply(_helpers.square, (2,)) == 4


async def test_pool_argument_failing_to_unpickle_in_the_worker(pool: toolkit.Pool) -> None:
    with pytest.raises(_helpers.CustomError, match="refuses"):
        await pool.apply(_helpers.identity, (_helpers.LoadsBadly(),))
    assert await pool.apply(_helpers.square, (2,)) == 4


async def test_pool_result_failing_to_unpickle_here(pool: toolkit.Pool) -> None:
    # Named as what it is: the result, not the task's own exception.
    with pytest.raises(toolkit.SerializationError, match="cannot unpickle the result") as info:
        await pool.apply(_helpers.return_loads_badly)
    assert isinstance(info.value.__cause__, _helpers.CustomError)
    assert await pool.apply(_helpers.square, (2,)) == 4


# --- crashes: WorkerDiedError for that task only, a replacement, everything else goes on ---------


@pytest.mark.parametrize(
    ("crash", "args", "exitcode"),
    [
        (_helpers.os_exit, (3,), 3),
        (_helpers.kill_self, (signal.SIGKILL,), -signal.SIGKILL),
        (_helpers.segfault, (), -signal.SIGSEGV),
    ],
    ids=["os._exit", "SIGKILL", "segfault"],
)
async def test_pool_crash_fails_only_its_task(
    pool: toolkit.Pool, crash: Any, args: tuple[Any, ...], exitcode: int
) -> None:
    others = [pool.apply(_helpers.sleep_then, (0.2, i)) for i in range(3)]
    with pytest.raises(toolkit.WorkerDiedError) as info:
        await pool.apply(crash, args)
    assert info.value.exitcode == exitcode
    assert crash.__name__ in (info.value.task or "")
    assert await asyncio.gather(*others) == [0, 1, 2]
    assert await pool.map(_helpers.square, range(100)) == [x * x for x in range(100)]
    dead = [w for w in pool.workers if w.state == "dead"]
    assert len(dead) == 1
    assert dead[0].exit_reason is not None
    assert pool.stats().worker_deaths == 1
    assert len([w for w in pool.workers if w.state != "dead"]) == 2


async def test_pool_sigkill_from_outside_is_seen_at_once(
    tmp_path: Path, pool1: toolkit.Pool
) -> None:
    started = tmp_path / "started"
    task = asyncio.ensure_future(pool1.apply(_helpers.mark_then_sleep, (str(started), 30)))
    await _wait_file(started)
    pid = int(started.read_text())
    os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()
    with pytest.raises(toolkit.WorkerDiedError) as info:
        await task
    assert time.monotonic() - killed_at < 1.0
    assert info.value.pid == pid
    assert info.value.signal == signal.SIGKILL
    assert "SIGKILL" in str(info.value)
    dead = next(w for w in pool1.workers if w.pid == pid)
    assert dead.state == "dead"
    assert dead.exit_reason == "killed by SIGKILL"
    assert await pool1.apply(_helpers.square, (3,)) == 9


async def test_pool_worker_killed_while_idle_is_replaced(pool1: toolkit.Pool) -> None:
    pid = await pool1.apply(_helpers.pid)
    os.kill(pid, signal.SIGKILL)
    await wait_until(lambda: any(w.state == "dead" for w in pool1.workers))
    assert await pool1.apply(_helpers.pid) != pid


async def test_pool_queued_tasks_of_a_dead_worker_run_elsewhere(tmp_path: Path) -> None:
    async with toolkit.Pool(1) as pool:
        started = tmp_path / "started"
        first = asyncio.ensure_future(pool.apply(_helpers.mark_then_sleep, (str(started), 30)))
        queued = [pool.apply(_helpers.square, (i,)) for i in range(5)]
        await _wait_file(started)
        os.kill(int(started.read_text()), signal.SIGKILL)
        with pytest.raises(toolkit.WorkerDiedError):
            await first
        assert await asyncio.gather(*queued) == [0, 1, 4, 9, 16]


# --- timeouts and cancellation kill ---------------------------------------------------------------


async def test_pool_timeout_kills_the_worker(tmp_path: Path, pool1: toolkit.Pool) -> None:
    started = tmp_path / "started"
    begin = time.monotonic()
    with pytest.raises(toolkit.TaskTimeoutError, match=r"within 0\.3 s") as info:
        await pool1.apply(_helpers.mark_then_sleep, (str(started), 30), timeout=0.3)
    elapsed = time.monotonic() - begin
    assert isinstance(info.value, TimeoutError)
    pid = int(started.read_text())
    assert 0.3 <= elapsed < 3.0
    await wait_until(lambda: _gone(pid))
    assert await pool1.apply(_helpers.square, (4,)) == 16  # capacity is back
    stats = pool1.stats()
    assert stats.timed_out == 1
    assert stats.worker_deaths == 0  # we killed it: not a crash


async def test_pool_timeout_kills_the_workers_children(tmp_path: Path, pool1: toolkit.Pool) -> None:
    pidfile = tmp_path / "grandchild"
    with pytest.raises(toolkit.TaskTimeoutError):
        await pool1.apply(_helpers.grandchild_then_sleep, (str(pidfile), 30), timeout=1.0)
    grandchild = int(pidfile.read_text())
    await wait_until(lambda: _gone(grandchild))


async def test_pool_default_timeout_applies_to_every_task() -> None:
    async with toolkit.Pool(1, timeout=0.2) as pool:
        with pytest.raises(toolkit.TaskTimeoutError):
            await pool.apply(_helpers.sleep_then, (30,))
        assert await pool.apply(_helpers.sleep_then, (0.01, 1), timeout=5) == 1


async def test_pool_cancel_kills_a_running_task(tmp_path: Path, pool1: toolkit.Pool) -> None:
    started = tmp_path / "started"
    task = asyncio.ensure_future(pool1.apply(_helpers.mark_then_sleep, (str(started), 30)))
    await _wait_file(started)
    pid = int(started.read_text())
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await wait_until(lambda: _gone(pid))
    assert await pool1.apply(_helpers.pid) != pid
    assert pool1.stats().cancelled == 1


async def test_pool_asyncio_timeout_kills_the_task(tmp_path: Path, pool1: toolkit.Pool) -> None:
    started = tmp_path / "started"
    begin = time.monotonic()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await pool1.apply(_helpers.mark_then_sleep, (str(started), 30))
    assert time.monotonic() - begin < 3.0
    await wait_until(lambda: _gone(int(started.read_text())))


async def test_pool_cancelled_queued_tasks_never_run(tmp_path: Path, pool1: toolkit.Pool) -> None:
    started = tmp_path / "started"
    gate = tmp_path / "gate"
    blocker = pool1.apply_async(_helpers.mark_then_wait, (str(started), str(gate)))
    await _wait_file(started)
    queued = [pool1.apply_async(_helpers.touch, (str(tmp_path / f"q{i}"),)) for i in range(10)]
    for handle in queued[::2]:
        assert handle.cancel()
    gate.touch()
    assert await blocker is True
    for handle in queued[1::2]:
        await handle
    ran = sorted(p.name for p in tmp_path.glob("q*"))  # noqa: ASYNC240 - a test's own directory
    assert ran == [f"q{i}" for i in range(1, 10, 2)]


async def test_pool_cancelled_pipelined_tasks_are_withdrawn(
    tmp_path: Path, pool1: toolkit.Pool
) -> None:
    # Tiny tasks teach the pool to send several ahead; then a slow one and queued ones.
    await pool1.map(_helpers.square, range(2000), chunksize=1)
    gate = tmp_path / "gate"
    started = tmp_path / "started"
    blocker = pool1.apply_async(_helpers.mark_then_wait, (str(started), str(gate)))
    queued = [pool1.apply_async(_helpers.touch, (str(tmp_path / f"q{i}"),)) for i in range(6)]
    await _wait_file(started)
    for handle in queued:
        handle.cancel()
    gate.touch()
    assert await blocker is True
    assert await pool1.apply(_helpers.square, (3,)) == 9
    # The worker read each CANCEL before it reached the task.
    assert list(tmp_path.glob("q*")) == []  # noqa: ASYNC240 - a test's own directory


async def test_pool_random_cancellations_lose_nothing(pool: toolkit.Pool) -> None:
    import random

    rng = random.Random(7)
    futures = [pool.submit(_helpers.sleep_then, rng.random() * 0.002, i) for i in range(1000)]
    cancelled = set()
    for i, future in enumerate(futures):
        if rng.random() < 0.3:
            await asyncio.sleep(0)
            if future.cancel():
                cancelled.add(i)
    results = await asyncio.gather(*futures, return_exceptions=True)
    for i, result in enumerate(results):
        if i in cancelled:
            assert isinstance(result, asyncio.CancelledError)
        else:
            assert result == i
    assert await pool.map(_helpers.square, range(10)) == [x * x for x in range(10)]


# --- lifecycle ----------------------------------------------------------------------------------


async def test_pool_initializer_runs_in_every_worker(mp_context: BaseContext) -> None:
    async with toolkit.Pool(
        2, initializer=_helpers.set_global, initargs=("ready",), context=mp_context
    ) as pool:
        assert await pool.map(_helpers.get_global, range(4), chunksize=1) == ["ready"] * 4


async def test_pool_failing_initializer_breaks_the_pool(mp_context: BaseContext) -> None:
    pool = toolkit.Pool(2, initializer=_helpers.fail, initargs=("init",), context=mp_context)
    with pytest.raises(toolkit.BrokenPoolError) as info:
        await pool.apply(_helpers.square, (2,))
    assert isinstance(info.value.__cause__, _helpers.CustomError)
    with pytest.raises(toolkit.BrokenPoolError):
        pool.apply_async(_helpers.square, (2,))
    assert pool.stats().workers_started == 2  # no retry loop
    pool.terminate()
    await pool.join()


async def test_pool_workers_dying_at_start_break_the_pool() -> None:
    pool = toolkit.Pool(1, initializer=_helpers.exit_in_initializer)
    with pytest.raises(toolkit.BrokenPoolError, match="before they were ready"):
        await pool.apply(_helpers.square, (2,))
    pool.terminate()
    await pool.join()


async def test_pool_maxtasksperchild_recycles_workers_under_load() -> None:
    async with toolkit.Pool(2, maxtasksperchild=3) as pool:
        pids = await asyncio.gather(*(pool.apply(_helpers.sleep_pid, (0.01,)) for _ in range(24)))
        assert max(pids.count(p) for p in set(pids)) <= 3
        assert len(set(pids)) >= 8
        assert pool.stats().workers_started >= 8
        # Tiny tasks go to a worker several at a time: never past its quota either.
        tiny = await asyncio.gather(*(pool.apply(_helpers.pid) for _ in range(300)))
        assert max(tiny.count(p) for p in set(tiny)) <= 3


async def test_pool_close_finishes_submitted_work(pool1: toolkit.Pool) -> None:
    handles = [pool1.apply_async(_helpers.sleep_then, (0.01, i)) for i in range(5)]
    pool1.close()
    with pytest.raises(toolkit.PoolClosedError):
        pool1.apply_async(_helpers.square, (1,))
    await pool1.join()
    assert [await h for h in handles] == list(range(5))
    assert all(w.state == "dead" for w in pool1.workers)


async def test_pool_join_needs_close_first(pool1: toolkit.Pool) -> None:
    with pytest.raises(ValueError, match="still running"):
        await pool1.join()


async def test_pool_terminate_cancels_pending_and_kills(tmp_path: Path) -> None:
    pool = toolkit.Pool(1)
    started = tmp_path / "started"
    running = pool.apply_async(_helpers.mark_then_sleep, (str(started), 30))
    queued = pool.apply_async(_helpers.square, (2,))
    await _wait_file(started)
    pool.terminate()
    await pool.join()
    assert running.cancelled()
    assert queued.cancelled()
    assert _gone(int(started.read_text()))
    with pytest.raises(toolkit.PoolClosedError):
        await pool.apply(_helpers.square, (1,))


async def test_pool_async_with_exception_terminates(tmp_path: Path) -> None:
    started = tmp_path / "started"
    with pytest.raises(_helpers.CustomError):
        async with toolkit.Pool(1) as pool:
            handle = pool.apply_async(_helpers.mark_then_sleep, (str(started), 30))
            await _wait_file(started)
            raise _helpers.CustomError("leave")
    assert handle.cancelled()
    assert pool.stats().state == "terminated"


async def test_pool_async_with_cancelled_terminates(tmp_path: Path) -> None:
    started = tmp_path / "started"

    async def body() -> None:
        async with toolkit.Pool(1) as pool:
            await pool.apply(_helpers.mark_then_sleep, (str(started), 30))

    task = asyncio.ensure_future(body())
    await _wait_file(started)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert _gone(int(started.read_text()))


async def test_pool_resize(pool1: toolkit.Pool) -> None:
    with pytest.raises(TypeError, match="positive int"):
        pool1.resize("2")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="positive int"):
        pool1.resize(True)
    with pytest.raises(ValueError, match="positive int"):
        pool1.resize(0)
    pool1.resize(3)
    await wait_until(lambda: pool1.stats().idle == 3)
    pool1.resize(1)
    await wait_until(lambda: pool1.stats().idle == 1 and pool1.stats().stopping == 0)
    assert await pool1.apply(_helpers.square, (5,)) == 25


# --- inspection ---------------------------------------------------------------------------------


async def test_pool_inspection_shows_busy_workers(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    async with toolkit.Pool(4, name="inspected") as pool:
        handles = [
            pool.apply_async(_helpers.mark_then_wait, (str(tmp_path / f"s{i}"), str(gate)))
            for i in range(4)
        ]
        for i in range(4):
            await _wait_file(tmp_path / f"s{i}")
        workers = pool.workers
        assert [w.state for w in workers] == ["busy"] * 4
        assert {w.name for w in workers} == {f"inspected-{i}" for i in range(1, 5)}
        for worker in workers:
            assert worker.kind == "process"
            assert worker.task is not None
            assert worker.task.function.endswith("mark_then_wait")
            assert worker.task.started_at is not None
            assert worker.task.started_at <= time.time()
            assert worker.rss is not None
            assert worker.rss > 0
        stats = pool.stats()
        assert (stats.busy, stats.running, stats.size) == (4, 4, 4)
        snapshot = toolkit.inspect.snapshot()
        assert any(p.stats.name == "inspected" for p in snapshot.pools)
        gate.touch()
        assert await asyncio.gather(*(h.get() for h in handles)) == [True] * 4
        stats = pool.stats()
        assert (stats.completed, stats.busy, stats.idle) == (4, 0, 4)


async def test_pool_capture_output_tags_lines(pool1: toolkit.Pool) -> None:
    del pool1
    lines: list[toolkit.OutputLine] = []
    async with toolkit.Pool(1, capture_output=lines.append) as pool:
        assert await pool.apply(_helpers.print_lines, (3,)) == 3
        await wait_until(lambda: len(lines) >= 6)
        pid = pool.workers[0].pid
    assert sorted(line.text for line in lines if line.stream == "stdout") == [
        "out 0",
        "out 1",
        "out 2",
    ]
    assert sorted(line.text for line in lines if line.stream == "stderr") == [
        "err 0",
        "err 1",
        "err 2",
    ]
    assert {line.pid for line in lines} == {pid}
    assert {line.worker for line in lines} == {pool.workers[-1].name}


async def test_pool_worker_ignores_sigint(tmp_path: Path, pool1: toolkit.Pool) -> None:
    started = tmp_path / "started"
    handle = pool1.apply_async(_helpers.mark_then_sleep, (str(started), 0.3))
    await _wait_file(started)
    os.kill(int(started.read_text()), signal.SIGINT)  # a Ctrl-C in the terminal reaches it too
    assert await handle == int(started.read_text())


# --- the parent going away -----------------------------------------------------------------------

_PARENT = """
import asyncio, sys, toolkit
from tests import _helpers

async def main():
    async with toolkit.Pool(2, context=sys.argv[1]) as pool:
        tasks = [pool.apply(_helpers.sleep_then, (60,)) for _ in range(4)]
        gathered = asyncio.gather(*tasks)
        while pool.stats().busy < 2:
            await asyncio.sleep(0.01)
        print("PIDS", *[w.pid for w in pool.workers], flush=True)
        await gathered

asyncio.run(main())
"""


@pytest.mark.parametrize(
    ("method", "signum"),
    [
        ("forkserver", signal.SIGINT),
        ("forkserver", signal.SIGTERM),
        ("forkserver", signal.SIGKILL),
        ("spawn", signal.SIGKILL),
        # fork: every worker inherits the parent's ends of the others' sockets
        ("fork", signal.SIGKILL),
    ],
)
def test_pool_parent_signalled_leaves_no_workers(method: str, signum: int) -> None:
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT, method],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline()
        assert line.startswith("PIDS"), line + (parent.stderr.read() if parent.stderr else "")
        pids = [int(p) for p in line.split()[1:]]
        os.kill(parent.pid, signum)
        _, stderr = parent.communicate(timeout=10)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
    deadline = time.monotonic() + 5
    while not all(_gone(pid) for pid in pids):
        assert time.monotonic() < deadline, f"workers left after {signum!r}"
        time.sleep(0.01)
    assert "leaked semaphore" not in stderr
    assert "Task exception was never retrieved" not in stderr


# --- ThreadPool ---------------------------------------------------------------------------------


async def test_thread_pool_runs_in_threads() -> None:
    import threading

    async with toolkit.ThreadPool(2) as pool:
        assert await pool.apply(threading.get_ident) != threading.get_ident()
        assert await pool.map(_helpers.square, range(10)) == [x * x for x in range(10)]
        assert await pool.starmap(_helpers.add, [(1, 2)]) == [3]
        with pytest.raises(_helpers.CustomError):
            await pool.apply(_helpers.fail, ("x",))
        workers = pool.workers
        assert {w.kind for w in workers} == {"thread"}
        assert all(w.tid is not None for w in workers)


async def test_thread_pool_timeout_abandons_and_replaces() -> None:
    async with toolkit.ThreadPool(1) as pool:
        with pytest.raises(toolkit.TaskTimeoutError, match="abandoned"):
            await pool.apply(_helpers.sleep_then, (1.0,), timeout=0.05)
        begin = time.monotonic()
        assert await pool.apply(_helpers.square, (3,)) == 9
        assert time.monotonic() - begin < 0.6  # a fresh thread, not the busy one (busy ~1 s)
        assert any(w.state == "stopping" for w in pool.workers)


async def test_thread_pool_failing_initializer_breaks() -> None:
    pool = toolkit.ThreadPool(1, initializer=_helpers.fail, initargs=("init",))
    with pytest.raises(toolkit.BrokenPoolError):
        await pool.apply(_helpers.square, (1,))
    pool.terminate()
    await pool.join()


async def test_thread_pool_unpicklable_things_are_fine() -> None:
    import threading

    async with toolkit.ThreadPool(1) as pool:
        lock = threading.Lock()
        assert await pool.apply(_helpers.identity, (lock,)) is lock


async def test_pool_fork_context_runs_tasks() -> None:
    async with toolkit.Pool(2, context="fork") as pool:
        assert await pool.map(_helpers.square, range(20)) == [x * x for x in range(20)]
        assert await pool.apply(lambda: 5) == 5


def test_pool_left_open_when_the_loop_ends_leaves_no_workers() -> None:
    pids: list[int] = []

    async def main() -> None:
        pool = toolkit.Pool(2)
        pids.extend(
            await asyncio.gather(*(pool.apply(_helpers.sleep_pid, (0.05,)) for _ in range(2)))
        )

    asyncio.run(main())
    assert pids
    assert all(_gone(pid) for pid in pids)


async def test_thread_pool_maxtasksperchild_and_resize() -> None:
    import threading

    def name() -> str:  # thread idents are reused, names are not
        return threading.current_thread().name

    async with toolkit.ThreadPool(2, maxtasksperchild=2) as pool:
        names = await asyncio.gather(*(pool.apply(name) for _ in range(12)))
        assert max(names.count(n) for n in set(names)) <= 2
        pool.resize(3)
        await wait_until(lambda: pool.stats().idle + pool.stats().busy == 3)
        assert await pool.map(_helpers.square, range(5)) == [0, 1, 4, 9, 16]


async def test_thread_pool_cancel_abandons_the_running_task() -> None:
    async with toolkit.ThreadPool(1) as pool:
        task = asyncio.ensure_future(pool.apply(_helpers.sleep_then, (1.0, "late")))
        await wait_until(lambda: pool.stats().busy == 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        begin = time.monotonic()
        assert await pool.apply(_helpers.square, (2,)) == 4
        assert time.monotonic() - begin < 0.6  # a fresh thread took over (the old is busy ~1 s)


async def test_pool_close_and_a_map_left_by_break() -> None:
    # The loop's async-generator finalizer closes a map dropped mid-way, so
    # leaving the pool does not wait for the rest of an endless input.
    async with asyncio.timeout(20), toolkit.Pool(1) as pool:
        async for value in pool.imap(_helpers.square, itertools.count(), chunksize=4):
            if value >= 100:
                break
    async with toolkit.Pool(1) as pool:
        results = pool.imap(_helpers.square, itertools.count(), chunksize=4)
        async for value in results:
            if value >= 100:
                break
        await results.aclose()  # kept: closed by hand
    assert [x async for x in results] == []  # a closed map yields nothing more


async def test_pool_map_started_before_close_goes_on() -> None:
    pool = toolkit.Pool(2)
    results = pool.imap(_helpers.square, range(200), chunksize=5)
    first = await anext(results)
    pool.close()
    assert [first] + [x async for x in results] == [x * x for x in range(200)]
    await pool.join()


_INITIALIZER_SCRIPT = """
import asyncio, sys, toolkit
STATE = {}
def init(value):
    STATE["value"] = value
def read(_):
    return STATE["value"]
async def main():
    async with toolkit.Pool(2, initializer=init, initargs=(42,), context=sys.argv[1]) as pool:
        print(await pool.map(read, range(4), chunksize=1))
if __name__ == "__main__":
    asyncio.run(main())
"""


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_pool_script_initializer_fills_globals_its_tasks_read(tmp_path: Path, method: str) -> None:
    # The multiprocessing idiom: a script's own functions go by reference, so
    # the initializer and the task share the worker's module globals.
    import subprocess

    script = tmp_path / "script.py"
    script.write_text(_INITIALIZER_SCRIPT)
    result = subprocess.run(
        [sys.executable, str(script), method], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "[42, 42, 42, 42]", result.stderr


async def test_pool_apply_is_a_future_and_a_coroutine(pool1: toolkit.Pool) -> None:
    # gather takes it as a future (no Task per call); TaskGroup takes it as a coroutine.
    applied = pool1.apply(_helpers.square, (3,))
    assert isinstance(applied, asyncio.Future)
    assert asyncio.iscoroutine(applied)
    assert await applied == 9
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(pool1.apply(_helpers.square, (i,))) for i in range(5)]
    assert [t.result() for t in tasks] == [0, 1, 4, 9, 16]


async def test_pool_apply_in_a_cancelled_task_kills_the_worker(
    tmp_path: Path, pool1: toolkit.Pool
) -> None:
    started = tmp_path / "started"
    task = asyncio.create_task(pool1.apply(_helpers.mark_then_sleep, (str(started), 30)))
    await _wait_file(started)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await wait_until(lambda: _gone(int(started.read_text())))


async def test_pool_apply_bad_input_raises_at_the_call(pool1: toolkit.Pool) -> None:
    import threading

    with pytest.raises(toolkit.SerializationError):
        pool1.apply(_helpers.identity, (threading.Lock(),))


async def test_pool_submit_futures_work_with_asyncio_wait(pool: toolkit.Pool) -> None:
    futures = [pool.submit(_helpers.square, i) for i in range(4)]
    done, pending = await asyncio.wait(futures)
    assert not pending
    assert sorted(f.result() for f in done) == [0, 1, 4, 9]
    assert sorted([await f for f in asyncio.as_completed(futures)]) == [0, 1, 4, 9]


async def test_pool_imap_next_with_a_timeout(pool1: toolkit.Pool) -> None:
    # multiprocessing's IMapIterator.next(timeout): a timeout loses nothing.
    results = pool1.imap(_helpers.sleep_then, [0.3, 0.0, 0.0], chunksize=1)
    with pytest.raises(toolkit.TaskTimeoutError):
        await results.next(timeout=0.01)
    assert await results.next(timeout=10) is None
    assert [x async for x in results] == [None, None]
    with pytest.raises(StopAsyncIteration):
        await results.next()


def test_pool_cannot_be_pickled() -> None:
    import pickle

    pool = toolkit.Pool(1)
    with pytest.raises(NotImplementedError, match="cannot be passed"):
        pickle.dumps(pool)
    pool.close()


async def test_pool_map_async_reports_progress(pool1: toolkit.Pool) -> None:
    handle = pool1.map_async(_helpers.square, range(300))
    assert handle.total == 300
    assert await handle == [x * x for x in range(300)]
    assert handle.done_count == 300
    single = pool1.apply_async(_helpers.square, (2,))
    assert (single.done_count, single.total) == (None, None)
    await single


async def test_thread_pool_takes_the_stdlib_processes_keyword() -> None:
    async with toolkit.ThreadPool(processes=2) as pool:
        assert pool.stats().size == 2
        assert await pool.map(_helpers.square, range(4)) == [0, 1, 4, 9]
    with pytest.raises(TypeError, match="not both"):
        toolkit.ThreadPool(2, processes=3)


async def test_pool_runs_coroutine_functions_to_their_end(pool: toolkit.Pool) -> None:
    async_square = _helpers.async_square  # typed: apply of a coroutine function gives its value
    assert await pool.apply(async_square, (7,)) == 49
    assert await pool.map(async_square, range(5)) == [0, 1, 4, 9, 16]
    async with toolkit.ThreadPool(2) as threads:
        assert await threads.apply(async_square, (3,)) == 9
        assert await threads.map(async_square, range(3)) == [0, 1, 4]


async def test_pool_mixed_crashes_timeouts_and_cancels_leave_it_working(pool: toolkit.Pool) -> None:
    # Everything at once on 2 workers: every task ends with what its kind says,
    # nothing hangs, and the pool is whole at the end.
    import random

    rng = random.Random(11)
    kinds = [
        rng.choice(["ok", "ok", "ok", "slow", "crash", "timeout", "cancel"]) for _ in range(60)
    ]
    futures: list[asyncio.Future[Any]] = []
    for i, kind in enumerate(kinds):
        if kind == "ok":
            futures.append(pool.submit(_helpers.square, i))
        elif kind == "slow":
            futures.append(pool.submit(_helpers.sleep_then, 0.02, i))
        elif kind == "crash":
            futures.append(pool.submit(_helpers.os_exit, 7))
        elif kind == "timeout":
            futures.append(pool.apply(_helpers.sleep_then, (30, i), timeout=0.1))
        else:
            futures.append(pool.submit(_helpers.sleep_then, 30, i))
    await asyncio.sleep(0.05)
    for future, kind in zip(futures, kinds, strict=True):
        if kind == "cancel":
            future.cancel()
    async with asyncio.timeout(50):
        outcomes = await asyncio.gather(*futures, return_exceptions=True)
    for i, (kind, outcome) in enumerate(zip(kinds, outcomes, strict=True)):
        if kind == "ok":
            assert outcome == i * i
        elif kind == "slow":
            assert outcome == i
        elif kind == "crash":
            assert isinstance(outcome, toolkit.WorkerDiedError)
            assert outcome.exitcode == 7
        elif kind == "timeout":
            assert isinstance(outcome, toolkit.TaskTimeoutError)
        else:
            assert isinstance(outcome, asyncio.CancelledError)
    assert await pool.map(_helpers.square, range(50)) == [x * x for x in range(50)]
    stats = pool.stats()
    assert stats.worker_deaths == kinds.count("crash")
    assert (stats.queued, stats.running) == (0, 0)


async def test_inspect_find_pool_gives_the_pool_behind_a_snapshot_row() -> None:
    async with toolkit.ThreadPool(1, name="findable") as pool:
        assert await pool.apply(abs, (-2,)) == 2
        rows = [p for p in toolkit.inspect.snapshot().pools if p.stats.name == "findable"]
        assert rows
        assert toolkit.inspect.find_pool("findable") is pool
        assert toolkit.inspect.find_pool("no-such-pool") is None
