"""Awaiting executors: ``AsyncExecutor``, and ``to_process`` on the default pool.

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

``to_process`` runs on a toolkit ``Pool`` per event loop (_pool.py); the
map engine is _map.py; ``to_thread`` is _core/_threads.py.
"""

from __future__ import annotations

import asyncio
import collections
import collections.abc
import concurrent.futures as cf
import contextlib
import dataclasses
import os
import threading
import weakref
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast, final

from ._core import _threads
from ._core._bridge import bridge_for
from ._core._cpython import (
    dask_executor_client,
    executor_broken,
    executor_initializer,
    executor_max_workers,
    executor_mp_context,
    executor_processes,
    executor_shutting_down,
    set_executor_initializer,
)
from ._core._errors import PoolClosedError, TaskTimeoutError, as_task_error
from ._core._forking import renew_locks_in_child
from ._core._guard import Guarded, start_forkserver
from ._core._serialize import (
    ChunkOutcome,
    dumps_call,
    dumps_chunk,
    load_chunk_outcome,
    load_outcome,
    run_call,
    run_chunk,
    run_chunk_here,
)
from ._core._threads import (
    default_cache,
    running_loop as _running_loop,
    set_exception_if_pending,
    to_thread,
)
from ._core._validate import check_callable, check_positive_int, check_timeout
from ._map import MapResult

if TYPE_CHECKING:
    from collections.abc import (
        AsyncIterable,
        AsyncIterator,
        Awaitable,
        Callable,
        Iterable,
    )
    from types import TracebackType
    from typing import Self

    from ._map import _MapState
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
    "shutdown_default_executors",
    "to_process",
]

FIRST_COMPLETED = cf.FIRST_COMPLETED
"""``AsyncExecutor.wait``'s ``return_when``: return as soon as any future finishes or is cancelled.

The same string as ``concurrent.futures.FIRST_COMPLETED`` (and asyncio's).
"""
FIRST_EXCEPTION = cf.FIRST_EXCEPTION
"""``AsyncExecutor.wait``'s ``return_when``: return when any future raises, else when all finish.

The same string as ``concurrent.futures.FIRST_EXCEPTION`` (and asyncio's).
"""
ALL_COMPLETED = cf.ALL_COMPLETED
"""``AsyncExecutor.wait``'s ``return_when`` (its default): return when every future has finished.

The same string as ``concurrent.futures.ALL_COMPLETED`` (and asyncio's).
"""
_RETURN_WHEN = (FIRST_COMPLETED, FIRST_EXCEPTION, ALL_COMPLETED)


# --- to_process and the default executors -----------------------------------------------------


# The default process pool: a toolkit Pool per event loop, elastic (workers
# start on demand and leave after 5 minutes idle, as anyio's do). It belongs
# to the loop that started it: when that loop ends (asyncio.run, a Runner,
# pytest-asyncio, anyio), its workers are killed with it (_pool.py), so a
# program that runs loops one after another does not pile up processes.
_PROCESS_IDLE_TIMEOUT = 300.0
_defaults_lock = threading.Lock()
renew_locks_in_child(globals(), "_defaults_lock")
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
        RuntimeError: not called from a running asyncio event loop.
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


async def shutdown_default_executors() -> None:
    """Shut down the worker threads of ``to_thread`` and this loop's ``to_process`` pool.

    ``toolkit.run`` calls this on its way out (after cancelling the tasks
    left, so no call is still awaited). Other loops need not: the process
    pool ends with its loop, and idle threads leave after 10 s. Call it to
    end them sooner. A call still running is waited for. The next call to
    either function starts fresh ones. It raises nothing.

    Cancellation:
        Safe: both are detached at the call, and later calls start fresh
        ones either way. The process pool is closed first, so its workers
        leave once their calls end. Cancelled while waiting for them, the old
        threads are told to leave too, each once its call ends, without
        waiting. Cancelled while the threads are being joined, the shutdown
        goes on in a thread of its own.
    """
    loop = asyncio.get_running_loop()
    cache = _threads.take_default_cache()
    with _defaults_lock:
        pool = _default_pools.pop(loop, None)
        stale = [p for lp, p in list(_default_pools.items()) if lp.is_closed()]
        for other in stale:
            _default_pools.pop(other._loop, None)  # type: ignore[arg-type]
    for other in stale:  # a loop that closed without cancelling its tasks
        other._kill_now()
    try:
        if pool is not None:
            pool.close()
            await pool.join()
    except asyncio.CancelledError:
        if cache is not None:
            cache.shutdown(wait=False)  # its threads leave as their calls end
        raise
    if cache is not None:
        await _threads.in_own_thread(cache.shutdown, "toolkit-shutdown")


def _forget_defaults_in_child() -> None:
    # A forked child inherits the parent's pool objects but not their
    # processes: it starts its own on demand.
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
    workers = executor_max_workers(executor)  # ThreadPool/ProcessPool/loky executors
    if workers is not None and workers > 0:
        return workers
    client = dask_executor_client(executor)
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
    initializer = executor_initializer(executor, _MISSING)
    if initializer is _MISSING or isinstance(initializer, Guarded):
        return  # another implementation, or guarded already
    context = executor_mp_context(executor)
    if context is not None:
        start_forkserver(context)
    original = cast("Callable[..., object] | None", initializer)
    set_executor_initializer(executor, Guarded(os.getpid(), original))


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
    processes = executor_processes(executor) or {}
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
        """Whether ``shutdown`` was called (or ``async with`` left): submits then fail."""
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
        """Return a snapshot of the facade's counters (an ``ExecutorStats``).

        It raises nothing, and works after shutdown.
        """
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
            concurrent.futures.BrokenExecutor: the executor is broken (a
                ``ProcessPoolExecutor`` whose worker died): at the call, or
                raised by the future when the submit was deferred.
            Exception: the future raises what the task raised, as its own
                type; ``TaskTimeoutError`` past the facade's timeout.

        Cancellation:
            Cancelling the future (as cancelling a task that awaits it does)
            cancels the task if it has not started; one already running in a
            thread or a ``ProcessPoolExecutor`` worker cannot be stopped: it
            runs to its end, its result discarded (``stats().abandoned``).
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
        if executor_broken(executor) or executor_shutting_down(executor):
            return False  # submit fails at once: let it fail at the call
        processes = executor_processes(executor)
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
            default_cache().submit(self._drain_backlog)
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
                bridge.post(set_exception_if_pending, dest, exc)
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
            TypeError: fn is not callable, an argument is not iterable, or
                window, chunksize, timeout or ordered has the wrong type (at the call).
            ValueError: window or chunksize < 1, or a negative timeout (at the call).
            PoolClosedError: the facade was shut down (at the call, or at the
                next chunk to submit).
            TaskTimeoutError: the map ran past timeout (from the iteration).
            SerializationError: an input cannot be pickled: raised in its place,
                after the results before it.
            Exception: the first error an item raised, in its place; the map
                ends there.

        Cancellation:
            Closing the iterator (``break``, ``aclose()``, leaving ``async with``,
            cancelling the consumer) cancels every task in flight that has not
            started and stops pulling input; tasks already running run to
            their end, their results discarded. A consumer cancelled while
            waiting ends the map: a later ``async for`` yields nothing.
            ``MapResult.next(timeout)`` is the exception: cancelling it keeps
            the map going.
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

        Raises:
            TypeError: fs is a single future or not an iterable, or holds
                something that is not awaitable; timeout not a number (at the call).
            ValueError: timeout is negative (at the call).
            RuntimeError: no running event loop (at the call).
            TaskTimeoutError: timeout passed with futures unfinished (from the
                iteration). A yielded future that failed is yielded, not raised.

        Cancellation:
            Stopping the iteration, or cancelling the task that iterates, leaves
            the futures running; the iterator is then finished.
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

        Raises:
            ValueError: return_when is not one of the three; timeout is negative.
            TypeError: fs is a single future or not an iterable, or holds
                something that is not awaitable; timeout is not a number.

        Cancellation:
            Cancelling the wait leaves the futures running (coroutines given
            to it were wrapped in tasks: those run on too).
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

        Raises:
            Exception: what the executor's own ``shutdown`` raises, passed
                through (the stdlib's raise nothing). Shutting down twice is fine.

        Cancellation:
            Safe: the facade is closed at once (submits fail), and the
            executor is shut down either way. With wait, its ``shutdown`` runs
            in a ``to_thread`` thread; cancelled, only the wait is abandoned,
            and the executor is also told to shut down without waiting, in
            case that thread had not taken the call yet (every thread busy).
        """
        self._closed = True
        if cancel_futures:
            for future in list(self._outstanding):
                future.cancel()
        if wait:
            try:
                await to_thread(self._shutdown_executor, True, cancel_futures)
            except asyncio.CancelledError:
                # Its thread may not have got to it (every thread busy): shut
                # down without waiting, here (a second shutdown is harmless).
                self._shutdown_executor(False, cancel_futures)
                raise
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
