"""The pool core: one scheduler for every engine (process workers, thread workers, and more).

Theory of operation
-------------------
Everything runs on the event loop thread; there is no manager thread and no
polling. The scheduler owns the tasks, their queue, each worker's window of
tasks in flight, timeouts, cancellation and crash handling; it drives its
workers through one small interface (``WorkerBase`` in _workers.py), which a
process worker and a thread worker implement, and another engine can::

    submit ──▶ queue ──dispatch──▶ worker 1 (enqueue, flush) ──▶ process/thread 1
                 │                 worker 2                  ──▶ process/thread 2
    future ◀─────┴── on_results / on_message (READY, SKIPPED, INIT_FAILED, EXITED)

* **One task at a time, except tiny ones.** A worker gets one task; once its
  measured task time is under a millisecond it gets several (up to 64) so
  that tiny tasks run back to back without a round trip each. The worker
  answers in order, so the oldest unanswered task is the one running.
* **Death is seen, not guessed.** When a worker ends, what it wrote before
  is handled first, then the oldest unanswered task fails with
  ``WorkerDiedError`` (pid, exit code or signal, the task), the tasks behind
  it (never started) go back to the queue, and a new worker replaces it.
* **Cancel and timeout kill.** Cancelling the future of a running task, or
  its timeout expiring, kills that worker (a thread cannot be killed: its
  task is abandoned, the thread replaced), and a replacement starts at once.
  A task not started yet is withdrawn instead (from the queue, or by a
  cancel the worker reads before it starts its next task).
* **Starting can fail.** A worker that cannot be started is retried with a
  backoff, then the pool breaks (``BrokenPoolError``); workers that die
  before they are ready break it too, never an endless respawn.
* **Elastic pools** (``idle_timeout``) start workers as tasks arrive and let
  idle ones go.

The Pool and ThreadPool API (_pool.py) sits above: an engine provides
``_new_worker`` and ``_run_worker``.
"""

from __future__ import annotations

import abc
import asyncio
import bisect
import collections
import contextlib
import itertools
import os
import reprlib
import time
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar, cast

from .._core._errors import (
    BrokenPoolError,
    PoolClosedError,
    TaskTimeoutError,
)
from .._core._registry import DURATION_BOUNDS, function_name, register
from .._core._serialize import load_chunk_outcome, load_outcome
from .._core._validate import check_positive_int, check_timeout
from ._worker import CHUNK, INIT_FAILED, READY, RESULT, SKIPPED, TASK
from ._workers import EXITED, WorkerBase

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from .._core._inspection import PoolSnapshot, TaskInfo


__all__ = ["Scheduler", "TaskFuture", "default_size"]

_Worker = WorkerBase

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


class _OpenMap(Protocol):
    """What the scheduler needs of a map being iterated (_map.py's _MapState)."""

    def held(self) -> bool: ...

    def end(self, error: BaseException) -> None: ...


def default_size() -> int:
    """How many workers by default: the CPUs this process may use."""
    try:
        return len(os.sched_getaffinity(0))  # what this process may use (containers, taskset)
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class TaskFuture(asyncio.Future[T]):
    """A task of a pool and the asyncio future of its outcome, in one object.

    The caller holds it as a future (its ``cancel()`` reaches the pool at
    once, and kills a running task); the scheduler and the workers read and
    write the task's slots below, which are not API. One object, not a task
    record beside a future: per call, one object fewer to make and for the
    garbage collector to track, and no future-task reference cycle, which
    only a collection could free (20,000 applies left 120,000 objects to it,
    and its collections took a third of the pool's time).
    """

    __slots__ = (
        "args",
        "cancel_requested",
        "fn",
        "id",
        "kind",
        "kwargs",
        "payload",
        "scheduler",
        "started_at",
        "timeout",
        "timer",
        "worker",
    )

    id: int
    kind: bytes
    fn: Callable[..., Any]
    args: Any  # the call's arguments, or a chunk's inputs: for inspection
    kwargs: dict[str, Any] | None  # a call's keyword arguments (None for a chunk)
    payload: Any  # bytes for a process, (fn, args, kwargs) for a thread
    timeout: float | None
    timer: asyncio.TimerHandle | None
    worker: _Worker | None
    started_at: float | None
    cancel_requested: bool
    scheduler: Scheduler

    def cancel(self, msg: Any | None = None) -> bool:
        if not super().cancel(msg):
            return False
        self.scheduler._on_cancelled(self)
        return True

    def describe(self) -> str:
        name = function_name(self.fn)
        if self.kind == CHUNK:
            return f"{name} over {len(self.args)} inputs"
        parts = [_short_repr.repr(a) for a in self.args]
        parts += [f"{k}={_short_repr.repr(v)}" for k, v in (self.kwargs or {}).items()]
        text = ", ".join(parts)
        return f"{name}({text if len(text) <= 80 else text[:77] + '...'})"

    def info(self) -> TaskInfo:
        from .._core._inspection import TaskInfo  # here: the records load only when asked for

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


class Scheduler(abc.ABC):
    """The scheduler core of a pool: tasks, windows, timeouts, cancellation, crashes."""

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
        self._size = size if size is not None else default_size()
        self._initializer = initializer
        self._initargs = tuple(initargs)
        self._maxtasks = check_positive_int(maxtasksperchild, "maxtasksperchild")
        self._timeout = check_timeout(timeout, allow_zero=False)
        self._idle_timeout = check_timeout(idle_timeout, allow_zero=False, name="idle_timeout")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str, not {type(name).__name__}")
        self._name = name or f"{type(self).__name__}-{next(_pool_numbers)}"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid = os.getpid()  # a forked child inherits the object, not the workers
        self._state: Literal["running", "closed", "terminated", "broken"] = "running"
        self._broken: BrokenPoolError | None = None
        self._queue: collections.deque[TaskFuture[Any]] = collections.deque()
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
        self._durations = [0] * (len(DURATION_BOUNDS) + 1)
        self._duration_sum = 0.0
        self._dispatch_handle: asyncio.Handle | None = None
        self._finished: asyncio.Event | None = None
        self._runners: set[asyncio.Task[None]] = set()
        self._maps: set[_OpenMap] = set()  # maps being iterated (not finished)
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
    def _map_workers(self) -> int:  # the map engine interface (MapResult)
        return self._size

    # -- life ---------------------------------------------------------------------------------

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._finished = asyncio.Event()
        if self._idle_timeout is None:  # elastic pools start workers on demand
            for _ in range(self._size):
                self._spawn()

    def _check_process(self) -> None:
        """Refuse a forked child: its calls would cancel, kill or queue for the parent's workers."""
        if self._pid != os.getpid():
            raise RuntimeError(
                f"{self!r} belongs to process {self._pid}: a forked child cannot use its"
                " parent's pool (the workers stayed with the parent); make one in the child"
            )

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                f"{type(self).__name__} methods must be called from a running event loop"
            ) from None
        self._check_process()
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
        queued = sum(1 for t in self._queue if not t.done())
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
            any(not t.done() for t in self._queue)
            or any(w.outstanding for w in self._workers)
            or bool(self._maps)
        )

    # -- submitting -----------------------------------------------------------------------------

    def _submit(
        self,
        kind: bytes,
        fn: Callable[..., Any],
        args: Any,
        kwargs: dict[str, Any] | None,
        payload: Any,
        timeout: float | None,
        future_class: type[TaskFuture[Any]] = TaskFuture,
    ) -> TaskFuture[Any]:
        loop = self._loop
        if loop is None or asyncio.get_running_loop() is not loop:
            loop = self._running_loop()
        task = future_class(loop=loop)
        task.id = next(self._task_ids)
        task.kind = kind
        task.fn = fn
        task.args = args
        task.kwargs = kwargs
        task.payload = payload
        task.timeout = timeout
        task.timer = task.worker = task.started_at = None
        task.cancel_requested = False
        task.scheduler = self
        self._counts["submitted"] += 1
        self._queue.append(task)
        if self._dispatch_handle is None:
            # Coalesced: a burst of submits is dispatched once, in one write per worker.
            self._dispatch_handle = loop.call_soon(self._dispatch)
        return task

    def _map_started(self, state: _OpenMap) -> None:
        self._maps.add(state)

    def _map_finished(self, state: _OpenMap) -> None:
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
        elif per_task * _PIPELINE_MAX <= _PIPELINE_DEPTH:  # tiny tasks, the usual case: no division
            worker.capacity = _PIPELINE_MAX
        else:
            worker.capacity = max(2, int(_PIPELINE_DEPTH / per_task))

    def _dispatch(self) -> None:
        self._dispatch_handle = None
        queue = self._queue
        candidates = [w for w in self._workers if not w.retiring]
        touched: set[_Worker] = set()
        # An elastic pool below its size starts a worker for a task rather than
        # pipelining it behind another: two long calls must not wait in line on
        # one worker (measured tiny) while the pool could run both at once.
        growing = self._idle_timeout is not None and self._live() < self._size
        while queue and candidates:
            best, best_load = None, _PIPELINE_MAX + 1
            for worker in candidates:
                load = len(worker.outstanding)
                if load < best_load and load < (1 if growing else worker.capacity):
                    best, best_load = worker, load
            if best is None:
                break
            task = queue.popleft()
            if task.done():
                continue  # cancelled while queued
            self._assign(best, task, touched)
            if best.retiring:  # maxtasksperchild reached: not one task more
                candidates.remove(best)
        for worker in touched:
            worker.flush()  # one write per worker for the whole burst
        if queue and self._idle_timeout is not None and self._state == "running":
            self._grow()

    def _assign(self, worker: _Worker, task: TaskFuture[Any], touched: set[_Worker]) -> None:
        task.worker = worker
        worker.outstanding[task.id] = task
        worker.assigned += 1
        worker.enqueue(task)
        touched.add(worker)
        if len(worker.outstanding) == 1 and worker.ready:
            self._started(worker, task)
        if self._maxtasks is not None and worker.assigned >= self._maxtasks:
            worker.retiring = True  # it finishes what it has; a fresh one takes over now
            self._replenish()

    def _started(self, worker: _Worker, task: TaskFuture[Any]) -> None:
        """The task is now the oldest one its worker has: it runs."""
        if worker.state != "busy":
            worker.set_state("busy")
        task.started_at = now = time.monotonic()  # the loop's clock, converted when shown
        if task.timeout is not None and not task.done():
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
        worker.request_stop()

    # -- what workers say -----------------------------------------------------------------------

    def _on_message(
        self, worker: _Worker, kind: bytes, ident: int, body: Any, elapsed: float
    ) -> None:
        if kind == RESULT:
            self._on_results(worker, [(ident, body, elapsed)])
        elif kind == SKIPPED:
            task = worker.outstanding.pop(ident, None)
            if task is not None:
                if task.timer is not None:
                    task.timer.cancel()
                if not task.done():  # withdrawn but still wanted: run it elsewhere
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

    def _on_results(self, worker: _Worker, results: list[tuple[int, Any, float]]) -> None:
        """Outcomes (task id, body, seconds it ran), in the order the worker sent them.

        The hot path (a hundred thousand a second): a whole read's outcomes
        at once, kept flat, and what follows them (the next task starts, the
        worker's window, a dispatch) done once for all.
        """
        outstanding = worker.outstanding
        per_task = worker.per_task
        durations = self._durations
        bisect_left = bisect.bisect_left
        done = completed = failed = 0
        for ident, body, elapsed in results:
            task = outstanding.pop(ident, None)
            if task is None:
                continue
            done += 1
            if task.timer is not None:
                task.timer.cancel()
            if task.kind == CHUNK and elapsed > 0:
                elapsed /= max(1, len(task.args))
            per_task = elapsed if per_task is None else 0.7 * per_task + 0.3 * elapsed
            task.payload = None  # sent and answered: not kept alive by the caller's future
            if task.done():
                continue  # cancelled or timed out meanwhile: the result is dropped
            items = len(task.args) if task.kind == CHUNK else 1
            durations[bisect_left(DURATION_BOUNDS, elapsed)] += items
            self._duration_sum += elapsed * items
            if task.kind == TASK and type(body) is memoryview:
                try:
                    task.set_result(load_outcome(cast("bytes", body)))
                    completed += 1
                except BaseException as exc:  # noqa: BLE001 - the task's own exception, for its caller
                    # Without this frame in its traceback, which holds the task: a cycle.
                    task.set_exception(exc.with_traceback(None))
                    failed += 1
            else:
                self._resolve(worker, task, body)
        if not done:
            return
        worker.tasks_done += done
        worker.failures += failed
        self._counts["completed"] += completed
        self._counts["failed"] += failed
        worker.per_task = per_task
        self._update_capacity(worker)
        if outstanding and worker.state == "busy":
            self._started(worker, next(iter(outstanding.values())))
        else:
            self._advance(worker)
        if self._queue and self._dispatch_handle is None:
            self._schedule_dispatch()

    def _resolve(self, worker: _Worker, task: TaskFuture[Any], body: Any) -> None:
        future = task
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
            future.set_exception(exc.with_traceback(None))  # as in _on_results
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
        exitcode = worker.exitcode
        expected = worker.stopping_reason is not None or (
            worker.stop_sent and not worker.outstanding
        )
        if worker.stopping_reason is not None:
            reason = worker.stopping_reason
            if worker.killable:
                reason += f" ({worker.exit_words(exitcode)})"
        elif expected:
            reason = "stopped"
        else:
            reason = worker.end_reason(exitcode)
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
            if task.done():
                continue
            if index == 0 and worker.ready and (not expected or task.started_at is not None):
                # The oldest unanswered task may have run: never run it twice.
                task.set_exception(worker.died(exitcode, task.describe()))
                task.payload = None
                worker.failures += 1
                self._counts["failed"] += 1
            else:
                task.worker, task.started_at = None, None
        self._queue.extendleft(reversed([t for t in pending if not t.done()]))
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

    def _on_cancelled(self, task: TaskFuture[Any]) -> None:
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
            worker.withdraw(task)

    def _expire(self, task: TaskFuture[Any]) -> None:
        task.timer = None
        if task.done():
            return
        self._counts["timed_out"] += 1
        self._counts["failed"] += 1
        worker = task.worker
        where = ""
        if worker is not None:
            worker.failures += 1
            where = f" (worker {worker.name}, pid {worker.pid}, was killed)"
            if not worker.killable:
                where = f" (thread {worker.name} abandoned: a thread cannot be killed)"
        task.set_exception(
            TaskTimeoutError(f"{task.describe()} did not finish within {task.timeout:g} s{where}")
        )
        task.payload = None
        if worker is not None:
            self._kill(worker, "killed: task timed out")

    def _kill(self, worker: _Worker, reason: str) -> None:
        """End a worker now (a thread: after its task) and start its replacement at once."""
        if worker.stopping_reason is not None:
            return
        worker.stopping_reason = (
            reason if worker.killable else reason.replace("killed", "abandoned")
        )
        worker.retiring = True
        worker.set_state("stopping")
        worker.kill()
        if not worker.killable:
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
            if not task.done():
                task.set_exception(error)
                task.payload = None
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

    def _kill_now(self) -> None:
        """End the workers from outside the pool's loop, which closed without ending them."""
        self._loop_ended()
        for worker in list(self._workers):
            worker.retiring = True
            worker.kill_now()

    def _reap(self, wait: bool = True) -> None:
        for worker in self._dead:
            worker.reap(wait)

    @abc.abstractmethod
    def _snapshot(self) -> PoolSnapshot | None:
        """What inspection shows of this pool (None: nothing runs here any more)."""
