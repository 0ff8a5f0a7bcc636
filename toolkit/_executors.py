"""Awaiting executors: ``to_thread``, ``to_process`` and ``AsyncExecutor``.

Theory of operation
-------------------
``AsyncExecutor`` wraps any ``concurrent.futures.Executor`` (threads,
processes, Dask's ``ClientExecutor``, loky) and turns each submitted task
into an asyncio future::

    submit(fn, *args) ──▶ [pickle the call here: SerializationError at the call]
                          executor.submit(run_call, payload) ──▶ cf.Future
                                                                   │ done (executor's thread):
                          asyncio.Future ◀── bridge (coalesced) ◀──┘ decode the outcome there,
                                │                                     off the loop thread
                                └─ cancelled or timed out ──▶ cf.Future.cancel()

* Out-of-process executors get pickled calls (see _serialize.py): lambdas
  and closures travel by value, bad arguments fail at the call, and a
  task's exception comes back as its own type with the worker's traceback.
* ``map`` keeps a bounded window of tasks in flight, pulls its input only
  as results are consumed (an endless generator runs in constant memory),
  and, out of process, batches inputs into chunks sized by how long they
  take in the worker (_chunking.py).
* Cancelling or timing out stops a task that has not started. A task that
  is already running in a thread or a ``ProcessPoolExecutor`` worker cannot be
  stopped: it runs to its end and its result is discarded. ``stats()``
  counts those as ``abandoned``; the toolkit's own ``Pool`` kills instead.

``to_thread`` does not go through an executor at all: it runs on a cache of
worker threads whose jobs post their outcome through the bridge
(_thread_cache.py), which is what makes it faster than
``loop.run_in_executor``.
"""

from __future__ import annotations

import asyncio
import collections
import collections.abc
import concurrent.futures as cf
import contextlib
import contextvars
import dataclasses
import itertools
import os
import threading
import weakref
from time import perf_counter
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, Protocol, TypeVar, cast, final

from ._bridge import bridge_for
from ._chunking import ChunkSizer
from ._errors import PoolClosedError, SerializationError, TaskTimeoutError, as_task_error
from ._guard import Guarded, start_forkserver
from ._serialize import (
    ChunkOutcome,
    dumps_call,
    dumps_chunk,
    load_chunk_outcome,
    load_outcome,
    run_call,
    run_chunk,
    run_chunk_here,
)
from ._thread_cache import ThreadCache
from ._validate import check_callable, check_positive_int, check_timeout

if TYPE_CHECKING:
    from collections.abc import (
        AsyncIterable,
        AsyncIterator,
        Awaitable,
        Callable,
        Generator,
        Iterable,
        Iterator,
    )
    from types import TracebackType
    from typing import Self

    from ._pool import Pool

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

__all__ = [
    "ALL_COMPLETED",
    "FIRST_COMPLETED",
    "FIRST_EXCEPTION",
    "AsyncExecutor",
    "ExecutorStats",
    "MapResult",
    "shutdown_default_executors",
    "to_process",
    "to_thread",
]

FIRST_COMPLETED = cf.FIRST_COMPLETED
FIRST_EXCEPTION = cf.FIRST_EXCEPTION
ALL_COMPLETED = cf.ALL_COMPLETED
_RETURN_WHEN = (FIRST_COMPLETED, FIRST_EXCEPTION, ALL_COMPLETED)


def _running_loop(what: str) -> asyncio.AbstractEventLoop:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError(f"{what} must be called from a running event loop") from None


# Loop-thread callbacks posted through the bridge: a future may have been
# cancelled by its awaiter meanwhile, in which case there is nothing to deliver.
def _set_result(fut: asyncio.Future[Any], value: Any) -> None:
    if not fut.done():
        fut.set_result(value)


def _set_exception(fut: asyncio.Future[Any], exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)


# --- to_thread ----------------------------------------------------------------------------------

_defaults_lock = threading.Lock()
_default_threads: ThreadCache | None = None


def _thread_cache() -> ThreadCache:
    global _default_threads
    cache = _default_threads
    if cache is None:
        with _defaults_lock:
            cache = _default_threads
            if cache is None:
                cache = _default_threads = ThreadCache(name="toolkit-to_thread")
    return cache


class _ThreadCall:
    """One to_thread call, run by a cached worker thread."""

    __slots__ = ("args", "bridge", "context", "fn", "future", "kwargs")

    def __init__(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        future: asyncio.Future[Any],
    ) -> None:
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.future = future
        self.context = contextvars.copy_context()  # as asyncio.to_thread: contextvars carry over
        self.bridge = bridge_for(future.get_loop())

    def __call__(self) -> None:
        if self.future.cancelled():  # cancelled before it started: skip it
            return
        try:
            result = self.context.run(self.fn, *self.args, **self.kwargs)
        except BaseException as exc:  # noqa: BLE001 - delivered to the awaiting task
            # sys.exit() or KeyboardInterrupt in fn ends the call, not the program.
            self.bridge.post(_set_exception, self.future, as_task_error(exc))
        else:
            self.bridge.post(_set_result, self.future, result)
        finally:
            del self.fn, self.args, self.kwargs  # drop references as soon as possible


async def to_thread(fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
    """Run a blocking function in a worker thread and return its result.

    Like ``asyncio.to_thread`` (contextvars carry over; at most
    ``min(32, cpu_count + 4)`` threads), several times faster under load, and
    with threads that leave after 10 s without work.

    Raises:
        TypeError: fn is not callable.
        Exception: whatever fn raises, as it raised it.

    Cancellation:
        A call that has not started is dropped. A call already running cannot
        be stopped: it runs to its end in its thread and its result is
        discarded; the awaiting task gets ``CancelledError`` at once.
    """
    check_callable(fn)
    future: asyncio.Future[R] = _running_loop("to_thread()").create_future()
    _thread_cache().submit(_ThreadCall(fn, args, kwargs, future))
    return await future


# --- to_process and the default executors -----------------------------------------------------


# The default process pool: a toolkit Pool per event loop, elastic (workers
# start on demand and leave after 5 minutes idle, as anyio's do). It belongs
# to the loop that started it: when that loop ends (asyncio.run, a Runner,
# pytest-asyncio, anyio), its workers are killed with it (_pool.py), so a
# program that runs loops one after another does not pile up processes.
_PROCESS_IDLE_TIMEOUT = 300.0
_default_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Pool] = (
    weakref.WeakKeyDictionary()
)


def _process_pool() -> Pool:
    loop = _running_loop("to_process()")
    pool = _default_pools.get(loop)
    if pool is None or pool._state != "running":
        from ._pool import Pool  # here: _pool imports this module

        with _defaults_lock:
            pool = _default_pools.get(loop)
            if pool is None or pool._state != "running":
                pool = Pool(name="to_process", idle_timeout=_PROCESS_IDLE_TIMEOUT)
                _default_pools[loop] = pool
    return pool


async def to_process(fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
    """Run a function in a worker process of the default process pool and return its result.

    The default pool is a ``toolkit.Pool`` of the event loop that calls: up
    to one worker per CPU, started on demand with the toolkit's start method
    (forkserver on Linux), leaving after 5 minutes idle, and ended with the
    loop. It shows in ``toolkit.inspect`` (the playground's ``ps`` and
    ``top``) as the pool named "to_process". Lambdas, closures and functions
    typed at a prompt are pickled by value.

    Raises:
        TypeError: fn is not callable.
        SerializationError: fn or an argument cannot be pickled (at the call).
        WorkerDiedError: the worker died running it (killed, ``os._exit``, a
            crash); only this call fails, the pool replaces the worker.
        TaskExitError: fn raised ``SystemExit`` or ``KeyboardInterrupt``.
        Exception: whatever fn raised in the worker, as its own type, with the
            worker's traceback as ``__cause__``.

    Cancellation:
        A call that has not started is dropped; one already running is
        stopped: its worker is killed (and replaced when needed).
    """
    return await _process_pool().apply(fn, args, kwargs)


async def _in_own_thread(fn: Callable[[], object], name: str) -> None:
    """Run a blocking call in a thread of its own, without blocking the loop.

    For shutting the default executors down: ``to_thread`` would start a new
    thread cache just as the old one goes away, and a cache cannot join its
    own threads from one of them.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    bridge = bridge_for(loop)
    failure: list[BaseException] = []

    def _run() -> None:
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised on the loop below
            failure.append(exc)
        finally:
            bridge.post(_set_result, done, None)

    thread = threading.Thread(target=_run, name=name, daemon=True)
    thread.start()
    await done  # cancelled: the daemon thread finishes the shutdown on its own
    thread.join()  # past its last statement: returns at once
    if failure:
        raise failure[0]


async def shutdown_default_executors() -> None:
    """Shut down the worker threads of ``to_thread`` and this loop's ``to_process`` pool.

    ``toolkit.run`` calls this on its way out (after cancelling the tasks
    left, so no call is still awaited). Other loops need not: the process
    pool ends with its loop, and idle threads leave after 10 s. Call it to
    end them sooner. A call still running is waited for. The next call to
    either function starts fresh ones.

    Cancellation:
        The executors are shut down anyway; only the wait is abandoned.
    """
    global _default_threads
    loop = asyncio.get_running_loop()
    with _defaults_lock:
        cache, _default_threads = _default_threads, None
        pool = _default_pools.pop(loop, None)
        stale = [p for lp, p in list(_default_pools.items()) if lp.is_closed()]
        for other in stale:
            _default_pools.pop(other._loop, None)  # type: ignore[arg-type]
    for other in stale:  # a loop that closed without cancelling its tasks
        other._kill_now()
    if pool is not None:
        pool.close()
        await pool.join()
    if cache is not None:
        await _in_own_thread(cache.shutdown, "toolkit-shutdown")


def _forget_defaults_in_child() -> None:
    # A forked child inherits the parent's executor objects but not their
    # threads or processes: start its own on demand.
    global _default_threads
    _default_threads = None
    _default_pools.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_defaults_in_child)


# --- AsyncExecutor --------------------------------------------------------------------------------


class _TaskFuture(asyncio.Future[T]):
    """The future ``submit`` returns: cancelling it cancels the executor's task at once.

    A done-callback would do it one loop iteration later, long enough for a
    worker to take the task. ``source`` is None until the executor has the
    task (submission is moved off the loop while worker processes start).
    """

    def __init__(self, *, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop=loop)
        self.source: cf.Future[Any] | None = None

    def cancel(self, msg: Any | None = None) -> bool:
        if not self.done() and self.source is not None:
            self.source.cancel()
        return super().cancel(msg)


@dataclasses.dataclass(frozen=True, slots=True)
class ExecutorStats:
    """A snapshot of an AsyncExecutor's counters.

    Attributes:
        submitted: tasks handed to the executor (a map's chunk counts once).
        in_flight: tasks submitted and not finished.
        completed: tasks that returned a value.
        failed: tasks that raised.
        cancelled: tasks cancelled before they started.
        timed_out: tasks that ran past the facade's timeout.
        abandoned: tasks whose awaiter gave up (cancelled or timed out) while
            they were already running: they ran on, their results discarded.
    """

    submitted: int
    in_flight: int
    completed: int
    failed: int
    cancelled: int
    timed_out: int
    abandoned: int


def _count_workers(executor: cf.Executor) -> int:
    workers = getattr(executor, "_max_workers", None)  # ThreadPool/ProcessPool/loky executors
    if isinstance(workers, int) and workers > 0:
        return workers
    client = getattr(executor, "_client", None)  # Dask's ClientExecutor
    if client is not None:
        try:
            return max(1, int(sum(client.nthreads().values())))
        except Exception:  # noqa: BLE001 - an estimate; a wrong one only costs throughput
            pass
    return os.cpu_count() or 1


def _guard_workers(executor: cf.ProcessPoolExecutor) -> None:
    """Have the executor's workers end with this process, even killed (_guard.py).

    ``ProcessPoolExecutor`` workers block on a call queue whose write end they
    hold themselves, so they never notice the parent's death: they stay, and
    keep the forkserver and resource tracker up with them. Each worker runs
    the executor's initializer first thing: a ``Guarded`` one starts the
    parent watcher before the user's initializer. Workers started before the
    facade existed are not guarded.
    """
    initializer = getattr(executor, "_initializer", _MISSING)
    if initializer is _MISSING or isinstance(initializer, Guarded):
        return  # another implementation, or guarded already
    context = getattr(executor, "_mp_context", None)
    if context is not None:
        start_forkserver(context)
    original = cast("Callable[..., object] | None", initializer)
    executor._initializer = Guarded(os.getpid(), original)


_MISSING = object()


def _stop_worker_processes(executor: cf.Executor) -> None:
    """Kill a process executor's workers now (their running tasks are lost)."""
    if not isinstance(executor, cf.ProcessPoolExecutor):
        return
    kill_workers = getattr(executor, "kill_workers", None)  # Python 3.14
    if kill_workers is not None:
        with contextlib.suppress(Exception):
            kill_workers()
        return
    processes = getattr(executor, "_processes", None) or {}
    for process in list(processes.values()):
        with contextlib.suppress(Exception):
            process.kill()


def _is_in_process(executor: cf.Executor) -> bool:
    return isinstance(executor, cf.ThreadPoolExecutor)


@final
class AsyncExecutor:
    """Await any ``concurrent.futures.Executor``: threads, processes, Dask, loky.

    Args:
        executor: the executor to drive. The facade owns it: ``shutdown``
            (and leaving ``async with``) shuts it down.
        timeout: a per-task limit in seconds for ``run`` and ``submit``;
            past it the task fails with ``TaskTimeoutError``.
        serialize: pickle calls in the caller (True for every executor but
            ``ThreadPoolExecutor``, by default). This is what gives lambdas by
            value, errors at the call, and map's chunking.

    Raises:
        TypeError: executor is not a ``concurrent.futures.Executor``.
        ValueError: timeout is not positive.
    """

    def __init__(
        self, executor: cf.Executor, *, timeout: float | None = None, serialize: bool | None = None
    ) -> None:
        given: object = executor  # typed: callers without a type checker pass anything
        if not isinstance(given, cf.Executor):
            hint = ""
            if hasattr(given, "imap_unordered") and hasattr(given, "submit"):
                hint = " (a toolkit pool is awaitable already: use its submit, apply and imap)"
            name = type(given).__name__
            raise TypeError(f"AsyncExecutor needs a concurrent.futures.Executor, not {name}{hint}")
        self._executor = executor
        if isinstance(executor, cf.ProcessPoolExecutor):
            _guard_workers(executor)
        self._timeout = check_timeout(timeout, allow_zero=False)
        self._serialize = not _is_in_process(executor) if serialize is None else bool(serialize)
        self._workers: int | None = None
        self._closed = False
        self._outstanding: set[cf.Future[Any]] = set()
        # Submits waiting for a helper thread while worker processes start (_starting_workers).
        self._backlog: collections.deque[
            tuple[_TaskFuture[Any], Callable[[Any], Any] | None, Callable[..., Any], Any, Any]
        ] = collections.deque()
        self._backlog_lock = threading.Lock()
        self._counts = collections.Counter[str]()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<toolkit.AsyncExecutor {state} over {self._executor!r}>"

    @property
    def executor(self) -> cf.Executor:
        """The executor underneath, for code that needs the plain one."""
        return self._executor

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def workers(self) -> int:
        """How many tasks the executor runs at once (its worker count)."""
        if self._workers is None:
            self._workers = _count_workers(self._executor)
        return self._workers

    @property
    def _map_workers(self) -> int:
        return self.workers

    def _map_started(self, state: _MapState[Any]) -> None:
        pass  # a facade has no close() that must wait for maps

    def _map_finished(self, state: _MapState[Any]) -> None:
        pass

    def stats(self) -> ExecutorStats:
        """Return a snapshot of the facade's counters."""
        c = self._counts
        return ExecutorStats(
            submitted=c["submitted"],
            in_flight=len(self._outstanding),
            completed=c["completed"],
            failed=c["failed"],
            cancelled=c["cancelled"],
            timed_out=c["timed_out"],
            abandoned=c["abandoned"],
        )

    # -- single tasks -------------------------------------------------------------------------

    def submit(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> asyncio.Future[R]:
        """Start fn(*args, **kwargs) on the executor; return a future of its result.

        The future can be awaited, passed to ``asyncio.wait``/``gather``, or to
        this facade's ``wait`` and ``as_completed``.

        Raises:
            TypeError: fn is not callable.
            SerializationError: fn or an argument cannot be pickled.
            PoolClosedError: the facade or its executor was shut down.
            RuntimeError: no event loop is running.

        Cancellation:
            Cancelling the future cancels the task if it has not started.
        """
        check_callable(fn)
        loop = _running_loop("submit()")
        self._check_open()
        if self._serialize:
            payload = dumps_call(fn, args, kwargs)
            return self._submit(loop, load_outcome, self._timeout, run_call, payload)
        return self._submit(loop, None, self._timeout, fn, *args, **kwargs)

    async def run(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run fn(*args, **kwargs) on the executor and return its result.

        Raises:
            TypeError: fn is not callable.
            SerializationError: fn or an argument cannot be pickled.
            PoolClosedError: the facade or its executor was shut down.
            TaskTimeoutError: the task ran past the facade's timeout.
            Exception: whatever fn raised, as its own type.

        Cancellation:
            A task that has not started is cancelled; one already running runs
            to its end and its result is discarded.
        """
        # Cancelling this coroutine cancels the future it awaits, which
        # cancels the executor's task at once (_TaskFuture).
        return await self.submit(fn, *args, **kwargs)

    def _check_open(self) -> None:
        if self._closed:
            raise PoolClosedError("cannot submit to an AsyncExecutor after shutdown")

    def _starting_workers(self) -> bool:
        """Tell whether a submit may have to start a worker process first.

        ``ProcessPoolExecutor.submit`` starts workers on demand, blocking:
        about 35 ms for the first forkserver start, a few ms a worker after.
        Until every worker is up, submits are made from a helper thread.
        """
        executor = self._executor
        if not isinstance(executor, cf.ProcessPoolExecutor):
            return False
        if getattr(executor, "_broken", False) or getattr(executor, "_shutdown_thread", False):
            return False  # submit fails at once: let it fail at the call
        processes = getattr(executor, "_processes", None)
        return processes is not None and len(processes) < self.workers

    def _executor_submit(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> cf.Future[Any]:
        try:
            return self._executor.submit(fn, *args, **kwargs)
        except cf.BrokenExecutor:
            raise
        except RuntimeError as exc:
            # concurrent.futures says "cannot schedule new futures after
            # [interpreter] shutdown"; any other RuntimeError is not ours to rename.
            if "shutdown" not in str(exc):
                raise
            raise PoolClosedError(f"the executor was shut down: {exc}") from exc

    def _submit(
        self,
        loop: asyncio.AbstractEventLoop,
        decode: Callable[[Any], Any] | None,
        timeout: float | None,
        fn: Callable[..., Any],
        /,
        *args: Any,
        **kwargs: Any,
    ) -> _TaskFuture[Any]:
        """Hand a call to the executor; return the awaiter's future."""
        dest: _TaskFuture[Any] = _TaskFuture(loop=loop)
        with self._backlog_lock:
            # Once one submit went off the loop, the next ones follow it there
            # until it has caught up: the executor sees them in call order.
            off_loop = bool(self._backlog) or self._starting_workers()
            if off_loop:
                self._backlog.append((dest, decode, fn, args, kwargs))
                start_drain = len(self._backlog) == 1
        if not off_loop:
            self._attach(dest, self._executor_submit(fn, args, kwargs), decode)
        elif start_drain:
            _thread_cache().submit(self._drain_backlog)
        if timeout is not None:
            timer = loop.call_later(timeout, self._expire, dest, timeout)
            dest.add_done_callback(lambda _: timer.cancel())
        dest.add_done_callback(self._on_dest_done)
        return dest

    def _drain_backlog(self) -> None:
        """Submit the backlog in order, off the loop (a helper thread)."""
        while True:
            with self._backlog_lock:
                dest, decode, fn, args, kwargs = self._backlog[0]
            bridge = bridge_for(dest.get_loop())
            try:
                source = self._executor_submit(fn, args, kwargs)
            except BaseException as exc:  # noqa: BLE001 - delivered to the awaiter
                bridge.post(_set_exception, dest, exc)
            else:
                bridge.post(self._attach, dest, source, decode)
            with self._backlog_lock:
                # Popped only now: while it is in the deque, new submits queue behind it.
                self._backlog.popleft()
                if not self._backlog:
                    return

    def _on_dest_done(self, dest: asyncio.Future[Any]) -> None:
        """Stop the executor's task if the awaiter gave up on it (loop thread)."""
        source = cast("_TaskFuture[Any]", dest).source
        if source is None or not (
            dest.cancelled() or isinstance(dest.exception(), TaskTimeoutError)
        ):
            return  # not submitted yet: _attach cancels it when it is
        if source.cancel():
            self._counts["cancelled"] += 1
        elif not source.done():
            self._counts["abandoned"] += 1

    def _attach(
        self, dest: _TaskFuture[Any], source: cf.Future[Any], decode: Callable[[Any], Any] | None
    ) -> None:
        """Tie the executor's future to the awaiter's (loop thread)."""
        loop = dest.get_loop()
        bridge = bridge_for(loop)
        outstanding = self._outstanding
        counts = self._counts
        counts["submitted"] += 1
        dest.source = source
        outstanding.add(source)

        def _deliver_cancel() -> None:
            if dest.done():
                return
            counts["cancelled"] += 1
            if self._closed:  # shutdown(cancel_futures=True): say so, not a bare CancelledError
                dest.set_exception(
                    PoolClosedError("the executor was shut down before this task started")
                )
            else:
                dest.cancel()

        def _deliver(ok: bool, value: Any) -> None:
            # Counted even when nobody waits any more: the task did run.
            if ok and isinstance(value, ChunkOutcome) and value.error is not None:
                ok_count = False  # a map chunk that stopped at a failing item
            else:
                ok_count = ok
            counts["completed" if ok_count else "failed"] += 1
            if dest.done():
                return
            if ok:
                dest.set_result(value)
            else:
                dest.set_exception(value)

        def _on_source_done(fut: cf.Future[Any]) -> None:
            # Runs on the executor's thread: decoding (unpickling) happens here, off the loop.
            outstanding.discard(fut)
            if fut.cancelled():
                bridge.post(_deliver_cancel)
                return
            exc = fut.exception()
            if exc is not None:
                # A thread executor hands back a task's SystemExit as it is.
                bridge.post(_deliver, False, as_task_error(exc))
                return
            if decode is None:
                bridge.post(_deliver, True, fut.result())
                return
            try:
                value = decode(fut.result())
            except BaseException as error:  # noqa: BLE001 - the task's own exception, delivered
                bridge.post(_deliver, False, error)
            else:
                bridge.post(_deliver, True, value)

        if dest.done():  # cancelled or timed out while it was being submitted
            self._on_dest_done(dest)
        source.add_done_callback(_on_source_done)

    def _expire(self, dest: _TaskFuture[Any], timeout: float) -> None:
        if dest.done():
            return
        self._counts["timed_out"] += 1
        running = dest.source is not None and dest.source.running()
        state = "still running" if running else "not started"
        dest.set_exception(TaskTimeoutError(f"task did not finish within {timeout:g} s ({state})"))

    # -- many tasks ---------------------------------------------------------------------------

    def map(
        self,
        fn: Callable[..., R],
        /,
        *iterables: Iterable[Any] | AsyncIterable[Any],
        ordered: bool = True,
        window: int | None = None,
        chunksize: int | None = None,
        timeout: float | None = None,
    ) -> MapResult[R]:
        """Apply fn to every item of the iterables, lazily; iterate the results.

        ``async for result in ex.map(fn, items)`` or ``results = await ex.map(...)``.
        Sync and async iterables both work; several are zipped, as in the
        builtin ``map``.

        Args:
            fn: the function; called as fn(a, b, ...) with one item of each iterable.
            ordered: yield results in input order (True) or as they finish.
            window: at most this many tasks (chunks) in flight; input is pulled
                only to keep the window full. Default: twice the worker count.
            chunksize: inputs per task. Default: 1 in process, adaptive out of
                process (chunks aimed at ~20 ms of work each).
            timeout: seconds for the whole map, from the call; past it the
                iteration raises ``TaskTimeoutError``.

        Raises:
            TypeError, ValueError: bad arguments (at the call).
            PoolClosedError: the facade was shut down.

        Cancellation:
            Closing the iterator (``break``, ``aclose()``, leaving ``async with``,
            cancelling the consumer) cancels every task in flight that has not
            started and stops pulling input.
        """
        check_callable(fn)
        if not iterables:
            raise TypeError("map() needs at least one iterable")
        for iterable in iterables:
            if not hasattr(iterable, "__iter__") and not hasattr(iterable, "__aiter__"):
                raise TypeError(f"map() arguments must be iterable, not {type(iterable).__name__}")
        window = check_positive_int(window, "window")
        chunksize = check_positive_int(chunksize, "chunksize")
        timeout = check_timeout(timeout)
        if not isinstance(ordered, bool):
            raise TypeError(f"ordered must be a bool, not {ordered!r}")
        self._check_open()
        return MapResult(self, fn, iterables, ordered, window, chunksize, timeout)

    def _submit_chunk(
        self, loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], chunk: list[Any], star: bool
    ) -> _TaskFuture[ChunkOutcome]:
        if self._serialize:
            payload = dumps_chunk(fn, chunk, star)
            return self._submit(loop, load_chunk_outcome, None, run_chunk, payload)
        return self._submit(loop, None, None, run_chunk_here, fn, chunk, star)

    def as_completed(
        self, fs: Iterable[Awaitable[Any] | cf.Future[Any]], *, timeout: float | None = None
    ) -> AsyncIterator[asyncio.Future[Any]]:
        """Yield the given futures as they finish, like ``concurrent.futures.as_completed``.

        Args:
            fs: futures from ``submit`` (coroutines and concurrent futures are
                wrapped); duplicates are yielded once.
            timeout: seconds from the call; past it the iteration raises
                ``TaskTimeoutError``.

        Cancellation:
            Stopping the iteration leaves the futures running.
        """
        timeout = check_timeout(timeout)
        loop = _running_loop("as_completed()")
        futures = _as_futures(fs, loop)
        deadline = None if timeout is None else loop.time() + timeout
        return _as_completed(futures, deadline, timeout)

    async def wait(
        self,
        fs: Iterable[Awaitable[Any] | cf.Future[Any]],
        *,
        timeout: float | None = None,
        return_when: str = ALL_COMPLETED,
    ) -> tuple[set[asyncio.Future[Any]], set[asyncio.Future[Any]]]:
        """Wait for the futures, like ``concurrent.futures.wait``; return (done, not_done).

        Args:
            return_when: ``FIRST_COMPLETED``, ``FIRST_EXCEPTION`` or ``ALL_COMPLETED``.
            timeout: return when it expires, whatever is done (no error, as
                in the stdlib).

        Cancellation:
            Cancelling the wait leaves the futures running.
        """
        if return_when not in _RETURN_WHEN:
            raise ValueError(
                f"return_when must be one of {', '.join(_RETURN_WHEN)}, not {return_when!r}"
            )
        timeout = check_timeout(timeout)
        futures = _as_futures(fs, asyncio.get_running_loop())
        if not futures:
            return set(), set()
        done, pending = await asyncio.wait(futures, timeout=timeout, return_when=return_when)
        return done, pending

    # -- shutdown -----------------------------------------------------------------------------

    async def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop taking tasks and shut the executor down.

        Args:
            wait: wait (without blocking the loop) for running tasks to end.
            cancel_futures: cancel the tasks that have not started; their
                awaiters get ``PoolClosedError``.

        Cancellation:
            The executor is shut down anyway; only the wait is abandoned.
        """
        self._closed = True
        if cancel_futures:
            for future in list(self._outstanding):
                future.cancel()
        if wait:
            await to_thread(self._shutdown_executor, True, cancel_futures)
        else:
            self._shutdown_executor(False, cancel_futures)

    def _shutdown_executor(self, wait: bool, cancel_futures: bool) -> None:
        try:
            self._executor.shutdown(wait=wait, cancel_futures=cancel_futures)
        except TypeError:  # Dask's ClientExecutor.shutdown has no cancel_futures
            self._executor.shutdown(wait=wait)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Normal exit: every submitted task finishes. An error or a
        # cancellation (Ctrl-C, SIGTERM through toolkit.run): tasks not started
        # are cancelled and worker processes stopped, not waited for
        # (DESIGN.md, "async with"). Threads cannot be stopped: they are waited for.
        if exc_type is not None:
            self._closed = True
            for future in list(self._outstanding):
                future.cancel()
            _stop_worker_processes(self._executor)
        await self.shutdown(wait=True, cancel_futures=exc_type is not None)


# While yielding one chunk's results, a map looks at the clock every
# _YIELD_EVERY results and hands the loop back once it held it _HOLD_AT_MOST.
_YIELD_EVERY = 256
_HOLD_AT_MOST = 0.001


def _as_futures(
    fs: Iterable[Awaitable[T] | cf.Future[T]], loop: asyncio.AbstractEventLoop
) -> list[asyncio.Future[T]]:
    if isinstance(fs, cf.Future | asyncio.Future) or not hasattr(fs, "__iter__"):
        raise TypeError(f"expected an iterable of futures, not {type(fs).__name__}")
    futures: dict[int, asyncio.Future[T]] = {}
    for f in fs:
        if isinstance(f, cf.Future):
            future: asyncio.Future[T] = asyncio.wrap_future(f, loop=loop)
        elif asyncio.isfuture(f) or asyncio.iscoroutine(f) or hasattr(f, "__await__"):
            future = asyncio.ensure_future(f, loop=loop)
        else:
            raise TypeError(f"expected futures or awaitables, got {type(f).__name__} {f!r}")
        futures.setdefault(id(future), future)
    return list(futures.values())


async def _as_completed(
    futures: list[asyncio.Future[T]], deadline: float | None, timeout: float | None
) -> AsyncIterator[asyncio.Future[T]]:
    finished: asyncio.Queue[asyncio.Future[T]] = asyncio.Queue()
    for future in futures:
        if future.done():  # yielded first, even with timeout=0 (a poll)
            finished.put_nowait(future)
        else:
            future.add_done_callback(finished.put_nowait)
    try:
        for remaining in range(len(futures), 0, -1):
            if not finished.empty():
                yield finished.get_nowait()
                continue
            if deadline is None:
                yield await finished.get()
                continue
            try:
                async with asyncio.timeout_at(deadline):
                    future = await finished.get()
            except TimeoutError:
                raise TaskTimeoutError(
                    f"{remaining} (of {len(futures)}) futures unfinished after {timeout:g} s"
                ) from None
            yield future
    finally:
        for future in futures:
            future.remove_done_callback(finished.put_nowait)


# --- map ------------------------------------------------------------------------------------------


class _MapEngine(Protocol):
    """What a map needs from whatever runs its chunks (AsyncExecutor, Pool, ThreadPool)."""

    _serialize: bool

    @property
    def _map_workers(self) -> int: ...

    def _check_open(self) -> None: ...

    def _submit_chunk(
        self, loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], chunk: list[Any], star: bool
    ) -> asyncio.Future[ChunkOutcome]: ...

    def _map_started(self, state: _MapState[Any]) -> None: ...

    def _map_finished(self, state: _MapState[Any]) -> None: ...


class _Inputs:
    """The inputs of a map, pulled a chunk at a time from sync or async iterables.

    With one iterable a chunk is a list of items (fn(item): no tuple per
    input); with several it is a list of argument tuples, zipped.
    """

    __slots__ = ("_async", "_sync", "_zipped", "star")

    def __init__(
        self, iterables: tuple[Iterable[Any] | AsyncIterable[Any], ...], star: bool = False
    ) -> None:
        self._sync: Iterator[Any] | None = None
        self._async: list[AsyncIterator[Any]] | None = None
        self._zipped = len(iterables) > 1
        self.star = star or self._zipped
        if not any(isinstance(it, collections.abc.AsyncIterable) for it in iterables):
            sync = cast("tuple[Iterable[Any], ...]", iterables)
            # Shortest wins, as in the builtin map().
            self._sync = zip(*sync, strict=False) if self._zipped else iter(sync[0])
        else:
            self._async = [_aiter(it) for it in iterables]

    async def take(self, n: int) -> list[Any]:
        if self._sync is not None:
            return list(itertools.islice(self._sync, n))
        assert self._async is not None
        chunk: list[Any] = []
        while len(chunk) < n:
            try:
                item = tuple([await anext(it) for it in self._async])
            except StopAsyncIteration:
                break
            chunk.append(item if self._zipped else item[0])
        return chunk


async def _from_sync(iterable: Iterable[T]) -> AsyncIterator[T]:
    for item in iterable:
        yield item


def _aiter(iterable: Iterable[T] | AsyncIterable[T]) -> AsyncIterator[T]:
    if isinstance(iterable, collections.abc.AsyncIterable):
        return aiter(iterable)
    return _from_sync(iterable)


@final
class MapResult(Generic[R]):
    """The results of a map: an async iterator, also awaitable as a list.

    Nothing is submitted until the first result is asked for. ``done`` counts
    the results yielded so far and ``total`` is the number of inputs when it
    is known (a sized iterable), else None: enough for a progress bar.
    """

    def __init__(
        self,
        executor: _MapEngine,
        fn: Callable[..., R],
        iterables: tuple[Iterable[Any] | AsyncIterable[Any], ...],
        ordered: bool,
        window: int | None,
        chunksize: int | None,
        timeout: float | None,
        *,
        star: bool = False,
    ) -> None:
        # The generator holds the state, never this object: an abandoned map
        # (a break, no aclose) is then freed at once, and the loop's
        # async-generator finalizer closes it, instead of a reference cycle
        # waiting for the cyclic GC while a pool's close() waits for the map.
        self._state = _MapState(executor, fn, iterables, ordered, window, chunksize, timeout, star)
        self._results = self._state.run()
        self._state.generator = weakref.ref(self._results)  # weak: see above
        self._step: asyncio.Future[R] | None = None

    @property
    def done(self) -> int:
        """How many results were yielded so far."""
        return self._state.done

    @property
    def total(self) -> int | None:
        """How many inputs there are, when the input is sized; else None."""
        return self._state.total

    def __aiter__(self) -> AsyncIterator[R]:
        return self if self._step is not None else self._results

    def __anext__(self) -> Awaitable[R]:
        step = self._step
        if step is not None:  # a next(timeout) that timed out left its step running
            self._step = None
            return step
        return self._results.__anext__()

    async def next(self, timeout: float | None = None) -> R:
        """Return the next result, waiting at most timeout seconds (``IMapIterator.next``).

        Raises:
            StopAsyncIteration: no more results.
            TaskTimeoutError: none within timeout (also a ``multiprocessing.TimeoutError``);
                the map goes on, and the next call returns that result.

        Cancellation:
            Safe: the map goes on; the result is kept for the next call.
        """
        timeout = check_timeout(timeout)
        step = self._step
        if step is None:
            step = self._step = asyncio.ensure_future(self._results.__anext__())
        await asyncio.wait([step], timeout=timeout)
        if not step.done():
            raise TaskTimeoutError(f"no result within {timeout:g} s (the map goes on)")
        self._step = None
        return step.result()

    def __await__(self) -> Generator[Any, None, list[R]]:
        return self._collect().__await__()

    async def _collect(self) -> list[R]:
        return [result async for result in self]

    async def aclose(self) -> None:
        """Stop the map: cancel tasks not started, pull no more input."""
        step, self._step = self._step, None
        if step is not None:
            step.cancel()
            await asyncio.wait([step])
        await self._results.aclose()  # type: ignore[attr-defined]

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class _MapState(Generic[R]):
    """A map's parameters and progress, and the generator that runs it."""

    def __init__(
        self,
        executor: _MapEngine,
        fn: Callable[..., R],
        iterables: tuple[Iterable[Any] | AsyncIterable[Any], ...],
        ordered: bool,
        window: int | None,
        chunksize: int | None,
        timeout: float | None,
        star: bool,
    ) -> None:
        self._executor = executor
        self._star = star
        self.done = 0
        self.total: int | None = None
        if len(iterables) == 1 and hasattr(iterables[0], "__len__"):
            with contextlib.suppress(Exception):  # a broken __len__ just means "unknown"
                self.total = len(iterables[0])  # type: ignore[arg-type]
        self._fn = fn
        self._iterables = iterables
        self._ordered = ordered
        self._window = window
        self._chunksize = chunksize
        self._timeout = timeout
        self._called_at = perf_counter()  # the timeout runs from the call, as in the stdlib
        self.generator: weakref.ref[AsyncIterator[R]] | None = None
        self._pending: collections.deque[asyncio.Future[ChunkOutcome]] | None = None
        self._ended: BaseException | None = None  # end(): raised at the consumer's next step
        self._finished = False
        self.consumer_task = False  # map_async: a task of its own consumes it

    def held(self) -> bool:
        """Whether the map waits for its consumer: started, paused at a result nobody asked for."""
        if self.consumer_task:
            return False
        generator = self.generator() if self.generator is not None else None
        return generator is None or not getattr(generator, "ag_running", True)

    def end(self, error: BaseException) -> None:
        """Stop the map from outside (its pool closes): its next step raises error.

        Chunks in flight are cancelled and the engine is told at once, without
        running the generator (its consumer may never come back).
        """
        if self._ended is not None or self._finished:
            return
        self._ended = error
        for future in self._pending or ():
            future.cancel()
        self._finish()

    def _finish(self) -> None:
        if not self._finished:
            self._finished = True
            self._executor._map_finished(self)

    def _sizer(self, workers: int) -> ChunkSizer:
        if self._chunksize is not None or not self._executor._serialize:
            return ChunkSizer(self._chunksize or 1)
        return ChunkSizer(length=self.total, workers=workers)

    async def run(self) -> AsyncIterator[R]:
        executor = self._executor
        loop = asyncio.get_running_loop()
        deadline = None
        if self._timeout is not None:
            deadline = loop.time() + self._timeout - (perf_counter() - self._called_at)
        workers = executor._map_workers
        window = self._window or 2 * workers
        sizer = self._sizer(workers)
        inputs = _Inputs(self._iterables, self._star)
        fn = self._fn
        pending: collections.deque[asyncio.Future[ChunkOutcome]] = collections.deque()
        self._pending = pending
        exhausted = False
        offset = 0  # index of the next input: names a bad one in errors

        async def fill() -> None:
            nonlocal exhausted, offset
            while not exhausted and len(pending) < window:
                executor._check_open()
                chunk = await inputs.take(sizer.next_size())
                if not chunk:
                    exhausted = True
                    return
                try:
                    pending.append(executor._submit_chunk(loop, fn, chunk, inputs.star))
                except SerializationError as exc:
                    exhausted = True  # the map ends at the bad input
                    pending.extend(self._split_bad_chunk(loop, chunk, inputs.star, offset, exc))
                    return
                offset += len(chunk)

        executor._map_started(self)
        try:
            await fill()
            while pending:
                if self._ordered:
                    head = pending[0]
                else:
                    head = await _first_done(pending, deadline, self._timeout)
                try:
                    if deadline is None:
                        outcome = await head
                    else:
                        async with asyncio.timeout_at(deadline):
                            outcome = await head
                except TimeoutError:
                    raise TaskTimeoutError(
                        f"map did not finish within {self._timeout:g} s"
                    ) from None
                pending.remove(head)
                sizer.record(len(outcome.results) + (outcome.error is not None), outcome.elapsed)
                if outcome.error is None:
                    await fill()
                results = outcome.results
                suspended = perf_counter()
                for start in range(0, len(results), _YIELD_EVERY):
                    if start and perf_counter() - suspended > _HOLD_AT_MOST:
                        # A consumer that never awaits would otherwise hold the
                        # loop for a whole chunk (thousands of results).
                        await asyncio.sleep(0)
                        suspended = perf_counter()
                    batch = results[start : start + _YIELD_EVERY]
                    for result in batch:
                        yield result
                        if self._ended is not None:
                            raise self._ended
                    self.done += len(batch)
                if outcome.error is not None:
                    raise outcome.error
        finally:
            for future in pending:
                future.cancel()  # cancels the executor's (pool's) task at once
            self._finish()

    def _split_bad_chunk(
        self,
        loop: asyncio.AbstractEventLoop,
        chunk: list[Any],
        star: bool,
        offset: int,
        error: SerializationError,
    ) -> list[asyncio.Future[ChunkOutcome]]:
        """Submit the inputs before the unpicklable one; fail the map at that one."""
        if error.argument == "the function":
            raise error
        futures: list[asyncio.Future[ChunkOutcome]] = []
        for index, item in enumerate(chunk):
            try:
                dumps_call(self._fn, item if star else (item,), {})
            except SerializationError as exc:
                named = SerializationError(
                    f"map input {offset + index} ({exc.argument})", exc.type, exc.reason
                )
                if index:
                    futures.append(
                        self._executor._submit_chunk(loop, self._fn, chunk[:index], star)
                    )
                failed: asyncio.Future[ChunkOutcome] = loop.create_future()
                failed.set_result(ChunkOutcome([], named, 0.0))
                futures.append(failed)
                return futures
        raise error


async def _first_done(
    pending: collections.deque[asyncio.Future[ChunkOutcome]],
    deadline: float | None,
    timeout: float | None,
) -> asyncio.Future[ChunkOutcome]:
    for future in pending:
        if future.done():
            return future
    remaining = None if deadline is None else max(0.0, deadline - asyncio.get_running_loop().time())
    done, _ = await asyncio.wait(pending, timeout=remaining, return_when=FIRST_COMPLETED)
    if not done:
        raise TaskTimeoutError(f"map did not finish within {timeout:g} s")
    return next(iter(done))
