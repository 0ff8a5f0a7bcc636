"""The multiprocessing and concurrent.futures APIs you know: awaitable, observable, cancel-safe.

Replace ``multiprocessing.X`` with ``toolkit.X``, then ``await`` the blocking
calls. Start with ``await toolkit.to_thread(fn, ...)``,
``await toolkit.to_process(fn, ...)`` and ``toolkit.AsyncExecutor(executor)``.
"""

from __future__ import annotations

import contextlib
from types import ModuleType

from ._connection import Connection as Connection, Pipe as Pipe
from ._context import default_start_method as default_start_method, get_context as get_context
from ._errors import (
    ClosedError as ClosedError,
    ManagerDiedError as ManagerDiedError,
    PoolClosedError as PoolClosedError,
    QueueEmpty as QueueEmpty,
    QueueFull as QueueFull,
    RemoteTraceback as RemoteTraceback,
    SerializationError as SerializationError,
    TaskTimeoutError as TaskTimeoutError,
    ToolkitError as ToolkitError,
    WorkerDiedError as WorkerDiedError,
)
from ._executors import (
    ALL_COMPLETED as ALL_COMPLETED,
    FIRST_COMPLETED as FIRST_COMPLETED,
    FIRST_EXCEPTION as FIRST_EXCEPTION,
    AsyncExecutor as AsyncExecutor,
    ExecutorStats as ExecutorStats,
    MapResult as MapResult,
    shutdown_default_executors as shutdown_default_executors,
    to_process as to_process,
    to_thread as to_thread,
)
from ._loop import run as run
from ._managers import BaseManager as BaseManager, Manager as Manager
from ._process import Process as Process
from ._proxies import BaseProxy as BaseProxy
from ._queues import JoinableQueue as JoinableQueue, Queue as Queue, SimpleQueue as SimpleQueue
from ._sharedctypes import (
    Array as Array,
    RawArray as RawArray,
    RawValue as RawValue,
    Value as Value,
)
from ._synchronize import (
    Barrier as Barrier,
    BoundedSemaphore as BoundedSemaphore,
    Condition as Condition,
    Event as Event,
    Lock as Lock,
    RLock as RLock,
    Semaphore as Semaphore,
)

__version__ = "0.1.0"

__all__ = (
    "ALL_COMPLETED",
    "FIRST_COMPLETED",
    "FIRST_EXCEPTION",
    "Array",
    "AsyncExecutor",
    "Barrier",
    "BaseManager",
    "BaseProxy",
    "BoundedSemaphore",
    "ClosedError",
    "Condition",
    "Connection",
    "Event",
    "ExecutorStats",
    "JoinableQueue",
    "Lock",
    "Manager",
    "ManagerDiedError",
    "MapResult",
    "Pipe",
    "PoolClosedError",
    "Process",
    "Queue",
    "QueueEmpty",
    "QueueFull",
    "RLock",
    "RawArray",
    "RawValue",
    "RemoteTraceback",
    "Semaphore",
    "SerializationError",
    "SimpleQueue",
    "TaskTimeoutError",
    "ToolkitError",
    "Value",
    "WorkerDiedError",
    "default_start_method",
    "get_context",
    "run",
    "shutdown_default_executors",
    "to_process",
    "to_thread",
)

# Reprs, tracebacks and pickles say toolkit.X, not toolkit._module.X. Exceptions
# pickle by qualified name, so toolkit.X must be importable: it is.
for _obj in map(globals().__getitem__, __all__):
    if not isinstance(_obj, ModuleType | str) and hasattr(_obj, "__module__"):
        with contextlib.suppress(AttributeError, TypeError):  # builtin-backed: keeps its own
            _obj.__module__ = __name__
del _obj
