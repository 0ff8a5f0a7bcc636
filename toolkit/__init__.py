"""The multiprocessing and concurrent.futures APIs you know: awaitable, observable, cancel-safe.

Replace ``multiprocessing.X`` with ``toolkit.X``, then ``await`` the blocking
calls. Start with ``await toolkit.to_thread(fn, ...)``,
``await toolkit.to_process(fn, ...)`` and ``toolkit.AsyncExecutor(executor)``.
"""

from __future__ import annotations

import contextlib
import importlib
import re
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names, for type checkers; at run time they load on first use
    from . import (
        inspect as inspect,
        monitor as monitor,
    )  # toolkit.inspect.snapshot(), monitor.serve()
    from ._core._backend import (
        available_backends as available_backends,
        get_backend as get_backend,
        set_backend as set_backend,
    )
    from ._core._context import (
        default_start_method as default_start_method,
        get_context as get_context,
    )
    from ._core._errors import (
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
    from ._core._threads import to_thread as to_thread
    from ._dask import DaskPool as DaskPool
    from ._engines._workers import OutputLine as OutputLine
    from ._executors import (
        ALL_COMPLETED as ALL_COMPLETED,
        FIRST_COMPLETED as FIRST_COMPLETED,
        FIRST_EXCEPTION as FIRST_EXCEPTION,
        AsyncExecutor as AsyncExecutor,
        ExecutorStats as ExecutorStats,
        shutdown_default_executors as shutdown_default_executors,
        to_process as to_process,
    )
    from ._loop import run as run
    from ._managers._manager import BaseManager as BaseManager, Manager as Manager
    from ._managers._proxies import BaseProxy as BaseProxy
    from ._map import MapResult as MapResult
    from ._objects._connection import Connection as Connection, Pipe as Pipe
    from ._objects._process import Process as Process
    from ._objects._queues import (
        JoinableQueue as JoinableQueue,
        Queue as Queue,
        SimpleQueue as SimpleQueue,
    )
    from ._objects._sharedctypes import (
        Array as Array,
        RawArray as RawArray,
        RawValue as RawValue,
        Value as Value,
    )
    from ._objects._synchronize import (
        Barrier as Barrier,
        BoundedSemaphore as BoundedSemaphore,
        Condition as Condition,
        Event as Event,
        Lock as Lock,
        RLock as RLock,
        Semaphore as Semaphore,
    )
    from ._pool import AsyncResult as AsyncResult, Pool as Pool, ThreadPool as ThreadPool

from ._core._version import __version__ as __version__

# Each public name -> the private module defining it. Importing ``toolkit``
# loads none of them: a worker process importing ``toolkit._engines._worker``, or a
# program using only to_thread, pays for what it uses (the whole package
# takes ~0.1 s to import). ``toolkit.X`` loads X's module on first access.
_LAZY: dict[str, str] = {
    "inspect": ".inspect",
    "monitor": ".monitor",
    "Connection": "._objects._connection",
    "Pipe": "._objects._connection",
    "available_backends": "._core._backend",
    "get_backend": "._core._backend",
    "set_backend": "._core._backend",
    "default_start_method": "._core._context",
    "get_context": "._core._context",
    "BrokenPoolError": "._core._errors",
    "ClosedError": "._core._errors",
    "ConnectionClosedError": "._core._errors",
    "ManagerDiedError": "._core._errors",
    "PoolClosedError": "._core._errors",
    "QueueEmpty": "._core._errors",
    "QueueFull": "._core._errors",
    "RemoteTraceback": "._core._errors",
    "SerializationError": "._core._errors",
    "TaskExitError": "._core._errors",
    "TaskTimeoutError": "._core._errors",
    "ToolkitError": "._core._errors",
    "WorkerDiedError": "._core._errors",
    "ALL_COMPLETED": "._executors",
    "FIRST_COMPLETED": "._executors",
    "FIRST_EXCEPTION": "._executors",
    "AsyncExecutor": "._executors",
    "ExecutorStats": "._executors",
    "MapResult": "._map",
    "shutdown_default_executors": "._executors",
    "to_process": "._executors",
    "to_thread": "._core._threads",
    "run": "._loop",
    "BaseManager": "._managers._manager",
    "Manager": "._managers._manager",
    "BaseProxy": "._managers._proxies",
    "DaskPool": "._dask",
    "AsyncResult": "._pool",
    "Pool": "._pool",
    "ThreadPool": "._pool",
    "OutputLine": "._engines._workers",
    "Process": "._objects._process",
    "JoinableQueue": "._objects._queues",
    "Queue": "._objects._queues",
    "SimpleQueue": "._objects._queues",
    "Array": "._objects._sharedctypes",
    "RawArray": "._objects._sharedctypes",
    "RawValue": "._objects._sharedctypes",
    "Value": "._objects._sharedctypes",
    "Barrier": "._objects._synchronize",
    "BoundedSemaphore": "._objects._synchronize",
    "Condition": "._objects._synchronize",
    "Event": "._objects._synchronize",
    "Lock": "._objects._synchronize",
    "RLock": "._objects._synchronize",
    "Semaphore": "._objects._synchronize",
}


def _isort_key(name: str) -> tuple[int, list[int | str]]:
    # ruff's RUF022 order: SCREAMING_CASE, then CamelCase, then the rest.
    category = 0 if len(name) > 1 and name.isupper() else 1 if name[:1].isupper() else 2
    return category, [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


# One listing of the public names (the table above), not three: __all__ is
# derived from it. The imports under TYPE_CHECKING are for type checkers only.
__all__ = tuple(
    sorted((name for name, module in _LAZY.items() if module != f".{name}"), key=_isort_key)
)


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
