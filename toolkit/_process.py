"""``toolkit.Process``: ``multiprocessing.Process`` with ``await p.join()``.

Joining waits on a descriptor that becomes readable when the process ends,
through the loop's descriptor watcher (_bridge.py): no thread per joined
process, and the end is seen the moment it happens. For the toolkit's own
children that is a pidfd (readable once the exit status can be reaped); under
forkserver, the sentinel (the server writes the status there). The status is
then read once, on the loop thread, by the plain ``join(0)``: two readers
would race for it (../shared/notes/fd-waiting.md).
"""

from __future__ import annotations

import asyncio
import os
from multiprocessing import popen_forkserver
from typing import TYPE_CHECKING, Any, Literal

from ._bridge import forget_fd, wait_readable
from ._context import get_context
from ._executors import to_thread
from ._inspection import ProcessInfo, register
from ._serialize import picklable_callable

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from multiprocessing.context import BaseContext
    from multiprocessing.process import BaseProcess
    from types import TracebackType
    from typing import Self

__all__ = ["Process"]


async def _wait_ended(process: BaseProcess) -> None:
    """Wait until the process has ended and its exit status can be read without blocking."""
    popen = process._popen  # type: ignore[attr-defined]
    if isinstance(popen, popen_forkserver.Popen) or not hasattr(os, "pidfd_open"):
        # Forkserver: the server reaps the child, then writes its status to the
        # sentinel, so readable means "status here".
        await wait_readable(process.sentinel)
        if process.exitcode is None:  # elsewhere: closed descriptors precede the status
            await to_thread(process.join)
        return
    # Our own child (fork, spawn): its sentinel reads EOF as the child closes
    # its descriptors, a moment *before* waitpid can reap it. A pidfd becomes
    # readable only once it can.
    try:
        pidfd = os.pidfd_open(popen.pid)
    except ProcessLookupError:  # already reaped by someone
        return
    try:
        await wait_readable(pidfd)
    finally:
        forget_fd(pidfd)
        os.close(pidfd)


def _qualified_name(fn: object) -> str:
    if fn is None:
        return "run"
    module = getattr(fn, "__module__", None) or "?"
    return f"{module}.{getattr(fn, '__qualname__', type(fn).__name__)}"


class Process:
    """A process running ``target(*args, **kwargs)``, awaitable.

    The stdlib ``Process`` API (``start``, ``join``, ``is_alive``, ``exitcode``,
    ``pid``, ``name``, ``daemon``, ``sentinel``, ``terminate``, ``kill``,
    ``close``), with ``join`` awaited. ``sync`` is the plain
    ``multiprocessing`` process underneath.

    Args:
        target: the function to run. Lambdas and closures are pickled by value.
        context: a multiprocessing context or start method name; default:
            forkserver on Linux, spawn elsewhere.
    """

    def __init__(
        self,
        target: Callable[..., object] | None = None,
        name: str | None = None,
        args: Iterable[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        daemon: bool | None = None,
        context: BaseContext | str | None = None,
    ) -> None:
        if target is not None and not callable(target):
            raise TypeError(f"target must be callable, not {type(target).__name__}")
        ctx = get_context(context)
        self._target_name = _qualified_name(target)
        if target is not None and ctx.get_start_method() != "fork":
            target = picklable_callable(target)
        self._process: BaseProcess = ctx.Process(  # type: ignore[attr-defined]
            target=target, name=name, args=tuple(args), kwargs=dict(kwargs or {}), daemon=daemon
        )
        if name is None:
            # "Process-3", as the tutorial shows, whatever the start method
            # ("ForkServerProcess-3" otherwise): same numbering as the stdlib's.
            identity = self._process._identity
            self._process.name = "Process-" + ":".join(str(i) for i in identity)

    def __repr__(self) -> str:
        return repr(self._process).replace("<", "<toolkit.", 1)

    @property
    def sync(self) -> BaseProcess:
        """The ``multiprocessing`` process underneath."""
        return self._process

    def start(self) -> None:
        """Start the process (as ``multiprocessing.Process.start``)."""
        self._process.start()
        register(self)  # toolkit.inspect.snapshot() lists it from now on

    def _snapshot(self) -> ProcessInfo | None:
        process = self._process
        if process._closed:  # type: ignore[attr-defined]
            return None
        exitcode = process.exitcode if process._popen is not None else None  # type: ignore[attr-defined]
        state: Literal["initial", "running", "exited"]
        if process._popen is None:  # type: ignore[attr-defined]
            state = "initial"
        elif exitcode is None:
            state = "running"
        else:
            state = "exited"
        return ProcessInfo(process.name, process.pid, state, exitcode, self._target_name)

    async def join(self, timeout: float | None = None) -> None:
        """Wait until the process ends, or timeout seconds pass (then return, as the stdlib).

        Raises:
            AssertionError: the process was never started (as the stdlib).
            ValueError: the process was closed.

        Cancellation:
            Safe: the process is left running, nothing is read.
        """
        process = self._process
        if process._closed:  # type: ignore[attr-defined]
            raise ValueError("process object is closed")
        if process._popen is None:  # type: ignore[attr-defined]
            raise AssertionError("can only join a started process")
        if process.exitcode is not None:
            return
        try:
            async with asyncio.timeout(timeout):
                await _wait_ended(process)
        except TimeoutError:
            return
        process.join(0)  # reaps it, without blocking: it has ended

    def is_alive(self) -> bool:
        return self._process.is_alive()

    def terminate(self) -> None:
        """Send SIGTERM."""
        self._process.terminate()

    def kill(self) -> None:
        """Send SIGKILL."""
        self._process.kill()

    def close(self) -> None:
        """Release the process's resources; it must have ended (ValueError otherwise)."""
        self._process.close()

    @property
    def exitcode(self) -> int | None:
        """None while running; else the exit code, or -N for signal N."""
        return self._process.exitcode

    @property
    def pid(self) -> int | None:
        return self._process.pid

    ident = pid

    @property
    def name(self) -> str:
        return self._process.name

    @name.setter
    def name(self, value: str) -> None:
        self._process.name = value

    @property
    def daemon(self) -> bool:
        return self._process.daemon

    @daemon.setter
    def daemon(self, value: bool) -> None:
        self._process.daemon = value

    @property
    def sentinel(self) -> int:
        return self._process.sentinel

    async def __aenter__(self) -> Self:
        """Start the process (if it was not started)."""
        if self._process._popen is None:  # type: ignore[attr-defined]
            self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Join the process; on an error or cancellation, terminate it first."""
        if exc_type is not None and self.is_alive():
            self.terminate()
        await self.join()
