"""Polling child processes safely from several threads.

multiprocessing's ``Popen.poll`` is not thread-safe, and every
``Process.start()`` polls every child of the process
(``multiprocessing.process._cleanup``) from whatever thread starts it: a pool
starts its workers in a helper thread while the loop polls the ones that
ended. Two threads reading a forkserver child's status pipe at once leave one
with EOF (exit code 255 instead of the real one); two ``waitpid()`` calls
leave one with ECHILD (None). So the toolkit's processes poll under one lock
(a poll that would block waits for the end outside it).
"""

from __future__ import annotations

import multiprocessing.connection
import os
import sys
import threading
import time
from typing import TYPE_CHECKING

from ._backend import get_backend
from ._bridge import wait_blocking
from ._cpython import process_popen
from ._forking import renew_locks_in_child
from ._readiness import forget_fd, wait_readable

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

__all__ = ["guard_poll", "wait_ended"]

_poll_lock = threading.Lock()
renew_locks_in_child(globals(), "_poll_lock")


def guard_poll(process: BaseProcess) -> None:
    """Make the started process's poll() safe from concurrent callers in other threads."""
    popen = process_popen(process)
    if popen is None or "poll" in vars(popen):
        return
    unlocked = popen.poll
    sentinel = process.sentinel

    def poll(flag: int = os.WNOHANG) -> int | None:
        if flag != os.WNOHANG:
            # Wait for the end without the lock; then read the status under it.
            multiprocessing.connection.wait([sentinel])
            while True:
                with _poll_lock:
                    code: int | None = unlocked(os.WNOHANG)
                if code is not None:
                    return code
                time.sleep(0.001)  # ended, not yet reapable: a moment
        with _poll_lock:
            result: int | None = unlocked(flag)
            return result

    popen.poll = poll


async def wait_ended(process: BaseProcess) -> None:
    """Wait until the process has ended and its exit status can be read without blocking."""
    popen = process_popen(process)
    # Looked up, not imported: a pool under fork or spawn need not load it (~1 ms).
    forkserver = sys.modules.get("multiprocessing.popen_forkserver")
    is_forkserver_child = forkserver is not None and isinstance(popen, forkserver.Popen)
    backend = get_backend()
    if backend == "threads":
        # The sentinel through multiprocessing's own wait: a handle on Windows.
        sentinel = process.sentinel
        await wait_blocking(
            ("ended", sentinel),
            lambda timeout: bool(multiprocessing.connection.wait([sentinel], timeout)),
        )
        if process.exitcode is None:
            from ._threads import to_thread

            await to_thread(process.join)
        return
    if is_forkserver_child or backend != "linux":
        # Forkserver: the server reaps the child, then writes its status to the
        # sentinel, so readable means "status here".
        await wait_readable(process.sentinel)
        if process.exitcode is None:  # elsewhere: closed descriptors precede the status
            from ._threads import to_thread  # here: rarely needed, and a cold pool start counts

            await to_thread(process.join)
        return
    # Our own child (fork, spawn): its sentinel reads EOF as the child closes
    # its descriptors, a moment *before* waitpid can reap it. A pidfd becomes
    # readable only once it can.
    try:
        pidfd = os.pidfd_open(popen.pid)
    except ProcessLookupError:  # already reaped by someone
        return
    try:
        await wait_readable(pidfd)
    finally:
        forget_fd(pidfd)
        os.close(pidfd)
