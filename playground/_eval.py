"""Statements with top-level ``await``: compiled anywhere, run on the engine loop, one task each.

    UI thread                          main thread (engine loop)
    ---------                          -------------------------
    compile_statement(text)  ──codes──▶ Engine.submit ─▶ task(statement, context=session)
    wait on a concurrent Future ◀────── the statement resolves it itself, last thing
    Engine.interrupt() ─── SIGINT ────▶ _on_sigint: 1st cancels the task, 2nd raises
                                        KeyboardInterrupt into blocking sync code

The statement resolves the UI's future from inside its own coroutine, not
from a done-callback: a callback would queue behind whatever the statement
left on the loop (docs/playground.md, "How it works"). Every statement runs in
one persistent contextvars context, so a ContextVar set at the prompt keeps
its value (cpython#124594).
"""

from __future__ import annotations

import ast
import asyncio
import concurrent.futures
import contextvars
import inspect
import itertools
import linecache
import signal
import sys
import threading
import time
import traceback
import types
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

_FLAGS = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT


@dataclass(frozen=True, slots=True)
class Compiled:
    """One input, ready to run: its code objects in order; is the last one an expression?"""

    filename: str
    source: str
    codes: tuple[types.CodeType, ...]
    last_is_expression: bool


_inputs = itertools.count(1)


def compile_statement(source: str, filename: str | None = None) -> Compiled:
    """Compile one input (several statements allowed); the value of a final expression is kept.

    filename is what tracebacks name: a script's path, ``<string>`` for -c
    code (as python says); by default a fresh ``<playground-N>`` per input.

    Raises:
        SyntaxError: the input is not valid Python.
    """
    if filename is None:
        filename = f"<playground-{next(_inputs)}>"
    if filename.startswith("<"):
        # Tracebacks show the typed lines, as they do for a file (a real file is
        # read by linecache itself, and must not be shadowed by this copy).
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    tree = ast.parse(source, filename, "exec")
    last_is_expression = bool(tree.body) and isinstance(tree.body[-1], ast.Expr)
    codes: list[types.CodeType] = []
    if last_is_expression:
        last = tree.body.pop()
        assert isinstance(last, ast.Expr)
        if tree.body:
            codes.append(compile(tree, filename, "exec", flags=_FLAGS, dont_inherit=True))
        expression = ast.Expression(last.value)
        codes.append(compile(expression, filename, "eval", flags=_FLAGS, dont_inherit=True))
    else:
        codes.append(compile(tree, filename, "exec", flags=_FLAGS, dont_inherit=True))
    return Compiled(filename, source, tuple(codes), last_is_expression)


def format_syntax_error(exc: SyntaxError) -> str:
    """The interpreter's text for a syntax error, without a traceback."""
    return "".join(traceback.format_exception_only(type(exc), exc))


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a statement ended, rendered in the engine thread (reprs run user code)."""

    result: str | None = None  # repr of the final expression's value, when not None
    error: str | None = None  # a formatted traceback
    interrupted: bool = False  # cancelled by Ctrl-C
    exit_status: int | None = None  # the statement raised SystemExit


@dataclass(frozen=True, slots=True)
class Running:
    """The statement the engine runs now."""

    source: str
    started: float  # time.monotonic()
    task: asyncio.Task[Any]


def _exit_status(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def format_exception(exc: BaseException) -> str:
    """A traceback that starts at the user's code, not in the statement runner."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


class Engine:
    """Runs statements on the engine loop, one task each, in one context; handles SIGINT."""

    def __init__(self, loop: asyncio.AbstractEventLoop, namespace: dict[str, Any]) -> None:
        self.loop = loop
        self.namespace = namespace
        self.context = contextvars.copy_context()
        self.running: Running | None = None
        self._interrupts = 0
        self._main_thread = threading.main_thread().ident
        # Called in the engine thread after each statement (the UI flushes partial lines).
        self.after_statement: Callable[[], None] = lambda: None

    @property
    def interrupts(self) -> int:
        """Ctrl-C presses (SIGINTs) since the running statement started."""
        return self._interrupts

    async def run(self, compiled: Compiled) -> Outcome:
        """Run one compiled input in the current task; display nothing, return the outcome."""
        try:
            value: Any = None
            for code in compiled.codes:
                value = types.FunctionType(code, self.namespace)()
                if inspect.iscoroutine(value):
                    value = await value
            if compiled.last_is_expression and value is not None:
                self.namespace["_"] = value
                return Outcome(result=repr(value))
            return Outcome()
        except SystemExit as exc:
            return Outcome(exit_status=_exit_status(exc))
        except (KeyboardInterrupt, asyncio.CancelledError):
            # The runner's own task is the statement: nothing above it waits for
            # the cancellation, so reporting it here swallows nothing.
            return Outcome(interrupted=True)
        except BaseException as exc:  # noqa: BLE001 - the user's error, shown like the interpreter
            error = format_exception(exc)
            if isinstance(exc, RuntimeError) and "running event loop" in str(exc):
                # asyncio.run(coro) at the prompt (cpython PR #13472, ipython#12000).
                error += "hint: the playground's loop is already running: `await coro` instead\n"
            return Outcome(error=error)

    def submit(self, compiled: Compiled) -> concurrent.futures.Future[Outcome]:
        """Start a statement from any thread; the future resolves when it ends."""
        done: concurrent.futures.Future[Outcome] = concurrent.futures.Future()

        async def statement() -> None:
            # run() catches everything the user's code raises; a second Ctrl-C
            # can still land in the lines around it. The UI waits on `done`:
            # it must be resolved whatever happens here.
            outcome = Outcome(interrupted=True)
            try:
                outcome = await self.run(compiled)
            finally:
                self.running = None
                try:
                    self.after_statement()
                finally:
                    if not done.done():
                        done.set_result(outcome)

        def start() -> None:
            self._interrupts = 0
            task = self.loop.create_task(statement(), context=self.context)
            self.running = Running(compiled.source, time.monotonic(), task)

        self.loop.call_soon_threadsafe(start, context=self.context)
        return done

    def interrupt(self) -> None:
        """Ctrl-C from the UI thread: deliver SIGINT to the engine thread."""
        if self._main_thread is not None:
            signal.pthread_kill(self._main_thread, signal.SIGINT)

    def on_sigint(self, signum: int, frame: types.FrameType | None) -> None:
        """SIGINT in the engine thread: cancel the statement first, then break blocking code.

        asyncio.Runner's strategy (cpython PR #32105). With no statement
        running it does nothing: Ctrl-C never stops background work.
        """
        running = self.running
        if running is None or running.task.done():
            return
        self._interrupts += 1
        if self._interrupts == 1:
            self.loop.call_soon_threadsafe(running.task.cancel)
            return
        raise KeyboardInterrupt
