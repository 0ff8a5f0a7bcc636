"""A pool's workers, as the parent sees them: a process with its private socket, or a thread.

Both kinds speak the same messages (``_worker.py``) to the same pool core
(``_pool.py``), which decides what to send; a worker here only moves bytes
or objects and reports what happened, on the loop thread:

    scheduler ──enqueue, flush──▶ ProcessWorker ──socket (non-blocking)──▶ worker process
              ◀─on_message()─── frames parsed from the socket, on the loop
              ◀─on_exit()────── the process's sentinel is readable (it ended)

    scheduler ──enqueue──▶ ThreadWorker ──SimpleQueue──▶ worker thread
              ◀─on_message()─── posted through the loop bridge (coalesced)

A process worker's socket is this process's alone, so it is watched on the
loop directly (no uvloop caveat). When the process ends, everything it wrote
before dying is already in the socket: ``drain()`` reads it synchronously
before the pool attributes the death, so a result that made it out is never
reported as a crash.
"""

from __future__ import annotations

import abc
import collections
import contextlib
import os
import queue
import socket
import struct
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any, Literal

from .._core._backend import uses_handles
from .._core._bridge import bridge_for
from .._core._cpython import descriptor_of, process_args, process_popen, set_process_args
from .._core._errors import WorkerDiedError, as_task_error, describe_exit
from .._core._forking import renew_locks_in_child
from .._core._framing import bounds, frame
from .._core._readiness import (
    unwatch_readable,
    unwatch_writable,
    watch_readable,
    watch_writable,
)
from .._core._reaping import guard_poll
from .._core._serialize import finish, run_chunk_here
from ._worker import (
    CANCEL,
    CHUNK,
    HEADER,
    INIT_FAILED,
    READY,
    RESULT,
    SKIPPED,
    STOP,
    TASK,
    worker_main,
)

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable
    from multiprocessing.context import BaseContext
    from multiprocessing.process import BaseProcess

    from .._core._inspection import WorkerState

__all__ = [
    "EXITED",
    "OutputLine",
    "ProcessWorker",
    "ThreadWorker",
    "WorkerBase",
    "print_output",
]

EXITED = b"Z"  # a thread worker's last message (a process's end is its sentinel)

# 64 KiB: a recv buffer above glibc's mmap threshold (128 KiB) is mapped and
# unmapped at every read, ~8 us each (measured), which was most of the cost of a
# read bringing a few results. A message larger than this is read in pieces of
# the size still missing (_read_once).
_READ_SIZE = 64 * 1024
_LARGE_READ = 4 * 1024 * 1024
_BURST = 512  # messages handled per loop callback


class OutputLine:
    """One line a worker wrote to its stdout or stderr (``Pool(capture_output=callback)``)."""

    __slots__ = ("pid", "stream", "text", "worker")

    def __init__(self, worker: str, pid: int | None, stream: str, text: str) -> None:
        self.worker = worker
        self.pid = pid
        self.stream = stream
        self.text = text

    def __repr__(self) -> str:
        return f"OutputLine({self.worker!r}, {self.pid}, {self.stream!r}, {self.text!r})"


def print_output(line: OutputLine) -> None:
    """The default capture: the line on our own stream, tagged with its worker."""
    stream = sys.stdout if line.stream == "stdout" else sys.stderr
    print(f"[{line.worker} {line.pid}] {line.text}", file=stream, flush=True)


class WorkerBase(abc.ABC):
    """What the scheduler (_scheduler.py) tracks and calls on every worker, whatever runs it.

    The scheduler never asks which kind a worker is: it hands tasks over with
    ``enqueue`` (sent at ``flush``, once per dispatch), withdraws one not
    started with ``withdraw``, asks an idle worker to leave with
    ``request_stop``, ends a busy one with ``kill``, and hears back through
    ``on_message``/``on_results`` (READY, RESULT, SKIPPED, INIT_FAILED,
    EXITED). ``killable`` says whether ``kill`` stops the running task (a
    process) or only abandons it (a thread, which leaves after it).
    """

    kind: Literal["process", "thread"]
    killable: bool
    tid: int | None  # a thread worker's native id (None for a process)

    def __init__(
        self, name: str, on_message: Callable[..., None], on_results: Callable[..., None]
    ) -> None:
        self.name = name
        self.on_message = on_message  # (worker, kind, ident, body, elapsed)
        # (worker, [(ident, body, elapsed), ...]): RESULTs, the hot path, a read's worth at once
        self.on_results = on_results
        self.state: WorkerState = "starting"
        self.since = time.time()
        self.outstanding: dict[int, Any] = {}  # task id -> task, in the order sent
        self.assigned = 0
        self.tasks_done = 0
        self.failures = 0
        self.ready = False
        self.retiring = False  # takes no new tasks (maxtasksperchild, resize, close)
        self.stop_sent = False
        self.stopping_reason: str | None = None  # why *we* ended it (kill, stop)
        self.exit_reason: str | None = None
        self.per_task: float | None = None  # smoothed seconds per task, measured in the worker
        self.capacity = 1  # tasks it may hold at once (the pool core sets it)
        self.idle_timer: asyncio.TimerHandle | None = None  # idle_timeout: when it may leave

    def set_state(self, state: WorkerState) -> None:
        if state != self.state:
            self.state = state
            self.since = time.time()

    # -- the interface the scheduler drives ---------------------------------------------------

    @property
    @abc.abstractmethod
    def pid(self) -> int | None:
        """The process running it (this one, for a thread)."""

    @abc.abstractmethod
    def enqueue(self, task: Any) -> None:
        """Take a task; a process worker sends what it took at ``flush``."""

    def flush(self) -> None:  # noqa: B027 - most workers send as they take
        """Send what ``enqueue`` took since the last flush (one write for a burst)."""

    @abc.abstractmethod
    def withdraw(self, task: Any) -> None:
        """Ask it to skip a task it has not started (it answers SKIPPED)."""

    @abc.abstractmethod
    def request_stop(self) -> None:
        """Ask it to leave once it has nothing to do."""

    @abc.abstractmethod
    def kill(self) -> None:
        """End it now (a thread: once its task returns)."""

    @abc.abstractmethod
    def kill_now(self) -> None:
        """End it from outside its loop, which has closed (synchronous)."""

    @property
    def exitcode(self) -> int | None:
        """How its process ended (None: still running, or a thread)."""
        return None

    def end_reason(self, exitcode: int | None) -> str:
        """Its end, in words, when nobody asked it to end."""
        return "ended"

    def exit_words(self, exitcode: int | None) -> str:
        """How it ended, in words ("killed by SIGKILL"), for a worker we ended."""
        return describe_exit(exitcode)

    def died(self, exitcode: int | None, task: str) -> WorkerDiedError:
        """The error of the task it was running when it ended unasked."""
        return WorkerDiedError(self.pid or 0, exitcode, task)

    def reap(self, wait: bool) -> None:  # noqa: B027 - nothing to release for most workers
        """Release what is left once it is dead (a thread: join it, unless wait is False)."""

    @abc.abstractmethod
    def drain(self) -> None:
        """Handle what it said before it ended, then release its channel."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release its channel without reading more."""

    @abc.abstractmethod
    def usage(self) -> tuple[float | None, int | None]:
        """(CPU percent since the last call, RSS bytes), or Nones if unknown."""


class ProcessWorker(WorkerBase):
    """A worker process and the parent's end of its socket."""

    kind = "process"
    killable = True

    def __init__(
        self,
        name: str,
        loop: asyncio.AbstractEventLoop,
        context: BaseContext,
        initializer: Callable[..., object] | None,
        initargs: tuple[Any, ...],
        capture: Callable[[OutputLine], None] | None,
        on_message: Callable[..., None],
        on_results: Callable[..., None],
    ) -> None:
        super().__init__(name, on_message, on_results)
        self._loop = loop
        self._capture = capture
        parent, child = socket.socketpair()
        parent.setblocking(False)
        self._sock: socket.socket | None = parent
        self._fd = parent.fileno()
        self._rbuf = bytearray()
        self._need = 0  # bytes the message at the head of _rbuf needs in all (0: unknown)
        self._parsing = False  # a burst is being handled over several loop iterations
        self._wbuf = bytearray()
        self._out: list[bytes] = []  # frames enqueued, sent at flush
        child_conn = Connection(child.detach())
        self._child_ends: list[Connection] = [child_conn]
        self._readers: list[_LineReader] = []
        out = err = None
        if capture is not None:
            out_r, out = context.Pipe(duplex=False)
            err_r, err = context.Pipe(duplex=False)
            self._child_ends += [out, err]
            self._readers = [
                _LineReader(loop, out_r, "stdout", self._emit),
                _LineReader(loop, err_r, "stderr", self._emit),
            ]
        self.process: BaseProcess = context.Process(  # type: ignore[attr-defined]
            target=worker_main,
            args=(child_conn, initializer, initargs, out, err),
            name=name,
        )
        self._psutil: Any = None
        self._pid: int | None = None  # kept: the process object is closed once it ended
        watch_readable(loop, self._fd, self._on_readable)

    # -- life -------------------------------------------------------------------------------

    def parent_fds(self, child_ends: bool) -> list[int]:
        """The descriptors a forked worker must not keep: our ends (and, for another
        worker not started yet, its ends too)."""
        fds = [] if self._sock is None else [self._fd]
        fds += [reader.fd for reader in self._readers if reader.fd is not None]
        if child_ends:
            fds += [end.fileno() for end in self._child_ends if not end.closed]
        return fds

    def start(self, inherited: tuple[int, ...] = ()) -> None:
        """Start the process (blocking: the caller picks the thread).

        inherited: descriptors a forked child must close (see worker_main).
        """
        if inherited:
            set_process_args(self.process, (*process_args(self.process), inherited))
        self.process.start()
        guard_poll(self.process)  # before anyone else can poll it from another thread

    def started(self) -> None:
        """Drop our copies of the child's ends: its death must close them for good."""
        self._pid = self.process.pid
        for end in self._child_ends:
            end.close()
        self._child_ends = []

    @property
    def pid(self) -> int | None:
        return self._pid

    tid = None

    def kill(self) -> None:
        """SIGKILL the worker and every process it started (a task's subprocesses too)."""
        pid = self._pid
        if pid is None:
            return
        children = []
        with contextlib.suppress(Exception):
            import psutil

            children = psutil.Process(pid).children(recursive=True)
        # multiprocessing's kill: SIGKILL on POSIX, TerminateProcess on Windows.
        with contextlib.suppress(ProcessLookupError, ValueError):
            self.process.kill()
        for child in children:
            with contextlib.suppress(Exception):
                child.kill()

    def drain(self) -> None:
        """Read what the (ended) worker left in the socket, then close it."""
        while self._sock is not None and self._read_once():
            pass
        # And every whole message still buffered, now (no burst limit).
        while self._rbuf and len(self._rbuf) >= max(self._need, 4):
            data = bytes(self._rbuf)
            self._rbuf.clear()
            self._parse(data, budget=-1)
        for reader in self._readers:
            reader.drain()
        self.close()

    def close(self) -> None:
        for end in self._child_ends:
            end.close()
        self._child_ends = []
        if self._sock is not None:
            unwatch_readable(self._loop, self._fd)
            if self._wbuf:
                unwatch_writable(self._loop, self._fd)
                self._wbuf.clear()
            self._sock.close()
            self._sock = None
        for reader in self._readers:
            reader.close()

    # -- sending -----------------------------------------------------------------------------

    def enqueue(self, task: Any) -> None:
        self._out.append(frame(HEADER.pack(task.kind, task.id) + task.payload))

    def flush(self) -> None:
        if self._out:
            data = self._out[0] if len(self._out) == 1 else b"".join(self._out)
            self._out.clear()
            self.send(data)

    def withdraw(self, task: Any) -> None:
        self.send(frame(HEADER.pack(CANCEL, task.id)))

    def request_stop(self) -> None:
        self.send(frame(HEADER.pack(STOP, 0)))

    @property
    def exitcode(self) -> int | None:
        return self.process.exitcode

    def end_reason(self, exitcode: int | None) -> str:
        return describe_exit(exitcode)

    def kill_now(self) -> None:
        pid = self._pid
        if pid is None or process_popen(self.process) is None or self.process.exitcode is not None:
            return
        with contextlib.suppress(ProcessLookupError, ValueError):
            self.process.kill()  # SIGKILL on POSIX, TerminateProcess on Windows
        with contextlib.suppress(Exception):
            self.process.join(1)

    def send(self, data: bytes) -> None:
        """Queue framed bytes to the worker; never blocks."""
        sock = self._sock
        if sock is None:
            return  # ended: its tasks are re-queued when the end is seen
        if self._wbuf:
            self._wbuf += data
            return
        try:
            sent = sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            return  # the worker is gone; the sentinel tells the pool
        if sent < len(data):
            self._wbuf += memoryview(data)[sent:]
            watch_writable(self._loop, self._fd, self._on_writable)

    def _on_writable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        try:
            sent = sock.send(self._wbuf)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            sent = len(self._wbuf)
        del self._wbuf[:sent]
        if not self._wbuf:
            unwatch_writable(self._loop, self._fd)

    # -- receiving ---------------------------------------------------------------------------

    def _on_readable(self) -> None:
        self._read_once()

    def _read_once(self) -> bool:
        """Read what is there and handle whole messages; False at EOF or nothing."""
        sock = self._sock
        if sock is None:
            return False
        try:
            data = sock.recv(min(max(_READ_SIZE, self._need - len(self._rbuf)), _LARGE_READ))
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            data = b""
        if not data:
            unwatch_readable(self._loop, self._fd)  # EOF: the end comes through the sentinel
            return False
        if self._rbuf:
            self._rbuf += data
            if len(self._rbuf) < self._need:
                return True  # a large message still arriving: no copy until it is whole
            data = bytes(self._rbuf)
            self._rbuf.clear()
        self._parse(data)
        return True

    def _parse(self, data: bytes, budget: int = _BURST) -> None:
        """Handle the whole messages in data (at most budget; -1: all); keep the rest."""
        view = memoryview(data)
        pos, size = 0, len(data)
        on_message = self.on_message
        results: list[tuple[int, memoryview, float]] = []
        self._need = 0
        while (found := bounds(data, pos, size)) is not None:
            start, end = found
            if end > size:
                self._need = end - pos
                break
            if budget == 0:
                # Thousands of results in one read: resolve them over several
                # loop iterations, so that other callbacks (and timers) run between.
                if not self._parsing:
                    self._parsing = True
                    self._loop.call_soon(self._resume)
                break
            budget -= 1
            kind, ident = HEADER.unpack_from(data, start)
            if kind == RESULT:
                (elapsed,) = _ELAPSED.unpack_from(data, start + _HEADER_SIZE)
                # A view, not a copy: the outcome is unpickled before data goes.
                results.append((ident, view[start + _RESULT_SIZE : end], elapsed))
            else:
                if results:  # in the order sent
                    self.on_results(self, results)
                    results = []
                on_message(self, kind, ident, view[start + _HEADER_SIZE : end], 0.0)
            pos = end
        if results:
            self.on_results(self, results)
        if pos < size:
            self._rbuf += view[pos:]

    def _resume(self) -> None:
        self._parsing = False
        if self._rbuf and len(self._rbuf) >= max(self._need, 4):
            data = bytes(self._rbuf)
            self._rbuf.clear()
            self._parse(data)

    # -- inspection --------------------------------------------------------------------------

    def usage(self) -> tuple[float | None, int | None]:
        """(CPU percent since the last call, RSS bytes), or Nones if unknown."""
        pid = self._pid
        if pid is None or self.state == "dead":
            return None, None
        try:
            import psutil

            if self._psutil is None or self._psutil.pid != pid:
                self._psutil = psutil.Process(pid)
            with self._psutil.oneshot():
                return self._psutil.cpu_percent(None), self._psutil.memory_info().rss
        except Exception:  # noqa: BLE001 - it may end while we look
            return None, None

    def _emit(self, stream: str, text: str) -> None:
        if self._capture is not None:
            self._capture(OutputLine(self.name, self._pid, stream, text))


_ELAPSED = struct.Struct("!d")  # a RESULT's body starts with the seconds the task ran
_HEADER_SIZE = HEADER.size
_RESULT_SIZE = HEADER.size + _ELAPSED.size


class _LineReader:
    """A worker's stdout or stderr pipe, read and split into lines.

    Read on the loop when the pipe is a descriptor the loop can watch; where
    pipes are handles (Windows), by a thread of its own in blocking reads,
    which hands what it reads to the loop and ends when the worker's end closes.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        conn: Connection,
        stream: str,
        emit: Callable[[str, str], None],
    ) -> None:
        self._loop = loop
        self._conn: Connection | None = conn
        self._stream = stream
        self._emit = emit
        self._partial = b""
        self._thread: threading.Thread | None = None
        self._arrived: collections.deque[bytes] = collections.deque()  # read by the thread
        self._threaded = uses_handles()
        if self._threaded:
            self._fd = descriptor_of(conn, os.O_RDONLY)
            self.fd: int | None = self._fd
            self._thread = threading.Thread(
                target=self._read_blocking, name=f"toolkit-{stream}-reader", daemon=True
            )
            self._thread.start()
            return
        self._fd = conn.fileno()
        self.fd = self._fd
        os.set_blocking(self._fd, False)  # our private read end
        watch_readable(loop, self._fd, self._read)

    def _read(self) -> bool:
        if self._conn is None or self._threaded:
            return False  # closed, or the thread reads
        try:
            data = os.read(self._fd, 65536)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            data = b""
        if not data:
            self.close()
            return False
        self._split(data)
        return True

    def _split(self, data: bytes) -> None:
        *lines, self._partial = (self._partial + data).split(b"\n")
        for line in lines:
            self._emit(self._stream, line.decode(errors="replace"))

    def _read_blocking(self) -> None:
        """The thread: read until the worker's end closes, the lines to the loop."""
        bridge = bridge_for(self._loop)
        try:
            while data := os.read(self._fd, 65536):
                self._arrived.append(data)
                bridge.post(self._deliver)
        except OSError:
            pass
        finally:
            os.close(self._fd)
            bridge.post(self._ended)

    def _deliver(self) -> None:
        while self._arrived:
            self._split(self._arrived.popleft())

    def _ended(self) -> None:
        self._deliver()
        self._thread = None
        self.close()

    def drain(self) -> None:
        """Take in what the (ended) worker wrote: all of it, before its end is reported."""
        if self._thread is not None:
            # Its end of the pipe is closed: the thread reads what is left and
            # stops at once (bounded all the same: a grandchild may hold it).
            self._thread.join(1.0)
            if not self._thread.is_alive():
                self._ended()
            return
        while self._read():
            pass

    def close(self) -> None:
        if self._conn is None:
            return
        if self._thread is not None:
            return  # the thread closes the pipe at the end of the stream, then calls us again
        if self._partial:
            self._emit(self._stream, self._partial.decode(errors="replace"))
            self._partial = b""
        if not self._threaded:
            unwatch_readable(self._loop, self._fd)
            self._conn.close()
        self._conn = None
        self.fd = None


class ThreadWorker(WorkerBase):
    """A worker thread: tasks in through a SimpleQueue, outcomes out through the loop bridge.

    A thread cannot be killed: a task cancelled or timed out while it runs
    is abandoned (its result discarded), the thread is retired and replaced,
    and it leaves once that task returns.
    """

    kind = "thread"
    killable = False

    def __init__(
        self,
        name: str,
        loop: asyncio.AbstractEventLoop,
        initializer: Callable[..., object] | None,
        initargs: tuple[Any, ...],
        on_message: Callable[..., None],
        on_results: Callable[..., None],
    ) -> None:
        super().__init__(name, on_message, on_results)
        self._bridge = bridge_for(loop)
        self._inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._initializer = initializer
        self._initargs = initargs
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.tid: int | None = None
        self._cpu_seen: tuple[float, float] | None = None

    def start(self) -> None:
        self.thread.start()

    def started(self) -> None:
        pass

    @property
    def pid(self) -> int:
        return os.getpid()

    def enqueue(self, task: Any) -> None:
        self._inbox.put(task)

    def withdraw(self, task: Any) -> None:
        pass  # the thread reads task.cancel_requested before it starts the task

    def request_stop(self) -> None:
        self.stop()

    def stop(self) -> None:
        self._inbox.put(None)

    def kill(self) -> None:
        self.stop()  # cannot interrupt it: it leaves after its current task

    def kill_now(self) -> None:
        self.stop()  # a busy thread is abandoned: it leaves after its task

    def reap(self, wait: bool) -> None:
        if self.thread.ident is not None:
            # It posted its last message: it is returning. Not so for a thread
            # abandoned when its loop ended (wait=False): it leaves after its task.
            self.thread.join(None if wait else 0)

    def drain(self) -> None:
        pass

    def close(self) -> None:
        pass

    def _run(self) -> None:
        self.tid = threading.get_native_id()
        post = self._bridge.post
        if self._initializer is not None:
            try:
                self._initializer(*self._initargs)
            except BaseException as exc:  # noqa: BLE001 - the pool reports it and breaks
                post(self.on_message, self, INIT_FAILED, 0, exc, 0.0)
                post(self.on_message, self, EXITED, 0, None, 0.0)
                return
        post(self.on_message, self, READY, 0, None, 0.0)
        inbox = self._inbox
        while (task := inbox.get()) is not None:
            if task.cancel_requested:
                post(self.on_message, self, SKIPPED, task.id, None, 0.0)
                continue
            start = time.perf_counter()
            if task.kind == TASK:
                fn, args, kwargs = task.payload
                try:
                    outcome: Any = (True, finish(fn(*args, **kwargs)))
                except BaseException as exc:  # noqa: BLE001 - the awaiting caller raises it
                    outcome = (False, as_task_error(exc))  # sys.exit ends only the task
            else:
                assert task.kind == CHUNK
                outcome = run_chunk_here(*task.payload)
            elapsed = time.perf_counter() - start
            post(self.on_results, self, [(task.id, outcome, elapsed)])
            del task, outcome  # do not keep the last result alive while idle
        post(self.on_message, self, EXITED, 0, None, 0.0)

    def usage(self) -> tuple[float | None, int | None]:
        """(CPU percent of this thread since the last call, None: threads share memory)."""
        tid = self.tid
        if tid is None or self.state == "dead":
            return None, None
        used = _thread_cpu_time(self.thread.ident, tid)
        if used is None:
            return None, None
        now = time.monotonic()
        seen, self._cpu_seen = self._cpu_seen, (now, used)
        if seen is None or now <= seen[0]:
            return 0.0, None
        return 100.0 * (used - seen[1]) / (now - seen[0]), None


# Per-thread CPU time, for ThreadWorker.usage: a snapshot asks once per worker,
# so each answer must cost O(1). Where pthread_getcpuclockid exists (Linux,
# the BSDs) the thread's own CPU clock answers directly; elsewhere (macOS,
# Windows) psutil lists every thread of the process, and that list is read
# once per _THREAD_TIMES_TTL and shared by all workers, not once per worker
# (which made a snapshot of ThreadPool(400) take seconds).
_THREAD_TIMES_TTL = 0.05
_thread_times: tuple[float, dict[int, float]] = (-1.0, {})
_thread_times_lock = threading.Lock()
renew_locks_in_child(globals(), "_thread_times_lock")


def _thread_cpu_time(ident: int | None, tid: int) -> float | None:
    getclock = getattr(time, "pthread_getcpuclockid", None)
    if getclock is not None and ident is not None:
        try:
            return time.clock_gettime(getclock(ident))
        except (OSError, OverflowError):
            return None  # the thread has ended
    global _thread_times
    with _thread_times_lock:
        taken, times = _thread_times
        now = time.monotonic()
        if now - taken > _THREAD_TIMES_TTL:
            try:
                import psutil

                times = {t.id: t.user_time + t.system_time for t in psutil.Process().threads()}
            except Exception:  # noqa: BLE001 - best effort: no psutil, or denied
                times = {}
            _thread_times = (now, times)
    return times.get(tid)
