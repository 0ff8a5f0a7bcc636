"""Orphan checks for worker processes (test_orphans.py): the tasks, and the supervisor's check.

``hold`` is the task: it starts a grandchild (``sleep 60``), says so in a
file, then holds its worker busy. ``check_orphans`` runs in a supervisor
process that makes itself a child subreaper (Linux), so the processes
orphaned by the parent's death become its children: it can see them, reap
the dead (a zombie is dead, not a leftover) and kill what is left.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from typing import Any

from tests._manager_helpers import _alive, _describe, _read_line, _reap

_PR_SET_CHILD_SUBREAPER = 36


def hold(directory: str, how: str) -> None:
    """Start `sleep 60`, write "<our pid> <its pid>" to directory/<our pid>, then hold.

    how: "sleep" (time.sleep(60): the GIL is free) or "gil" (sum(range(10**11)):
    one C call of ~30 minutes that never lets the GIL go).
    """
    child = subprocess.Popen(["sleep", "60"])
    path = os.path.join(directory, str(os.getpid()))
    with open(path + ".tmp", "w", encoding="utf-8") as file:
        file.write(f"{os.getpid()} {child.pid}")
    os.rename(path + ".tmp", path)  # atomic: a reader never sees it half written
    if how == "gil":
        sum(range(10**11))
    else:
        time.sleep(60)


def _task_pids(directory: str) -> tuple[list[int], list[int]]:
    """The workers and grandchildren the tasks reported (hold's files)."""
    workers: list[int] = []
    grandchildren: list[int] = []
    for name in os.listdir(directory):
        if name.endswith(".tmp"):
            continue
        with open(os.path.join(directory, name), encoding="utf-8") as file:
            worker, grandchild = (int(word) for word in file.read().split())
        workers.append(worker)
        grandchildren.append(grandchild)
    return workers, grandchildren


def _role(process: Any, parent: int, workers: list[int], grandchildren: list[int]) -> str:
    import psutil

    if process.pid in workers:
        return "worker"
    if process.pid in grandchildren:
        return "grandchild"
    try:
        command = " ".join(process.cmdline())
        ppid = process.ppid()
    except psutil.Error:
        return "other"
    if "multiprocessing.resource_tracker" in command:
        return "resource tracker"
    if "multiprocessing.forkserver" in command and ppid == parent:
        return "forkserver"
    return "other"


def check_orphans(script: str, signame: str, directory: str, *args: str) -> dict[str, Any]:
    """Run script (it starts its tasks, prints its pid, awaits), signal it, time its descendants.

    Returns a report: "descendants" (pid, role and command line of each, taken
    just before the signal), "gone_after" (seconds from the signal until
    every one of them was gone, None if some were still there after 5 s),
    "left" (those still there then), "parent_exit" and "stderr" (the script's).
    """
    import ctypes
    import tempfile

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
    with tempfile.TemporaryFile() as errors:  # the script's stderr, for the report
        report = _signal_and_time(script, signame, directory, args, errors)
        errors.seek(0)
        report["stderr"] = errors.read().decode(errors="replace")
    return report


def _signal_and_time(
    script: str, signame: str, directory: str, args: tuple[str, ...], errors: Any
) -> dict[str, Any]:
    import signal

    import psutil

    me = psutil.Process()
    report: dict[str, Any] = {}
    parent = subprocess.Popen(
        [sys.executable, script, directory, *args], stdout=subprocess.PIPE, stderr=errors
    )
    try:
        line = _read_line(parent, time.monotonic() + 20)
        if line != str(parent.pid):
            errors.seek(0)
            raise RuntimeError(
                f"the script did not start its tasks: {line!r}\n"
                f"{errors.read().decode(errors='replace')}"
            )
        workers, grandchildren = _task_pids(directory)
        descendants = psutil.Process(parent.pid).children(recursive=True)
        report["descendants"] = [
            {
                "pid": p.pid,
                "role": _role(p, parent.pid, workers, grandchildren),
                "command": _describe(p),
            }
            for p in descendants
        ]

        parent.send_signal(getattr(signal, signame))
        signalled = time.monotonic()
        deadline = signalled + 5
        while any(_alive(p) for p in descendants) and time.monotonic() < deadline:
            _reap({parent.pid})  # the parent is Popen's to reap
            time.sleep(0.002)
        left = [p for p in descendants if _alive(p)]
        report["gone_after"] = None if left else time.monotonic() - signalled
        report["left"] = [_describe(p) for p in left]
        try:
            report["parent_exit"] = parent.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            report["parent_exit"] = None
    finally:
        with contextlib.suppress(ProcessLookupError):
            parent.kill()
        for leftover in me.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                leftover.kill()
        parent.wait()
        deadline = time.monotonic() + 5
        while me.children() and time.monotonic() < deadline:
            _reap(set())
            time.sleep(0.01)
    return report
