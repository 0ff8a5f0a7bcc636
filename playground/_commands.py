"""The playground's commands: plain functions in the namespace, so scripts can call them too.

They run in the engine thread, inside the statement that calls them. Views
that need the whole screen (``top``) are requested from the UI, which opens
them when the statement ends; without a UI (``-c``, scripts) they print one
frame instead.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeGuard

import toolkit
import toolkit.inspect
import toolkit.monitor
from playground import _views
from playground._output import TaggedTarget

# What a command asks the UI to open once its statement ends: "top", or a
# screen of its own (a coroutine function the UI thread runs: attach's).
View = str | Callable[[], Awaitable[None]]

AnyPool = toolkit.Pool | toolkit.ThreadPool | toolkit.DaskPool


def _print_snapshot(snap: toolkit.inspect.Snapshot) -> None:
    """ps's table: a line per pool, then a row per worker and process."""
    for pool in snap.pools:
        s = pool.stats
        print(
            f"{s.kind} pool {s.name} [{s.state}]: size {s.size}, queued {s.queued},"
            f" running {s.running}, done {s.completed}, failed {s.failed}"
        )
    items = _views.rows(snap)
    if items:
        print("\n".join(_views.table(items, snap.taken_at)))
    else:
        print("no workers")


def is_pool(obj: object) -> TypeGuard[AnyPool]:
    """A toolkit pool (isinstance: no attribute of a user's object is touched)."""
    return isinstance(obj, toolkit.Pool | toolkit.ThreadPool | toolkit.DaskPool)


class Registry:
    """What the session started: shut down on exit, looked up by name by the commands."""

    def __init__(self) -> None:
        self.objects: list[Any] = []  # pools and toolkit.Process objects, oldest first
        self.tasks: list[asyncio.Task[Any]] = []  # recipes and other background tasks

    def add(self, obj: Any) -> Any:
        self.objects.append(obj)
        return obj

    def pools(self) -> list[AnyPool]:
        return [o for o in self.objects if is_pool(o)]


# One reading of await chains for the session's tasks and a service's: toolkit's.
await_chain = toolkit.inspect.await_chain


class Commands:
    """The namespace's commands, bound to one session's registry."""

    def __init__(
        self, registry: Registry, request_view: Callable[[View], bool] | None = None
    ) -> None:
        self.registry = registry
        # Asks the UI to open a view after the statement; False when there is no UI.
        self._request_view = request_view or (lambda view: False)

    # -- start ---------------------------------------------------------------------------

    def pool(self, processes: int | None = None, **kwargs: Any) -> toolkit.Pool:
        """Start a process pool (toolkit.Pool's arguments); its workers' output is shown tagged."""
        kwargs.setdefault("capture_output", True)
        pool = toolkit.Pool(processes, **kwargs)
        self.registry.add(pool)
        return pool

    def threadpool(self, threads: int | None = None, **kwargs: Any) -> toolkit.ThreadPool:
        """Start a thread pool (toolkit.ThreadPool's arguments)."""
        pool = toolkit.ThreadPool(threads, **kwargs)
        self.registry.add(pool)
        return pool

    def dask(
        self, address: str | None = None, *, local: int | None = None, **kwargs: Any
    ) -> toolkit.DaskPool:
        """A pool on a Dask cluster: at a scheduler's address, or local=N workers here.

        ps() and top() list its workers (kind "dask") beside local ones; kill
        restarts one through its nanny.
        """
        if address is None and local is None:
            local = 2
        kwargs.setdefault("name", "dask")
        pool = toolkit.DaskPool(address, local=local, **kwargs)
        self.registry.add(pool)
        return pool

    def process(
        self, target: Callable[..., Any], *args: Any, name: str | None = None, **kwargs: Any
    ) -> toolkit.Process:
        """Start target(*args, **kwargs) in a new toolkit.Process and return it."""
        tagged = TaggedTarget(target)  # its prints arrive as "[<name> <pid>] line"
        proc = toolkit.Process(target=tagged, args=args, kwargs=kwargs, name=name)
        proc.start()
        self.registry.add(proc)
        return proc

    def submit(
        self, fn: Callable[..., Any], /, *args: Any, pool: AnyPool | None = None, **kwargs: Any
    ) -> Any:
        """Submit fn(*args, **kwargs) to pool (default: the newest pool); return its future."""
        if pool is None:
            pools = self.registry.pools()
            if not pools:
                raise LookupError("no pool yet: start one with pool() or threadpool()")
            pool = pools[-1]
        return pool.submit(fn, *args, **kwargs)

    def background(self, coro: Any, *, name: str | None = None) -> asyncio.Task[Any]:
        """Run a coroutine as a background task the session tracks (and cancels on exit)."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self.registry.tasks.append(task)
        return task

    # -- look ------------------------------------------------------------------------------

    def ps(self) -> None:
        """Print every pool worker and toolkit.Process, then the asyncio tasks."""
        _print_snapshot(toolkit.inspect.snapshot())
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        print(f"{len(tasks)} other asyncio task(s): tasks() lists them")

    async def attach(
        self, address: int | str | tuple[str, int], *, token_file: str | None = None
    ) -> None:
        """Watch a running service live: its workers (top's keys) and its asyncio tasks (t).

        The service runs ``toolkit.monitor.serve()`` in its loop. address is
        its pid (the monitor is found by it), "host:port" or (host, port)
        (then a token: token_file=, or TOOLKIT_MONITOR_TOKEN_FILE), or a Unix
        socket path. Without a UI it prints what the screen would show, once.
        """
        from playground import _attach

        remote = await _attach.connect(address, token_file=token_file)

        async def screen() -> None:  # in the UI thread, once the statement has ended
            remote.loop.call_soon_threadsafe(remote.start)
            try:
                await _attach.AttachScreen(remote).application().run_async()
            finally:
                await asyncio.wrap_future(
                    asyncio.run_coroutine_threadsafe(remote.stop(), remote.loop)
                )

        if self._request_view(screen):
            return
        try:
            _attach.print_once(remote)
        finally:
            await remote.stop()

    def tasks(self) -> None:
        """Print the asyncio tasks on the loop as a tree: which task waits for which, and
        each one's await chain (as ``python -m asyncio pstree`` on Python 3.14)."""
        from playground._attach import task_tree

        current = id(asyncio.current_task())
        records = toolkit.inspect.tasks()
        print(f"{len(records)} asyncio task(s):")
        for line, ident in task_tree(records):
            print(line + (" (this statement)" if ident == current else ""))

    def info(self, target: Any) -> None:
        """Print everything known about a worker (name or pid) or a pool."""
        pool = target if is_pool(target) else self._find_pool(str(target))
        if pool is not None:
            for field, value in _fields(pool.stats()).items():
                print(f"{field + ':':<16} {value}")
            return
        row = self._find_row(target)
        print("\n".join(_views.detail(row, time.time())))

    def top(self) -> None:
        """Open the live worker table (q quits); without a UI, print it once."""
        if self._request_view("top"):
            return
        snap = toolkit.inspect.snapshot()
        print("\n".join(_views.table(_views.rows(snap), snap.taken_at)))

    # -- control ---------------------------------------------------------------------------

    def cancel(self, target: Any) -> bool:
        """Cancel an asyncio task (object or name) or a future; True if it was pending."""
        if isinstance(target, str):
            matches = [t for t in asyncio.all_tasks() if t.get_name() == target]
            if not matches:
                raise LookupError(f"no asyncio task named {target!r}: see tasks()")
            target = matches[0]
        if not hasattr(target, "cancel"):
            raise TypeError(f"cannot cancel {target!r}")
        return bool(target.cancel())

    def terminate(self, target: Any) -> None:
        """SIGTERM a worker (name or pid) or a Process; terminate a whole pool."""
        self._signal(target, signal.SIGTERM)

    def kill(self, target: Any) -> None:
        """SIGKILL a worker (name or pid) or a Process; terminate a whole pool."""
        self._signal(target, signal.SIGKILL)

    def resize(self, pool: Any, n: int) -> None:
        """Grow or shrink a pool (object or name) to n workers."""
        found = pool if is_pool(pool) else self._find_pool(str(pool))
        if found is None:
            raise LookupError(f"no pool {pool!r}: see ps()")
        found.resize(n)

    # -- lookups ---------------------------------------------------------------------------

    def _find_pool(self, name: str) -> AnyPool | None:
        for pool in self.registry.pools():
            if pool.name == name:
                return pool
        return None

    def _find_row(self, target: Any) -> _views.Row:
        matches = [r for r in _views.rows(toolkit.inspect.snapshot()) if target in (r.name, r.pid)]
        # A live one first: a name (or a recycled pid) may also belong to a dead worker.
        if matches:
            return min(matches, key=lambda r: r.state == "dead")
        raise LookupError(f"no worker or process {target!r}: see ps()")

    def _signal(self, target: Any, signum: signal.Signals) -> None:
        if is_pool(target):
            target.terminate()
            return
        if isinstance(target, toolkit.Process):
            target.terminate() if signum == signal.SIGTERM else target.kill()
            return
        row = self._find_row(target)
        if row.kind == "thread":
            raise TypeError(f"{row.name} is a thread: a thread cannot be killed; cancel its task")
        if row.pid is None or row.state == "dead":
            raise LookupError(f"{row.name} is not running")
        if row.address is not None:
            print(_views.restart_cluster_worker(row))
            return
        os.kill(row.pid, signum)
        print(f"sent {signum.name} to {row.name} (pid {row.pid})")


def _fields(stats: object) -> dict[str, object]:
    return {name: getattr(stats, name) for name in getattr(stats, "__slots__", ())}


def _awaited_objects(task: asyncio.Task[Any]) -> list[object]:
    """The awaitables in a task's chain and the locals of their frames."""
    found: list[object] = []
    for awaitable in toolkit.inspect.awaitables(task):
        frame = getattr(awaitable, "cr_frame", None)
        if frame is not None:
            found.extend(frame.f_locals.values())
        found.append(awaitable)
    return found


def find_progress(
    task: asyncio.Task[Any] | None, namespace: dict[str, Any]
) -> list[_views.Progress]:
    """Maps in flight: those the running statement awaits, then those held in the namespace.

    A map shows progress when it has ``done`` and ``total`` (toolkit's
    MapResult); a ``map_async`` handle (toolkit.AsyncResult) reports its
    map's ``done_count`` and ``total``. Runs in the engine thread, where the
    frames it reads are not running.
    """
    candidates: list[tuple[str, object]] = []
    found: list[_views.Progress] = []
    if task is not None:
        candidates.extend(("map", obj) for obj in _awaited_objects(task))
    for name, value in list(namespace.items()):
        if name.startswith("_"):
            continue
        if isinstance(value, toolkit.AsyncResult):
            count, total = value.done_count, value.total
            if count is not None and not value.ready() and (total is None or count < total):
                found.append(_views.Progress(name, count, total))
            continue
        candidates.append((name, value))
        if isinstance(value, asyncio.Task) and not value.done():
            candidates.extend((name, obj) for obj in _awaited_objects(value))
    seen: set[int] = set()
    for label, obj in candidates:
        done, total = getattr(obj, "done", None), getattr(obj, "total", None)
        if not isinstance(done, int) or isinstance(done, bool) or not hasattr(obj, "total"):
            continue
        if id(obj) in seen or not (total is None or isinstance(total, int)):
            continue
        if total is not None and done >= total:
            continue
        seen.add(id(obj))
        found.append(_views.Progress(label, done, total))
    return found
