"""A forked child starts clean: no thread cache counting on its parent's threads, no held lock.

fork copies memory but only the calling thread. Each test leaves the parent in
the state that used to hang a child (an idle cached thread, a lock held by
another thread), forks a real child, and bounds the child's work: its exit
code says whether it got through. Before the fix the first two hung the child
every time (the manager test under TOOLKIT_HANDLES=1 hung about one run in 30).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import sys
import threading
from typing import TYPE_CHECKING, Any

import pytest

import toolkit
from toolkit._core import _registry
from toolkit._core._bridge import helper_threads, wait_blocking
from toolkit._core._forking import renew_locks_in_child
from toolkit._core._thread_cache import ThreadCache

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

pytestmark = pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="no fork on this platform"
)

WAIT = 10.0  # the child's bound on each step: far above what any step needs
STUCK = 3  # the child's exit code when a step did not finish within WAIT


def _fork_and_join(target: Callable[[], None]) -> int | None:
    child = multiprocessing.get_context("fork").Process(target=target)
    child.start()
    child.join(3 * WAIT)
    if child.is_alive():  # pragma: no cover - only if the bound above failed
        child.kill()
        child.join()
    return child.exitcode


def test_fork_child_runs_a_cache_job_though_the_parent_had_an_idle_thread() -> None:
    cache = ThreadCache(2, name="test-cache")
    try:
        ran = threading.Event()
        cache.submit(ran.set)
        assert ran.wait(WAIT)
        assert cache.wait_idle(WAIT)  # one idle thread: the next submit counts on it

        def child() -> None:
            done = threading.Event()
            cache.submit(done.set)
            sys.exit(0 if done.wait(WAIT) else STUCK)

        assert _fork_and_join(child) == 0
        assert cache.counts() == (1, 0)  # the parent's cache is as it was
    finally:
        cache.shutdown(wait=True, timeout=WAIT)


def _helper_wait_in_a_new_loop() -> None:
    async def main() -> None:
        await asyncio.wait_for(wait_blocking("child", lambda timeout: True), WAIT)

    try:
        asyncio.run(main())
    except TimeoutError:
        sys.exit(STUCK)


async def test_fork_child_runs_a_helper_wait_after_the_parent_used_one() -> None:
    # The parent's helper-wait cache keeps its idle thread: before the fix, the
    # child's first helper wait queued its job for that thread, which the
    # child does not have, and waited for ever (a fork child's manager proxy
    # under TOOLKIT_HANDLES=1 did exactly this).
    await wait_blocking("parent", lambda timeout: True)
    assert helper_threads().wait_idle(WAIT)
    async with toolkit.Process(
        target=_helper_wait_in_a_new_loop, context=multiprocessing.get_context("fork")
    ) as child:
        await child.join()
    assert child.exitcode == 0


@contextlib.contextmanager
def _held_by_another_thread(lock: Callable[[], Any]) -> Iterator[None]:
    """Hold lock() in a thread of its own for the block (released after it)."""
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with lock():
            held.set()
            release.wait(3 * WAIT)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(WAIT)
        yield
    finally:
        release.set()
        holder.join(WAIT)


def test_fork_child_gets_a_lock_another_thread_held_unheld() -> None:
    namespace = {"lock": threading.Lock()}
    renew_locks_in_child(namespace, "lock")

    def child() -> None:
        sys.exit(0 if namespace["lock"].acquire(timeout=WAIT) else STUCK)

    with _held_by_another_thread(lambda: namespace["lock"]):
        assert _fork_and_join(child) == 0
        assert namespace["lock"].locked()  # the parent's lock is still the holder's


def test_fork_child_inspects_though_a_thread_held_the_registry_lock() -> None:
    # The monitor's thread and thread pools take this lock from any thread.
    def child() -> None:
        finished = threading.Event()

        def look() -> None:
            _registry.live()
            finished.set()

        threading.Thread(target=look, daemon=True).start()
        sys.exit(0 if finished.wait(WAIT) else STUCK)

    with _held_by_another_thread(lambda: _registry._live_lock):
        assert _fork_and_join(child) == 0


def _to_process_in_a_new_loop() -> None:
    async def main() -> None:
        try:
            assert await asyncio.wait_for(toolkit.to_process(abs, -5), WAIT) == 5
        finally:
            await toolkit.shutdown_default_executors()

    asyncio.run(main())


async def test_fork_child_starts_its_own_forkserver() -> None:
    # multiprocessing's forkserver singleton came along with the parent's
    # forkserver pid, which only the parent may wait for: every forkserver
    # start in a fork child failed with ChildProcessError (CPython gh-86354),
    # and the child's default process pool broke after five tries.
    forkserver = multiprocessing.get_context("forkserver")
    started = forkserver.Process(target=abs, args=(1,))
    started.start()  # the parent's forkserver runs
    started.join(WAIT)
    async with toolkit.Process(
        target=_to_process_in_a_new_loop, context=multiprocessing.get_context("fork")
    ) as child:
        await child.join()
    assert child.exitcode == 0


def _started_workers(pool: toolkit.Pool) -> set[int]:
    """The pids of the workers started so far (one may still be starting: no pid yet)."""
    return {worker.pid for worker in pool.workers if worker.pid is not None}


def _use_a_parent_pool(pool: toolkit.Pool) -> None:
    async def main() -> None:
        with pytest.raises(RuntimeError, match="belongs to process"):
            await pool.apply(abs, (-1,))

    asyncio.run(main())
    for call in (pool.close, pool.terminate, lambda: pool.resize(3)):
        with pytest.raises(RuntimeError, match="forked child cannot use its parent's pool"):
            call()


async def test_fork_child_cannot_use_or_stop_its_parent_pool() -> None:
    async with toolkit.Pool(2) as pool:
        assert await pool.apply(abs, (-1,)) == 1
        workers = _started_workers(pool)
        assert workers  # the one that answered, at least
        async with toolkit.Process(
            target=_use_a_parent_pool, args=(pool,), context=multiprocessing.get_context("fork")
        ) as child:
            await child.join()
        assert child.exitcode == 0
        assert await pool.apply(abs, (-2,)) == 2
        assert workers <= _started_workers(pool)  # none was killed
        assert pool.stats().worker_deaths == 0


async def test_os_fork_child_exit_leaves_parent_workers_alone() -> None:
    # A child of os.fork that exits normally runs the exit handlers, the one
    # that kills every pool's workers included: they are its parent's.
    from toolkit._pool import _kill_all_pools

    async with toolkit.Pool(2) as pool:
        assert await pool.apply(abs, (-1,)) == 1
        workers = _started_workers(pool)
        assert workers  # the one that answered, at least
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 1
            try:
                _kill_all_pools()  # what a normal exit runs (atexit), here and now
                code = 0
            finally:
                os._exit(code)
        _, status = await asyncio.to_thread(os.waitpid, pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert await pool.apply(abs, (-2,)) == 2
        assert workers <= _started_workers(pool)
        assert pool.stats().worker_deaths == 0


def test_renew_locks_in_child_names_only_locks() -> None:
    with pytest.raises(TypeError, match="not a module-level threading"):
        renew_locks_in_child({"lock": threading.RLock()}, "lock")
    with pytest.raises(TypeError, match="missing"):
        renew_locks_in_child({}, "missing")
