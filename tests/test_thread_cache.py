"""ThreadCache: bounded, reusable threads that leave when idle. Gates hold jobs, never sleeps."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import pytest

from toolkit._core._thread_cache import ThreadCache, default_max_threads

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

WAIT = 10.0  # bound on every wait: far above what any step needs


class Gate:
    """Jobs that block until opened, counting how many run at once.

    ``all_started`` is set once ``running`` jobs are blocked at the same time,
    ``all_done`` once ``total`` jobs have finished.
    """

    def __init__(self, running: int, total: int | None = None) -> None:
        self.opened = threading.Event()
        self.all_started = threading.Event()
        self.all_done = threading.Event()
        self._lock = threading.Lock()
        self._running_target = running
        self._total = running if total is None else total
        self.running = 0
        self.peak = 0
        self.done = 0

    def job(self) -> None:
        with self._lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
            if self.running == self._running_target:
                self.all_started.set()
        self.opened.wait(WAIT)
        with self._lock:
            self.running -= 1
            self.done += 1
            if self.done == self._total:
                self.all_done.set()


class Counter:
    """A job that counts its runs and sets an event at the n-th."""

    def __init__(self, expected: int) -> None:
        self._lock = threading.Lock()
        self._expected = expected
        self.count = 0
        self.reached = threading.Event()

    def job(self) -> None:
        with self._lock:
            self.count += 1
            if self.count == self._expected:
                self.reached.set()


@pytest.fixture
def make_cache() -> Iterator[Callable[..., ThreadCache]]:
    """Build caches that are shut down (and their threads joined) after the test."""
    caches: list[ThreadCache] = []

    def make(max_threads: int | None = None, idle_timeout: float = 10.0) -> ThreadCache:
        cache = ThreadCache(max_threads, idle_timeout=idle_timeout, name="test-cache")
        caches.append(cache)
        return cache

    yield make
    for cache in caches:
        cache.shutdown(wait=True, timeout=WAIT)


def _join_all(threads: list[threading.Thread]) -> list[threading.Thread]:
    """Join threads with a bound; return those still alive."""
    for thread in threads:
        thread.join(WAIT)
    return [thread for thread in threads if thread.is_alive()]


# --- running jobs -------------------------------------------------------------------------------


def test_thread_cache_runs_jobs(make_cache: Callable[..., ThreadCache]) -> None:
    cache = make_cache(4)
    counter = Counter(50)
    for _ in range(50):
        cache.submit(counter.job)
    assert counter.reached.wait(WAIT)
    assert cache.wait_idle(WAIT)
    assert counter.count == 50


def test_thread_cache_runs_jobs_off_the_caller_thread(
    make_cache: Callable[..., ThreadCache],
) -> None:
    cache = make_cache(2)
    seen: list[threading.Thread] = []
    done = threading.Event()

    def job() -> None:
        seen.append(threading.current_thread())
        done.set()

    cache.submit(job)
    assert done.wait(WAIT)
    assert seen[0] is not threading.current_thread()
    assert seen[0].daemon
    assert seen[0].name.startswith("test-cache-")
    assert seen[0] in cache.threads()


def test_thread_cache_reuses_an_idle_thread(make_cache: Callable[..., ThreadCache]) -> None:
    cache = make_cache(8)
    for _ in range(20):
        done = threading.Event()
        cache.submit(done.set)
        assert done.wait(WAIT)
        assert cache.wait_idle(WAIT)
    # One job at a time: the first thread took every one of them.
    assert cache.counts() == (1, 0)


@pytest.mark.parametrize("max_threads", [1, 4, 16])
def test_thread_cache_is_bounded_under_load(
    make_cache: Callable[..., ThreadCache], max_threads: int
) -> None:
    cache = make_cache(max_threads)
    gate = Gate(max_threads, total=200)
    try:
        for _ in range(200):
            cache.submit(gate.job)
            assert cache.counts()[0] <= max_threads
        assert gate.all_started.wait(WAIT)  # max_threads jobs held, the rest queued
        assert cache.counts() == (max_threads, max_threads)
        assert len(cache.threads()) == max_threads
        assert gate.done == 0
    finally:
        gate.opened.set()
    assert gate.all_done.wait(WAIT)
    assert cache.wait_idle(WAIT)
    assert gate.peak == max_threads
    assert cache.counts() == (max_threads, 0)


def test_thread_cache_default_max_threads() -> None:
    cache = ThreadCache()
    try:
        assert cache.max_threads == default_max_threads()
        assert 1 <= cache.max_threads <= 32
    finally:
        cache.shutdown()


@pytest.mark.parametrize("max_threads", [0, -1, 2.5, "4"])
def test_thread_cache_rejects_invalid_max_threads(max_threads: object) -> None:
    with pytest.raises(ValueError, match="max_threads"):
        ThreadCache(max_threads)  # type: ignore[arg-type]


# --- idle threads -------------------------------------------------------------------------------


def test_thread_cache_idle_threads_leave(make_cache: Callable[..., ThreadCache]) -> None:
    cache = make_cache(3, idle_timeout=0.05)
    gate = Gate(3)
    try:
        for _ in range(3):
            cache.submit(gate.job)
        assert gate.all_started.wait(WAIT)
        threads = cache.threads()  # taken while held: none can have left yet
        assert len(threads) == 3
    finally:
        gate.opened.set()
    assert gate.all_done.wait(WAIT)
    assert _join_all(threads) == []
    assert cache.counts() == (0, 0)


def test_thread_cache_starts_threads_again_after_idle_exit(
    make_cache: Callable[..., ThreadCache],
) -> None:
    cache = make_cache(2, idle_timeout=0.05)
    first = threading.Event()
    cache.submit(first.set)
    assert first.wait(WAIT)
    assert _join_all(cache.threads()) == []
    assert cache.counts() == (0, 0)
    counter = Counter(10)
    for _ in range(10):
        cache.submit(counter.job)
    assert counter.reached.wait(WAIT)


def test_thread_cache_busy_threads_do_not_leave(make_cache: Callable[..., ThreadCache]) -> None:
    cache = make_cache(2, idle_timeout=0.01)
    gate = Gate(2)
    try:
        for _ in range(2):
            cache.submit(gate.job)
        assert gate.all_started.wait(WAIT)
        held = cache.threads()
        # Far past the idle timeout, while held: both threads stay.
        for thread in held:
            thread.join(0.1)
        assert all(thread.is_alive() for thread in held)
        assert cache.counts() == (2, 2)
    finally:
        gate.opened.set()
    assert gate.all_done.wait(WAIT)


# --- shutdown -----------------------------------------------------------------------------------


def test_thread_cache_shutdown_joins_every_thread() -> None:
    cache = ThreadCache(3)
    gate = Gate(3)
    try:
        for _ in range(3):
            cache.submit(gate.job)
        assert gate.all_started.wait(WAIT)
        threads = cache.threads()
        assert len(threads) == 3
    finally:
        gate.opened.set()
        cache.shutdown(wait=True, timeout=WAIT)
    assert not any(thread.is_alive() for thread in threads)
    assert cache.counts() == (0, 0)


def test_thread_cache_shutdown_runs_queued_jobs_first() -> None:
    cache = ThreadCache(2)
    gate = Gate(2)
    counter = Counter(10)
    try:
        for _ in range(2):
            cache.submit(gate.job)
        assert gate.all_started.wait(WAIT)
        for _ in range(10):
            cache.submit(counter.job)
    finally:
        gate.opened.set()
        cache.shutdown(wait=True, timeout=WAIT)
    assert counter.count == 10
    assert cache.counts() == (0, 0)


def test_thread_cache_shutdown_of_an_unused_cache() -> None:
    cache = ThreadCache(2)
    cache.shutdown(wait=True)
    assert cache.counts() == (0, 0)
    cache.shutdown(wait=True)  # twice is fine


def test_thread_cache_shutdown_without_wait() -> None:
    cache = ThreadCache(2)
    done = threading.Event()
    try:
        cache.submit(done.set)
        assert done.wait(WAIT)
        threads = cache.threads()
    finally:
        cache.shutdown(wait=False)
    assert _join_all(threads) == []


def test_thread_cache_submit_after_shutdown_raises() -> None:
    cache = ThreadCache(2)
    cache.shutdown(wait=True)
    ran = threading.Event()
    with pytest.raises(RuntimeError, match="shutdown"):
        cache.submit(ran.set)
    assert not ran.is_set()
    assert cache.counts() == (0, 0)


# --- wait_idle ----------------------------------------------------------------------------------


def test_thread_cache_wait_idle_of_an_unused_cache(make_cache: Callable[..., ThreadCache]) -> None:
    assert make_cache(2).wait_idle(0)


def test_thread_cache_wait_idle_times_out_while_a_job_is_held(
    make_cache: Callable[..., ThreadCache],
) -> None:
    cache = make_cache(2)
    gate = Gate(1)
    try:
        cache.submit(gate.job)
        assert gate.all_started.wait(WAIT)
        assert cache.wait_idle(0.05) is False
        assert cache.counts() == (1, 1)
    finally:
        gate.opened.set()
    assert cache.wait_idle(WAIT) is True
    assert cache.counts() == (1, 0)


def test_thread_cache_wait_idle_returns_once_jobs_finish(
    make_cache: Callable[..., ThreadCache],
) -> None:
    cache = make_cache(4)
    gate = Gate(4)
    try:
        for _ in range(4):
            cache.submit(gate.job)
        assert gate.all_started.wait(WAIT)
        opener = threading.Thread(target=gate.opened.set)
        opener.start()  # opens the gate while this thread waits
        assert cache.wait_idle(WAIT) is True
        opener.join(WAIT)
    finally:
        gate.opened.set()
    assert gate.done == 4


def test_thread_cache_job_that_raises_keeps_its_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    reported: list[type[BaseException] | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: reported.append(args.exc_type))
    cache = ThreadCache(1)
    try:
        failed = threading.Event()

        def boom() -> None:
            failed.set()
            raise ValueError("job bug")

        cache.submit(boom)
        assert failed.wait(5)
        ran = threading.Event()
        cache.submit(ran.set)
        assert ran.wait(5)
        assert reported == [ValueError]
        assert cache.counts()[0] == 1
    finally:
        cache.shutdown(wait=True)
