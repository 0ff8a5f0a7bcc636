"""What the toolkit runs in this process, as frozen snapshots.

``toolkit.inspect.snapshot()`` returns every live ``Pool``/``ThreadPool``
(its ``PoolStats`` and one ``WorkerInfo`` per worker) and every started
``toolkit.Process``. ``pool.stats()`` and ``pool.workers`` give the same
records for one pool. The playground's ``ps`` and ``top`` are drawn from here;
``find_pool(name)`` gives a console the pool behind a snapshot's rows.
"""

from __future__ import annotations

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

__all__ = (
    "PoolSnapshot",
    "PoolStats",
    "ProcessInfo",
    "Snapshot",
    "TaskInfo",
    "WorkerInfo",
    "WorkerState",
    "find_pool",
    "snapshot",
)
