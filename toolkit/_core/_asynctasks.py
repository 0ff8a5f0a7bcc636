"""Frozen records of a loop's asyncio tasks: what each awaits, down to the leaf, and which
tasks it waits for (the tree ``python -m asyncio pstree`` draws on Python 3.14).

Python 3.14 keeps that graph itself (``asyncio.capture_call_graph``); 3.11 to
3.13 do not, so it is read from the coroutines: each coroutine's ``cr_await``
leads to what it awaits, and a task is waiting for another task when its
chain ends at that task, at a ``gather`` of tasks, or inside a ``TaskGroup``'s
``__aexit__`` (the group's tasks).
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import os
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["AsyncTaskInfo", "await_chain", "awaitables", "awaited", "task_snapshot"]


@dataclass(frozen=True, slots=True)
class AsyncTaskInfo:
    """One asyncio task, at one instant.

    Attributes:
        id: a number naming the task while it lives (``id(task)``): what a
            monitor's ``cancel`` takes.
        name: ``task.get_name()``.
        state: ``"pending"``, ``"cancelling"`` (cancel() was called, it has not
            ended yet) or ``"done"`` (it ended while the snapshot was taken).
        coroutine: the qualified name of the task's coroutine.
        stack: what it awaits, outermost first: ``"name (file:line)"`` per
            coroutine, then the future or object at the end of the chain.
        awaits: the ids of the tasks it waits for (a task awaited directly, a
            ``gather``'s tasks, a ``TaskGroup``'s tasks).
    """

    id: int
    name: str
    state: Literal["pending", "cancelling", "done"]
    coroutine: str
    stack: tuple[str, ...]
    awaits: tuple[int, ...]


def awaited(awaitable: Any) -> Any:
    """What awaitable is waiting on, or None.

    ``await obj`` where obj.__await__ returns a coroutine's ``__await__()``
    (toolkit's MapResult does) leaves a "coroutine_wrapper" in the chain,
    which does not expose its coroutine as an attribute: gc.get_referents
    finds it.
    """
    if isinstance(awaitable, asyncio.Future):
        return None  # the leaf
    inner = getattr(awaitable, "cr_await", None) or getattr(awaitable, "gi_yieldfrom", None)
    if inner is not None:
        return inner
    kind = type(awaitable).__name__
    if kind == "coroutine_wrapper":
        return next((r for r in gc.get_referents(awaitable) if inspect.iscoroutine(r)), None)
    if kind == "FutureIter":  # ``await future`` (C futures): the iterator holds the future
        return next((r for r in gc.get_referents(awaitable) if isinstance(r, asyncio.Future)), None)
    frame = getattr(awaitable, "gi_frame", None)
    if frame is not None and frame.f_code.co_name == "__await__":  # pure-Python futures
        future = frame.f_locals.get("self")
        if isinstance(future, asyncio.Future):
            return future
    return None


def awaitables(task: asyncio.Task[Any]) -> list[Any]:
    """Every awaitable in a task's chain, outermost (its coroutine) first.

    Down to the future it sleeps on: coroutines, generators, futures,
    awaitable objects. For a console that looks for something in what a
    task awaits (the playground finds a map's progress there). Call it in
    the task's loop thread, or while the task cannot run.

    It raises nothing: a chain it cannot follow further ends early (a done
    task's chain is empty).
    """
    found: list[Any] = []
    awaitable: Any = task.get_coro()
    while awaitable is not None and len(found) < 1000:  # a cycle would be a bug elsewhere
        found.append(awaitable)
        awaitable = awaited(awaitable)
    return found


def _describe(awaitable: Any) -> str | None:
    frame = getattr(awaitable, "cr_frame", None) or getattr(awaitable, "gi_frame", None)
    name = getattr(awaitable, "__qualname__", type(awaitable).__name__)
    if frame is not None:
        return f"{name} ({os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno})"
    if isinstance(awaitable, asyncio.Task):
        return f"Task {awaitable.get_name()}"
    if isinstance(awaitable, asyncio.Future):
        return repr(awaitable).strip("<>").split(" cb=")[0]
    if type(awaitable).__name__ in ("coroutine_wrapper", "FutureIter") or (
        frame is None and name == "__await__"
    ):
        return None  # a step between a coroutine and what it awaits: shown by the next
    return str(name)


def await_chain(task: asyncio.Task[Any]) -> list[str]:
    """What a task awaits, outermost first: 'fn (file:line)' per coroutine, then the leaf.

    Task.get_stack() gives only the outer frame on 3.11: this follows cr_await.
    Call it as ``awaitables``. It raises nothing: a chain it cannot follow
    further ends early.
    """
    return [text for text in map(_describe, awaitables(task)) if text is not None]


def _waited_tasks(chain: list[Any]) -> list[asyncio.Task[Any]]:
    """The tasks at the end of a chain: awaited directly, gathered, or in a TaskGroup."""
    tasks: list[asyncio.Task[Any]] = []
    for awaitable in chain:
        frame = getattr(awaitable, "cr_frame", None)
        if frame is not None and frame.f_code.co_name == "__aexit__":
            group = frame.f_locals.get("self")
            if isinstance(group, asyncio.TaskGroup):
                tasks.extend(getattr(group, "_tasks", ()))
    if chain:
        leaf = chain[-1]
        if isinstance(leaf, asyncio.Task):
            tasks.append(leaf)
        for child in getattr(leaf, "_children", ()) or ():  # gather's _GatheringFuture
            if isinstance(child, asyncio.Task):
                tasks.append(child)
    return tasks


def _state(task: asyncio.Task[Any]) -> Literal["pending", "cancelling", "done"]:
    # Never task.exception(): it would mark a failure as seen by someone.
    if task.done():
        return "done"
    return "cancelling" if task.cancelling() else "pending"


def task_snapshot(loop: asyncio.AbstractEventLoop | None = None) -> tuple[AsyncTaskInfo, ...]:
    """Every task of loop (the running one by default), sorted by name.

    Call it in the loop's own thread: the coroutines it reads must not run meanwhile.

    Raises:
        RuntimeError: no loop given, and none is running in this thread.
    """
    tasks = asyncio.all_tasks(loop) if loop is not None else asyncio.all_tasks()
    records = []
    for task in tasks:
        chain = awaitables(task)
        coro = task.get_coro()
        records.append(
            AsyncTaskInfo(
                id=id(task),
                name=task.get_name(),
                state=_state(task),
                coroutine=getattr(coro, "__qualname__", type(coro).__name__),
                stack=tuple(text for text in map(_describe, chain) if text is not None),
                awaits=tuple(
                    dict.fromkeys(
                        id(t) for t in _waited_tasks(chain) if t is not task and not t.done()
                    )
                ),
            )
        )
    records.sort(key=lambda r: (r.name, r.id))
    return tuple(records)
