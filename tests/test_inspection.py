"""toolkit.inspect: what a snapshot costs and says of thread workers, each way they are timed."""

from __future__ import annotations

import threading
import time
from typing import Any

import psutil
import pytest

import toolkit
import toolkit.inspect
from tests._waiting import wait_until
from toolkit._engines import _workers


def _spin(stop: threading.Event) -> None:
    while not stop.is_set():
        sum(range(1000))


@pytest.fixture(params=["thread clock", "psutil list"])
def cpu_timing(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways a thread's CPU time is read: its own clock (Linux) and psutil's list (macOS)."""
    if request.param == "psutil list":
        monkeypatch.delattr(time, "pthread_getcpuclockid", raising=False)
        monkeypatch.setattr(_workers, "_thread_times", (-1.0, {}))
    elif not hasattr(time, "pthread_getcpuclockid"):
        pytest.skip("this platform has no per-thread CPU clock")
    return str(request.param)


async def test_a_busy_thread_worker_shows_its_cpu_use(cpu_timing: str) -> None:
    stop = threading.Event()
    async with toolkit.ThreadPool(2, name="spinners") as pool:
        running = pool.apply_async(_spin, (stop,))
        try:
            toolkit.inspect.snapshot()  # the first look sets where CPU time is counted from

            def busy_cpu() -> bool:
                time.sleep(0.06)  # past the psutil list's reuse window
                (snap,) = toolkit.inspect.snapshot().pools
                return any((w.cpu_percent or 0) > 10 for w in snap.workers if w.state == "busy")

            await wait_until(busy_cpu, message=f"a spinning thread's CPU use ({cpu_timing})")
        finally:
            stop.set()
        await running


async def test_a_snapshot_lists_the_process_threads_at_most_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Once per worker made a snapshot quadratic: 0.9 s for ThreadPool(200), on the loop.
    monkeypatch.delattr(time, "pthread_getcpuclockid", raising=False)
    monkeypatch.setattr(_workers, "_thread_times", (-1.0, {}))
    calls = 0
    listing = psutil.Process.threads

    def counted(self: psutil.Process) -> Any:
        nonlocal calls
        calls += 1
        return listing(self)

    monkeypatch.setattr(psutil.Process, "threads", counted)
    release = threading.Event()
    async with toolkit.ThreadPool(20) as pool:
        waits = [pool.apply_async(release.wait) for _ in range(20)]
        try:
            await wait_until(lambda: pool.stats().busy == 20)
            calls = 0
            (snap,) = toolkit.inspect.snapshot().pools
            assert len(snap.workers) == 20
            assert calls <= 1
        finally:
            release.set()
        for wait in waits:
            await wait
