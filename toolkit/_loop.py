"""Choosing and running the event loop: ``toolkit.run``, uvloop when asked or installed.

Everything that needs "the loop" gets it from ``asyncio.get_running_loop()``
at the call, never at construction: an object made outside a loop (or in one
loop and used in another, as pytest does) binds lazily to the loop that
awaits it.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import threading
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine
    from typing import Any

T = TypeVar("T")

__all__ = ["loop_factory", "run", "uvloop_available"]


def uvloop_available() -> bool:
    """Tell whether uvloop can be imported here (never on Windows)."""
    return importlib.util.find_spec("uvloop") is not None


def loop_factory(uvloop: bool | None = None) -> Callable[[], asyncio.AbstractEventLoop]:
    """Return a factory of new event loops: uvloop's or asyncio's.

    Args:
        uvloop: True requires uvloop, False refuses it, None uses it when it
            is installed.

    Raises:
        ImportError: uvloop was required and is not installed.
        TypeError: uvloop is not a bool or None.
    """
    if uvloop is not None and not isinstance(uvloop, bool):
        raise TypeError(f"uvloop must be True, False or None, not {uvloop!r}")
    if uvloop is False or (uvloop is None and not uvloop_available()):
        return asyncio.new_event_loop
    try:
        import uvloop as _uvloop
    except ImportError as exc:
        raise ImportError(
            "uvloop=True but uvloop is not installed: pip install 'toolkit[uvloop]'"
        ) from exc
    factory: Callable[[], asyncio.AbstractEventLoop] = _uvloop.new_event_loop
    return factory


def run(
    main: Coroutine[Any, Any, T], *, uvloop: bool | None = None, debug: bool | None = None
) -> T:
    """Run a coroutine on a new event loop and return its result, like ``asyncio.run``.

    On the way out it cancels the tasks left (their ``to_process`` calls stop
    at once: the workers are killed), closes async generators, and shuts down
    the default executors of ``to_thread`` and ``to_process``, so that no
    worker thread or process outlives the call.

    SIGTERM (what systemd, Docker and Kubernetes send) is handled as Ctrl-C
    is: the main task is cancelled, every ``async with`` and ``finally`` runs,
    the same cleanup follows, and then ``SystemExit(143)`` is raised (128 +
    SIGTERM, what a shell reports for a process SIGTERM ended). A second
    SIGTERM during that cleanup ends the process at once. Installed only
    when called from the main thread, and only if SIGTERM has no handler yet.

    Args:
        main: the coroutine to run.
        uvloop: True requires uvloop, False uses asyncio's loop, None (default)
            uses uvloop when it is installed.
        debug: asyncio debug mode, as in ``asyncio.run``.

    Raises:
        TypeError: main is not a coroutine.
        RuntimeError: called from a running event loop.
        SystemExit: SIGTERM was received (code 143).
        KeyboardInterrupt: Ctrl-C (SIGINT) was received, as ``asyncio.run``.
    """
    if not asyncio.iscoroutine(main):
        raise TypeError(f"run() needs a coroutine, not {type(main).__name__}")
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        main.close()  # never awaited: say so here, not in a RuntimeWarning
        raise RuntimeError(
            "toolkit.run() cannot be called from a running event loop; await the coroutine"
        )
    try:
        factory = loop_factory(uvloop)
    except (TypeError, ImportError):
        main.close()
        raise
    sigterm = _SigTerm()
    with asyncio.Runner(debug=debug, loop_factory=factory) as runner:
        try:
            return runner.run(sigterm.guard(main))
        except asyncio.CancelledError:
            if sigterm.received:
                raise SystemExit(128 + signal.SIGTERM) from None
            raise
        finally:
            runner.run(_leave())
            sigterm.restore()


class _SigTerm:
    """SIGTERM cancels the main task, as asyncio.Runner does for SIGINT."""

    def __init__(self) -> None:
        self.received = False
        self._task: asyncio.Task[Any] | None = None
        self._previous: Any = None
        self._installed = False

    async def guard(self, main: Coroutine[Any, Any, T]) -> T:
        self._task = asyncio.current_task()
        self._install()
        return await main

    def _install(self) -> None:
        sigterm = getattr(signal, "SIGTERM", None)
        if sigterm is None or threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(sigterm) is not signal.SIG_DFL:
            return  # the program handles SIGTERM itself
        # signal.signal, not loop.add_signal_handler: the same on every loop
        # and platform; the loop's wake-up fd makes it run at once when idle.
        self._previous = signal.signal(sigterm, self._on_sigterm)
        self._installed = True

    def _on_sigterm(self, signum: int, frame: object) -> None:
        if self.received or self._task is None or self._task.done():
            # A second SIGTERM, or one during the cleanup: end now, as without us.
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.received = True
        self._task.get_loop().call_soon_threadsafe(self._task.cancel)

    def restore(self) -> None:
        if self._installed:
            signal.signal(signal.SIGTERM, self._previous)
            self._installed = False


async def _leave() -> None:
    """Cancel the tasks left (as asyncio.run would, but before the executors shut down)."""
    from ._executors import shutdown_default_executors  # here: _executors imports _loop

    current = asyncio.current_task()
    left = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    for task in left:
        task.cancel()
    if left:
        await asyncio.gather(*left, return_exceptions=True)
    await shutdown_default_executors()
