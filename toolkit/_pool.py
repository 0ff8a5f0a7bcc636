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

import abc
import asyncio
import atexit
import collections
import contextlib
import itertools
import os
import reprlib
import signal
import time
import weakref
from collections.abc import Coroutine, Generator
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, cast, final, overload

from ._core._context import check_not_bootstrapping, get_context, preload_in_forkserver
from ._core._errors import (
    BrokenPoolError,
    PoolClosedError,
    TaskTimeoutError,
    WorkerDiedError,
    describe_exit,
)
from ._core._framing import frame
from ._core._guard import start_forkserver
from ._core._inspection import (
    PoolSnapshot,
    PoolStats,
    TaskInfo,
    WorkerInfo,
    function_name,
    register,
)
from ._core._serialize import (
    ChunkOutcome,
    dumps_call,
    dumps_chunk,
    load_chunk_outcome,
    load_outcome,
    picklable_callable,
)
from ._core._threads import to_thread
from ._core._validate import check_callable, check_positive_int, check_timeout
from ._engines._worker import (
    CANCEL,
    CHUNK,
    HEADER,
    INIT_FAILED,
    READY,
    RESULT,
    SKIPPED,
    STOP,
    TASK,
)
from ._engines._workers import EXITED, OutputLine, ProcessWorker, ThreadWorker, print_output
from ._map import MapResult
from ._objects._process import _wait_ended

if TYPE_CHECKING:
    from collections.abc import AsyncIterable, Callable, Iterable, Mapping
    from multiprocessing.context import BaseContext
    from types import TracebackType
    from typing import Self

    from ._map import _MapState

    _Worker = ProcessWorker | ThreadWorker

__all__ = ["AsyncResult", "Pool", "ThreadPool"]

T = TypeVar("T")

_PIPELINE_BELOW = 0.001  # seconds per task under which a worker gets several at once
_PIPELINE_MAX = 64
_PIPELINE_DEPTH = 0.004  # seconds of tiny tasks a worker may hold
_STARTUP_DEATHS = 3  # workers in a row dying before READY break the pool
_START_BACKOFF = (0.05, 0.1, 0.2, 0.4)  # seconds before each retry of a failed start
_DEAD_KEPT = 32  # dead workers kept for inspection (their exit reasons)
_pool_numbers = itertools.count(1)
_short_repr = reprlib.Repr()
_short_repr.maxstring = 30
_short_repr.maxother = 30
_short_repr.maxlist = _short_repr.maxtuple = _short_repr.maxdict = 4


def _default_size() -> int:
    try:
        return len(os.sched_getaffinity(0))  # what this process may use (containers, taskset)
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class _Task:
    """One unit of work: a call, or a chunk of a map."""

    __slots__ = (
        "args",
        "cancel_requested",
        "fn",
        "future",
        "id",
        "kind",
        "payload",
        "started_at",
        "timeout",
        "timer",
        "worker",
    )

    def __init__(
        self,
        ident: int,
        kind: bytes,
        fn: Callable[..., Any],
        args: Any,
        payload: Any,
        future: _PoolFuture[Any],
        timeout: float | None,
    ) -> None:
        self.id = ident
        self.kind = kind
        self.fn = fn
        self.args = args  # the call's arguments, or a chunk's inputs: for inspection
        self.payload = payload  # bytes for a process, (fn, args, kwargs) for a thread
        self.future = future
        self.timeout = timeout
        self.timer: asyncio.TimerHandle | None = None
        self.worker: _Worker | None = None
        self.started_at: float | None = None
        self.cancel_requested = False

    def describe(self) -> str:
        name = function_name(self.fn)
        if self.kind == CHUNK:
            return f"{name} over {len(self.args)} inputs"
        args, kwargs = self.args
        parts = [_short_repr.repr(a) for a in args]
        parts += [f"{k}={_short_repr.repr(v)}" for k, v in kwargs.items()]
        text = ", ".join(parts)
        return f"{name}({text if len(text) <= 80 else text[:77] + '...'})"

    def info(self) -> TaskInfo:
        name = function_name(self.fn)
        started = self.started_at
        if started is not None:
            started += time.time() - time.monotonic()  # shown as wall-clock time
        if self.kind == CHUNK:
            inputs = list(self.args[:3])
            text = ", ".join(_short_repr.repr(i) for i in inputs)
            more = ", ..." if len(self.args) > len(inputs) else ""
            return TaskInfo(self.id, name, f"[{text}{more}]", started, len(self.args))
        return TaskInfo(self.id, name, self.describe()[len(name) :].strip("()"), started)


class _PoolFuture(asyncio.Future[T]):
    """An asyncio future whose cancel() reaches the pool at once (kills a running task)."""

    _pool_task: _Task | None = None
    _on_cancel: Callable[[_Task], None] | None = None

    def cancel(self, msg: Any | None = None) -> bool:
        if not super().cancel(msg):
            return False
        task, on_cancel = self._pool_task, self._on_cancel
        if task is not None and on_cancel is not None:
            on_cancel(task)
        return True


class _AppliedFuture(_PoolFuture[T], Coroutine[Any, Any, T]):
    """What ``apply`` returns: the task's future, usable as a coroutine too.

    A coroutine (the ``collections.abc`` kind), so that ``apply`` works
    anywhere its ``async def`` form did (``TaskGroup.create_task``,
    ``asyncio.create_task``); a future, so that ``gather`` takes it as it
    is: no Task per call, which is most of the cost of 20,000 concurrent
    applies (asyncio spends ~10 us per Task). ``submit`` returns a plain
    future: ``asyncio.wait`` refuses coroutines.
    """

    _stepper: Generator[Any, None, T] | None = None

    # -- the coroutine protocol, for a Task that drives it: it waits on itself ----------------

    def _steps(self) -> Generator[Any, None, T]:
        if self._stepper is None:
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
        """Whether the task finished (result, exception or cancellation)."""
        return self._future.done()

    done = ready

    def successful(self) -> bool:
        """Whether it finished without raising; ValueError if not ready (as the stdlib)."""
        if not self._future.done():
            raise ValueError(f"{self!r} not ready")
        return not self._future.cancelled() and self._future.exception() is None

    def cancel(self) -> bool:
        """Cancel the task: withdrawn if not started, its worker killed if running."""
        return self._future.cancel()

    def cancelled(self) -> bool:
        return self._future.cancelled()

    async def wait(self, timeout: float | None = None) -> None:
        """Wait until the task finishes or timeout seconds pass; never raises the task's error.

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


class _PoolBase(abc.ABC):
    """The pool core shared by Pool (processes) and ThreadPool (threads)."""

    _kind: Literal["process", "thread"]
    _serialize: bool

    def __init__(
        self,
        size: int | None,
        initializer: Callable[..., object] | None,
        initargs: Iterable[Any],
        maxtasksperchild: int | None,
        timeout: float | None,
        name: str | None,
        size_name: str,
        idle_timeout: float | None = None,
    ) -> None:
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
            raise ValueError(f"Number of {size_name} must be at least 1, not {size!r}")
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        self._size = size if size is not None else _default_size()
        self._initializer = initializer
        self._initargs = tuple(initargs)
        self._maxtasks = check_positive_int(maxtasksperchild, "maxtasksperchild")
        self._timeout = check_timeout(timeout, allow_zero=False)
        self._idle_timeout = check_timeout(idle_timeout, allow_zero=False)
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str, not {type(name).__name__}")
        self._name = name or f"{type(self).__name__}-{next(_pool_numbers)}"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._state: Literal["running", "closed", "terminated", "broken"] = "running"
        self._broken: BrokenPoolError | None = None
        self._queue: collections.deque[_Task] = collections.deque()
        self._workers: list[_Worker] = []  # not dead yet (starting, idle, busy, stopping)
        self._dead: collections.deque[_Worker] = collections.deque(maxlen=_DEAD_KEPT)
        self._task_ids = itertools.count(1)
        self._worker_numbers = itertools.count(1)
        self._counts = dict.fromkeys(
            (
                "submitted",
                "completed",
                "failed",
                "cancelled",
                "timed_out",
                "worker_deaths",
                "workers_started",
            ),
            0,
        )
        self._dispatch_handle: asyncio.Handle | None = None
        self._finished: asyncio.Event | None = None
        self._runners: set[asyncio.Task[None]] = set()
        self._maps: set[_MapState[Any]] = set()  # maps being iterated (not finished)
        self._startup_deaths = 0  # workers in a row that died before READY
        self._start_failures = 0  # starts in a row that failed (no process at all)
        self._retry_handle: asyncio.TimerHandle | None = None
        self._terminating = False
        register(self)
        with contextlib.suppress(RuntimeError):  # in a running loop: start now, as the stdlib
            self._bind(asyncio.get_running_loop())

    def __repr__(self) -> str:
        return (
            f"<toolkit.{type(self).__name__} {self._name!r} state={self._state} size={self._size}>"
        )

    @property
    def name(self) -> str:
        return self._name

    def __reduce__(self) -> Any:
        # As multiprocessing's: a pool is this process's, with its sockets and loop.
        raise NotImplementedError("pool objects cannot be passed between processes or pickled")

    @property
    def _map_workers(self) -> int:  # the map engine interface (MapResult)
        return self._size

    @property
    def workers(self) -> tuple[WorkerInfo, ...]:
        """A frozen snapshot of every worker: live ones first, then recently dead ones."""
        return tuple(self._worker_info(w) for w in [*list(self._workers), *tuple(self._dead)])

    # -- life ---------------------------------------------------------------------------------

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._finished = asyncio.Event()
        if self._idle_timeout is None:  # elastic pools start workers on demand
            for _ in range(self._size):
                self._spawn()

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                f"{type(self).__name__} methods must be called from a running event loop"
            ) from None
        if self._loop is None:
            self._bind(loop)
        elif self._loop is not loop:
            ended = " (which has ended)" if self._loop.is_closed() else ""
            raise RuntimeError(f"{self!r} belongs to another event loop{ended}")
        return loop

    def _loop_ended(self) -> None:
        """The pool's event loop is going away with the pool open: its workers are gone.

        Called as the loop cancels what is left (``asyncio.run``, a Runner,
        pytest-asyncio, anyio): the state must say so, not "running".
        """
        if self._state in ("running", "closed"):
            self._state = "terminated"
        for task in [*self._queue, *(t for w in self._workers for t in w.outstanding.values())]:
            if task.timer is not None:
                task.timer.cancel()
        self._queue.clear()

    def _check_open(self, *, new: bool = False) -> None:
        """Raise unless the pool takes tasks: new calls need it running; a map
        already going on after close() may go on while workers remain."""
        if self._broken is not None:
            raise self._broken
        if self._state == "terminated" or (new and self._state == "closed"):
            raise PoolClosedError(f"{self!r} is {self._state}: it takes no new tasks")
        if self._state == "closed" and not any(not w.retiring for w in self._workers):
            raise PoolClosedError(
                f"{self!r} was closed and its workers have left: this map cannot go on"
            )

    def _spawn(self) -> None:
        loop = self._loop
        assert loop is not None
        name = f"{self._name}-{next(self._worker_numbers)}"
        try:
            worker = self._new_worker(loop, name)
        except Exception as exc:  # noqa: BLE001 - "too many open files", and the like
            self._start_failed(exc)
            return
        self._workers.append(worker)
        self._counts["workers_started"] += 1
        runner = loop.create_task(self._run_worker(worker), name=f"toolkit-{name}")
        self._runners.add(runner)
        runner.add_done_callback(self._runners.discard)

    @abc.abstractmethod
    def _new_worker(self, loop: asyncio.AbstractEventLoop, name: str) -> _Worker:
        """A worker of this pool's kind, not started."""

    @abc.abstractmethod
    async def _run_worker(self, worker: _Worker) -> None:
        """Start the worker and see it to its end (the pool's runner task for it)."""

    def _start_failed(self, exc: BaseException) -> None:
        """A worker could not be started: retry a few times with a backoff, then break.

        Never leave the pool running with too few workers and nobody to
        start them (a task would wait forever): a transient failure (no free
        descriptor for a moment) is retried; a lasting one breaks the pool,
        and every waiting and later call gets ``BrokenPoolError`` naming it.
        """
        if self._broken is not None:
            return
        self._start_failures += 1
        if self._start_failures > len(_START_BACKOFF):
            self._break(exc, f"a worker could not be started ({self._start_failures} tries):")
            return
        if self._retry_handle is None and self._loop is not None:
            delay = _START_BACKOFF[self._start_failures - 1]
            self._retry_handle = self._loop.call_later(delay, self._retry_start)

    def _retry_start(self) -> None:
        self._retry_handle = None
        self._replenish()
        self._schedule_dispatch()

    def _live(self) -> int:
        return sum(1 for w in self._workers if not w.retiring)

    def _replenish(self) -> None:
        if self._state not in ("running", "closed") or self._loop is None:
            return
        if self._retry_handle is not None:
            return  # a start failed: the retry comes after its backoff
        if self._state == "closed" and not self._has_work():
            return
        if self._idle_timeout is not None:
            self._grow()
            return
        for _ in range(self._size - self._live()):
            if self._retry_handle is not None or self._broken is not None:
                break  # a start failed: the retry comes after its backoff
            self._spawn()

    def _grow(self) -> None:
        """An elastic pool (idle_timeout): start workers for the tasks no worker can take."""
        live = self._live()
        if live >= self._size:
            return
        queued = sum(1 for t in self._queue if not t.future.done())
        starting = sum(1 for w in self._workers if not w.retiring and not w.ready)
        for _ in range(min(self._size - live, queued - starting)):
            if self._retry_handle is not None or self._broken is not None:
                break  # a start failed: the retry comes after its backoff
            self._spawn()

    def _went_idle(self, worker: _Worker) -> None:
        """An elastic pool's worker has nothing to do: it leaves after idle_timeout."""
        worker.set_state("idle")
        if self._idle_timeout is not None and worker.idle_timer is None:
            assert self._loop is not None
            worker.idle_timer = self._loop.call_later(
                self._idle_timeout, self._retire_if_idle, worker
            )

    def _retire_if_idle(self, worker: _Worker) -> None:
        worker.idle_timer = None
        if worker.state != "idle" or worker.outstanding or worker.retiring:
            return
        assert self._idle_timeout is not None
        assert self._loop is not None
        left = worker.since + self._idle_timeout - time.time()
        if left > 0.01:  # it worked meanwhile: wait for the rest of the idle time
            worker.idle_timer = self._loop.call_later(left, self._retire_if_idle, worker)
            return
        self._stop(worker)

    def _has_work(self) -> bool:
        # An open map counts even between chunks: close() lets it finish (as
        # multiprocessing's does). A map dropped unfinished is closed by the
        # loop's async-generator finalizer; one kept open keeps the pool too.
        return (
            any(not t.future.done() for t in self._queue)
            or any(w.outstanding for w in self._workers)
            or bool(self._maps)
        )

    # -- submitting -----------------------------------------------------------------------------

    def _submit(
        self,
        kind: bytes,
        fn: Callable[..., Any],
        args: Any,
        payload: Any,
        timeout: float | None,
        future_class: type[_PoolFuture[Any]] = _PoolFuture,
    ) -> _PoolFuture[Any]:
        loop = self._loop
        if loop is None or asyncio.get_running_loop() is not loop:
            loop = self._running_loop()
        future = future_class(loop=loop)
        task = _Task(next(self._task_ids), kind, fn, args, payload, future, timeout)
        future._pool_task = task
        future._on_cancel = self._on_cancelled
        self._counts["submitted"] += 1
        self._queue.append(task)
        if self._dispatch_handle is None:
            # Coalesced: a burst of submits is dispatched once, in one write per worker.
            self._dispatch_handle = loop.call_soon(self._dispatch)
        return future

    def _submit_call(
        self,
        fn: Callable[..., Any],
        args: Iterable[Any],
        kwargs: Mapping[str, Any] | None,
        timeout: float | None,
        future_class: type[_PoolFuture[Any]] = _PoolFuture,
    ) -> _PoolFuture[Any]:
        check_callable(fn)
        if type(args) is not tuple:
            args = tuple(args)
        kwargs = {} if kwargs is None else dict(kwargs)
        # 0 is refused: it would kill every task's worker as the task starts.
        timeout = check_timeout(timeout, allow_zero=False) if timeout is not None else self._timeout
        if self._loop is None or self._state != "running":
            self._running_loop()
            self._check_open(new=True)
        payload = dumps_call(fn, args, kwargs) if self._serialize else (fn, args, kwargs)
        return self._submit(TASK, fn, (args, kwargs), payload, timeout, future_class)

    def _submit_chunk(
        self, loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], chunk: list[Any], star: bool
    ) -> _PoolFuture[ChunkOutcome]:
        payload = dumps_chunk(fn, chunk, star) if self._serialize else (fn, chunk, star)
        return self._submit(CHUNK, fn, chunk, payload, None)

    def _map_started(self, state: _MapState[Any]) -> None:
        self._maps.add(state)

    def _map_finished(self, state: _MapState[Any]) -> None:
        self._maps.discard(state)
        self._check_finished()

    def _end_held_maps(self) -> None:
        """Leaving ``async with``: end the maps nobody is consuming (they would hold it forever).

        A map whose consumer is waiting for its next result goes on; one
        paused at a result nobody asked for (an ``imap`` kept in a variable,
        partly read) ends: its next step raises ``PoolClosedError``.
        """
        for state in list(self._maps):
            if state.held():
                state.end(
                    PoolClosedError(
                        f"{self!r} was closed when its `async with` block ended, before this "
                        "map was consumed: consume or close a map inside the block"
                    )
                )

    # -- dispatching ----------------------------------------------------------------------------

    def _schedule_dispatch(self) -> None:
        if self._dispatch_handle is None and self._loop is not None:
            # Coalesced: a burst of submits is dispatched once, in one write per worker.
            self._dispatch_handle = self._loop.call_soon(self._dispatch)

    @staticmethod
    def _update_capacity(worker: _Worker) -> None:
        """How many tasks the worker may hold: one, unless its tasks are tiny."""
        per_task = worker.per_task
        if not worker.ready or per_task is None or per_task >= _PIPELINE_BELOW:
            worker.capacity = 1
        else:
            worker.capacity = min(_PIPELINE_MAX, max(2, int(_PIPELINE_DEPTH / max(per_task, 1e-6))))

    def _dispatch(self) -> None:
        self._dispatch_handle = None
        queue = self._queue
        candidates = [w for w in self._workers if not w.retiring]
        sends: dict[ProcessWorker, list[bytes]] = {}
        while queue and candidates:
            best, best_load = None, _PIPELINE_MAX + 1
            for worker in candidates:
                load = len(worker.outstanding)
                if load < best_load and load < worker.capacity:
                    best, best_load = worker, load
            if best is None:
                break
            task = queue.popleft()
            if task.future.done():
                continue  # cancelled while queued
            self._assign(best, task, sends)
            if best.retiring:  # maxtasksperchild reached: not one task more
                candidates.remove(best)
        for worker, frames in sends.items():
            worker.send(b"".join(frames))
        if queue and self._idle_timeout is not None and self._state == "running":
            self._grow()

    def _assign(
        self, worker: _Worker, task: _Task, sends: dict[ProcessWorker, list[bytes]]
    ) -> None:
        task.worker = worker
        worker.outstanding[task.id] = task
        worker.assigned += 1
        if isinstance(worker, ProcessWorker):
            sends.setdefault(worker, []).append(
                frame(HEADER.pack(task.kind, task.id) + task.payload)
            )
        else:
            worker.send_task(task)
        if len(worker.outstanding) == 1 and worker.ready:
            self._started(worker, task)
        if self._maxtasks is not None and worker.assigned >= self._maxtasks:
            worker.retiring = True  # it finishes what it has; a fresh one takes over now
            self._replenish()

    def _started(self, worker: _Worker, task: _Task) -> None:
        """The task is now the oldest one its worker has: it runs."""
        if worker.state != "busy":
            worker.set_state("busy")
        task.started_at = now = time.monotonic()  # the loop's clock, converted when shown
        if task.timeout is not None and not task.future.done():
            assert self._loop is not None
            task.timer = self._loop.call_at(
                self._loop.time() + task.timeout - (time.monotonic() - now), self._expire, task
            )

    def _advance(self, worker: _Worker) -> None:
        """The worker answered its oldest task: start the next, or idle, or leave."""
        if worker.state in ("stopping", "dead"):
            return
        if worker.outstanding:
            self._started(worker, next(iter(worker.outstanding.values())))
        elif worker.retiring:
            self._stop(worker)
        else:
            self._went_idle(worker)
            self._check_finished()

    def _stop(self, worker: _Worker) -> None:
        """Ask an idle worker to leave (it finishes nothing: it has nothing)."""
        worker.retiring = True
        if worker.stop_sent:
            return
        worker.stop_sent = True
        worker.set_state("stopping")
        if isinstance(worker, ProcessWorker):
            worker.send(frame(HEADER.pack(STOP, 0)))
        else:
            worker.stop()

    # -- what workers say -----------------------------------------------------------------------

    def _on_message(
        self, worker: _Worker, kind: bytes, ident: int, body: Any, elapsed: float
    ) -> None:
        if kind == RESULT:
            self._on_result(worker, ident, body, elapsed)
        elif kind == SKIPPED:
            task = worker.outstanding.pop(ident, None)
            if task is not None:
                if task.timer is not None:
                    task.timer.cancel()
                if not task.future.done():  # withdrawn but still wanted: run it elsewhere
                    task.worker, task.started_at, task.cancel_requested = None, None, False
                    self._queue.appendleft(task)
            self._advance(worker)
            self._schedule_dispatch()
        elif kind == READY:
            worker.ready = True
            self._update_capacity(worker)
            self._startup_deaths = self._start_failures = 0
            if worker.state == "starting":
                if worker.outstanding:
                    self._started(worker, next(iter(worker.outstanding.values())))
                else:
                    self._went_idle(worker)
                    if worker.retiring:
                        self._stop(worker)
            self._schedule_dispatch()
        elif kind == INIT_FAILED:
            error = body
            if isinstance(body, memoryview | bytes):
                try:
                    load_outcome(cast("bytes", body))
                except BaseException as exc:  # noqa: BLE001 - it becomes the cause
                    error = exc
            self._break(error)
        elif kind == EXITED:
            self._on_exit(worker)

    def _on_result(self, worker: _Worker, ident: int, body: Any, elapsed: float) -> None:
        """A task's outcome: the hot path (tens of thousands per second), kept flat."""
        outstanding = worker.outstanding
        task = outstanding.pop(ident, None)
        if task is None:
            return
        if task.timer is not None:
            task.timer.cancel()
        worker.tasks_done += 1
        if task.kind == CHUNK and elapsed > 0:
            elapsed /= max(1, len(task.args))
        per_task = worker.per_task
        worker.per_task = per_task = elapsed if per_task is None else 0.7 * per_task + 0.3 * elapsed
        self._update_capacity(worker)
        future = task.future
        if future.done():
            pass  # cancelled or timed out meanwhile: the result is dropped
        elif task.kind == TASK and type(body) is memoryview:
            try:
                future.set_result(load_outcome(cast("bytes", body)))
                self._counts["completed"] += 1
            except BaseException as exc:  # noqa: BLE001 - the task's own exception, for its caller
                future.set_exception(exc)
                worker.failures += 1
                self._counts["failed"] += 1
        else:
            self._resolve(worker, task, body)
        if outstanding and worker.state == "busy":
            self._started(worker, next(iter(outstanding.values())))
        else:
            self._advance(worker)
        if self._queue and self._dispatch_handle is None:
            self._schedule_dispatch()

    def _resolve(self, worker: _Worker, task: _Task, body: Any) -> None:
        future = task.future
        if future.done():
            return  # cancelled or timed out meanwhile: the result is dropped
        failed = False
        pickled = isinstance(body, memoryview | bytes)
        try:
            if task.kind == CHUNK:
                outcome = load_chunk_outcome(body) if pickled else body
                failed = outcome.error is not None
                future.set_result(outcome)
            elif pickled:
                future.set_result(load_outcome(cast("bytes", body)))
            else:
                ok, value = body
                if ok:
                    future.set_result(value)
                else:
                    failed = True
                    future.set_exception(value)
        except BaseException as exc:  # noqa: BLE001 - the task's own exception, for its caller
            failed = True
            future.set_exception(exc)
        if failed:
            worker.failures += 1
            self._counts["failed"] += 1
        else:
            self._counts["completed"] += 1

    def _on_exit(self, worker: _Worker) -> None:
        """The worker ended: attribute the task it ran, re-queue the rest, replace it."""
        if worker.state == "dead":
            return  # accounted for already (its loop ended first)
        worker.drain()
        exitcode = worker.process.exitcode if isinstance(worker, ProcessWorker) else None
        expected = worker.stopping_reason is not None or (
            worker.stop_sent and not worker.outstanding
        )
        if worker.stopping_reason is not None:
            reason = worker.stopping_reason
            if isinstance(worker, ProcessWorker):
                reason += f" ({describe_exit(exitcode)})"
        elif expected:
            reason = "stopped"
        else:
            reason = describe_exit(exitcode) if isinstance(worker, ProcessWorker) else "ended"
            self._counts["worker_deaths"] += 1
        if not worker.ready and not expected:
            # It died before it could run anything (a failing import, the missing
            # __main__ guard under spawn): retrying forever would hide that.
            self._startup_deaths += 1
            if self._startup_deaths >= _STARTUP_DEATHS:
                guard = ""
                if self._kind == "process" and exitcode == 1:
                    guard = "; is the `if __name__ == '__main__':` guard missing?"
                cause = RuntimeError(
                    f"{_STARTUP_DEATHS} workers in a row ended before they were ready, "
                    f"the last one with {reason}{guard}"
                )
                self._break(cause, "its workers cannot start:")
        pending = list(worker.outstanding.values())
        worker.outstanding.clear()
        for index, task in enumerate(pending):
            if task.timer is not None:
                task.timer.cancel()
            if task.future.done():
                continue
            if index == 0 and worker.ready and (not expected or task.started_at is not None):
                # The oldest unanswered task may have run: never run it twice.
                pid = worker.pid or 0
                task.future.set_exception(WorkerDiedError(pid, exitcode, task.describe()))
                worker.failures += 1
                self._counts["failed"] += 1
            else:
                task.worker, task.started_at = None, None
        self._queue.extendleft(reversed([t for t in pending if not t.future.done()]))
        if worker.idle_timer is not None:
            worker.idle_timer.cancel()
            worker.idle_timer = None
        worker.set_state("dead")
        worker.exit_reason = reason
        with contextlib.suppress(ValueError):
            self._workers.remove(worker)
        self._dead.appendleft(worker)
        self._replenish()
        self._schedule_dispatch()
        self._check_finished()

    def _on_cancelled(self, task: _Task) -> None:
        self._counts["cancelled"] += 1
        if self._terminating:
            return
        if task.timer is not None:
            task.timer.cancel()
        worker = task.worker
        if worker is None:
            self._check_finished()
            return  # still queued: dispatch skips it
        if worker.ready and next(iter(worker.outstanding), None) == task.id:
            self._kill(worker, "killed: its task was cancelled")
        elif not task.cancel_requested:
            task.cancel_requested = True  # a thread worker reads this flag
            if isinstance(worker, ProcessWorker):
                worker.send(frame(HEADER.pack(CANCEL, task.id)))

    def _expire(self, task: _Task) -> None:
        task.timer = None
        if task.future.done():
            return
        self._counts["timed_out"] += 1
        self._counts["failed"] += 1
        worker = task.worker
        where = ""
        if worker is not None:
            worker.failures += 1
            where = f" (worker {worker.name}, pid {worker.pid}, was killed)"
            if isinstance(worker, ThreadWorker):
                where = f" (thread {worker.name} abandoned: a thread cannot be killed)"
        task.future.set_exception(
            TaskTimeoutError(f"{task.describe()} did not finish within {task.timeout:g} s{where}")
        )
        if worker is not None:
            self._kill(worker, "killed: task timed out")

    def _kill(self, worker: _Worker, reason: str) -> None:
        """End a worker now (a thread: after its task) and start its replacement at once."""
        if worker.stopping_reason is not None:
            return
        worker.stopping_reason = (
            reason if isinstance(worker, ProcessWorker) else reason.replace("killed", "abandoned")
        )
        worker.retiring = True
        worker.set_state("stopping")
        worker.kill()
        if isinstance(worker, ThreadWorker):
            # It can only leave after its current task; the others never started.
            rest = list(worker.outstanding.values())[1:]
            for task in rest:
                del worker.outstanding[task.id]
                task.worker = None
            self._queue.extendleft(reversed(rest))
        self._replenish()
        self._schedule_dispatch()

    def _break(self, cause: BaseException, what: str = "a worker's initializer raised") -> None:
        """The pool cannot run tasks: fail everything pending and refuse new work."""
        if self._broken is not None:
            return
        self._state = "broken"
        error = BrokenPoolError(f"{self!r}: {what} {type(cause).__name__}: {cause}")
        error.__cause__ = cause
        self._broken = error
        if self._retry_handle is not None:
            self._retry_handle.cancel()
            self._retry_handle = None
        self._state = "broken"
        tasks = [*self._queue, *(t for w in self._workers for t in w.outstanding.values())]
        self._queue.clear()
        for task in tasks:
            if task.timer is not None:
                task.timer.cancel()
            if not task.future.done():
                task.future.set_exception(error)
                self._counts["failed"] += 1
        for worker in list(self._workers):
            worker.outstanding.clear()
            if worker.stopping_reason is None:
                worker.stopping_reason = "initializer failed"
                worker.retiring = True
                worker.kill()
        self._check_finished()

    def _check_finished(self) -> None:
        if self._state == "running" or self._finished is None:
            return
        if self._state == "closed":
            if self._has_work():
                return
            for worker in list(self._workers):
                if (
                    not worker.outstanding
                    and not worker.stop_sent
                    and worker.stopping_reason is None
                ):
                    self._stop(worker)
        if not self._workers:
            self._finished.set()

    # -- closing --------------------------------------------------------------------------------

    def close(self) -> None:
        """Take no new tasks; the workers leave once every submitted task is done."""
        if self._state == "running":
            self._state = "closed"
        self._check_finished()

    def terminate(self) -> None:
        """Stop now: cancel every task not finished, kill the workers (threads: abandon)."""
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
                task.future.cancel()
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

        Cancellation:
            Safe: the workers go on leaving.
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

    def _kill_now(self) -> None:
        """End the workers from outside the pool's loop, which closed without ending them."""
        self._loop_ended()
        for worker in list(self._workers):
            worker.retiring = True
            if isinstance(worker, ThreadWorker):
                worker.stop()  # a busy thread is abandoned: it leaves after its task
        if isinstance(self, Pool):
            _kill_processes(self._processes)

    def _reap(self, wait: bool = True) -> None:
        for worker in self._dead:
            if isinstance(worker, ThreadWorker) and worker.thread.ident is not None:
                # It posted its last message: it is returning. Not so for a thread
                # abandoned when its loop ended (wait=False): it leaves after its task.
                worker.thread.join(None if wait else 0)

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
            SerializationError: fn or an argument cannot be pickled (at the call).
            WorkerDiedError: the worker died running it.
            TaskTimeoutError: it ran past timeout.
            PoolClosedError, BrokenPoolError: the pool takes no tasks.
            Whatever fn raised, with the worker's traceback as ``__cause__``.

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
        when it finishes. Errors as apply().
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

        For asyncio.wait, gather and as_completed; errors as apply().
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
        awaitable as a list.
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
        """As imap, yielding results as they finish."""
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
            The first exception an item raised (the map stops there).

        Cancellation:
            Every chunk not started is withdrawn; running ones are killed.
        """
        return await self._map(fn, iterable, chunksize, ordered=True, star=False)

    async def starmap(
        self,
        fn: Callable[..., T],
        iterable: Iterable[Iterable[Any]] | AsyncIterable[Iterable[Any]],
        chunksize: int | None = None,
    ) -> list[T]:
        """Return [fn(*args) for args in iterable], computed by the workers."""
        return await self._map(fn, iterable, chunksize, ordered=True, star=True)

    def map_async(
        self,
        fn: Callable[..., T],
        iterable: Iterable[Any] | AsyncIterable[Any],
        chunksize: int | None = None,
        callback: Callable[[list[T]], object] | None = None,
        error_callback: Callable[[BaseException], object] | None = None,
    ) -> AsyncResult[list[T]]:
        """Start map() and return its handle at once."""
        return self._map_async(fn, iterable, chunksize, callback, error_callback, star=False)

    def starmap_async(
        self,
        fn: Callable[..., T],
        iterable: Iterable[Iterable[Any]] | AsyncIterable[Iterable[Any]],
        chunksize: int | None = None,
        callback: Callable[[list[T]], object] | None = None,
        error_callback: Callable[[BaseException], object] | None = None,
    ) -> AsyncResult[list[T]]:
        """Start starmap() and return its handle at once."""
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
        return MapResult(self, fn, (iterable,), ordered, None, chunksize, None, star=star)

    # -- inspection ------------------------------------------------------------------------------

    def resize(self, size: int) -> None:
        """Keep ``size`` workers from now on: start more, or retire idle ones first."""
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"size must be a positive int, not {size!r}")
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
        """The pool's counts now (a frozen snapshot)."""
        # Copies first (each one C call, atomic under the GIL): a snapshot may be
        # taken from another thread (the playground's UI) while the loop changes them.
        workers = list(self._workers)
        states = collections.Counter(w.state for w in workers)
        queued = sum(1 for t in tuple(self._queue) if not t.future.done())
        running = sum(len(w.outstanding) for w in workers)
        c = dict(self._counts)
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
        )

    def _worker_info(self, worker: _Worker) -> WorkerInfo:
        tasks = list(worker.outstanding.values())  # one C call: safe from another thread
        head = tasks[0] if tasks and worker.ready else None
        cpu, rss = worker.usage()
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
        weakref.finalize(self, _kill_processes, self._processes)

    def _new_worker(self, loop: asyncio.AbstractEventLoop, name: str) -> _Worker:
        return ProcessWorker(
            name,
            loop,
            self._context,
            self._initializer,
            self._initargs,
            cast("Callable[[OutputLine], None] | None", self._capture),
            self._on_message,
            self._on_result,
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
                        await to_thread(worker.start)
        except BaseException as exc:
            worker.close()
            if worker in self._workers:
                self._workers.remove(worker)
            # Tasks already handed to it never reached a process: back to the queue.
            pending = [t for t in worker.outstanding.values() if not t.future.done()]
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
        if worker.process._popen is None:  # type: ignore[attr-defined]
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
            await _wait_ended(worker.process)
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
            ``processes=`` is taken too: ``multiprocessing.pool.ThreadPool``'s name.
        initializer, initargs, maxtasksperchild, name, timeout, idle_timeout: as ``Pool``.
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
            name, loop, self._initializer, self._initargs, self._on_message, self._on_result
        )

    async def _run_worker(self, worker: _Worker) -> None:
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


def _kill_processes(processes: list[Any]) -> None:
    """Kill a pool's worker processes that are still alive (the pool was dropped or we exit)."""
    for process in list(processes):
        with contextlib.suppress(Exception):
            if process._popen is not None and process.exitcode is None:
                os.kill(process.pid, signal.SIGKILL)
    for process in list(processes):
        with contextlib.suppress(Exception):
            process.join(1)


@atexit.register
def _kill_all_pools() -> None:
    # Registered after multiprocessing's own exit handler, so it runs before it:
    # multiprocessing would otherwise wait forever for our (non-daemon) workers.
    for pool in list(_live_pools):
        _kill_processes(pool._processes)
