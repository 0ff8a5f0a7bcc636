"""Frozen snapshot records of what the toolkit is running.

Pools and processes register themselves when they start (_registry.py,
weakly: a registry must never keep a pool alive); the records load only
when something asks for them (frozen dataclasses cost ~0.6 ms each to
define, which a pool's cold start does not pay). ``toolkit.inspect.snapshot()`` asks
each live one for its records. Every record is a frozen value taken at one
instant, safe to keep, compare, print or send elsewhere: the playground's
``ps`` and ``top`` draw from nothing else.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

from ._registry import function_name, live, register

__all__ = [
    "PoolSnapshot",
    "PoolStats",
    "ProcessInfo",
    "Snapshot",
    "TaskInfo",
    "WorkerInfo",
    "WorkerState",
    "find_pool",
    "function_name",
    "register",
    "snapshot",
]

WorkerState = Literal["starting", "idle", "busy", "stopping", "dead"]
"""A worker's state (``WorkerInfo.state``): its life, in order.

``starting`` (its process or thread is starting), ``idle`` (ready, no
task), ``busy`` (running a task), ``stopping`` (told to leave, killed, or
retiring after its task), ``dead`` (gone; kept a while in ``pool.workers``
with its ``exit_reason``).
"""


@dataclass(frozen=True, slots=True)
class TaskInfo:
    """A task a worker is running.

    Attributes:
        id: the pool's task number (unique within the pool).
        function: the function's qualified name (``module.name``).
        args: a short repr of the arguments (at most about 80 characters).
        started_at: ``time.time()`` when the worker started it (None: sent, not started yet).
        items: how many inputs: 1 for a call, the chunk's length for a map's chunk
            (then ``args`` shows the first inputs).
    """

    id: int
    function: str
    args: str
    started_at: float | None
    items: int = 1


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """One worker of a pool, at one instant.

    Attributes:
        name: the worker's name (``<pool name>-<n>``); unique within the process.
        kind: ``"process"`` or ``"thread"``.
        pid: the worker's process id (a thread worker: this process's).
        tid: a thread worker's native thread id; None for a process worker.
        state: ``starting``, ``idle``, ``busy``, ``stopping`` or ``dead``.
        task: what it is running (busy) or None.
        since: ``time.time()`` when it entered its state.
        tasks_done: tasks it finished (successfully or with the task's own exception).
        failures: tasks that raised.
        exit_reason: why it ended, None while it lives: "exit code 1" or "killed by
            SIGKILL" (it died: a crash, a kill from outside); "stopped" (it left
            when asked: close, maxtasksperchild, resize); "killed: task timed out
            (killed by SIGKILL)", "killed: its task was cancelled (...)",
            "terminated (...)" (the pool ended it); "abandoned: ..." for a thread.
        cpu_percent: CPU use since the previous snapshot, percent of one core (None: unknown).
        rss: resident memory in bytes (None for a thread, or unknown).
        address: a cluster worker's address (``DaskPool``), else None.
        host: the host a cluster worker runs on, else None.
        threads: a cluster worker's threads, else None.
    """

    name: str
    kind: Literal["process", "thread"]
    pid: int | None
    tid: int | None
    state: WorkerState
    task: TaskInfo | None
    since: float
    tasks_done: int
    failures: int
    exit_reason: str | None
    cpu_percent: float | None
    rss: int | None
    address: str | None = None
    host: str | None = None
    threads: int | None = None


@dataclass(frozen=True, slots=True)
class PoolStats:
    """Counts of one pool, at one instant.

    Attributes:
        name: the pool's name.
        kind: ``"process"`` or ``"thread"``.
        size: how many workers the pool keeps.
        idle, busy, starting, stopping: workers in each state now.
        queued: tasks accepted but not yet sent to a worker.
        running: tasks sent to a worker and not finished.
        submitted: tasks ever accepted.
        completed: tasks that returned a result.
        failed: tasks that raised (their own exception, a crash or a timeout).
        cancelled: tasks cancelled before they finished.
        timed_out: tasks stopped by their timeout.
        worker_deaths: workers that ended unexpectedly (a crash, a kill from outside);
            workers the pool itself killed for a timeout or a cancel count in
            ``timed_out`` and ``cancelled`` instead.
        workers_started: workers ever started (replacements included).
        state: ``"running"``, ``"closed"`` (no new tasks; finishing), ``"terminated"``
            or ``"broken"`` (an initializer failed).
        durations: tasks that finished (completed or failed), by how long they
            ran: one count per bound of ``toolkit.inspect.DURATION_BOUNDS``
            (at most that many seconds, above the previous bound), then one
            for longer. A map's chunk counts as its items, at its average.
        duration_sum: the seconds those tasks ran, in all.
    """

    name: str
    kind: Literal["process", "thread"]
    size: int
    idle: int
    busy: int
    starting: int
    stopping: int
    queued: int
    running: int
    submitted: int
    completed: int
    failed: int
    cancelled: int
    timed_out: int
    worker_deaths: int
    workers_started: int
    state: Literal["running", "closed", "terminated", "broken"]
    durations: tuple[int, ...] = ()
    duration_sum: float = 0.0


@dataclass(frozen=True, slots=True)
class PoolSnapshot:
    """A pool's counts and its workers (the dead ones last, most recent first)."""

    stats: PoolStats
    workers: tuple[WorkerInfo, ...]


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """A ``toolkit.Process``, at one instant.

    Attributes:
        name: the process name.
        pid: its pid (None before start).
        state: ``"initial"``, ``"running"`` or ``"exited"``.
        exitcode: as ``multiprocessing.Process.exitcode`` (negative: killed by that signal).
        target: the target's qualified name.
    """

    name: str
    pid: int | None
    state: Literal["initial", "running", "exited"]
    exitcode: int | None
    target: str


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the toolkit runs in this process, at one instant."""

    taken_at: float
    pools: tuple[PoolSnapshot, ...]
    processes: tuple[ProcessInfo, ...]


def find_pool(name: str) -> Any:
    """The live pool (``Pool``, ``ThreadPool``, ``DaskPool``) named name, or None.

    For a console's control actions (restart a cluster worker, resize): a
    snapshot names workers by their pool, this finds the pool. Any thread.
    Where names repeat, a running pool wins over one that has ended.
    It raises nothing: an unknown name gives None.
    """
    found = None
    for obj in live():  # names may repeat: a running pool before one that has ended
        if getattr(obj, "name", None) == name and hasattr(obj, "stats"):
            if obj._snapshot() is not None:
                return obj
            found = found or obj
    return found


def snapshot() -> Snapshot:
    """Return a snapshot of every live pool and process the toolkit started here.

    Safe from any thread (a monitor's, a UI's), even while the loop that runs
    the pools is busy or blocked: it copies, it never waits for the loop.
    It raises nothing: a worker's CPU and memory figures are None where
    they cannot be read.
    """
    pools: list[PoolSnapshot] = []
    processes: list[ProcessInfo] = []
    for obj in live():
        record = obj._snapshot()
        if isinstance(record, PoolSnapshot):
            pools.append(record)
        elif isinstance(record, ProcessInfo):
            processes.append(record)
    pools.sort(key=lambda p: p.stats.name)
    processes.sort(key=lambda p: (p.pid is None, p.pid or 0))
    return Snapshot(time.time(), tuple(pools), tuple(processes))
