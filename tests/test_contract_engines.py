"""The engine contract: the same behaviours through every engine that runs tasks.

The engines: toolkit.Pool(2), ThreadPool(2), AsyncExecutor over a
ThreadPoolExecutor(2) and a ProcessPoolExecutor(2), to_process and to_thread.
Each is wrapped in a small adapter (``run(fn, *args)``, ``map(fn, items)``,
``async with``) so that one test states one promise of docs/executors.md and
docs/pools.md for all of them, on both loops. A promise about pickling holds
for the process engines only; the thread engines skip it, saying why.
"""

from __future__ import annotations

import abc
import asyncio
import concurrent.futures as cf
import os
import sys
import threading
from typing import TYPE_CHECKING, Any

import pytest

import toolkit
from tests import _helpers
from tests._waiting import wait_until

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
    from pathlib import Path
    from types import TracebackType
    from typing import Self

pytestmark = pytest.mark.timeout(60)


class Engine(abc.ABC):
    """An engine, as the contract sees it."""

    name: str
    in_processes: bool  # tasks run in other processes: pickled, with a remote traceback

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    @abc.abstractmethod
    async def run(self, fn: Callable[..., Any], /, *args: Any) -> Any: ...

    @abc.abstractmethod
    async def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]: ...

    @abc.abstractmethod
    async def capacity(self) -> int:
        """How many tasks it runs at once: one more waits in its queue."""


class PoolEngine(Engine):
    def __init__(self, pool: toolkit.Pool | toolkit.ThreadPool, name: str) -> None:
        self.pool, self.name = pool, name
        self.in_processes = isinstance(pool, toolkit.Pool)

    async def __aenter__(self) -> Self:
        await self.pool.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.pool.__aexit__(exc_type, exc, tb)

    async def run(self, fn: Callable[..., Any], /, *args: Any) -> Any:
        return await self.pool.apply(fn, args)

    async def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
        return await self.pool.map(fn, items)

    async def capacity(self) -> int:
        return self.pool.stats().size


class ExecutorEngine(Engine):
    def __init__(self, executor: cf.Executor, name: str) -> None:
        self.facade, self.name = toolkit.AsyncExecutor(executor), name
        self.in_processes = isinstance(executor, cf.ProcessPoolExecutor)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.facade.shutdown(wait=True, cancel_futures=True)

    async def run(self, fn: Callable[..., Any], /, *args: Any) -> Any:
        return await self.facade.run(fn, *args)

    async def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
        return await self.facade.map(fn, items)

    async def capacity(self) -> int:
        return self.facade.workers


class DefaultEngine(Engine):
    """to_process or to_thread: the default executors, shut down on the way out."""

    def __init__(self, function: Callable[..., Any], name: str) -> None:
        self.function, self.name = function, name
        self.in_processes = function is toolkit.to_process

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await toolkit.shutdown_default_executors()

    async def run(self, fn: Callable[..., Any], /, *args: Any) -> Any:
        return await self.function(fn, *args)

    async def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
        return list(await asyncio.gather(*(self.function(fn, item) for item in items)))

    async def capacity(self) -> int:
        cpus = os.cpu_count() or 1
        if self.function is toolkit.to_thread:
            return min(32, cpus + 4)  # its documented bound on threads
        return cpus  # the default pool: one worker per CPU


ENGINES: dict[str, Callable[[], Engine]] = {
    "Pool": lambda: PoolEngine(toolkit.Pool(2), "Pool"),
    "ThreadPool": lambda: PoolEngine(toolkit.ThreadPool(2), "ThreadPool"),
    "AsyncExecutor(ThreadPoolExecutor)": lambda: ExecutorEngine(
        cf.ThreadPoolExecutor(2), "AsyncExecutor(ThreadPoolExecutor)"
    ),
    "AsyncExecutor(ProcessPoolExecutor)": lambda: ExecutorEngine(
        cf.ProcessPoolExecutor(2, mp_context=toolkit.get_context()),
        "AsyncExecutor(ProcessPoolExecutor)",
    ),
    "to_process": lambda: DefaultEngine(toolkit.to_process, "to_process"),
    "to_thread": lambda: DefaultEngine(toolkit.to_thread, "to_thread"),
}
PROCESS_ENGINES = {"Pool", "AsyncExecutor(ProcessPoolExecutor)", "to_process"}


def engines(*, processes_only: str | None = None, skip: dict[str, str] | None = None) -> list[Any]:
    """The engine names; with processes_only, the thread engines are skipped for that reason;
    skip maps an engine name to the reason it lacks the feature under test."""
    params = []
    for name in ENGINES:
        marks = []
        if processes_only and name not in PROCESS_ENGINES:
            marks = [pytest.mark.skip(reason=f"{name}: {processes_only}")]
        elif skip and name in skip:
            marks = [pytest.mark.skip(reason=f"{name}: {skip[name]}")]
        params.append(pytest.param(name, id=name, marks=marks))
    return params


@pytest.fixture
async def engine(engine_name: str, default_executors: None) -> AsyncIterator[Engine]:
    async with ENGINES[engine_name]() as running:
        yield running


# --- the contract -------------------------------------------------------------------------------


@pytest.mark.parametrize("engine_name", engines())
async def test_engine_returns_the_result(engine: Engine) -> None:
    assert await engine.run(_helpers.add, 2, 3) == 5
    pid = await engine.run(_helpers.pid)
    assert (pid != os.getpid()) is engine.in_processes


@pytest.mark.parametrize("engine_name", engines())
async def test_engine_raises_the_tasks_own_exception(engine: Engine) -> None:
    with pytest.raises(_helpers.CustomError, match="kaboom") as info:
        await engine.run(_helpers.fail, "kaboom")
    assert type(info.value) is _helpers.CustomError
    cause = info.value.__cause__
    if engine.in_processes:  # the worker's traceback, as the cause
        assert isinstance(cause, toolkit.RemoteTraceback), repr(cause)
        assert "kaboom" in str(cause)
        assert "in fail" in str(cause)
    else:  # the exception itself, with its own traceback
        assert not isinstance(cause, toolkit.RemoteTraceback)
        assert info.value.__traceback__ is not None
    assert await engine.run(_helpers.square, 3) == 9


async def _task_exit(call: Awaitable[object]) -> toolkit.TaskExitError:
    """Await a call that must fail with TaskExitError; return the error.

    A raw SystemExit or KeyboardInterrupt reaching here becomes a plain
    failure: let through, it would end the whole pytest session.
    """
    try:
        result = await call
    except toolkit.TaskExitError as error:
        return error
    except (SystemExit, KeyboardInterrupt) as exc:
        pytest.fail(f"the task's {exc!r} reached the caller as it is")
    pytest.fail(f"sys.exit(3) in a task did not fail it; it returned {result!r}")


@pytest.mark.parametrize("engine_name", engines())
async def test_engine_task_exit_becomes_task_exit_error(engine: Engine) -> None:
    error = await _task_exit(engine.run(sys.exit, 3))
    assert error.code == 3
    assert error.kind == "SystemExit"
    assert isinstance(error.__cause__, SystemExit)
    assert await engine.run(_helpers.square, 7) == 49  # the engine goes on


@pytest.mark.parametrize("engine_name", engines())
async def test_engine_map_keeps_order(engine: Engine) -> None:
    # The first items finish last (late_for_small): results still come in input order.
    assert await engine.map(_helpers.late_for_small, range(6)) == list(range(6))
    assert await engine.map(_helpers.square, range(20)) == [x * x for x in range(20)]


@pytest.mark.parametrize("engine_name", engines())
async def test_engine_runs_lambdas(engine: Engine) -> None:
    """Process engines pickle a lambda by value; thread engines call it as it is."""
    assert await engine.run(lambda x: x * 6, 7) == 42
    assert await engine.map(lambda x: -x, range(4)) == [0, -1, -2, -3]


@pytest.mark.parametrize(
    "engine_name", engines(processes_only="threads take arguments as they are: nothing is pickled")
)
async def test_engine_unpicklable_argument_fails_at_the_call(engine: Engine) -> None:
    with pytest.raises(toolkit.SerializationError) as info:
        await asyncio.wait_for(engine.run(_helpers.identity, threading.Lock()), 10)
    # Named by the caller's own pickling: the call never reached a worker.
    assert info.value.argument == "argument 0"
    assert "lock" in info.value.type
    assert await engine.run(_helpers.square, 4) == 16


async def _fill(engine: Engine, tmp_path: Path, gate: Path) -> list[asyncio.Future[Any]]:
    """Occupy every worker with a task that waits for gate; return them once all have started."""
    capacity = await engine.capacity()
    started = [tmp_path / f"started-{i}" for i in range(capacity)]
    busy: list[asyncio.Future[Any]] = [
        asyncio.ensure_future(engine.run(_helpers.mark_then_wait, str(path), str(gate)))
        for path in started
    ]
    try:
        await wait_until(lambda: all(path.exists() for path in started), 5)
    except BaseException as exc:
        running = sum(path.exists() for path in started)
        gate.touch()  # noqa: ASYNC240 - a test's own directory
        await asyncio.wait_for(asyncio.gather(*busy, return_exceptions=True), 30)
        if isinstance(exc, AssertionError):
            pytest.fail(
                f"{engine.name}: of {capacity} tasks submitted together ({capacity} workers),"
                f" only {running} started within 5 s"
            )
        raise
    return busy


@pytest.mark.parametrize("engine_name", engines())
async def test_engine_runs_as_many_tasks_at_once_as_it_has_workers(
    engine: Engine, tmp_path: Path
) -> None:
    """After tiny tasks too (which an engine may batch), n workers run n long tasks at once."""
    # One after another, as sequential code calls: one worker may do them all, and
    # learn that its tasks are tiny (the first one, importing, is not).
    for x in range(20):
        assert await engine.run(_helpers.square, x) == x * x
    gate = tmp_path / "gate"
    busy = await _fill(engine, tmp_path, gate)
    gate.touch()
    assert all(await asyncio.wait_for(asyncio.gather(*busy), 30))


# ProcessPoolExecutor hands up to max_workers + 1 pending tasks to its call
# queue ahead of time and marks them running: those cannot be withdrawn
# (docs/executors.md, "Cancellation"). The toolkit's engines hold them back.
_PREFETCHES = {
    "AsyncExecutor(ProcessPoolExecutor)": "ProcessPoolExecutor runs up to max_workers + 1"
    " queued tasks it has already handed to its call queue (documented)",
}


@pytest.mark.parametrize("engine_name", engines(skip=_PREFETCHES))
async def test_engine_cancelled_queued_task_never_runs(engine: Engine, tmp_path: Path) -> None:
    capacity = await engine.capacity()
    gate, ran = tmp_path / "gate", tmp_path / "ran"
    busy = await _fill(engine, tmp_path, gate)
    try:
        # Every worker is busy: this one waits in the queue.
        queued = asyncio.ensure_future(engine.run(_helpers.touch, str(ran)))
        await asyncio.sleep(0.05)  # submitted, and waiting
        assert not queued.done()
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
    finally:
        gate.touch()
    assert await asyncio.wait_for(asyncio.gather(*busy), 30) == [True] * capacity
    # Tasks submitted after it: once they are all done, it would have run by now.
    assert await engine.map(_helpers.square, range(2 * capacity)) == [
        x * x for x in range(2 * capacity)
    ]
    await asyncio.sleep(0.05)
    assert not ran.exists(), "the cancelled task ran"
