"""Shared fixtures: both event loops, start methods, a guard against leaked children and threads."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
import time
from typing import TYPE_CHECKING

import pytest

import toolkit
from toolkit._core import _bridge, _readiness, _threads
from toolkit._core._backend import get_backend

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping
    from multiprocessing.context import BaseContext

try:
    import uvloop
except ImportError:  # pragma: no cover - the dev extra installs it
    uvloop = None  # type: ignore[assignment]


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Run every async test on asyncio's loop and on uvloop."""
    factories: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
        "asyncio": asyncio.new_event_loop
    }
    if uvloop is not None:
        factories["uvloop"] = uvloop.new_event_loop
    return factories


# Threads that outlive a test by design, by name prefix: the default
# to_thread cache and the helper-wait cache keep idle threads for 10 s
# (both checked idle below), and
# Dask's client starts its offload thread on first use and keeps it until
# the interpreter exits (docs/internals.md, "Tests that hold the design").
_LONG_LIVED = ("toolkit-to_thread", "toolkit-wait", "Dask-Offload")

# Grace for threads and processes that are past their last statement when the test returns.
_GRACE = 2.0


def _helpers_of_ended_loops_stop(grace: float) -> bool:
    """threads backend: the helper waits and watches of closed loops end within grace."""
    deadline = time.monotonic() + grace
    while True:
        shared = list(_bridge._shared_waits.items())
        running = sum(waits.helpers() for loop, waits in shared if loop.is_closed())
        running += sum(
            not watch.finished.is_set()
            for loop, watches in list(_readiness._watches.items())
            if loop.is_closed()
            for watch in list(watches.values())
        )
        if not running:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    """Fail a test that leaves child processes, extra threads, or to_thread work running."""
    threads_before = set(threading.enumerate())
    children_before = set(multiprocessing.active_children())
    yield
    problems: list[str] = []
    cache = _threads._default_threads
    if cache is not None and not cache.wait_idle(_GRACE):
        problems.append("a to_thread call is still running")
    waits = _bridge._wait_threads
    if get_backend() == "threads":
        # Helper threads stand in for the loop's own watching there: one may
        # serve a loop that outlives the test (a module's manager server), but
        # those of loops that have ended must stop.
        if not _helpers_of_ended_loops_stop(_GRACE):
            problems.append("a helper wait of an ended loop is still running")
    elif waits is not None and not waits.wait_idle(_GRACE):
        problems.append("a helper wait is still running (a waiter was never woken or cancelled)")
    for thread in set(threading.enumerate()) - threads_before:
        if thread.name.startswith(_LONG_LIVED):
            continue
        thread.join(_GRACE)
        if thread.is_alive():
            problems.append(f"thread left running: {thread!r}")
    for child in set(multiprocessing.active_children()) - children_before:
        child.join(_GRACE)
        if child.is_alive():
            problems.append(f"child process left running: {child!r}")
            child.kill()
            child.join()
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)


@pytest.fixture
def default_executors() -> Iterator[None]:
    """For tests of to_process: shut the default process pool down afterwards."""
    yield
    asyncio.run(toolkit.shutdown_default_executors())


# forkserver (the toolkit's default on Linux) and spawn (macOS, Windows), where
# the platform has them (Windows has spawn alone). fork is left out: forking a
# process that runs threads is what 3.14 moved away from.
START_METHODS = [
    method
    for method in ("forkserver", "spawn")
    if method in multiprocessing.get_all_start_methods()
]


@pytest.fixture(params=START_METHODS)
def mp_context(request: pytest.FixtureRequest) -> BaseContext:
    context: BaseContext = multiprocessing.get_context(request.param)
    return context
