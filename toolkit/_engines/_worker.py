"""The child side of a toolkit ``Pool``: one worker process, one private socket, no event loop.

Theory of operation
-------------------
Each worker has its own socket to the parent (never a channel shared by all
workers behind a lock that a dying worker could hold: pebble#163). Messages
use multiprocessing's wire format (a 4-byte length, then the bytes), and
every message starts with a 9-byte header, a kind and a task id::

    parent ──TASK id, call──────▶ worker   run it, then answer
    parent ──CHUNK id, calls────▶ worker   a map's batch of inputs
    parent ──CANCEL id──────────▶ worker   drop it if not started (answer SKIPPED)
    parent ──STOP───────────────▶ worker   leave (sent once nothing is outstanding)
    parent ◀──READY───────────── worker    the initializer ran
    parent ◀──INIT_FAILED, exc── worker    ... or raised: the worker leaves
    parent ◀──RESULT id, outcome─ worker   one per task, in the order they ran
    parent ◀──SKIPPED id──────── worker

The parent may send several tasks ahead (tiny tasks back to back, no round
trip in between). The worker runs them in order and answers each one before
it starts the next, so the parent knows which task a dead worker was running:
the oldest one not answered. Those behind it never started and go to
another worker. Before each task the worker reads whatever has arrived, so a
cancellation reaches a task that has not started yet.

The worker ignores SIGINT: a Ctrl-C in the terminal reaches the whole process
group, and cancelling work is the parent's decision (it kills the worker). A
thread watches the socket for the parent's end closing (the parent died, even
by SIGKILL) and ends the worker and its children then, whatever it is running:
no orphans, where ProcessPoolExecutor's workers outlive a killed parent
(docs/internals.md, "Children that end with their parent").
"""

from __future__ import annotations

import _thread
import collections
import contextlib
import multiprocessing
import os
import select
import signal
import socket
import struct
import sys
from time import perf_counter
from typing import TYPE_CHECKING, Any

from .._core._backend import get_backend, msg_dontwait
from .._core._cpython import connection_detach, descriptor_of, ignore_signal
from .._core._framing import bounds, frame
from .._core._serialize import dumps_failure, run_call, run_chunk

if TYPE_CHECKING:
    from collections.abc import Callable
    from multiprocessing.connection import Connection

__all__ = [
    "CANCEL",
    "CHUNK",
    "HEADER",
    "INIT_FAILED",
    "READY",
    "RESULT",
    "RESULT_HEADER",
    "SKIPPED",
    "STOP",
    "TASK",
    "redirect_output",
    "worker_main",
]

HEADER = struct.Struct("!cQ")  # kind, task id
RESULT_HEADER = struct.Struct("!cQd")  # RESULT, task id, seconds it ran (sizes the pipeline)
TASK = b"T"
CHUNK = b"C"
CANCEL = b"X"
STOP = b"S"
READY = b"I"
INIT_FAILED = b"E"
RESULT = b"R"
SKIPPED = b"K"


def worker_main(
    conn: Connection,
    initializer: Callable[..., object] | None,
    initargs: tuple[Any, ...],
    stdout: Connection | None,
    stderr: Connection | None,
    inherited: tuple[int, ...] = (),
) -> None:
    """Serve tasks from conn until told to stop or the parent goes away.

    inherited: under fork, the parent's ends of its other workers' sockets and
    pipes, which this process got copies of: closed, or the parent's death
    would never show as a hang-up on those sockets.
    """
    for fd in inherited:
        with contextlib.suppress(OSError):
            os.close(fd)
    ignore_signal(signal.SIGINT)  # the parent's Ctrl-C is the parent's to handle
    parent = multiprocessing.parent_process()
    if stdout is not None and stderr is not None:
        redirect_output(stdout, stderr)
    # The connection's socket as a socket object (recv with MSG_DONTWAIT
    # below): taken over, not duplicated (Windows cannot dup a socket handle).
    sock = socket.socket(fileno=connection_detach(conn))
    _watch_parent(sock.fileno(), None if parent is None else parent.pid)
    # EOF or a reset: the parent closed our socket, nothing left to answer to.
    with sock, contextlib.suppress(EOFError, BrokenPipeError, ConnectionResetError):
        if initializer is not None:
            try:
                initializer(*initargs)
            except BaseException as exc:  # noqa: BLE001 - the parent reports it, breaks the pool
                sock.sendall(frame(HEADER.pack(INIT_FAILED, 0) + dumps_failure(exc)))
                return
        sock.sendall(frame(HEADER.pack(READY, 0)))
        _serve(sock)


def _serve(sock: socket.socket) -> None:
    # Read the socket in large pieces and split messages here: one recv brings
    # every task the parent sent ahead, where Connection.recv_bytes costs two
    # reads per message and poll() one more. MSG_DONTWAIT reads without
    # blocking and without touching the descriptor's flags; where there is no
    # such flag (Windows), select says first whether a read would block.
    pending: collections.deque[tuple[bytes, int, memoryview]] = collections.deque()
    buffer: bytes | bytearray = b""
    recv, sendall = sock.recv, sock.sendall
    dontwait = msg_dontwait()
    readable = [sock]
    header_size = HEADER.size
    flush = _flush_output
    while True:
        data: bytes | None
        try:
            if not pending:
                data = recv(_READ_SIZE)
            elif dontwait:
                data = recv(_READ_SIZE, dontwait)
            else:
                data = recv(_READ_SIZE) if select.select(readable, [], [], 0)[0] else None
        except BlockingIOError:
            data = None
        if data is not None:
            if not data:
                return  # EOF: the parent is gone
            buffer = buffer + data if buffer else data
            while True:
                view = memoryview(buffer)
                pos, size = 0, len(buffer)
                while (found := bounds(buffer, pos, size)) is not None:
                    start, end = found
                    if end > size:
                        break
                    kind, ident = HEADER.unpack_from(buffer, start)
                    if kind in (TASK, CHUNK):
                        pending.append((kind, ident, view[start + header_size : end]))
                    elif kind == CANCEL:
                        for entry in pending:
                            if entry[1] == ident:
                                pending.remove(entry)
                                sendall(frame(HEADER.pack(SKIPPED, ident)))
                                break
                    elif kind == STOP:
                        return
                    pos = end
                buffer = buffer[pos:] if pos < size else b""
                grown = _read_large(sock, buffer) if len(buffer) >= 4 else buffer
                if grown is buffer:
                    break
                buffer = grown  # a whole large message now: split it
            continue
        kind, ident, body = pending.popleft()
        started = perf_counter()
        outcome = run_call(body) if kind == TASK else run_chunk(body)  # type: ignore[arg-type]
        elapsed = perf_counter() - started
        del body
        if flush is not None:
            flush()  # a task's prints reach the parent before its result
        sendall(frame(RESULT_HEADER.pack(RESULT, ident, elapsed) + outcome))


def _read_large(sock: socket.socket, buffer: bytes | bytearray) -> bytes | bytearray:
    """Complete a message much larger than one read in place (not by concatenation)."""
    found = bounds(buffer, 0, len(buffer))
    if found is None:
        return buffer
    total = found[1]
    if total <= 4 * _READ_SIZE:
        return buffer  # small: the next reads and one concatenation will do
    whole = bytearray(total)
    whole[: len(buffer)] = buffer
    view = memoryview(whole)
    filled = len(buffer)
    while filled < total:
        got = sock.recv_into(view[filled:])
        if not got:
            raise EOFError
        filled += got
    return whole  # the parser then splits it as any other


_READ_SIZE = 1 << 16  # not above glibc's mmap threshold: see _workers.py


_flush_output: Callable[[], None] | None = None


def redirect_output(stdout: Connection, stderr: Connection) -> None:
    """Send this process's fds 1 and 2 (C code and subprocesses too) to the parent's pipes."""
    global _flush_output
    for conn, fd, stream in ((stdout, 1, sys.stdout), (stderr, 2, sys.stderr)):
        if stream is not None:
            stream.flush()
        pipe = descriptor_of(conn, os.O_WRONLY)  # Windows: the handle as a descriptor
        os.dup2(pipe, fd)
        os.close(pipe)
    for stream in (sys.stdout, sys.stderr):
        if stream is not None and hasattr(stream, "reconfigure"):
            stream.reconfigure(line_buffering=True)  # a pipe is block-buffered otherwise

    def flush() -> None:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()

    _flush_output = flush


def _watch_parent(fd: int, parent_pid: int | None) -> None:
    """End this worker (and its children) the moment the parent's end of fd closes."""
    # _guard is imported when needed, not with this module: the parent's pool
    # imports this module too, and a new worker's first task waited for the
    # import here (up to 5 ms measured, with its siblings starting beside it).
    if not hasattr(select, "POLLRDHUP") or get_backend() != "linux":
        # Elsewhere (or a forced portable backend): watch the parent process.
        if parent_pid is not None:
            from .._core._guard import end_with_children, watch_process

            watch_process(parent_pid, end_with_children)
        return

    def watch() -> None:
        poller = select.poll()
        # Only the hang-up: data arriving must not wake this thread.
        poller.register(fd, select.POLLRDHUP)
        while True:
            for _, events in poller.poll():
                if events & (select.POLLRDHUP | select.POLLHUP | select.POLLERR | select.POLLNVAL):
                    from .._core._guard import end_with_children

                    end_with_children()

    # The low-level start: Thread.start() waits until the new thread runs, which
    # on a busy machine delayed a new worker's first task by up to 2 ms.
    _thread.start_new_thread(watch, ())
