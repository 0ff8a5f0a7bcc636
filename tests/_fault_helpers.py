"""Fault injection (test_faults.py): a busy service killed at random moments, checked each time.

``run_faults`` runs in a supervisor process of its own, which makes itself
a child subreaper (Linux): whatever the service started and left behind
becomes the supervisor's child when the service dies, so the supervisor
sees it (and reaps the dead: a zombie is dead, not a leftover). For each
iteration it starts the service on the same TCP port, waits for its
"ready" line, waits a random delay, notes the service's process tree,
sends the signal, then waits (bounded) until nothing of the tree is left
and the service's stderr is at EOF (the resource tracker writes its
"leaked semaphore" warning there as it exits). Every problem is written in
the report with what is needed to understand it; leftovers are then killed
so that the next iteration starts clean.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import select
import signal
import subprocess
import sys
import threading
import time
from typing import Any

_PR_SET_CHILD_SUBREAPER = 36

START_TIMEOUT = 10.0  # seconds from Popen to "ready" before a start counts as failed
GONE_TIMEOUT = 3.0  # seconds from the signal until the whole tree must be gone
BANNED = "leaked semaphore"  # the resource tracker's warning
SIGNALS = ("SIGKILL", "SIGTERM", "SIGINT")
_TAIL = 4000  # characters of stderr kept in the report


def plan(seed: int, iterations: int = 20, minimum: int = 6) -> list[tuple[str, float]]:
    """The signals (each at least minimum times) in a seeded random order, with random delays."""
    rng = random.Random(seed)
    names = [name for name in SIGNALS for _ in range(minimum)]
    names += [rng.choice(SIGNALS) for _ in range(iterations - len(names))]
    rng.shuffle(names)
    return [(name, round(rng.uniform(0.0, 0.5), 3)) for name in names]


def expected_exit(signame: str) -> tuple[int, ...]:
    """The exit statuses (Popen.returncode) the service may end with for this signal."""
    if signame == "SIGKILL":
        return (-signal.SIGKILL,)
    if signame == "SIGTERM":
        return (128 + signal.SIGTERM,)  # toolkit.run: SystemExit(143)
    return (1, -signal.SIGINT)  # an uncaught KeyboardInterrupt


class _Service:
    """One run of the service script, its stderr read to EOF by a thread."""

    def __init__(self, script: str, port: int) -> None:
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [sys.executable, script, str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self._chunks: list[bytes] = []
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        fd = self.process.stderr.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            self._chunks.append(chunk)

    def stderr(self) -> str:
        return b"".join(self._chunks).decode(errors="replace")

    def stderr_eof(self, deadline: float) -> bool:
        """Wait until every holder of the stderr pipe has closed it (or the deadline)."""
        self._reader.join(max(0.0, deadline - time.monotonic()))
        return not self._reader.is_alive()

    def read_ready(self, deadline: float) -> str | None:
        """The "ready" line's payload, or None if the service exits or says nothing in time."""
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        data = b""
        while b"\n" not in data:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                return None
            data += chunk
        line = data.split(b"\n", 1)[0].decode(errors="replace")
        if not line.startswith("ready"):
            return None
        return line[len("ready") :].strip()

    def close(self) -> None:
        assert self.process.stdout is not None
        assert self.process.stderr is not None
        self.process.stdout.close()
        if not self._reader.is_alive():
            self.process.stderr.close()


def _alive(process: Any) -> bool:
    """Whether a psutil.Process still runs (a zombie does not; a reused pid is another process)."""
    import psutil

    try:
        return bool(process.is_running() and process.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def _reap(keep: int | None) -> None:
    """Reap our dead children (orphans adopted as a subreaper) except keep (a Popen's)."""
    import psutil

    for child in psutil.Process().children():
        if child.pid != keep:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(child.pid, os.WNOHANG)


def _describe(process: Any, roles: dict[str, str]) -> str:
    """pid, parent, status, role and command line of a process, for the report."""
    import psutil

    try:
        with process.oneshot():
            ppid = process.ppid()
            status = process.status()
            command = " ".join(process.cmdline())
    except psutil.Error:
        return f"{process.pid} (gone)"
    role = roles.get(str(process.pid))
    if role is None:
        if "resource_tracker" in command:
            role = "resource tracker?"
        elif "forkserver" in command:
            role = "forkserver or a process it forked?"
        else:
            role = "?"
    return f"pid {process.pid} ppid {ppid} {status} [{role}] {command[:160]}"


def _tree(roles: dict[str, str], keep: int | None) -> list[str]:
    """The supervisor's live descendants (the dead reaped first), described."""
    import psutil

    _reap(keep)
    return [_describe(p, roles) for p in psutil.Process().children(recursive=True) if _alive(p)]


def _kill_everything(deadline: float) -> list[str]:
    """SIGKILL every descendant until none is left or the deadline; what would not go."""
    import psutil

    me = psutil.Process()
    while True:
        left = [p for p in me.children(recursive=True) if _alive(p)]
        for process in left:
            with contextlib.suppress(psutil.Error):
                process.kill()
        _reap(None)
        if not left or time.monotonic() > deadline:
            return [_describe(p, {}) for p in left]
        time.sleep(0.01)


def _one(script: str, port: int, signame: str, delay: float, record: dict[str, Any]) -> None:
    """Start, wait for ready, sleep delay, signal, check the aftermath; fill record."""
    import psutil

    problems: list[str] = record["problems"]
    service = _Service(script, port)
    pid = service.process.pid
    try:
        payload = service.read_ready(service.started + START_TIMEOUT)
        record["start_seconds"] = round(time.monotonic() - service.started, 3)
        if payload is None:
            with contextlib.suppress(ProcessLookupError):
                service.process.kill()
            service.process.wait()
            record["exit"] = service.process.returncode
            stragglers = _kill_everything(time.monotonic() + GONE_TIMEOUT)
            service.stderr_eof(time.monotonic() + 1.0)
            problems.append(
                f"the start on port {port} failed: no 'ready' within {START_TIMEOUT:.0f} s "
                f"(the service exited with {record['exit']}); would not die: {stragglers}"
            )
            return
        roles: dict[str, str] = json.loads(payload)
        record["roles"] = roles
        time.sleep(delay)
        before = [
            _describe(p, roles)
            for p in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
        ]
        record["before"] = before
        killed = time.monotonic()
        service.process.send_signal(getattr(signal, signame))
        deadline = killed + GONE_TIMEOUT
        left: list[str] = []
        while True:
            code = service.process.poll()
            if code is not None and record.get("exited_after") is None:
                record["exited_after"] = round(time.monotonic() - killed, 3)
            left = _tree(roles, pid if code is None else None)
            if code is not None and not left:
                record["gone_after"] = round(time.monotonic() - killed, 3)
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.005)
        if left:
            if service.process.poll() is None:  # where the service is stuck (faulthandler)
                with contextlib.suppress(ProcessLookupError):
                    service.process.send_signal(signal.SIGUSR1)
                time.sleep(0.3)
            problems.append(
                f"{len(left)} process(es) of the tree still alive {GONE_TIMEOUT:.0f} s after "
                f"{signame}: " + "; ".join(left)
            )
            record["left"] = left
            record["left_when_killed"] = _kill_everything(time.monotonic() + GONE_TIMEOUT)
        if not service.stderr_eof(deadline if not left else time.monotonic() + 1.0):
            problems.append(f"stderr not at EOF {GONE_TIMEOUT:.0f} s after {signame}")
        record["stderr_eof"] = not service._reader.is_alive()
        service.process.wait(GONE_TIMEOUT)
        code = service.process.returncode
        record["exit"] = code
        if code not in expected_exit(signame):
            problems.append(
                f"exit status {code} after {signame}, expected one of {expected_exit(signame)}"
            )
    finally:
        if service.process.poll() is None:
            service.process.kill()
            service.process.wait()
        stderr = service.stderr()
        record["stderr"] = stderr[-_TAIL:]
        if BANNED in stderr.lower():
            problems.append(f"the service's stderr has a {BANNED!r} warning")
        if signame == "SIGINT" and record.get("roles") and "KeyboardInterrupt" not in stderr:
            problems.append("no KeyboardInterrupt in stderr after SIGINT")
        service.close()


def run_faults(script: str, port: str, seed: str) -> dict[str, Any]:
    """Kill the service 20 times at random moments (plan(seed)), then start it once more.

    The extra start checks the port after the 20th kill; it is stopped with
    SIGTERM and checked like the others. Returns the report: seed, port,
    and one record per start (index, signal, delay, start_seconds, roles,
    before, exit, exited_after, gone_after, left, stderr, problems).
    """
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
    steps = [*plan(int(seed)), ("SIGTERM", 0.0)]
    records: list[dict[str, Any]] = []
    began = time.monotonic()
    try:
        for index, (signame, delay) in enumerate(steps, 1):
            record: dict[str, Any] = {
                "index": index,
                "signal": signame,
                "delay": delay,
                "final": index == len(steps),
                "problems": [],
            }
            records.append(record)
            try:
                _one(script, int(port), signame, delay, record)
            except Exception as exc:  # noqa: BLE001 - reported, the next one runs clean
                record["problems"].append(f"the supervisor failed: {exc!r}")
                _kill_everything(time.monotonic() + GONE_TIMEOUT)
    finally:
        _kill_everything(time.monotonic() + GONE_TIMEOUT)
    return {
        "seed": int(seed),
        "port": int(port),
        "seconds": round(time.monotonic() - began, 2),
        "records": records,
    }
