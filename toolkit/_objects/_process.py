"""``toolkit.Process``: ``multiprocessing.Process`` with ``await p.join()``.

Joining waits on a descriptor that becomes readable when the process ends,
through the loop's descriptor watcher (_bridge.py): no thread per joined
process, and the end is seen the moment it happens. For the toolkit's own
children that is a pidfd (readable once the exit status can be reaped); under
forkserver, the sentinel (the server writes the status there). The status is
then read once, on the loop thread, by the plain ``join(0)``: two readers
would race for it, and the loser gets a wrong one (255, or None) (docs/internals.md,
"One reader of each exit status").
"""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING, Any, Literal

from .._core._context import get_context
from .._core._cpython import process_closed, process_identity, process_popen
from .._core._guard import start_forkserver
from .._core._reaping import guard_poll, wait_ended
from .._core._registry import function_name, register
from .._core._serialize import picklable_callable
from .._core._validate import check_timeout
from .._engines._worker import redirect_output
from .._engines._workers import OutputLine, _LineReader, print_output

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from multiprocessing.context import BaseContext
    from multiprocessing.process import BaseProcess
    from types import TracebackType
    from typing import Self

    from .._core._inspection import ProcessInfo

__all__ = ["Process"]


class _Captured:
    """A child's target with its stdout and stderr sent to the parent's pipes."""

    def __init__(self, target: Callable[..., object], stdout: Any, stderr: Any) -> None:
        self.target = target
        self.stdout = stdout
        self.stderr = stderr

    def __call__(self, *args: Any, **kwargs: Any) -> object:
        redirect_output(self.stdout, self.stderr)
        try:
            return self.target(*args, **kwargs)
        finally:
            for stream in (sys.stdout, sys.stderr):
                if stream is not None:
                    stream.flush()


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
        capture_output: True to print each line the child writes to its stdout
            and stderr (its subprocesses' too) on ours, tagged ``[<name> <pid>]``;
            or a callable that gets each line as an ``OutputLine``. Needs
            ``start()`` from a running event loop (the lines are read there).
        name: the process's name (default ``Process-<n>``, as the stdlib's).
        args: the target's positional arguments.
        kwargs: the target's keyword arguments.
        daemon: a daemon process is killed when this one exits (as the stdlib's).

    Raises:
        TypeError: target is not callable; capture_output is neither a bool
            nor a callable; context is not a context, a name or None.
        ValueError: an unknown start method.
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
        capture_output: bool | Callable[[OutputLine], object] = False,
    ) -> None:
        if target is not None and not callable(target):
            raise TypeError(f"target must be callable, not {type(target).__name__}")
        ctx = get_context(context)
        self._context = ctx
        self._target_name = function_name(target)
        if target is not None and ctx.get_start_method() != "fork":
            target = picklable_callable(target)
        self._capture: Callable[[OutputLine], object] | None = None
        self._ends: list[Any] = []  # (read ends, write ends) while capturing
        self._readers: list[_LineReader] = []
        if capture_output is True:
            self._capture = print_output
        elif callable(capture_output):
            self._capture = capture_output
        elif capture_output not in (False, None):
            raise TypeError("capture_output must be a bool or a callable")
        if self._capture is not None and target is not None:
            out_r, out_w = ctx.Pipe(duplex=False)
            err_r, err_w = ctx.Pipe(duplex=False)
            self._ends = [out_r, err_r, out_w, err_w]
            target = _Captured(target, out_w, err_w)
        self._process: BaseProcess = ctx.Process(  # type: ignore[attr-defined]
            target=target, name=name, args=tuple(args), kwargs=dict(kwargs or {}), daemon=daemon
        )
        if name is None:
            # "Process-3", as the tutorial shows, whatever the start method
            # ("ForkServerProcess-3" otherwise): same numbering as the stdlib's.
            identity = process_identity(self._process)
            self._process.name = "Process-" + ":".join(str(i) for i in identity)

    def __repr__(self) -> str:
        return repr(self._process).replace("<", "<toolkit.", 1)

    @property
    def sync(self) -> BaseProcess:
        """The ``multiprocessing`` process underneath."""
        return self._process

    def start(self) -> None:
        """Start the process (as ``multiprocessing.Process.start``).

        Under spawn and forkserver the target and its arguments are pickled
        here (lambdas and closures by value).

        Raises:
            AssertionError: the process was started already (as the stdlib).
            ValueError: the process object was closed.
            RuntimeError: capture_output without a running event loop; or
                called in a child still importing its parent's main script
                (the ``if __name__ == "__main__":`` guard is missing).
            Exception: what pickling an argument raises under spawn or
                forkserver (``pickle.PicklingError``, ``TypeError``, as the stdlib).
        """
        loop = None
        if self._ends:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                raise RuntimeError(
                    "capture_output needs start() from a running event loop (its lines are "
                    "read there)"
                ) from None
        # The forkserver started from here (the main thread) dies with this
        # process and takes its children along (_guard.py): no orphan.
        start_forkserver(self._context)
        self._process.start()
        guard_poll(self._process)
        register(self)  # toolkit.inspect.snapshot() lists it from now on
        if loop is not None:
            out_r, err_r, out_w, err_w = self._ends
            out_w.close()  # the child's now: its end closing is our EOF
            err_w.close()
            self._readers = [
                _LineReader(loop, out_r, "stdout", self._emit),
                _LineReader(loop, err_r, "stderr", self._emit),
            ]
            self._ends = []

    def _emit(self, stream: str, text: str) -> None:
        if self._capture is not None:
            self._capture(OutputLine(self.name, self.pid, stream, text))

    def _drain_output(self) -> None:
        """The child ended: what it wrote is in the pipes; read it now (closed at EOF)."""
        for reader in self._readers:
            reader.drain()

    def _snapshot(self) -> ProcessInfo | None:
        process = self._process
        if process_closed(process):
            return None
        started = process_popen(process) is not None
        exitcode = process.exitcode if started else None
        state: Literal["initial", "running", "exited"]
        if not started:
            state = "initial"
        elif exitcode is None:
            state = "running"
        else:
            state = "exited"
        from .._core._inspection import ProcessInfo  # here: records load when asked for

        return ProcessInfo(process.name, process.pid, state, exitcode, self._target_name)

    async def join(self, timeout: float | None = None) -> None:
        """Wait until the process ends, or timeout seconds pass (then return, as the stdlib).

        A negative timeout means 0, as in the stdlib.

        Raises:
            AssertionError: the process was never started (as the stdlib).
            ValueError: the process was closed, or timeout is NaN.
            TypeError: timeout is not a number or None.

        Cancellation:
            Safe: the process is left running, nothing is read.
        """
        # Checked first, so a bad timeout fails at the call even if the process
        # has ended (the stdlib only trips on it, as "cannot convert float NaN
        # to integer", while it waits).
        timeout = check_timeout(timeout, negative_is_zero=True)
        process = self._process
        if process_closed(process):
            raise ValueError("process object is closed")
        if process_popen(process) is None:
            raise AssertionError("can only join a started process")
        if process.exitcode is not None:
            return
        try:
            async with asyncio.timeout(timeout):
                await wait_ended(process)
        except TimeoutError:
            return
        process.join(0)  # reaps it, without blocking: it has ended
        self._drain_output()

    def is_alive(self) -> bool:
        """Whether the process was started and has not ended (False before ``start()``).

        Raises:
            ValueError: the process object was closed.
            AssertionError: called in another process than the one that created it.
        """
        return self._process.is_alive()

    def terminate(self) -> None:
        """Send SIGTERM (``TerminateProcess`` on Windows); ``await join()`` to see it end.

        Raises:
            ValueError: the process object was closed.
            AttributeError: the process was never started (the stdlib's own error).
        """
        self._process.terminate()

    def kill(self) -> None:
        """Send SIGKILL (``TerminateProcess`` on Windows); ``await join()`` to see it end.

        Raises:
            ValueError: the process object was closed.
            AttributeError: the process was never started (the stdlib's own error).
        """
        self._process.kill()

    def close(self) -> None:
        """Release the process's resources (and its output pipes); it must have ended.

        Closing twice, or a process never started, is fine.

        Raises:
            ValueError: the process is still running.
        """
        self._process.close()
        for reader in self._readers:
            reader.close()
        for end in self._ends:
            end.close()

    @property
    def exitcode(self) -> int | None:
        """None while running; else the exit code, or -N for signal N."""
        return self._process.exitcode

    @property
    def pid(self) -> int | None:
        """The process id, once started; None before (``ident`` is the same)."""
        return self._process.pid

    ident = pid

    @property
    def name(self) -> str:
        """The name given, or ``Process-<n>``; settable (inspection shows it)."""
        return self._process.name

    @name.setter
    def name(self, value: str) -> None:
        self._process.name = value

    @property
    def daemon(self) -> bool:
        """Whether it is a daemon process; settable before ``start()`` only (as the stdlib)."""
        return self._process.daemon

    @daemon.setter
    def daemon(self, value: bool) -> None:
        self._process.daemon = value

    @property
    def sentinel(self) -> int:
        """A descriptor (a handle on Windows) that becomes ready when the process ends.

        ValueError before ``start()`` or after ``close()``, as the stdlib's.
        """
        return self._process.sentinel

    async def __aenter__(self) -> Self:
        """Start the process (if it was not started)."""
        if process_popen(self._process) is None:
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
