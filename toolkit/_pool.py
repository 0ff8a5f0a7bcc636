"""``toolkit.Pool`` and ``toolkit.ThreadPool``: ``multiprocessing.Pool``, awaitable and crash-proof.

Theory of operation
-------------------
Everything runs on the event loop thread; there is no manager thread and no
polling. A task is pickled in the caller (a bad argument fails at the call),
queued, and sent to the least loaded worker over that worker's own socket::

    apply()/submit()/map() ──▶ queue ──dispatch──▶ worker 1 ◀──socket──▶ process 1
                                 │                 worker 2 ◀──socket──▶ process 2
    awaiting caller ◀── future ◀─┴── RESULT frames read by a loop callback
                                      sentinel readable ──▶ the worker ended

* **One task at a time, except tiny ones.** A worker gets one task; once its
  measured task time is under a millisecond it gets several (up to 64) so
  that tiny tasks run back to back without a round trip each. The worker
  answers in order, so the oldest unanswered task is the one running.
* **Death is seen, not guessed.** Each worker's sentinel is watched; when it
  ends, what it wrote before dying is read first, then the oldest
  unanswered task fails with ``WorkerDiedError`` (pid, exit code or signal,
  the task), the tasks behind it (never started) go back to the queue, and a
  new worker replaces it. Nothing else notices.
* **Cancel and timeout kill.** Cancelling the future of a running task, or
  its timeout expiring, SIGKILLs that worker and every process it started,
  and a replacement starts at once. A task not started yet is withdrawn
  instead (from the queue, or by a CANCEL message the worker reads before it
  starts its next task). A thread cannot be killed: its task is abandoned
  (the result discarded) and the thread replaced; it leaves when it returns.
* **Maps are lazy.** ``imap``/``map`` reuse the executor facade's map
  (``MapResult``): adaptive chunks of about 20 ms, a bounded window of
  chunks in flight, any (async) iterable, constant memory.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import contextlib
import os
import weakref
from collections.abc import Coroutine, Generator
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, cast, final, overload

from ._core._context import check_not_bootstrapping, get_context, preload_in_forkserver
from ._core._cpython import process_popen
from ._core._errors import (
    TaskTimeoutError,
)
from ._core._reaping import wait_ended
from ._core._serialize import (
    ChunkOutcome,
    dumps_call,
    dumps_chunk,
    picklable_callable,
)
from ._core._validate import check_callable, check_positive_int, check_timeout
from ._engines._scheduler import Scheduler, TaskFuture
from ._engines._worker import (
    CHUNK,
    TASK,
)
from ._engines._workers import OutputLine, ProcessWorker, ThreadWorker, print_output

if TYPE_CHECKING:
    from collections.abc import AsyncIterable, Callable, Iterable, Mapping
    from multiprocessing.context import BaseContext
    from types import TracebackType
    from typing import Self

    from ._core._inspection import PoolSnapshot, PoolStats, WorkerInfo
    from ._engines._workers import WorkerBase as _Worker
    from ._map import MapResult


__all__ = ["AsyncResult", "Pool", "ThreadPool"]

T = TypeVar("T")

_NO_KWARGS: dict[str, Any] = {}  # shared by every call without keywords: never mutated


class _AppliedFuture(TaskFuture[T], Coroutine[Any, Any, T]):
    """What ``apply`` returns: the task's future, usable as a coroutine too.

    A coroutine (the ``collections.abc`` kind), so that ``apply`` works
    anywhere its ``async def`` form did (``TaskGroup.create_task``,
    ``asyncio.create_task``); a future, so that ``gather`` takes it as it
    is: no Task per call, which is most of the cost of 20,000 concurrent
    applies (asyncio spends ~10 us per Task). ``submit`` returns a plain
    future: ``asyncio.wait`` refuses coroutines.
    """

    __slots__ = ("_stepper",)

    _stepper: Generator[Any, None, T]

    # -- the coroutine protocol, for a Task that drives it: it waits on itself ----------------

    def _steps(self) -> Generator[Any, None, T]:
        try:
            return self._stepper
        except AttributeError:  # the first step (rare: gather takes the future as it is)
            self._stepper = super().__await__()
            return self._stepper

    def send(self, value: None) -> Any:
        return self._steps().send(value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        return self._steps().throw(typ if val is None else val)

    def close(self) -> None:
        pass  # nothing to unwind: cancel() is what stops the task

    def __await__(self) -> Generator[Any, None, T]:
        return super().__await__()


@final
class AsyncResult(Generic[T]):
    """The handle ``apply_async``/``map_async`` return at once: ``multiprocessing``'s AsyncResult.

    ``await handle`` waits for the value (and, as for any asyncio future,
    cancelling the awaiting task cancels the task). ``await handle.get(timeout)``
    only waits: on timeout it raises ``TaskTimeoutError`` and the task goes on.
    """

    __slots__ = ("_future", "_map")

    def __init__(self, future: asyncio.Future[T], map_result: MapResult[Any] | None = None) -> None:
        self._future = future
        self._map = map_result

    @property
    def done_count(self) -> int | None:
        """For map_async: how many results are in so far (None for a single task)."""
        return None if self._map is None else self._map.done

    @property
    def total(self) -> int | None:
        """For map_async: how many inputs there are, if the input is sized (else None)."""
        return None if self._map is None else self._map.total

    def __repr__(self) -> str:
        return f"<toolkit.AsyncResult {self._future!r}>"

    @property
    def future(self) -> asyncio.Future[T]:
        """The asyncio future underneath (for asyncio.wait, gather, as_completed)."""
        return self._future

    def ready(self) -> bool:
        """Whether the task finished (result, exception or cancellation). It raises nothing."""
        return self._future.done()

    done = ready

    def successful(self) -> bool:
        """Whether it finished without raising (a cancelled task did not).

        Raises:
            ValueError: the task has not finished yet (as the stdlib's).
        """
        if not self._future.done():
            raise ValueError(f"{self!r} not ready")
        return not self._future.cancelled() and self._future.exception() is None

    def cancel(self) -> bool:
        """Cancel the task: withdrawn if not started, its worker killed if running.

        A thread pool's running task is abandoned instead (its result
        discarded, its thread replaced). Returns False if it had already
        finished; a ``map_async`` handle cancels the whole map. It raises nothing.
        """
        return self._future.cancel()

    def cancelled(self) -> bool:
        """Whether the task was cancelled (by cancel(), terminate(), or an awaiter's cancellation).

        It raises nothing.
        """
        return self._future.cancelled()

    async def wait(self, timeout: float | None = None) -> None:
        """Wait until the task finishes or timeout seconds pass; never raises the task's error.

        Raises:
            TypeError: timeout is not a number or None.
            ValueError: timeout is negative or NaN.

        Cancellation:
            Safe: the task goes on.
        """
        timeout = check_timeout(timeout)
        await asyncio.wait([self._future], timeout=timeout)

    async def get(self, timeout: float | None = None) -> T:
        """Return the result (or raise the task's exception), waiting at most timeout seconds.

        Raises:
            TaskTimeoutError: not finished within timeout (also a
                ``multiprocessing.TimeoutError``); the task goes on.
            asyncio.CancelledError: the task was cancelled.

        Cancellation:
            Safe: the task goes on.
        """
        timeout = check_timeout(timeout)
        future = self._future
        if not future.done():
            await asyncio.wait([future], timeout=timeout)
            if not future.done():
                raise TaskTimeoutError(f"result not ready within {timeout:g} s (the task goes on)")
        return future.result()

    def __await__(self) -> Generator[Any, None, T]:
        return self._future.__await__()


class _PoolBase(Scheduler):
    """The pool core shared by Pool (processes) and ThreadPool (threads)."""

    _kind: Literal["process", "thread"]
    _serialize: bool

    @property
    def name(self) -> str:
        """The pool's name (``name=``, or one made up): its workers are ``<name>-<n>``."""
        return self._name

    def __reduce__(self) -> Any:
        # As multiprocessing's: a pool is this process's, with its sockets and loop.
        raise NotImplementedError("pool objects cannot be passed between processes or pickled")

    @property
    def workers(self) -> tuple[WorkerInfo, ...]:
        """A frozen snapshot of every worker: live ones first, then recently dead ones."""
        return tuple(self._worker_info(w) for w in [*list(self._workers), *tuple(self._dead)])

    def _submit_call(
        self,
        fn: Callable[..., Any],
        args: Iterable[Any],
        kwargs: Mapping[str, Any] | None,
        timeout: float | None,
        future_class: type[TaskFuture[Any]] = TaskFuture,
    ) -> TaskFuture[Any]:
        check_callable(fn)
        if type(args) is not tuple:
            args = tuple(args)
        kwargs = _NO_KWARGS if kwargs is None else dict(kwargs)
        # 0 is refused: it would kill every task's worker as the task starts.
        timeout = check_timeout(timeout, allow_zero=False) if timeout is not None else self._timeout
        if self._loop is None or self._state != "running":
            self._running_loop()
            self._check_open(new=True)
        payload = dumps_call(fn, args, kwargs) if self._serialize else (fn, args, kwargs)
        return self._submit(TASK, fn, args, kwargs, payload, timeout, future_class)

    def _submit_chunk(
        self, loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], chunk: list[Any], star: bool
    ) -> TaskFuture[ChunkOutcome]:
        payload = dumps_chunk(fn, chunk, star) if self._serialize else (fn, chunk, star)
        return self._submit(CHUNK, fn, chunk, None, payload, None)

    # -- closing --------------------------------------------------------------------------------

    def close(self) -> None:
        """Take no new tasks; the workers leave once every submitted task is done.

        Maps already going on go on. Closing twice, or after terminate(), does
        nothing. Await join() to wait for the workers.

        Raises:
            RuntimeError: called in a forked child of the pool's process.
        """
        self._check_process()
        if self._state == "running":
            self._state = "closed"
        self._check_finished()

    def terminate(self) -> None:
        """Stop now: cancel every task not finished, kill the workers (threads: abandon).

        Every awaiter of a task, queued or running, gets ``CancelledError``,
        a map's consumer too. Terminating twice does nothing. Await join() to
        wait for the workers to be gone.

        Raises:
            RuntimeError: called in a forked child of the pool's process (it
                would kill the parent's workers).
        """
        self._check_process()
        if self._state in ("terminated",):
            return
        if self._state != "broken":
            self._state = "terminated"
        if self._retry_handle is not None:
            self._retry_handle.cancel()
            self._retry_handle = None
        self._terminating = True
        try:
            tasks = [*self._queue, *(t for w in self._workers for t in w.outstanding.values())]
            self._queue.clear()
            for task in tasks:
                if task.timer is not None:
                    task.timer.cancel()
                task.cancel()
        finally:
            self._terminating = False
        for worker in list(self._workers):
            if worker.stopping_reason is None:
                worker.stopping_reason = "terminated"
                worker.retiring = True
                worker.set_state("stopping")
                worker.kill()
        self._check_finished()

    async def join(self) -> None:
        """Wait until every worker has left; call close() or terminate() first (as the stdlib).

        Raises:
            ValueError: the pool is still running.
            RuntimeError: the pool belongs to another event loop that is still running.

        Cancellation:
            Safe: the workers go on leaving; join() may be awaited again.
        """
        if self._state == "running":
            raise ValueError("Pool is still running")
        if self._finished is None:
            return
        if self._loop is not asyncio.get_running_loop():
            assert self._loop is not None
            if self._loop.is_closed() or self._finished.is_set():
                self._reap(wait=False)  # its workers went with its loop: nothing to wait for
                return
            raise RuntimeError(f"{self!r} belongs to another event loop")
        await self._finished.wait()
        if self._runners:
            await asyncio.gather(*list(self._runners), return_exceptions=True)
        self._reap()

    async def __aenter__(self) -> Self:
        self._running_loop()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Leaving normally closes and joins; an exception or a cancellation terminates."""
        if exc_type is None:
            self.close()
            self._end_held_maps()
        else:
            self.terminate()
        try:
            await self.join()
        except asyncio.CancelledError:
            self.terminate()
            await asyncio.shield(self.join())
            raise

    # -- the multiprocessing.Pool API ------------------------------------------------------------

    @overload
    def apply(
        self,
        fn: Callable[..., Coroutine[Any, Any, T]],
        args: Iterable[Any] = ...,
        kwds: Mapping[str, Any] | None = ...,
        timeout: float | None = ...,
    ) -> _AppliedFuture[T]: ...

    @overload
    def apply(
        self,
        fn: Callable[..., T],
        args: Iterable[Any] = ...,
        kwds: Mapping[str, Any] | None = ...,
        timeout: float | None = ...,
    ) -> _AppliedFuture[T]: ...

    def apply(
        self,
        fn: Callable[..., Any],
        args: Iterable[Any] = (),
        kwds: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> _AppliedFuture[Any]:
        """Run fn(*args, **kwds) in a worker: ``await pool.apply(...)`` returns its result.

        The task is submitted at the call; what returns is an asyncio future
        that is also a coroutine (for ``TaskGroup.create_task``). Bad input
        raises here, at the call.

        Args:
            timeout: seconds the task may run (from when it starts); past it the
                worker is killed (a thread: abandoned) and ``TaskTimeoutError``
                raised. Default: the pool's ``timeout``.

        Raises:
            TypeError: fn is not callable, or timeout is not a number (at the call).
            ValueError: timeout is not > 0 (at the call).
            SerializationError: fn or an argument cannot be pickled (at the call).
            PoolClosedError: the pool was closed or terminated (at the call).
            BrokenPoolError: the pool broke: its initializer raised (at the call).
            RuntimeError: no running event loop, or the pool belongs to another
                loop (at the call).
            WorkerDiedError: the worker died running it.
            TaskTimeoutError: it ran past timeout; its worker was killed.
            Exception: whatever fn raised, as itself, with the worker's traceback
                as ``__cause__`` (a ``RemoteTraceback``).

        Cancellation:
            A queued task is withdrawn; a running one is stopped by killing its
            worker (replaced at once). A thread is abandoned, not stopped.
        """
        return cast(
            "_AppliedFuture[Any]", self._submit_call(fn, args, kwds, timeout, _AppliedFuture)
        )

    def apply_async(
        self,
        fn: Callable[..., T],
        args: Iterable[Any] = (),
        kwds: Mapping[str, Any] | None = None,
        callback: Callable[[T], object] | None = None,
        error_callback: Callable[[BaseException], object] | None = None,
        timeout: float | None = None,
    ) -> AsyncResult[T]:
        """Submit fn(*args, **kwds) and return its handle at once (call from the loop).

        callback(result) or error_callback(exception) run on the loop thread
        when it finishes (neither runs if the task is cancelled).

        Raises:
            TypeError: fn, callback or error_callback is not callable (at the call).
            SerializationError: fn or an argument cannot be pickled (at the call).
            PoolClosedError: the pool takes no new tasks (at the call).
            BrokenPoolError: the pool broke (at the call).
            RuntimeError: no running event loop, or another loop's pool (at the call).
            Exception: awaiting the handle, or its ``get()``, raises what apply()
                would: the task's error, ``WorkerDiedError``, ``TaskTimeoutError``.

        Cancellation:
            The call itself does not wait. A task cancelled while awaiting
            ``await handle`` cancels the pool's task (withdrawn if queued, its
            worker killed if running); cancelled in ``handle.get()`` or
            ``handle.wait()``, it leaves the task running.
        """
        if callback is not None and not callable(callback):
            raise TypeError("callback must be callable")
        if error_callback is not None and not callable(error_callback):
            raise TypeError("error_callback must be callable")
        future = self._submit_call(fn, args, kwds, timeout)
        if callback is not None or error_callback is not None:
            future.add_done_callback(_callbacks(callback, error_callback))
        return AsyncResult(future)

    @overload
    def submit(
        self, fn: Callable[..., Coroutine[Any, Any, T]], /, *args: Any, **kwargs: Any
    ) -> asyncio.Future[T]: ...

    @overload
    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> asyncio.Future[T]: ...

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        """Submit fn(*args, **kwargs); return an asyncio future (cancel() stops the task).

        For asyncio.wait, gather and as_completed. No per-call timeout: the
        pool's ``timeout`` applies.

        Raises:
            TypeError: fn is not callable (at the call).
            SerializationError: fn or an argument cannot be pickled (at the call).
            PoolClosedError: the pool takes no new tasks (at the call).
            BrokenPoolError: the pool broke (at the call).
            RuntimeError: no running event loop, or another loop's pool (at the call).
            Exception: the future raises what apply() would: the task's error,
                ``WorkerDiedError``, ``TaskTimeoutError``.

        Cancellation:
            Cancelling a task that awaits the future cancels the future, hence
            the pool's task: withdrawn if queued, its worker killed (a thread:
            abandoned) if running. Wrap it in ``asyncio.shield`` to keep it.
        """
        return self._submit_call(fn, args, kwargs, None)

    @overload
    def imap(
        self,
        fn: Callable[..., Coroutine[Any, Any, T]],
        iterable: Iterable[Any] | AsyncIterable[Any],
        chunksize: int | None = ...,
    ) -> MapResult[T]: ...

    @overload
    def imap(
        self,
        fn: Callable[..., T],
        iterable: Iterable[Any] | AsyncIterable[Any],
        chunksize: int | None = ...,
    ) -> MapResult[T]: ...

    def imap(
        self,
        fn: Callable[..., Any],
        iterable: Iterable[Any] | AsyncIterable[Any],
        chunksize: int | None = None,
    ) -> MapResult[Any]:
        """Lazily apply fn to every item; ``async for`` the results in order.

        Input is pulled only as results are consumed (a bounded window of
        chunks), so an endless generator runs in constant memory. Chunks
        adapt to about 20 ms of work unless chunksize is given. Also
        awaitable as a list. Nothing is submitted until the first result is
        asked for.

        Raises:
            TypeError: fn is not callable or iterable is not iterable (at the call).
            ValueError: chunksize is < 1 (at the call).
            PoolClosedError: the pool takes no new tasks (at the call); or its
                ``async with`` ended while the map was paused, unconsumed (at
                the next result).
            BrokenPoolError: the pool broke.
            RuntimeError: no running event loop, or another loop's pool (at the call).
            SerializationError: an input cannot be pickled: raised in its place,
                after the results before it.
            Exception: the first error an item raised, in its place; the map ends
                there (``WorkerDiedError`` and ``TaskTimeoutError`` included).

        Cancellation:
            Cancelling a task waiting for a result ends the map: chunks not
            started are withdrawn, running ones killed (threads: abandoned),
            no more input is pulled, and the ``MapResult`` is finished (a later
            ``async for`` yields nothing). ``MapResult.next(timeout)`` is the
            exception: its result is kept for the next call.
        """
        return self._map(fn, iterable, chunksize, ordered=True, star=False)

    @overload
    def imap_unordered(
        self,
        fn: Callable[..., Coroutine[Any, Any, T]],
        iterable: Iterable[Any] | AsyncIterable[Any],
        chunksize: int | None = ...,
    ) -> MapResult[T]: ...

    @overload
    def imap_unordered(
        self,
        fn: Callable[..., T],
        iterable: Iterable[Any] | AsyncIterable[Any],
        chunksize: int | None = ...,
    ) -> MapResult[T]: ...

    def imap_unordered(
        self,
        fn: Callable[..., Any],
        iterable: Iterable[Any] | AsyncIterable[Any],
        chunksize: int | None = None,
    ) -> MapResult[Any]:
        """As imap, yielding results as they finish.

        Raises:
            TypeError: fn is not callable or iterable is not iterable (at the call).
            ValueError: chunksize is < 1 (at the call).
            PoolClosedError: the pool takes no new tasks.
            BrokenPoolError: the pool broke.
            RuntimeError: no running event loop, or another loop's pool (at the call).
            SerializationError: an input cannot be pickled.
            Exception: the first error an item raised; the map ends there.

        Cancellation:
            As imap: cancelling a waiting consumer ends the map and cancels
            its chunks (running ones killed).
        """
        return self._map(fn, iterable, chunksize, ordered=False, star=False)

    @overload
    async def map(
        self,
        fn: Callable[..., Coroutine[Any, Any, T]],
        iterable: Iterable[Any] | AsyncIterable[Any],
        chunksize: int | None = ...,
    ) -> list[T]: ...

    @overload
    async def map(
        self,
        fn: Callable[..., T],
        iterable: Iterable[Any] | AsyncIterable[Any],
        chunksize: int | None = ...,
    ) -> list[T]: ...

    async def map(
        self,
        fn: Callable[..., Any],
        iterable: Iterable[Any] | AsyncIterable[Any],
        chunksize: int | None = None,
    ) -> list[Any]:
        """Return [fn(item) for item in iterable], computed by the workers.

        Raises:
            TypeError: fn is not callable or iterable is not iterable (at the call).
            ValueError: chunksize is < 1 (at the call).
            PoolClosedError: the pool takes no new tasks.
            BrokenPoolError: the pool broke.
            RuntimeError: no running event loop, or another loop's pool.
            SerializationError: an input cannot be pickled.
            Exception: the first exception an item raised (the map stops there:
                chunks not started are withdrawn, running ones killed).

        Cancellation:
            Every chunk not started is withdrawn; running ones are killed
            (threads: abandoned); no more input is pulled. Results already
            computed are lost.
        """
        return await self._map(fn, iterable, chunksize, ordered=True, star=False)

    async def starmap(
        self,
        fn: Callable[..., T],
        iterable: Iterable[Iterable[Any]] | AsyncIterable[Iterable[Any]],
        chunksize: int | None = None,
    ) -> list[T]:
        """Return [fn(*args) for args in iterable], computed by the workers.

        Raises:
            TypeError: fn is not callable or iterable is not iterable (at the call).
            ValueError: chunksize is < 1 (at the call).
            PoolClosedError: the pool takes no new tasks.
            BrokenPoolError: the pool broke.
            RuntimeError: no running event loop, or another loop's pool.
            SerializationError: an input cannot be pickled.
            Exception: the first exception an item raised (the map stops there).

        Cancellation:
            As map(): chunks not started are withdrawn, running ones killed
            (threads: abandoned); results already computed are lost.
        """
        return await self._map(fn, iterable, chunksize, ordered=True, star=True)

    def map_async(
        self,
        fn: Callable[..., T],
        iterable: Iterable[Any] | AsyncIterable[Any],
        chunksize: int | None = None,
        callback: Callable[[list[T]], object] | None = None,
        error_callback: Callable[[BaseException], object] | None = None,
    ) -> AsyncResult[list[T]]:
        """Start map() and return its handle at once.

        callback(results) or error_callback(exception) run on the loop thread
        when it ends (neither runs if it is cancelled). The map runs in a task
        of its own: it goes on whether or not anyone awaits the handle.

        Raises:
            TypeError: fn is not callable or iterable is not iterable (at the call).
            ValueError: chunksize is < 1 (at the call).
            PoolClosedError: the pool takes no new tasks (at the call).
            BrokenPoolError: the pool broke (at the call).
            RuntimeError: no running event loop, or another loop's pool (at the call).
            Exception: awaiting the handle raises what map() would.

        Cancellation:
            The call itself does not wait. A task cancelled in ``await handle``
            cancels the map (chunks withdrawn, running ones killed), as
            ``handle.cancel()`` does; cancelled in ``handle.get()`` or
            ``handle.wait()``, it leaves the map running.
        """
        return self._map_async(fn, iterable, chunksize, callback, error_callback, star=False)

    def starmap_async(
        self,
        fn: Callable[..., T],
        iterable: Iterable[Iterable[Any]] | AsyncIterable[Iterable[Any]],
        chunksize: int | None = None,
        callback: Callable[[list[T]], object] | None = None,
        error_callback: Callable[[BaseException], object] | None = None,
    ) -> AsyncResult[list[T]]:
        """Start starmap() and return its handle at once.

        callback(results) or error_callback(exception) run on the loop thread
        when it ends (neither runs if it is cancelled). The map runs in a task
        of its own: it goes on whether or not anyone awaits the handle.

        Raises:
            TypeError: fn is not callable or iterable is not iterable (at the call).
            ValueError: chunksize is < 1 (at the call).
            PoolClosedError: the pool takes no new tasks (at the call).
            BrokenPoolError: the pool broke (at the call).
            RuntimeError: no running event loop, or another loop's pool (at the call).
            Exception: awaiting the handle raises what starmap() would.

        Cancellation:
            The call itself does not wait. A task cancelled in ``await handle``
            cancels the map (chunks withdrawn, running ones killed), as
            ``handle.cancel()`` does; cancelled in ``handle.get()`` or
            ``handle.wait()``, it leaves the map running.
        """
        return self._map_async(fn, iterable, chunksize, callback, error_callback, star=True)

    def _map_async(
        self,
        fn: Callable[..., T],
        iterable: Iterable[Any] | AsyncIterable[Any],
        chunksize: int | None,
        callback: Callable[[list[T]], object] | None,
        error_callback: Callable[[BaseException], object] | None,
        star: bool,
    ) -> AsyncResult[list[T]]:
        results = self._map(fn, iterable, chunksize, ordered=True, star=star)
        loop = self._running_loop()
        future: asyncio.Future[list[T]] = loop.create_task(
            _collect(results), name=f"toolkit-{self._name}-map"
        )
        # Open from now on, not from the task's first step: leaving `async with`
        # (close) right after must wait for it, and its task is its consumer.
        state = results._state
        state.consumer_task = True
        self._map_started(state)
        future.add_done_callback(lambda _: state._finish())
        if callback is not None or error_callback is not None:
            future.add_done_callback(_callbacks(callback, error_callback))
        return AsyncResult(future, results)

    def _map(
        self,
        fn: Callable[..., T],
        iterable: Iterable[Any] | AsyncIterable[Any],
        chunksize: int | None,
        ordered: bool,
        star: bool,
    ) -> MapResult[T]:
        check_callable(fn)
        if not hasattr(iterable, "__iter__") and not hasattr(iterable, "__aiter__"):
            raise TypeError(f"'{type(iterable).__name__}' object is not iterable")
        chunksize = check_positive_int(chunksize, "chunksize")
        self._running_loop()
        self._check_open(new=True)
        from ._map import MapResult  # here: a pool that never maps does not load it

        return MapResult(self, fn, (iterable,), ordered, None, chunksize, None, star=star)

    # -- inspection ------------------------------------------------------------------------------

    def resize(self, size: int) -> None:
        """Keep ``size`` workers from now on: start more, or retire idle ones first.

        Busy workers over the new size finish their tasks, then leave; none is
        killed. An elastic pool (``idle_timeout``) takes it as its upper bound.

        Raises:
            TypeError: size is not an int (as everywhere in the toolkit).
            ValueError: size is below 1.
            RuntimeError: called in a forked child of the pool's process.
            PoolClosedError: the pool was closed or terminated.
            BrokenPoolError: the pool broke.
        """
        if isinstance(size, bool) or not isinstance(size, int):
            raise TypeError(f"size must be a positive int, not {size!r}")
        if size < 1:
            raise ValueError(f"size must be a positive int, not {size!r}")
        self._check_process()
        self._check_open(new=True)
        self._size = size
        if self._loop is None:
            return
        self._replenish()
        extra = self._live() - size
        # Idle ones leave first; then the least loaded finish their tasks and leave.
        for worker in sorted(
            (w for w in self._workers if not w.retiring), key=lambda w: len(w.outstanding)
        ):
            if extra <= 0:
                break
            extra -= 1
            worker.retiring = True
            if not worker.outstanding:
                self._stop(worker)

    def stats(self) -> PoolStats:
        """The pool's counts now (a frozen snapshot).

        Safe to call from another thread, and after the pool ended. It raises nothing.
        """
        # Copies first (each one C call, atomic under the GIL): a snapshot may be
        # taken from another thread (the playground's UI) while the loop changes them.
        workers = list(self._workers)
        states = collections.Counter(w.state for w in workers)
        queued = sum(1 for t in tuple(self._queue) if not t.done())
        # Not done: a cancelled or timed-out task stays with its worker until
        # the kill is seen, but runs for nobody any more.
        running = sum(1 for w in workers for t in tuple(w.outstanding.values()) if not t.done())
        c = dict(self._counts)
        from ._core._inspection import PoolStats  # here: records load when asked for

        return PoolStats(
            name=self._name,
            kind=self._kind,
            size=self._size,
            idle=states["idle"],
            busy=states["busy"],
            starting=states["starting"],
            stopping=states["stopping"],
            queued=queued,
            running=running,
            submitted=c["submitted"],
            completed=c["completed"],
            failed=c["failed"],
            cancelled=c["cancelled"],
            timed_out=c["timed_out"],
            worker_deaths=c["worker_deaths"],
            workers_started=c["workers_started"],
            state=self._state,
            durations=tuple(self._durations),
            duration_sum=self._duration_sum,
        )

    def _worker_info(self, worker: _Worker) -> WorkerInfo:
        tasks = list(worker.outstanding.values())  # one C call: safe from another thread
        head = tasks[0] if tasks and worker.ready else None
        cpu, rss = worker.usage()
        from ._core._inspection import WorkerInfo

        return WorkerInfo(
            name=worker.name,
            kind=worker.kind,
            pid=worker.pid,
            tid=worker.tid,
            state=worker.state,
            task=head.info() if head is not None else None,
            since=worker.since,
            tasks_done=worker.tasks_done,
            failures=worker.failures,
            exit_reason=worker.exit_reason,
            cpu_percent=cpu,
            rss=rss,
        )

    def _snapshot(self) -> PoolSnapshot | None:
        if self._loop is None or (self._finished is not None and self._finished.is_set()):
            return None  # not started, or every worker gone: nothing runs here any more
        if self._loop.is_closed() and not self._workers:
            # Its loop ended with no worker left (an elastic pool's retired,
            # to_process's killed by a cancel): nothing runs here any more
            # either, however long a reference cycle keeps the object alive.
            return None
        from ._core._inspection import PoolSnapshot

        return PoolSnapshot(self.stats(), self.workers)


async def _collect(results: MapResult[T]) -> list[T]:
    return await results


def _callbacks(
    callback: Callable[[Any], object] | None,
    error_callback: Callable[[BaseException], object] | None,
) -> Callable[[asyncio.Future[Any]], None]:
    def done(future: asyncio.Future[Any]) -> None:
        if future.cancelled():
            return
        exc = future.exception()
        if exc is None:
            if callback is not None:
                callback(future.result())
        elif error_callback is not None:
            error_callback(exc)

    return done


@final
class Pool(_PoolBase):
    """A pool of worker processes: ``multiprocessing.Pool``'s API, awaitable.

    ``async with toolkit.Pool(4) as pool: results = await pool.map(f, items)``.
    Leaving the block normally closes the pool and waits for every task;
    leaving it with an exception or a cancellation terminates it.

    Args:
        processes: how many workers (default: the CPUs this process may use).
        initializer: run as initializer(*initargs) in each worker when it
            starts; if it raises, the pool breaks (``BrokenPoolError``)
            instead of retrying forever.
        maxtasksperchild: replace a worker after this many tasks.
        context: a multiprocessing context or start method name (default:
            forkserver on Linux, spawn elsewhere).
        name: names the pool and its workers (``<name>-<n>``) in inspection.
        timeout: the default per-task timeout of apply/apply_async/submit
            (seconds, > 0).
        capture_output: True to print each line workers write to stdout and
            stderr on ours, tagged ``[<worker> <pid>]``; or a callable that
            gets each line as an ``OutputLine``. Default: workers share our
            streams, untouched.
        idle_timeout: make the pool elastic: it starts with no worker, starts
            them as tasks arrive (up to ``processes``), and a worker idle for
            this many seconds leaves. The pool behind ``to_process`` is one.

    Raises:
        TypeError: a bad argument type (an initializer or capture_output that
            is neither a callable nor a bool, a context that is none).
        ValueError: processes < 1, a timeout <= 0, an unknown start method.
        RuntimeError: called in a child process still importing its parent's
            main script (the ``if __name__ == "__main__":`` guard is missing).
    """

    _kind = "process"
    _serialize = True

    def __init__(
        self,
        processes: int | None = None,
        initializer: Callable[..., object] | None = None,
        initargs: Iterable[Any] = (),
        maxtasksperchild: int | None = None,
        context: BaseContext | str | None = None,
        *,
        name: str | None = None,
        timeout: float | None = None,
        capture_output: bool | Callable[[OutputLine], object] = False,
        idle_timeout: float | None = None,
    ) -> None:
        self._context = get_context(context)
        check_not_bootstrapping("toolkit.Pool()")
        preload_in_forkserver(self._context, "toolkit._engines._worker")
        if self._context.get_start_method() == "forkserver":
            # Imported here, as the other modules a fork pool does not use: each
            # costs ~0.1-0.3 ms of a cold start that is ~8 ms in all under fork.
            from ._core._guard import start_forkserver

            start_forkserver(self._context)  # from the main thread: it dies with this process
        if capture_output is True:
            self._capture: Callable[[OutputLine], object] | None = print_output
        elif capture_output is False or capture_output is None:
            self._capture = None
        elif callable(capture_output):
            self._capture = capture_output
        else:
            raise TypeError("capture_output must be a bool or a callable")
        self._start_lock: asyncio.Lock | None = None
        self._processes: list[Any] = []  # for the finalizer: it must not hold the pool
        super().__init__(
            processes,
            initializer,
            initargs,
            maxtasksperchild,
            timeout,
            name,
            "processes",
            idle_timeout,
        )
        if self._initializer is not None and self._context.get_start_method() != "fork":
            self._initializer = picklable_callable(self._initializer)
        _live_pools.add(self)
        weakref.finalize(self, _kill_processes, self._processes, os.getpid())

    def _new_worker(self, loop: asyncio.AbstractEventLoop, name: str) -> _Worker:
        return ProcessWorker(
            name,
            loop,
            self._context,
            self._initializer,
            self._initargs,
            cast("Callable[[OutputLine], None] | None", self._capture),
            self._on_message,
            self._on_results,
        )

    async def _run_worker(self, worker: _Worker) -> None:
        assert isinstance(worker, ProcessWorker)
        try:
            if self._context.get_start_method() == "fork":
                # The child gets copies of every descriptor we hold: it closes our
                # ends of the other workers' sockets first thing.
                worker.start(
                    tuple(
                        fd
                        for other in self._workers
                        if isinstance(other, ProcessWorker)
                        for fd in other.parent_fds(child_ends=other is not worker)
                    )
                )  # fork is quick, and must not happen off the loop thread
            else:
                # Starting blocks (the first forkserver start for ~100 ms): a thread
                # keeps the loop free. One start at a time: the stdlib's start is
                # not meant to run concurrently.
                if self._start_lock is None:
                    self._start_lock = asyncio.Lock()
                async with self._start_lock:
                    if worker.stopping_reason is None:
                        from ._core._threads import to_thread  # here: see __init__

                        await to_thread(worker.start)
        except BaseException as exc:
            worker.close()
            if worker in self._workers:
                self._workers.remove(worker)
            # Tasks already handed to it never reached a process: back to the queue.
            pending = [t for t in worker.outstanding.values() if not t.done()]
            worker.outstanding.clear()
            for task in pending:
                if task.timer is not None:
                    task.timer.cancel()
                task.worker, task.started_at = None, None
            self._queue.extendleft(reversed(pending))
            worker.set_state("dead")
            worker.exit_reason = f"failed to start: {exc}"
            self._dead.appendleft(worker)
            if isinstance(exc, asyncio.CancelledError):
                self._check_finished()
                raise
            self._start_failed(exc)
            self._schedule_dispatch()
            self._check_finished()
            return
        if process_popen(worker.process) is None:
            # Terminated before it started.
            worker.close()
            worker.set_state("dead")
            worker.exit_reason = worker.stopping_reason
            self._workers.remove(worker)
            self._dead.appendleft(worker)
            self._check_finished()
            return
        worker.started()
        self._processes.append(worker.process)
        if worker.stopping_reason is not None:
            worker.kill()
        try:
            await wait_ended(worker.process)
        except asyncio.CancelledError:
            # The loop is going away (asyncio.run cancels what is left) with the
            # pool still open: its workers must not outlive it.
            worker.kill()
            worker.process.join(1)
            worker.close()
            self._loop_ended()
            worker.set_state("dead")
            worker.exit_reason = "killed: its event loop ended"
            with contextlib.suppress(ValueError):
                self._workers.remove(worker)
            self._dead.appendleft(worker)
            with contextlib.suppress(ValueError):
                self._processes.remove(worker.process)
            if not self._workers and self._finished is not None:
                self._finished.set()
            raise
        worker.process.join(0)
        self._on_exit(worker)
        self._processes.remove(worker.process)
        with contextlib.suppress(ValueError):
            worker.process.close()


@final
class ThreadPool(_PoolBase):
    """A pool of worker threads with Pool's API (``multiprocessing.dummy``'s Pool, awaitable).

    Tasks are not pickled. A thread cannot be killed: a task cancelled or timed
    out while running is abandoned (its result discarded) and its thread
    replaced at once; the abandoned thread leaves when the task returns.

    Args:
        threads: how many worker threads (default: the CPUs this process may use).
        initializer: as ``Pool``: run as initializer(*initargs) in each thread.
        initargs: the initializer's arguments.
        maxtasksperchild: replace a thread after this many tasks.
        name: names the pool and its threads in inspection.
        timeout: the default per-task timeout (seconds, > 0); past it the task
            is abandoned (a thread cannot be killed) and its thread replaced.
        processes: the same as threads (``multiprocessing.pool.ThreadPool``'s name).
        idle_timeout: make the pool elastic, as ``Pool``'s.

    Raises:
        TypeError: both threads and processes given, or a bad argument type.
        ValueError: a bad argument value (threads < 1, a timeout <= 0).
    """

    _kind = "thread"
    _serialize = False

    def __init__(
        self,
        threads: int | None = None,
        initializer: Callable[..., object] | None = None,
        initargs: Iterable[Any] = (),
        maxtasksperchild: int | None = None,
        *,
        name: str | None = None,
        timeout: float | None = None,
        processes: int | None = None,
        idle_timeout: float | None = None,
    ) -> None:
        if processes is not None:
            if threads is not None:
                raise TypeError("give threads or processes (its stdlib name), not both")
            threads = processes
        super().__init__(
            threads,
            initializer,
            initargs,
            maxtasksperchild,
            timeout,
            name,
            "threads",
            idle_timeout,
        )

    def _new_worker(self, loop: asyncio.AbstractEventLoop, name: str) -> _Worker:
        return ThreadWorker(
            name, loop, self._initializer, self._initargs, self._on_message, self._on_results
        )

    async def _run_worker(self, worker: _Worker) -> None:
        assert isinstance(worker, ThreadWorker)
        worker.start()  # its end arrives as an EXITED message

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        super()._bind(loop)
        guard = loop.create_task(self._watch_loop(), name=f"toolkit-{self._name}-guard")
        self._runners.add(guard)
        guard.add_done_callback(self._runners.discard)

    async def _watch_loop(self) -> None:
        """Stop the threads if the loop goes away with the pool open (nothing else would)."""
        assert self._finished is not None
        try:
            await self._finished.wait()
        except asyncio.CancelledError:
            self._loop_ended()
            for worker in list(self._workers):
                assert isinstance(worker, ThreadWorker)
                worker.outstanding.clear()
                worker.retiring = True
                worker.stop()  # a busy thread is abandoned: it leaves after its task
                # Its EXITED message will find no loop: say now what became of it.
                worker.set_state("dead")
                worker.exit_reason = "stopped: its event loop ended"
                self._workers.remove(worker)
                self._dead.appendleft(worker)
            self._finished.set()
            raise


# --- leaving the interpreter ----------------------------------------------------------------------

_live_pools: weakref.WeakSet[Pool] = weakref.WeakSet()


def _kill_processes(processes: list[Any], owner: int) -> None:
    """Kill a pool's worker processes that are still alive (the pool was dropped or we exit).

    Only in the process that started them (owner): a child forked with
    ``os.fork`` that exits normally runs these exit handlers too, and its
    parent's workers are not its to kill.
    """
    if os.getpid() != owner:
        return
    for process in list(processes):
        with contextlib.suppress(Exception):
            if process_popen(process) is not None and process.exitcode is None:
                process.kill()  # SIGKILL on POSIX, TerminateProcess on Windows
    for process in list(processes):
        with contextlib.suppress(Exception):
            process.join(1)


@atexit.register
def _kill_all_pools() -> None:
    # Registered after multiprocessing's own exit handler, so it runs before it:
    # multiprocessing would otherwise wait forever for our (non-daemon) workers.
    for pool in list(_live_pools):
        _kill_processes(pool._processes, pool._pid)
