"""The multiprocessing and concurrent.futures APIs you know: awaitable, observable, cancel-safe.

Replace ``multiprocessing.X`` with ``toolkit.X``, then ``await`` the blocking
calls. Start with ``await toolkit.to_thread(fn, ...)``,
``await toolkit.to_process(fn, ...)`` and ``toolkit.AsyncExecutor(executor)``.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names, for type checkers; at run time they load on first use
    from . import (
        inspect as inspect,
        monitor as monitor,
    )  # toolkit.inspect.snapshot(), monitor.serve()
    from ._connection import Connection as Connection, Pipe as Pipe
    from ._context import default_start_method as default_start_method, get_context as get_context
    from ._errors import (
        BrokenPoolError as BrokenPoolError,
        ClosedError as ClosedError,
        ConnectionClosedError as ConnectionClosedError,
        ManagerDiedError as ManagerDiedError,
        PoolClosedError as PoolClosedError,
        QueueEmpty as QueueEmpty,
        QueueFull as QueueFull,
        RemoteTraceback as RemoteTraceback,
        SerializationError as SerializationError,
        TaskExitError as TaskExitError,
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
    from ._pool import AsyncResult as AsyncResult, Pool as Pool, ThreadPool as ThreadPool
    from ._pool_workers import OutputLine as OutputLine
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
    "AsyncResult",
    "Barrier",
    "BaseManager",
    "BaseProxy",
    "BoundedSemaphore",
    "BrokenPoolError",
    "ClosedError",
    "Condition",
    "Connection",
    "ConnectionClosedError",
    "Event",
    "ExecutorStats",
    "JoinableQueue",
    "Lock",
    "Manager",
    "ManagerDiedError",
    "MapResult",
    "OutputLine",
    "Pipe",
    "Pool",
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
    "TaskExitError",
    "TaskTimeoutError",
    "ThreadPool",
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

# Each public name -> the private module defining it. Importing ``toolkit``
# loads none of them: a worker process importing ``toolkit._worker``, or a
# program using only to_thread, pays for what it uses (the whole package
# takes ~0.1 s to import). ``toolkit.X`` loads X's module on first access.
_LAZY: dict[str, str] = {
    "inspect": ".inspect",
    "monitor": ".monitor",
    "Connection": "._connection",
    "Pipe": "._connection",
    "default_start_method": "._context",
    "get_context": "._context",
    "BrokenPoolError": "._errors",
    "ClosedError": "._errors",
    "ConnectionClosedError": "._errors",
    "ManagerDiedError": "._errors",
    "PoolClosedError": "._errors",
    "QueueEmpty": "._errors",
    "QueueFull": "._errors",
    "RemoteTraceback": "._errors",
    "SerializationError": "._errors",
    "TaskExitError": "._errors",
    "TaskTimeoutError": "._errors",
    "ToolkitError": "._errors",
    "WorkerDiedError": "._errors",
    "ALL_COMPLETED": "._executors",
    "FIRST_COMPLETED": "._executors",
    "FIRST_EXCEPTION": "._executors",
    "AsyncExecutor": "._executors",
    "ExecutorStats": "._executors",
    "MapResult": "._executors",
    "shutdown_default_executors": "._executors",
    "to_process": "._executors",
    "to_thread": "._executors",
    "run": "._loop",
    "BaseManager": "._managers",
    "Manager": "._managers",
    "BaseProxy": "._proxies",
    "AsyncResult": "._pool",
    "Pool": "._pool",
    "ThreadPool": "._pool",
    "OutputLine": "._pool_workers",
    "Process": "._process",
    "JoinableQueue": "._queues",
    "Queue": "._queues",
    "SimpleQueue": "._queues",
    "Array": "._sharedctypes",
    "RawArray": "._sharedctypes",
    "RawValue": "._sharedctypes",
    "Value": "._sharedctypes",
    "Barrier": "._synchronize",
    "BoundedSemaphore": "._synchronize",
    "Condition": "._synchronize",
    "Event": "._synchronize",
    "Lock": "._synchronize",
    "RLock": "._synchronize",
    "Semaphore": "._synchronize",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(module_name, __name__)
    value = module if module_name == f".{name}" else getattr(module, name)
    globals()[name] = value
    _say_toolkit()
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


def _say_toolkit() -> None:
    """Reprs, tracebacks and pickles say toolkit.X, not toolkit._module.X.

    Done for every public object of every toolkit module loaded so far (by
    this access or by an earlier import inside the toolkit), so that an
    object first met through internal code is named right too. Exceptions
    pickle by qualified name, so toolkit.X must be importable: it is.
    """
    for name, module_name in _LAZY.items():
        module = sys.modules.get(__name__ + module_name)
        if module is None or module_name == f".{name}":
            continue
        obj = getattr(module, name)
        if isinstance(obj, str) or not hasattr(obj, "__module__"):
            continue
        with contextlib.suppress(AttributeError, TypeError):  # builtin-backed: keeps its own
            obj.__module__ = __name__
