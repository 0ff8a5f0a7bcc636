"""Every exception the toolkit raises (also catchable as the stdlib class after "+").

    ToolkitError
    ├── WorkerDiedError      .pid .exitcode .signal .task; the message names the signal
    ├── TaskTimeoutError     + TimeoutError, multiprocessing.TimeoutError
    ├── ClosedError          + ValueError (what multiprocessing raises for a queue or pool)
    │   ├── PoolClosedError  + RuntimeError (what concurrent.futures raises)
    │   └── ConnectionClosedError + OSError (what a closed multiprocessing Connection raises)
    ├── TaskExitError        a task raised SystemExit or KeyboardInterrupt; .code
    ├── BrokenPoolError      + concurrent.futures.BrokenExecutor; a worker initializer failed
    ├── SerializationError   + pickle.PicklingError; .argument .type
    ├── QueueEmpty           + queue.Empty, asyncio.QueueEmpty
    ├── QueueFull            + queue.Full, asyncio.QueueFull
    └── ManagerDiedError     + ConnectionError

A task's own exception is never wrapped: it comes back as its own type, with
the worker's formatted traceback attached as ``__cause__`` (a RemoteTraceback,
as concurrent.futures does). ``asyncio.CancelledError`` is never wrapped or
swallowed. The two exceptions that are not errors but requests to stop the
program, ``SystemExit`` and ``KeyboardInterrupt``, are the exception: raised
by a task (``sys.exit`` in reused CLI code, an argparse error), they would end
the *caller's* program, since asyncio lets them through every task. They
come back as ``TaskExitError``, with the original as ``__cause__``.

Every class with a custom ``__init__`` defines ``__reduce__``: exceptions cross
process boundaries, and pickle would otherwise call ``__init__`` with the
formatted message as the only argument.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing
import pickle
import queue
import signal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing import Self

__all__ = [
    "BrokenPoolError",
    "ClosedError",
    "ConnectionClosedError",
    "ManagerDiedError",
    "PoolClosedError",
    "QueueEmpty",
    "QueueFull",
    "RemoteTraceback",
    "SerializationError",
    "TaskExitError",
    "TaskTimeoutError",
    "ToolkitError",
    "WorkerDiedError",
    "as_task_error",
    "describe_exit",
    "qualified_type_name",
]


class ToolkitError(Exception):
    """The root of every exception the toolkit raises itself.

    ``except toolkit.ToolkitError`` catches them all; an exception a task
    raised in a worker comes back as its own type, not as one of these.
    """


def describe_exit(exitcode: int | None) -> str:
    """Say how a process ended, in words: "exit code 3" or "killed by SIGKILL"."""
    if exitcode is None:
        return "still running"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"killed by {name}"
    return f"exit code {exitcode}"


class WorkerDiedError(ToolkitError):
    """A worker process ended while it was running a task.

    Attributes:
        pid: the worker's process id (0 where it is not known).
        exitcode: its exit code; negative for a signal, as ``Process.exitcode``
            (None where it is not known: a cluster worker's).
        signal: the signal that killed it, or None if it exited.
        task: a short description of the task it was running, or None.
        address: a cluster worker's address (``tcp://host:port``), else None.
        host: the host it ran on, for a cluster worker, else None.
    """

    def __init__(
        self,
        pid: int,
        exitcode: int | None,
        task: str | None = None,
        address: str | None = None,
        host: str | None = None,
        how: str | None = None,
    ) -> None:
        who = f"worker {pid}" if pid else "worker"
        if address is not None:
            who += f" at {address}"
            if host is not None:
                who += f" on host {host}"
        message = f"{who} died ({how or describe_exit(exitcode)})"
        if task is not None:
            message += f" while running {task}"
        super().__init__(message)
        self.pid = pid
        self.exitcode = exitcode
        self.task = task
        self.address = address
        self.host = host
        self._how = how

    @property
    def signal(self) -> signal.Signals | None:
        if self.exitcode is None or self.exitcode >= 0:
            return None
        try:
            return signal.Signals(-self.exitcode)
        except ValueError:
            return None

    def __reduce__(self) -> tuple[type[Self], tuple[Any, ...]]:
        return type(self), (self.pid, self.exitcode, self.task, self.address, self.host, self._how)


class TaskTimeoutError(ToolkitError, TimeoutError, multiprocessing.TimeoutError):
    """A task ran past its timeout, or a wait for a result did.

    Raised by a pool task past its ``timeout`` (its worker was killed, a
    thread abandoned), an ``AsyncExecutor`` task past the facade's timeout,
    a map past its ``timeout``; and by ``AsyncResult.get(timeout)``,
    ``MapResult.next(timeout)`` and ``as_completed(timeout=)``, where only
    the wait ended and the work goes on. The message says which.

    Also a ``TimeoutError`` (what ``asyncio.timeout`` and concurrent.futures
    raise) and a ``multiprocessing.TimeoutError`` (what ``AsyncResult.get``
    raises), so existing ``except`` clauses keep working.
    """


class ClosedError(ToolkitError, ValueError):
    """The object was closed; it takes no more work.

    A ``ValueError``, like the error multiprocessing raises for a closed queue
    or pool.
    """


class PoolClosedError(ClosedError, RuntimeError):
    """The pool or executor was closed or shut down; it takes no new tasks.

    Also a ``RuntimeError``, what ``concurrent.futures`` raises for a submit
    after shutdown.
    """


class ConnectionClosedError(ClosedError, OSError):
    """This end of the connection was closed.

    An ``OSError``, as a closed ``multiprocessing.connection.Connection``
    raises ("handle is closed"), and a ``ClosedError`` (so a ``ValueError``)
    like every closed object of the toolkit.
    """

    def __reduce__(self) -> tuple[type[Self], tuple[Any, ...]]:
        # Two builtin bases (ValueError, OSError): pickle's default would call
        # the wrong base's __new__.
        return type(self), self.args


class TaskExitError(ToolkitError):
    """A task raised ``SystemExit`` or ``KeyboardInterrupt``: only that task failed.

    Raised in the caller in their place, so that ``except Exception`` catches
    it and the caller's program goes on (asyncio would otherwise stop the
    event loop and end the program). The original exception is the
    ``__cause__`` (for a process task, with the worker's traceback as its
    own cause).

    Attributes:
        code: the exit code ``sys.exit`` was given (``SystemExit.code``: an
            int, a message, or None), or None for ``KeyboardInterrupt``.
        kind: the original exception's type name: "SystemExit" or
            "KeyboardInterrupt".
    """

    def __init__(self, kind: str, code: object = None, task: str | None = None) -> None:
        where = f" {task}" if task else ""
        if kind == "SystemExit":
            message = f"the task{where} raised SystemExit({code!r}) (sys.exit)"
        else:
            message = f"the task{where} raised {kind}"
        super().__init__(message + "; only the task ended, not this program")
        self.kind = kind
        self.code = code
        self.task = task

    def __reduce__(self) -> tuple[type[Self], tuple[str, object, str | None]]:
        return type(self), (self.kind, self.code, self.task)


def as_task_error(exc: BaseException) -> BaseException:
    """Return what a caller should get for a task's exception: exc, or TaskExitError.

    ``SystemExit`` and ``KeyboardInterrupt`` (and their subclasses) become a
    ``TaskExitError`` with exc as ``__cause__``; anything else is returned
    as it is (``CancelledError`` included: never wrapped).
    """
    if isinstance(exc, SystemExit):
        error = TaskExitError("SystemExit", exc.code)
    elif isinstance(exc, KeyboardInterrupt):
        error = TaskExitError(type(exc).__name__)
    else:
        return exc
    error.__cause__ = exc
    return error


class BrokenPoolError(ToolkitError, concurrent.futures.BrokenExecutor):
    """The pool cannot run tasks: a worker's initializer raised (it is the ``__cause__``).

    Also a ``concurrent.futures.BrokenExecutor`` (the base of
    ``BrokenProcessPool``), what ``ProcessPoolExecutor`` raises in that case.
    The pool does not retry a failing initializer forever, as
    ``multiprocessing.Pool`` does.
    """


class SerializationError(ToolkitError, pickle.PicklingError):
    """A function, argument or result could not be pickled (or unpickled on the other side).

    Attributes:
        argument: which part failed: "the function", "argument 0",
            "keyword argument 'x'", "the result"...
        type: the qualified name of the type that could not be pickled.
        unpickle: True when it pickled but could not be rebuilt on the other
            side (an exception whose ``__init__`` needs more arguments than
            it gives ``super().__init__``); the message then carries the
            original type and message, and ``__cause__`` the worker's traceback.
    """

    def __init__(self, argument: str, type: str, reason: str = "", unpickle: bool = False) -> None:
        message = f"cannot {'unpickle' if unpickle else 'pickle'} {argument} (type {type})"
        if reason:
            message += f": {reason}"
        super().__init__(message)
        self.argument = argument
        self.type = type
        self.reason = reason
        self.unpickle = unpickle

    def __reduce__(self) -> tuple[type[Self], tuple[str, str, str, bool]]:
        return type(self), (self.argument, self.type, self.reason, self.unpickle)


class QueueEmpty(ToolkitError, queue.Empty, asyncio.QueueEmpty):
    """No item was available (``get_nowait``, or ``get`` past its timeout)."""


class QueueFull(ToolkitError, queue.Full, asyncio.QueueFull):
    """No room was available (``put_nowait``, or ``put`` past its timeout)."""


class ManagerDiedError(ToolkitError, ConnectionError):
    """A manager's server process is gone (killed, crashed, or unreachable).

    Every pending and later call through its proxies fails with it. Also a
    ``ConnectionError``: what a broken connection to a server raises.
    """


class RemoteTraceback(Exception):
    """The formatted traceback of an exception raised in another process.

    Set as the ``__cause__`` of the exception that crossed over, so the
    traceback a user sees shows where the error happened in the worker.
    """

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return self.tb

    def __reduce__(self) -> tuple[type[Self], tuple[str]]:
        return type(self), (self.tb,)


def qualified_type_name(obj: Any) -> str:
    """Name the type of obj the way a user would import it: "int", "socket.socket"."""
    cls = type(obj)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"
