"""The registry of what runs here: pools and processes, held weakly, for inspection.

Kept apart from the records (_inspection.py) so that starting a pool does
not load them: a pool registers itself at once, its records are built only
when a snapshot is asked for.
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING, Any, Protocol

from ._forking import renew_locks_in_child

if TYPE_CHECKING:
    from ._inspection import PoolSnapshot, ProcessInfo

__all__ = ["DURATION_BOUNDS", "function_name", "live", "register", "unregister"]

# How long tasks ran, counted per bucket by every pool: at most 5 ms, 10 ms,
# ... 60 s, then longer (PoolStats.durations; Prometheus's histogram). Here,
# not with the records: a pool counts from its first task.
DURATION_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""The upper bounds (seconds) of the task duration buckets every pool counts.

``PoolStats.durations`` has one count per bound (tasks that took at most
that long, and more than the bound before), then one for the longer ones;
``toolkit.monitor.metrics()`` exports them as a Prometheus histogram.
"""


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
renew_locks_in_child(globals(), "_live_lock")


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
