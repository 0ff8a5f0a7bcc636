"""How the engine loop and this process are doing, measured from outside the loop.

A heartbeat callback on the engine loop stamps the time every 0.1 s; the UI
thread reads the stamp. When the loop is blocked the stamp stops moving, so
the toolbar can say "blocked for 3.2 s" while the blocking code still runs
(livekit/agents PR #7128, apache/airflow PR #54666 use the same probe).
The thread that notices (the UI's) also says where: the loop thread's
current frame, from ``sys._current_frames()``, and the task it runs.
"""

from __future__ import annotations

import asyncio
import functools
import os
import reprlib
import resource
import sys
import sysconfig
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import psutil

if TYPE_CHECKING:
    import types

_INTERVAL = 0.1
_BLOCKED_AFTER = 0.5  # a gap this long is no scheduling jitter


@dataclass(frozen=True, slots=True)
class LoopState:
    """The engine loop as seen now: blocked_for is None while it runs."""

    lag: float  # how late the last heartbeat ran, in seconds
    blocked_for: float | None
    # While blocked: where the loop's thread is, "fn (file:line)", and the task it runs.
    blocked_in: str | None = None


class Heartbeat:
    """A callback on the engine loop, every 0.1 s; readable from any thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._last = time.monotonic()
        self._due = self._last
        self._lag = 0.0
        self._handle: asyncio.TimerHandle | None = None
        self._thread: int | None = None  # the loop's thread, learnt at the first beat

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
        self._thread = threading.get_ident()
        self._lag = max(0.0, now - self._due)
        self._last = now
        self._due = now + _INTERVAL
        self._handle = self._loop.call_later(_INTERVAL, self._beat)

    def state(self) -> LoopState:
        """The loop's lag and, when the heartbeat stopped, how long it has been blocked."""
        gap = time.monotonic() - self._last
        if gap > _BLOCKED_AFTER:
            return LoopState(self._lag, gap - _INTERVAL, self._blocked_in())
        return LoopState(self._lag, None)

    def _blocked_in(self) -> str | None:
        """What the blocked loop's thread runs: its frame, then its task's name."""
        if self._thread is None:
            return None
        frame = sys._current_frames().get(self._thread)
        if frame is None:
            return None
        where = describe_frame(frame)
        try:
            task = asyncio.current_task(self._loop)
        except RuntimeError:  # the loop has closed
            task = None
        return where if task is None else f"{where} task {task.get_name()}"


# Frames in these directories are the machinery (asyncio, selectors, threading,
# libraries): the blocking line worth naming is the last one outside them.
_LIBRARY_DIRS = tuple(
    {sysconfig.get_path(name) for name in ("stdlib", "platstdlib", "purelib", "platlib")}
)


def describe_frame(frame: types.FrameType) -> str:
    """'fn (file:line)' for the innermost frame of the user's code in frame's stack
    (the innermost frame at all when every frame is the library's)."""
    innermost = frame
    walk: types.FrameType | None = frame
    while walk is not None:
        if not walk.f_code.co_filename.startswith(_LIBRARY_DIRS):
            frame = walk
            break
        walk = walk.f_back
    else:
        frame = innermost
    code = frame.f_code
    return f"{code.co_qualname} ({os.path.basename(code.co_filename)}:{frame.f_lineno})"


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


# -- what leaving waits for ------------------------------------------------------------------


def _call_text(fn: object, args: tuple[object, ...]) -> str:
    """'time.sleep(30)': a call as the user wrote it."""
    # asyncio.to_thread runs functools.partial(context.run, fn, *args).
    if isinstance(fn, functools.partial) and getattr(fn.func, "__name__", "") == "run":
        inner: tuple[object, ...] = fn.args
        if inner and callable(inner[0]):
            fn, args = inner[0], (*inner[1:], *args)
    module = getattr(fn, "__module__", None)
    name = getattr(fn, "__qualname__", None) or type(fn).__name__
    shown = reprlib.Repr()
    shown.maxstring = shown.maxother = 40
    return f"{module + '.' if module else ''}{name}({', '.join(map(shown.repr, args))})"


def _work_item(frame: types.FrameType | None) -> str | None:
    """The call an executor thread runs (concurrent.futures' work item, toolkit's to_thread
    call): found as ``self`` with ``fn`` and ``args`` in one of its frames."""
    while frame is not None:
        item = frame.f_locals.get("self") if frame.f_code.co_name in ("run", "__call__") else None
        fn, args = getattr(item, "fn", None), getattr(item, "args", None)
        if callable(fn) and isinstance(args, tuple):
            return _call_text(fn, args)
        frame = frame.f_back
    return None


def busy_threads(skip: set[int]) -> list[str]:
    """The threads an exit waits for, 'thread NAME running CALL' or '... at fn (file:line)':
    executor threads running a call, and other threads that are not daemons. Idle pool
    threads, and the threads whose ident is in skip (the session's own), are left out."""
    frames = sys._current_frames()
    found: list[str] = []
    for thread in threading.enumerate():
        ident = thread.ident
        if ident is None or ident in skip or thread is threading.main_thread():
            continue
        frame = frames.get(ident)
        if frame is None:
            continue
        call = _work_item(frame)
        if call is not None:
            found.append(f"thread {thread.name} running {call}")
        elif not thread.daemon and frame.f_code.co_name != "_worker":  # not an idle pool thread
            found.append(f"thread {thread.name} at {describe_frame(frame)}")
    return found


def kill_children() -> list[str]:
    """SIGKILL every descendant process of this one and reap them; say which they were."""
    try:
        children = psutil.Process().children(recursive=True)
    except psutil.Error:
        return []
    killed: list[str] = []
    for child in children:
        try:
            name = " ".join(child.cmdline()[:2]) or child.name()
            child.kill()
            killed.append(f"{child.pid} ({name})")
        except psutil.Error:
            pass  # gone already
    psutil.wait_procs(children, timeout=3)
    return killed
