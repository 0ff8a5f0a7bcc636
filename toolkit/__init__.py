"""The multiprocessing and concurrent.futures APIs you know: awaitable, observable, cancel-safe.

Replace ``multiprocessing.X`` with ``toolkit.X``, then ``await`` the blocking
calls. Start with ``await toolkit.to_thread(fn, ...)``,
``await toolkit.to_process(fn, ...)`` and ``toolkit.AsyncExecutor(executor)``.
"""

from __future__ import annotations

import contextlib
from types import ModuleType

from ._connection import Connection as Connection
from ._connection import Pipe as Pipe
from ._context import default_start_method as default_start_method
from ._context import get_context as get_context
from ._errors import (
    ClosedError as ClosedError,
)
from ._errors import (
    PoolClosedError as PoolClosedError,
)
from ._errors import (
    QueueEmpty as QueueEmpty,
)
from ._errors import (
    QueueFull as QueueFull,
)
from ._errors import (
    RemoteTraceback as RemoteTraceback,
)
from ._errors import (
    SerializationError as SerializationError,
)
from ._errors import (
    TaskTimeoutError as TaskTimeoutError,
)
from ._errors import (
    ToolkitError as ToolkitError,
)
from ._errors import (
    WorkerDiedError as WorkerDiedError,
)
from ._executors import (
    ALL_COMPLETED as ALL_COMPLETED,
)
from ._executors import (
    FIRST_COMPLETED as FIRST_COMPLETED,
)
from ._executors import (
    FIRST_EXCEPTION as FIRST_EXCEPTION,
)
from ._executors import (
    AsyncExecutor as AsyncExecutor,
)
from ._executors import (
    ExecutorStats as ExecutorStats,
)
from ._executors import (
    MapResult as MapResult,
)
from ._executors import (
    shutdown_default_executors as shutdown_default_executors,
)
from ._executors import (
    to_process as to_process,
)
from ._executors import (
    to_thread as to_thread,
)
from ._loop import run as run
from ._process import Process as Process
from ._queues import JoinableQueue as JoinableQueue
from ._queues import Queue as Queue
from ._queues import SimpleQueue as SimpleQueue

__version__ = "0.1.0"

__all__ = (
    "ALL_COMPLETED",
    "FIRST_COMPLETED",
    "FIRST_EXCEPTION",
    "AsyncExecutor",
    "ClosedError",
    "Connection",
    "ExecutorStats",
    "JoinableQueue",
    "MapResult",
    "Pipe",
    "PoolClosedError",
    "Process",
    "Queue",
    "QueueEmpty",
    "QueueFull",
    "RemoteTraceback",
    "SerializationError",
    "SimpleQueue",
    "TaskTimeoutError",
    "ToolkitError",
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
