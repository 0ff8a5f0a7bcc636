"""wait_until: the tests' one way to poll for a condition that has no event to wait on.

(wait_until_blocking: the same for a test that has no event loop.)

Not in _helpers.py: that module holds picklable functions that run in worker
processes and threads; this one is for the test process's own event loop.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable


async def wait_until(
    predicate: Callable[[], object],
    timeout: float = 10.0,
    *,
    interval: float = 0.005,
    message: str | None = None,
) -> None:
    """Poll predicate until it returns something true; fail after timeout seconds.

    predicate is a plain callable or one returning an awaitable (an ``async``
    function, a manager proxy's method): its result is awaited then. The loop
    runs between polls (``interval`` seconds apart), so tasks, workers and
    callbacks go on meanwhile.

    Raises:
        AssertionError: predicate was still false after timeout seconds;
            the message names it (or says message, if given).
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            what = message or _describe(predicate)
            raise AssertionError(f"{what}: not true within {timeout} s")
        await asyncio.sleep(interval)


def wait_until_blocking(
    predicate: Callable[[], object],
    timeout: float = 10.0,
    *,
    interval: float = 0.002,
    message: str | None = None,
) -> None:
    """wait_until for a test with no event loop (a plain function): the same, sleeping.

    Raises:
        AssertionError: predicate was still false after timeout seconds.
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            what = message or _describe(predicate)
            raise AssertionError(f"{what}: not true within {timeout} s")
        time.sleep(interval)


def _describe(predicate: Callable[[], object]) -> str:
    """Name the condition in a failure: a function by name and line, anything else by repr."""
    if inspect.isfunction(predicate):  # a lambda or a def: where it is written
        code = predicate.__code__
        where = f"{code.co_filename.rsplit('/', 1)[-1]}:{code.co_firstlineno}"
        return f"condition {predicate.__qualname__} ({where})"
    return f"condition {predicate!r}"  # a bound method or a partial: its repr names the object
