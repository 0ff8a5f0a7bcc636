"""How the engine loop and this process are doing, measured from outside the loop.

A heartbeat callback on the engine loop stamps the time every 0.1 s; the UI
thread reads the stamp. When the loop is blocked the stamp stops moving, so
the toolbar can say "blocked for 3.2 s" while the blocking code still runs
(livekit/agents PR #7128, apache/airflow PR #54666 use the same probe).
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import psutil

if TYPE_CHECKING:
    import asyncio

_INTERVAL = 0.1
_BLOCKED_AFTER = 0.5  # a gap this long is no scheduling jitter


@dataclass(frozen=True, slots=True)
class LoopState:
    """The engine loop as seen now: blocked_for is None while it runs."""

    lag: float  # how late the last heartbeat ran, in seconds
    blocked_for: float | None


class Heartbeat:
    """A callback on the engine loop, every 0.1 s; readable from any thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._last = time.monotonic()
        self._due = self._last
        self._lag = 0.0
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Begin beating (from any thread)."""
        self._loop.call_soon_threadsafe(self._beat)

    def stop(self) -> None:
        """Stop beating; call in the engine thread."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _beat(self) -> None:
        now = time.monotonic()
        self._lag = max(0.0, now - self._due)
        self._last = now
        self._due = now + _INTERVAL
        self._handle = self._loop.call_later(_INTERVAL, self._beat)

    def state(self) -> LoopState:
        """The loop's lag and, when the heartbeat stopped, how long it has been blocked."""
        gap = time.monotonic() - self._last
        if gap > _BLOCKED_AFTER:
            return LoopState(self._lag, gap - _INTERVAL)
        return LoopState(self._lag, None)


class ProcessUsage:
    """This process's CPU (percent of one core since the last call) and resident memory."""

    def __init__(self) -> None:
        self._wall = time.monotonic()
        self._cpu = time.process_time()
        self._percent = 0.0

    def sample(self) -> tuple[float, int]:
        """Return (cpu_percent, rss_bytes); CPU is averaged over at least 0.25 s."""
        wall, cpu = time.monotonic(), time.process_time()
        if wall - self._wall >= 0.25:
            self._percent = 100.0 * (cpu - self._cpu) / (wall - self._wall)
            self._wall, self._cpu = wall, cpu
        return self._percent, _rss()


def _rss() -> int:
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        # No procfs (macOS): the peak is the best the stdlib offers (bytes on macOS).
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


class ChildUsage:
    """CPU and RSS of child processes, keeping one psutil.Process per pid.

    A fresh psutil.Process reports 0.0 CPU on its first call: the same object
    must be asked between samples (psutil#2351).
    """

    def __init__(self) -> None:
        self._known: dict[int, psutil.Process] = {}

    def sample(self, pids: list[int]) -> dict[int, tuple[float | None, int | None]]:
        """pid -> (cpu percent since the last sample, rss bytes); gone processes are dropped."""
        result: dict[int, tuple[float | None, int | None]] = {}
        for pid in pids:
            try:
                process = self._known.get(pid) or self._known.setdefault(pid, psutil.Process(pid))
                result[pid] = (process.cpu_percent(None), process.memory_info().rss)
            except psutil.Error:
                self._known.pop(pid, None)
        for pid in set(self._known) - set(pids):
            del self._known[pid]
        return result
