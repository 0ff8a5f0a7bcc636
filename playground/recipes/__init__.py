"""Runnable async recipes: every example of the multiprocessing tutorial, made awaitable.

Start one from the prompt with ``recipe("pool_map")`` (a background task you can
watch in ``top()``) or run it to the end with ``await recipes.get("pool_map")()``.
Each recipe module has ``async def main()`` and prints what it does.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

# name -> one line saying what it shows; the module is playground.recipes.<name>.
ALL: dict[str, str] = {
    "process_basics": "Process: start a child, await its end, read its exit code",
    "pool_map": "Pool.map/starmap: one function over many inputs",
    "pool_apply_async": "Pool.apply_async: submit now, collect results later",
    "pool_apply": "Pool.apply: one awaited call at a time",
    "pool_dask": "Pool.map on a Dask cluster: the same code, a local cluster's workers",
    "queue_producer_consumer": "Queue: a writer process, the parent reads",
    "joinable_queue": "JoinableQueue: await until every item is marked done",
    "value_array": "Value/Array: shared memory updated by several processes",
    "manager": "Manager: shared dict, list, namespace, value, array served by a process",
    "pipe": "Pipe: messages both ways between parent and child",
    "lock": "Lock: one holder at a time, processes and tasks",
    "rlock": "RLock: the holder takes it again",
    "semaphore": "Semaphore: at most two of five processes use a resource",
    "condition": "Condition: stage 2 waits for stage 1",
    "event": "Event: waiters until one sets the flag, one with a timeout",
    "thread_pool": "ThreadPool (multiprocessing.dummy): I/O-bound calls on threads",
    "futures": "concurrent.futures: submit, map, as_completed, wait",
    "gil": "the GIL: CPU-bound work on threads vs processes, timed",
}


def get(name: str) -> Callable[..., Coroutine[Any, Any, None]]:
    """Return the recipe's main(pace=...) coroutine function."""
    if name not in ALL:
        raise LookupError(f"no recipe {name!r}; recipes: {', '.join(ALL)}")
    module = importlib.import_module(f"{__name__}.{name}")
    main: Callable[..., Coroutine[Any, Any, None]] = module.main
    return main


def show() -> None:
    """Print the recipes, one per line."""
    for name, what in ALL.items():
        print(f"{name:<20} {what}")
