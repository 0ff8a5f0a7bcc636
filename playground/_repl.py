"""Read, evaluate, print: the engine loop in the main thread, the prompt in a UI thread.

    main thread                               UI thread ("playground-ui")
    -----------                               ---------------------------
    engine loop: statements, user tasks,      its own asyncio loop: PromptSession,
    heartbeat, progress sampler, SIGINT       toolbar (2 Hz), running view, top
                 ◀──── Engine.submit(compiled) ────
                 ───── Outcome (concurrent Future) ──▶ drain output, print result

The engine owns the main thread so that signals, Ctrl-C into blocking sync
code and libraries that expect the main thread all work; the prompt never
shares the user's loop, so a blocked loop cannot freeze it (IPython PR
#11973) and the toolbar can say how long the loop has been blocked.
While a statement runs, a one-line "running" view keeps the terminal in raw
mode: Ctrl-C arrives as a key, is turned into SIGINT for the engine thread
only, and never reaches the worker processes in our process group.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
import time
import traceback
from typing import TYPE_CHECKING, Any

from prompt_toolkit import print_formatted_text
from prompt_toolkit.application import create_app_session, get_app_session
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.output import create_output

import toolkit
import toolkit.inspect
from playground import _views
from playground._commands import find_progress
from playground._eval import Engine, Outcome, compile_statement, format_syntax_error
from playground._health import ChildUsage, Heartbeat, ProcessUsage, busy_threads, kill_children
from playground._input import InputBridge
from playground._namespace import Namespace
from playground._output import FdRelay, LineStream, Terminal
from playground._running import run_with_view, wait_or_abandon
from playground._session import make_history, make_session
from playground._top import Top

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    from prompt_toolkit.input import Input
    from prompt_toolkit.output import Output

    from playground._commands import View

_VERSIONS = f"toolkit {toolkit.__version__} playground, Python {sys.version.split()[0]}"
BANNER = f"""\
{_VERSIONS} on {{loop}}. Top-level await works.
Start:   pool(n) threadpool(n) dask(addr) process(fn, *a) submit(fn, *a) background(coro)
Watch:   ps() top() tasks() info(worker) await attach(addr)   Recipes: recipes.show(), recipe(name)
Control: cancel(task) terminate(worker) kill(worker) resize(pool, n) clear()
Ctrl-C cancels the running statement (twice: interrupts blocking code); Ctrl-D leaves."""


def new_loop(uvloop: bool) -> asyncio.AbstractEventLoop:
    """A fresh event loop: uvloop's when asked."""
    if uvloop:
        import uvloop as _uvloop

        loop: asyncio.AbstractEventLoop = _uvloop.new_event_loop()
        return loop
    return asyncio.new_event_loop()


class Repl:
    """One interactive session; run() blocks the main thread until the session ends."""

    def __init__(
        self,
        *,
        uvloop: bool = False,
        history: Path | None = None,
        input: Input | None = None,
        output: Output | None = None,
        relay_fds: bool = False,
    ) -> None:
        self.loop = new_loop(uvloop)
        self.loop_name = "uvloop" if uvloop else "asyncio"
        self.namespace = Namespace(request_view=self._request_view)
        self.engine = Engine(self.loop, self.namespace.globals)
        self.heartbeat = Heartbeat(self.loop)
        self.usage = ProcessUsage()
        self.children = ChildUsage()
        self.terminal = Terminal()
        self.status = 0
        # Ctrl-C abandoned the wait for what the session started, when leaving:
        # threads that cannot be stopped still run (the command line then exits at once).
        self.abandoned = False
        self._history = history
        self._input = input
        self._output = output
        self._relay_fds = relay_fds
        self._views: list[View] = []
        self._progress: list[_views.Progress] = []
        self._snapshot_at = 0.0
        self._rows: list[_views.Row] = []
        self._queued = 0
        self._ui_thread: threading.Thread | None = None
        self._ui_done = threading.Event()
        self._ui_loop: asyncio.AbstractEventLoop | None = None
        # input(), pdb, help() and sys.stdin ask the UI thread for their lines (_input.py).
        self._inputs = InputBridge(self.terminal, self._flush_lines)
        self._lines = (
            LineStream(self.terminal, self._tag, 1),
            LineStream(self.terminal, self._tag, 2),
        )
        self.engine.after_statement = self._after_statement
        self._sigint_handler: Any = None  # ours, once installed (main thread only)

    # -- engine thread ---------------------------------------------------------------------

    def run(self) -> int:
        """Run the session to its end (Ctrl-D, exit()); return the exit status."""
        relay = FdRelay(self.terminal) if self._relay_fds else None
        output = self._output
        if relay is not None and output is None:
            # prompt-toolkit alone writes to the real terminal, through a duplicate of fd 1.
            tty = open(relay.terminal_fd, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
            output = create_output(stdout=tty)
            self._output = output
        asyncio.set_event_loop(self.loop)
        previous = None
        if threading.current_thread() is threading.main_thread():
            self._sigint_handler = self._on_sigint
            previous = signal.signal(signal.SIGINT, self._sigint_handler)
        self.heartbeat.start()
        self.loop.call_soon_threadsafe(self._sample_progress)
        self._ui_thread = threading.Thread(target=self._ui_main, name="playground-ui")
        self._ui_thread.start()
        try:
            while True:
                try:
                    self.loop.run_forever()
                except KeyboardInterrupt:
                    if not self._ui_done.is_set():
                        continue  # a second Ctrl-C that landed outside the statement
                if self._ui_done.is_set():
                    break
                # A statement stopped the loop (loop.stop()): the session goes on.
            self._ui_thread.join()
        finally:
            self.heartbeat.stop()
            with contextlib.suppress(KeyboardInterrupt):
                self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            asyncio.set_event_loop(None)
            self.loop.close()
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
            if relay is not None:
                relay.close()
        return self.status

    def _after_statement(self) -> None:
        self._flush_lines()
        # pdb's "c" takes SIGINT (to break in on Ctrl-C) until pdb is next entered:
        # at the prompt, Ctrl-C must cancel the next statement again.
        if self._sigint_handler is not None and signal.getsignal(signal.SIGINT) is not (
            self._sigint_handler
        ):
            signal.signal(signal.SIGINT, self._sigint_handler)

    def _on_sigint(self, signum: int, frame: Any) -> None:
        if self.abandoned:  # leaving, and the loop is blocked: break out of it
            raise KeyboardInterrupt
        self.engine.on_sigint(signum, frame)

    def _sample_progress(self) -> None:
        running = self.engine.running
        task = None if running is None else running.task
        with contextlib.suppress(Exception):  # a namespace value whose attributes raise
            self._progress = find_progress(task, self.namespace.globals)
        self.loop.call_later(0.5, self._sample_progress)

    def _tag(self) -> str:
        """Who is writing: '' for the statement itself, else '[task X] ' or '[thread Y] '."""
        thread = threading.current_thread()
        if thread is self._ui_thread:
            return ""
        if thread is not threading.main_thread():
            return f"[thread {thread.name}] "
        try:
            task = asyncio.current_task(self.loop)
        except RuntimeError:
            return ""
        running = self.engine.running
        if task is None or (running is not None and task is running.task):
            return ""  # the statement, or a loop callback (pools tag their workers' lines)
        return f"[task {task.get_name()}] "

    def _flush_lines(self) -> None:
        for stream in self._lines:
            stream.flush_all()

    def _request_view(self, view: View) -> bool:
        self._views.append(view)
        return True

    # -- UI thread -------------------------------------------------------------------------

    def _ui_main(self) -> None:
        try:
            asyncio.run(self._ui())
        except BaseException:  # noqa: BLE001 - the session must still end and say why
            traceback.print_exc(file=sys.__stderr__)
            self.status = 1
        finally:
            self._ui_done.set()
            self.loop.call_soon_threadsafe(self.loop.stop)

    async def _ui(self) -> None:
        with create_app_session(input=self._input, output=self._output):
            self._ui_loop = self._inputs.ui_loop = asyncio.get_running_loop()
            self._inputs.ui_thread = threading.current_thread()
            session = get_app_session()
            self.terminal.attach(session.output)
            # The UI's reader is made from the real stdin before sys.stdin is replaced.
            session.input  # noqa: B018 - the property creates it
            saved = sys.stdout, sys.stderr
            sys.stdout, sys.stderr = self._lines
            self._inputs.install(self._lines[0].take_partial)
            try:
                await self._interact()
            finally:
                await self._shutdown()
                self._inputs.uninstall()
                self.terminal.detach()
                sys.stdout, sys.stderr = saved

    async def _interact(self) -> None:
        session = make_session(
            namespace=self.namespace.globals,
            arguments=self._arguments,
            toolbar=self._toolbar,
            history=make_history(self._history),
        )
        # The UI runs outside the main thread: no SIGWINCH, so poll the size (as ptpython).
        session.app.terminal_size_polling_interval = 0.5
        print_formatted_text(BANNER.format(loop=self.loop_name))
        while True:
            try:
                text = await session.prompt_async()
            except KeyboardInterrupt:
                continue
            except EOFError:
                return
            if not text.strip():
                continue
            try:
                compiled = compile_statement(text)
            except (SyntaxError, ValueError, OverflowError) as exc:
                _error(format_syntax_error(exc) if isinstance(exc, SyntaxError) else repr(exc))
                continue
            outcome = await self._while_running(self.engine.submit(compiled), text)
            self.terminal.flush_now()  # the statement's own output before its result
            if outcome.result is not None:
                print_formatted_text(outcome.result)
            elif outcome.error is not None:
                _error(outcome.error)
            elif outcome.interrupted:
                _error("KeyboardInterrupt")
            if outcome.exit_status is not None:
                self.status = outcome.exit_status
                return
            while self._views:
                view = self._views.pop(0)
                if view == "top":
                    await self._top()
                elif callable(view):  # a command's own screen (attach), run here, in the UI
                    await view()

    async def _while_running(self, future: Any, text: str) -> Outcome:
        """Wait for the statement, showing the running view (_running.py)."""
        return await run_with_view(
            future, self.engine, self._inputs, self._toolbar, lambda: self._progress
        )

    async def _top(self) -> None:
        def kill(row: _views.Row) -> str:
            if row.kind == "thread":
                return f"{row.name} is a thread: cancel its task instead"
            if row.pid is None or row.state == "dead":
                return f"{row.name} is not running"
            if row.address is not None:  # a cluster worker: restarted through its pool
                try:
                    return _views.restart_cluster_worker(row)
                except LookupError as exc:
                    return str(exc)
            try:
                os.kill(row.pid, signal.SIGKILL)
            except ProcessLookupError:
                return f"{row.name} had already exited"
            return f"killed {row.name} (pid {row.pid})"

        top = Top(self._sample_rows, kill, header=lambda: self._loop_text())
        await top.application().run_async()

    async def _shutdown(self) -> None:
        """Stop every worker the session started, on the engine loop."""
        count = len(self.namespace.registry.objects) + len(self._sample_rows())
        if count:
            print_formatted_text("shutting down the session's workers...")
        future = asyncio.run_coroutine_threadsafe(self.namespace.shutdown(), self.loop)
        waiting = asyncio.wrap_future(future)
        try:
            # Raw mode: a Ctrl-C is a key (abandon), never a SIGINT to the workers.
            with get_app_session().input.raw_mode():
                done, _ = await asyncio.wait([waiting], timeout=1.0)
            if not done:
                waited_for = self._waited_for()
                if waited_for:
                    print_formatted_text(f"waiting for {'; '.join(waited_for)} (Ctrl-C abandons)")
                if await wait_or_abandon(waiting, self._waited_for, self._toolbar):
                    self._abandon(future)
                    return
            await waiting
        except BaseException as exc:  # noqa: BLE001 - leaving anyway; say what went wrong
            _error(f"shutdown: {exc!r}")

    def _waited_for(self) -> list[str]:
        """What leaving waits for: live workers and processes, threads running a call."""
        rows = [r for r in self._sample_rows() if r.state != "dead" and r.kind != "thread"]
        found = [f"{r.name} (pid {r.pid})" for r in rows]
        return found + busy_threads(skip={threading.get_ident()})

    def _abandon(self, future: Any) -> None:
        """Ctrl-C while leaving: stop waiting, kill every child process, leave threads be."""
        self.abandoned = True
        threads = busy_threads(skip={threading.get_ident()})
        future.cancel()
        killed = kill_children()
        said = ["abandoned the wait"]
        if killed:
            said.append(f"killed {len(killed)} child process(es): {', '.join(killed)}")
        if threads:
            said.append(f"left running: {'; '.join(threads)}")
        _error("; ".join(said))
        if self.heartbeat.state().blocked_for is not None:
            self.engine.interrupt()  # the loop is stuck in a statement's code: break it

    # -- what the UI shows -------------------------------------------------------------------

    def _sample_rows(self) -> list[_views.Row]:
        self._snapshot_at = time.monotonic()
        try:
            snap = toolkit.inspect.snapshot()
        except RuntimeError:
            # Taken from the UI thread while the engine changes a pool (a deque
            # mutated during iteration): keep the last rows, sample again soon.
            return self._rows
        self._queued = sum(p.stats.queued for p in snap.pools)
        pids = [p.pid for p in snap.processes if p.pid is not None and p.state == "running"]
        self._rows = _views.rows(snap, self.children.sample(pids))
        return self._rows

    def _loop_text(self) -> str:
        state = self.heartbeat.state()
        if state.blocked_for is not None:
            where = f" in {state.blocked_in}" if state.blocked_in else ""
            return f"{self.loop_name} BLOCKED {state.blocked_for:.1f}s{where}"
        return f"{self.loop_name} lag {state.lag * 1000:.0f}ms"

    def _toolbar(self) -> _views.Fragments:
        if time.monotonic() - self._snapshot_at >= 0.4:
            self._sample_rows()
        loop = self.heartbeat.state()
        running = self.engine.running
        cpu, rss = self.usage.sample()
        state = _views.ToolbarState(
            loop_name=self.loop_name,
            lag=loop.lag,
            blocked_for=loop.blocked_for,
            running=None if running is None else running.source.strip().split("\n")[0],
            running_for=None if running is None else time.monotonic() - running.started,
            workers=_views.worker_counts(self._rows),
            queued=self._queued,
            cpu=cpu,
            rss=rss,
            progress=self._progress,
            blocked_in=loop.blocked_in,
        )
        columns = get_app_session().output.get_size().columns
        return _views.toolbar(state, columns)

    def _arguments(self, command: str) -> Iterable[str]:
        """What completes inside command("...")."""
        if command in ("kill", "terminate", "info"):
            return [r.name for r in self._rows if r.state != "dead"]  # exited ones too
        if command == "resize":
            return [p.name for p in self.namespace.registry.pools()]
        if command == "recipe":
            from playground import recipes

            return list(recipes.ALL)
        if command == "cancel":
            with contextlib.suppress(RuntimeError):
                return [t.get_name() for t in asyncio.all_tasks(self.loop)]
        return []


def _error(text: str) -> None:
    print_formatted_text(FormattedText([("#ff5f5f", text.rstrip("\n"))]))
