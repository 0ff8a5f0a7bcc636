"""What the toolkit runs in this process, as frozen snapshots.

``toolkit.inspect.snapshot()`` returns every live ``Pool``/``ThreadPool``
(its ``PoolStats`` and one ``WorkerInfo`` per worker) and every started
``toolkit.Process``. ``pool.stats()`` and ``pool.workers`` give the same
records for one pool. The playground's ``ps`` and ``top`` are drawn from here;
``find_pool(name)`` gives a console the pool behind a snapshot's rows, and
``tasks()`` the running loop's asyncio tasks with what each awaits (a
service's monitor sends both).
"""

from __future__ import annotations

from ._core._asynctasks import (
    AsyncTaskInfo as AsyncTaskInfo,
    await_chain as await_chain,
    awaitables as awaitables,
    task_snapshot as tasks,
)
from ._core._inspection import (
    PoolSnapshot as PoolSnapshot,
    PoolStats as PoolStats,
    ProcessInfo as ProcessInfo,
    Snapshot as Snapshot,
    TaskInfo as TaskInfo,
    WorkerInfo as WorkerInfo,
    WorkerState as WorkerState,
    find_pool as find_pool,
    snapshot as snapshot,
)
from ._core._registry import DURATION_BOUNDS as DURATION_BOUNDS

__all__ = (
    "DURATION_BOUNDS",
    "AsyncTaskInfo",
    "PoolSnapshot",
    "PoolStats",
    "ProcessInfo",
    "Snapshot",
    "TaskInfo",
    "WorkerInfo",
    "WorkerState",
    "await_chain",
    "awaitables",
    "find_pool",
    "snapshot",
    "tasks",
)
