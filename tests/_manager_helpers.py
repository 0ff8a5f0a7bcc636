"""Picklable, top-level functions for manager tests: children and registered types."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any


def tutorial_child(d: Any, l: Any, n: Any, v: Any, a: Any) -> None:  # noqa: E741 - the tutorial's names
    """The tutorial's f(d, l), with the stdlib proxies (.sync), in a plain child."""
    d.sync[1] = "1"
    d.sync["2"] = 2
    d.sync[0.25] = None
    l.sync.reverse()
    l.sync.append("child")
    n.sync.child = os.getpid()
    v.sync.value = 3.1415927
    a.sync[0] = -1


def tutorial_child_async(d: Any, l: Any, n: Any, v: Any, a: Any) -> None:  # noqa: E741
    """The same in a child with its own event loop, awaiting the proxies it received."""
    import toolkit

    async def main() -> None:
        await d.setitem(1, "1")
        await d.update({"2": 2, 0.25: None})
        await l.reverse()
        await l.append("child")
        await n.setattr("child", os.getpid())
        await v.set(3.1415927)
        await a.setitem(0, -1)

    toolkit.run(main())


def produce_sync(q: Any, count: int) -> None:
    """A plain child putting 0..count-1 on a managed queue (stdlib proxy)."""
    for i in range(count):
        q.sync.put(i)


def connect_and_use(address: Any, authkey: bytes, out: Any) -> None:
    """Another process: connect to a toolkit manager by address and key, report what it saw."""
    import toolkit

    async def main() -> Any:
        try:
            manager = await toolkit.Manager.connect(address, authkey=authkey)
        except Exception as exc:  # noqa: BLE001 - reported to the parent
            return type(exc).__name__
        async with manager:
            d = await manager.dict(x=41)
            await d.setitem("x", await d.get("x") + 1)
            return await d.copy()

    out.sync.send(toolkit.run(main()))
    out.sync.close()


def stdlib_client(address: Any, authkey: bytes, shared: Any, out: Any) -> None:
    """A plain multiprocessing client: SyncManager.connect(), its own list, and a shared dict."""
    from multiprocessing.managers import SyncManager

    manager = SyncManager(address=address, authkey=authkey)
    manager.connect()
    items = manager.list(range(3))
    items.append(3)
    shared["from stdlib"] = list(items)
    out.sync.send(shared["from toolkit"])
    out.sync.close()


class Counter:
    """A registered type for BaseManager tests."""

    def __init__(self, start: int = 0) -> None:
        self.count = start

    def add(self, n: int = 1) -> int:
        self.count += n
        return self.count

    def get(self) -> int:
        return self.count

    def fail(self) -> None:
        raise LookupError("nothing here")

    def slow(self, seconds: float) -> str:
        import time

        time.sleep(seconds)
        return "slow"


def exit_now() -> None:
    sys.exit(3)


def fail_to_initialize(message: str) -> None:
    raise LookupError(message)


def make_counter_proxy_type() -> Any:
    """A toolkit proxy type with methods of its own (imported lazily: the server needs none)."""
    import toolkit

    class CounterProxy(toolkit.BaseProxy):
        _exposed_ = ("add", "get")

        async def add(self, n: int = 1) -> int:
            return await self._callmethod("add", (n,))  # type: ignore[no-any-return]

        async def twice(self) -> int:
            await self.add()
            return await self.add()

    return CounterProxy


def fork_child_awaits(d: Any, q: Any) -> None:
    """A fork child: inherited proxies, awaited from its own loop on its own connections."""
    import toolkit

    async def main() -> None:
        for i in range(50):
            await d.setitem(("child", i), i)
        await q.put("child done")

    toolkit.run(main())


# --- orphans: a manager's server after its parent is killed (test_manager_orphans.py) ------------

_PR_SET_CHILD_SUBREAPER = 36


def _read_line(process: Any, deadline: float) -> str:
    """The first line process writes on its stdout (a bytes pipe), or "" at EOF or the deadline."""
    import select
    import time

    data = b""
    fd = process.stdout.fileno()
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return ""
        chunk = os.read(fd, 4096)
        if not chunk:
            return ""
        data += chunk
    return data.split(b"\n", 1)[0].decode()


def _reap(keep: set[int]) -> None:
    """Reap the zombies among our children (orphans adopted as a subreaper), except keep."""
    import psutil

    for child in psutil.Process().children():
        if child.pid not in keep:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(child.pid, os.WNOHANG)


def _alive(process: Any) -> bool:
    """Whether a psutil.Process still runs (a zombie does not; a reused pid is another process)."""
    import psutil

    try:
        return bool(process.is_running() and process.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def _describe(process: Any) -> str:
    import psutil

    try:
        return f"{process.pid} {' '.join(process.cmdline())[:120]}"
    except psutil.Error:
        return str(process.pid)


def check_orphans(service: str, method: str, signame: str, port: str) -> dict[str, Any]:
    """Kill a manager's parent, time its server's end, restart on the same port; report.

    Run in a process of its own: it becomes a child subreaper (Linux), so the
    processes orphaned by the kill become its children, which it can see
    (and reap: a zombie is dead, not a leftover) and kill if need be.
    service is a script taking (start method, port, "child" or "plain"): it
    serves a manager (whose server starts a child of its own with "child"),
    prints the server's pid (then the child's) and sleeps; SIGINT stops it in
    order. The first run has the child, the restart none: an orderly
    shutdown leaves the server's children alone.
    """
    import ctypes
    import tempfile

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
    with tempfile.TemporaryFile() as errors:  # the services' stderr, for the report
        report = _kill_and_restart(service, method, signame, port, errors)
        errors.seek(0)
        report["stderr"] = errors.read().decode(errors="replace")
    return report


def _kill_and_restart(
    service: str, method: str, signame: str, port: str, errors: Any
) -> dict[str, Any]:
    import signal
    import subprocess
    import time

    import psutil

    me = psutil.Process()
    started: list[subprocess.Popen[bytes]] = []

    def start(child: str) -> tuple[subprocess.Popen[bytes], list[int]]:
        process = subprocess.Popen(
            [sys.executable, service, method, port, child], stdout=subprocess.PIPE, stderr=errors
        )
        started.append(process)
        line = _read_line(process, time.monotonic() + 20)
        pids = [int(word) for word in line.split()]
        if len(pids) != (2 if child == "child" else 1):
            errors.seek(0)
            raise RuntimeError(
                f"the service did not serve: {line!r}\n{errors.read().decode(errors='replace')}"
            )
        return process, pids

    report: dict[str, Any] = {}
    try:
        first, pids = start("child")
        watched = [psutil.Process(pid) for pid in pids]
        first.send_signal(getattr(signal, signame))
        first.wait(10)
        dead = time.monotonic()  # the parent is dead (and reaped) from here on
        while any(_alive(p) for p in watched) and time.monotonic() < dead + 5:
            _reap({p.pid for p in started})
            time.sleep(0.005)
        report["gone_after"] = None if any(_alive(p) for p in watched) else time.monotonic() - dead

        second, report["restarted"] = start("plain")  # the same port
        second.send_signal(signal.SIGINT)
        report["restarted_exit"] = second.wait(10)

        # Everything else goes too (forkservers, resource trackers), within a moment.
        deadline = time.monotonic() + 5
        while True:
            _reap(set())
            left = [p for p in me.children(recursive=True) if _alive(p)]
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        report["left"] = [_describe(p) for p in left]
    finally:
        for leftover in me.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                leftover.kill()
        for process in started:
            process.wait()
        deadline = time.monotonic() + 5
        while me.children() and time.monotonic() < deadline:
            _reap(set())
            time.sleep(0.01)
    return report
