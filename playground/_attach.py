"""``attach``: a running service, seen live as the playground sees its own session.

The service runs ``toolkit.monitor.serve()``. ``await attach(pid)`` (or
``toolkit-playground --attach ADDRESS``) connects to it and opens a
full-screen view refreshed twice a second: a line about the service (its
command, loop, pools and workers, whether the console may act), then either
its workers (``top``'s table and keys) or its asyncio tasks as a tree of
which task waits for which, each with its await chain (as ``python -m
asyncio pstree`` prints on Python 3.14). Keys: t or Tab switches the two;
k kills the selected worker, + and - resize its pool by one and, in the
tasks view, c cancels the selected task: only where the service enabled
control (``serve(control=True)``), a kill or a cancel after a y/n; q leaves.
Without a terminal, the same is printed once.

The connection lives on the engine loop (a refresher task there fetches);
the UI thread only reads the latest records, so a slow service never
freezes the screen: the age of what is shown is on its first line.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

from prompt_toolkit.application import Application
from prompt_toolkit.data_structures import Point
from prompt_toolkit.filters import Condition
from prompt_toolkit.key_binding import ConditionalKeyBindings, KeyBindings, merge_key_bindings
from prompt_toolkit.layout import ConditionalContainer, HSplit, Layout, Window
from prompt_toolkit.layout.controls import FormattedTextControl

import toolkit.monitor
from playground import _views
from playground._session import STYLE
from playground._top import Top

if TYPE_CHECKING:
    from collections.abc import Sequence

    from prompt_toolkit.key_binding import KeyPressEvent

    from toolkit.inspect import AsyncTaskInfo, Snapshot

__all__ = ["AttachScreen", "Remote", "connect", "describe", "task_tree"]

REFRESH = 0.5  # seconds between two fetches


async def connect(address: Any, *, token_file: str | None = None) -> Remote:
    """Connect to the monitor at address: a pid, (host, port), "host:port" or a socket path.

    Raises:
        TypeError: address is none of those (said at the call, with the forms it takes).
        LookupError, OSError, PermissionError, TimeoutError: as toolkit.monitor.connect.
    """
    if isinstance(address, str):
        address = toolkit.monitor.parse_address(address)
    client = await toolkit.monitor.connect(address, token_file=token_file)
    remote = Remote(client, asyncio.get_running_loop())
    try:
        await remote.refresh()
    except BaseException:
        await client.close()
        raise
    return remote


class Remote:
    """A service's latest records, fetched on the engine loop, read from anywhere."""

    def __init__(
        self, client: toolkit.monitor.MonitorClient, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.client = client
        self.loop = loop
        self.hello: dict[str, Any] = client.hello
        self.snapshot: Snapshot | None = None
        self.tasks: tuple[AsyncTaskInfo, ...] = ()
        self.fetched_at = 0.0  # time.monotonic() of the last answer
        self.error: str | None = None  # why the last fetch failed (the service went away)
        self._refresher: asyncio.Task[None] | None = None

    async def refresh(self) -> None:
        """Fetch the snapshot and the tasks once (engine loop)."""
        snapshot = await self.client.snapshot()
        tasks = await self.client.tasks()
        self.snapshot, self.tasks = snapshot, tasks
        self.fetched_at = time.monotonic()
        self.error = None

    def start(self) -> None:
        """Keep refreshing, on the engine loop, until stop()."""
        self._refresher = self.loop.create_task(self._refresh_forever(), name="attach-refresh")

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(REFRESH)
            try:
                await self.refresh()
            except (OSError, TimeoutError, ValueError) as exc:
                self.error = f"{type(exc).__name__}: {exc}"
                if isinstance(exc, ConnectionError):
                    return  # gone: what was last seen stays on screen

    async def stop(self) -> None:
        """Stop refreshing and close the connection (engine loop)."""
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        await self.client.close()

    def act(self, op: str, **fields: Any) -> str:
        """Ask the service to act (from the UI thread); the answer, or why it was refused."""
        if self.error is not None:
            return f"not sent: {self.error}"
        future = asyncio.run_coroutine_threadsafe(self.client.request(op, **fields), self.loop)
        try:
            return str(future.result(timeout=10))
        except (LookupError, PermissionError, TypeError, ValueError, OSError) as exc:
            return str(exc)
        except TimeoutError:
            future.cancel()
            return "no answer within 10 s"

    def rows(self) -> list[_views.Row]:
        return [] if self.snapshot is None else _views.rows(self.snapshot)


def describe(remote: Remote, now: float | None = None) -> str:
    """One line about the service: what it runs, its loop, its workers, may we act."""
    hello = remote.hello
    argv = " ".join(hello.get("argv") or []) or "?"
    if len(argv) > 40:
        argv = argv[:39] + "~"
    loop = str(hello.get("loop", "?")).rsplit(".", 1)[-1]
    pools = 0 if remote.snapshot is None else len(remote.snapshot.pools)
    counts = _views.worker_counts(remote.rows())
    shown = " ".join(f"{n} {state}" for state, n in counts.items() if n) or "no workers"
    mode = "control" if hello.get("control") else "read-only"
    age = (time.monotonic() if now is None else now) - remote.fetched_at
    text = f"pid {hello.get('pid')} {argv} | {loop} | {pools} pools: {shown} | {mode}"
    if remote.error is not None:
        return f"{text} | LOST {age:.0f}s ago: {remote.error}"
    return f"{text} | {age:.1f}s ago"


def task_tree(tasks: Sequence[AsyncTaskInfo]) -> list[tuple[str, int | None]]:
    """The tasks as a tree, one (line, task id or None for a frame) per line.

    A task's children are its await chain, one frame below the other, then
    the tasks it waits for under the last frame, as Python 3.14's ``python -m
    asyncio pstree`` draws them. Roots are the tasks nobody waits for.
    """
    by_id = {t.id: t for t in tasks}
    awaited = {child for t in tasks for child in t.awaits if child in by_id}
    roots = [t for t in tasks if t.id not in awaited]
    lines: list[tuple[str, int | None]] = []
    drawn: set[int] = set()

    def draw(task: AsyncTaskInfo, prefix: str, last: bool) -> None:
        drawn.add(task.id)
        state = "" if task.state == "pending" else f"  [{task.state}]"
        lines.append((f"{prefix}{'└── ' if last else '├── '}(T) {task.name}{state}", task.id))
        prefix += "    " if last else "│   "
        for frame in task.stack:
            lines.append((f"{prefix}└──  {frame}", None))
            prefix += "    "
        children = [by_id[i] for i in task.awaits if i in by_id and i not in drawn]
        for index, child in enumerate(children):
            draw(child, prefix, index == len(children) - 1)

    # Tasks that wait for each other in a ring have no root: the first of each
    # ring not reached from a root is drawn at the top too, so every task shows.
    tops = list(roots)
    reached: set[int] = set()

    def reach(ident: int) -> None:
        stack = [ident]
        while stack:
            current = stack.pop()
            if current not in reached:
                reached.add(current)
                stack.extend(i for i in by_id[current].awaits if i in by_id)

    for root in roots:
        reach(root.id)
    for task in tasks:
        if task.id not in reached:
            tops.append(task)
            reach(task.id)
    for index, top in enumerate(tops):
        draw(top, "", index == len(tops) - 1)
    return lines


def print_once(remote: Remote) -> None:
    """What the screen shows, printed once (no terminal)."""
    print(describe(remote))
    rows = remote.rows()
    if rows:
        print("\n".join(_views.table(rows, time.time())))
    else:
        print("no workers")
    print(f"{len(remote.tasks)} asyncio task(s):")
    for line, _ in task_tree(remote.tasks):
        print(line)


class AttachScreen:
    """The full-screen view of an attached service: top's table, or the task tree."""

    def __init__(self, remote: Remote) -> None:
        self.remote = remote
        self.mode = "top"
        self.top = Top(remote.rows, self._kill, header=lambda: "t tasks  +/- resize")
        self.selected = 0  # in the task tree: the n-th task
        self.confirm: AsyncTaskInfo | None = None
        self.message = ""

    def _kill(self, row: _views.Row) -> str:
        if row.kind == "thread":
            return f"{row.name} is a thread: cancel its task instead (t: tasks, c: cancel)"
        if row.state == "dead":
            return f"{row.name} is not running"
        return self.remote.act("kill", worker=row.name)

    def resize(self, step: int) -> str:
        """Resize the selected worker's pool by step, through the monitor."""
        row = self.top.current()
        snapshot = self.remote.snapshot
        if row is None or not row.owner or snapshot is None:
            return "select a pool's worker to resize its pool"
        sizes = {p.stats.name: p.stats.size for p in snapshot.pools}
        if row.owner not in sizes:
            return f"the pool {row.owner} is gone"
        if sizes[row.owner] + step < 1:
            return f"{row.owner} keeps at least one worker"
        return self.remote.act("resize", pool=row.owner, size=sizes[row.owner] + step)

    def _banner(self) -> _views.Fragments:
        style = "class:top.alert" if self.remote.error is not None else "class:top.status"
        return [(style, f" {describe(self.remote)} ")]

    def _task_ids(self) -> list[int]:
        return [ident for _, ident in task_tree(self.remote.tasks) if ident is not None]

    def current_task(self) -> AsyncTaskInfo | None:
        ids = self._task_ids()
        if not ids:
            return None
        self.selected = max(0, min(self.selected, len(ids) - 1))
        wanted = ids[self.selected]
        return next((t for t in self.remote.tasks if t.id == wanted), None)

    def _tree(self) -> _views.Fragments:
        current = self.current_task()
        fragments: _views.Fragments = []
        for line, ident in task_tree(self.remote.tasks) or [("no asyncio tasks", None)]:
            style = "class:top.row"
            if ident is not None and current is not None and ident == current.id:
                style += " class:top.selected"
            fragments.append((style, line + "\n"))
        return fragments

    def _tree_cursor(self) -> Point:
        current = self.current_task()
        for index, (_, ident) in enumerate(task_tree(self.remote.tasks)):
            if current is not None and ident == current.id:
                return Point(0, index)
        return Point(0, 0)

    def _tasks_status(self) -> _views.Fragments:
        if self.confirm is not None:
            return [("class:top.alert", f" cancel task {self.confirm.name}? y/n ")]
        keys = " arrows select  c cancel  t workers  q quit "
        return [("class:top.status", (f" {self.message} |" if self.message else "") + keys)]

    def application(self) -> Application[None]:
        top = self.top.application()
        showing_top = Condition(lambda: self.mode == "top")
        showing_tasks = Condition(lambda: self.mode == "tasks")
        tasks_view = HSplit(
            [
                Window(
                    FormattedTextControl(self._tree, get_cursor_position=self._tree_cursor),
                    wrap_lines=False,
                ),
                Window(FormattedTextControl(self._tasks_status), height=1),
            ]
        )
        layout = Layout(
            HSplit(
                [
                    Window(FormattedTextControl(self._banner), height=1),
                    ConditionalContainer(top.layout.container, filter=showing_top),
                    ConditionalContainer(tasks_view, filter=showing_tasks),
                ]
            )
        )
        top_keys = top.key_bindings
        assert top_keys is not None
        return Application(
            layout=layout,
            key_bindings=merge_key_bindings(
                [ConditionalKeyBindings(top_keys, filter=showing_top), self._bindings()]
            ),
            full_screen=True,
            refresh_interval=REFRESH,
            style=STYLE,
            terminal_size_polling_interval=0.5,
        )

    def _bindings(self) -> KeyBindings:
        bindings = KeyBindings()
        tasks = Condition(lambda: self.mode == "tasks")
        confirming = Condition(lambda: self.confirm is not None)
        idle_top = Condition(
            lambda: self.mode == "top" and self.top.confirm is None and not self.top.filtering
        )
        normal = tasks & ~confirming

        @bindings.add("t", filter=idle_top | normal)
        @bindings.add("tab", filter=idle_top | normal)
        def _switch(event: KeyPressEvent) -> None:
            self.mode = "tasks" if self.mode == "top" else "top"

        @bindings.add("+", filter=idle_top)
        @bindings.add("-", filter=idle_top)
        def _resize(event: KeyPressEvent) -> None:
            self.top.message = self.resize(+1 if event.data == "+" else -1)

        @bindings.add("q", filter=normal)
        @bindings.add("escape", filter=normal, eager=True)
        @bindings.add("c-c", filter=normal)
        def _quit(event: KeyPressEvent) -> None:
            event.app.exit()

        @bindings.add("up", filter=normal)
        def _up(event: KeyPressEvent) -> None:
            self.selected = max(0, self.selected - 1)

        @bindings.add("down", filter=normal)
        def _down(event: KeyPressEvent) -> None:
            self.selected = min(len(self._task_ids()) - 1, self.selected + 1)

        @bindings.add("c", filter=normal)
        def _ask_cancel(event: KeyPressEvent) -> None:
            self.confirm = self.current_task()

        @bindings.add("y", filter=tasks & confirming)
        def _cancel(event: KeyPressEvent) -> None:
            assert self.confirm is not None
            self.message = self.remote.act("cancel", task=self.confirm.id)
            self.confirm = None

        @bindings.add("<any>", filter=tasks & confirming)
        def _keep(event: KeyPressEvent) -> None:
            self.confirm = None
            self.message = "not cancelled"

        return bindings


def run_console(address: str, *, token_file: str | None = None, live: bool = True) -> int:
    """``toolkit-playground --attach ADDRESS``: the attach screen as a program; its exit status.

    The connection gets an event loop in a thread of its own, as the
    playground's engine: the screen's loop (this thread) blocks on it when
    the user acts. Without a terminal (live False), it prints once.
    """
    import sys
    import threading

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="attach-engine", daemon=True)
    thread.start()
    try:
        try:
            remote = asyncio.run_coroutine_threadsafe(
                connect(address, token_file=token_file), loop
            ).result()
        except (LookupError, OSError, TimeoutError, TypeError, ValueError) as exc:
            print(f"toolkit-playground: cannot attach to {address}: {exc}", file=sys.stderr)
            return 1
        try:
            if live:
                loop.call_soon_threadsafe(remote.start)
                asyncio.run(AttachScreen(remote).application().run_async())
            else:
                print_once(remote)
        finally:
            asyncio.run_coroutine_threadsafe(remote.stop(), loop).result(timeout=10)
        return 0
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
