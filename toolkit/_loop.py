"""Choosing and running the event loop: ``toolkit.run``, uvloop when asked or installed.

Everything that needs "the loop" gets it from ``asyncio.get_running_loop()``
at the call, never at construction: an object made outside a loop (or in one
loop and used in another, as pytest does) binds lazily to the loop that
awaits it.
"""

from __future__ import annotations

import asyncio
import importlib.util
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

    On the way out it cancels leftover tasks, closes async generators, and shuts
    down the default executors of ``to_thread`` and ``to_process`` so that no
    worker thread or process outlives the call.

    Args:
        main: the coroutine to run.
        uvloop: True requires uvloop, False uses asyncio's loop, None (default)
            uses uvloop when it is installed.
        debug: asyncio debug mode, as in ``asyncio.run``.

    Raises:
        TypeError: main is not a coroutine.
        RuntimeError: called from a running event loop.
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
    from ._executors import shutdown_default_executors  # here: _executors imports _loop

    try:
        factory = loop_factory(uvloop)
    except (TypeError, ImportError):
        main.close()
        raise
    with asyncio.Runner(debug=debug, loop_factory=factory) as runner:
        try:
            return runner.run(main)
        finally:
            runner.run(shutdown_default_executors())
