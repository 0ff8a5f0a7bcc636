"""The registry of what runs here: pools and processes, held weakly, for inspection.

Kept apart from the records (_inspection.py) so that starting a pool does
not load them: a pool registers itself at once, its records are built only
when a snapshot is asked for.
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ._inspection import PoolSnapshot, ProcessInfo

__all__ = ["function_name", "live", "register", "unregister"]


def function_name(fn: object) -> str:
    """``module.qualname`` of a task's function, as the records show it."""
    if fn is None:
        return "run"  # a Process without a target runs its run() method
    module = getattr(fn, "__module__", None) or "?"
    return f"{module}.{getattr(fn, '__qualname__', type(fn).__name__)}"


class _Inspectable(Protocol):
    def _snapshot(self) -> PoolSnapshot | ProcessInfo | None: ...


_live: weakref.WeakSet[_Inspectable] = weakref.WeakSet()
_live_lock = threading.Lock()  # thread pools and processes register from any thread


def register(obj: _Inspectable) -> None:
    """Make obj part of every later snapshot (until it is garbage collected)."""
    with _live_lock:
        _live.add(obj)


def unregister(obj: _Inspectable) -> None:
    with _live_lock:
        _live.discard(obj)


def live() -> list[Any]:
    """Everything registered and still alive, as a list (a copy: safe from any thread)."""
    with _live_lock:
        return list(_live)
