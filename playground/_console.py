"""A console on a running event loop, with top-level ``await``: the stdlib asyncio REPL's approach.

The event loop runs in the main thread (signals, Ctrl-C and libraries that
expect the main thread keep working); the console reads lines in a second
thread and hands each compiled statement to the loop, where it runs as a
task in one persistent contextvars context. Ctrl-C cancels the running
statement, not the session. Leaving the console cancels leftover tasks and
shuts down the default executors, so no worker outlives the session.

This is the interim console of the foundation issue; the live playground
(prompt-toolkit, toolbar, ``top``) builds on the same statement runner.
"""

from __future__ import annotations

import ast
import asyncio
import builtins
import code
import concurrent.futures
import contextvars
import inspect
import sys
import threading
import traceback
import types
from typing import Any

import toolkit

_FLAGS = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT

BANNER = (
    f"toolkit {toolkit.__version__} playground on Python {sys.version.split()[0]}\n"
    "Top-level await works: try  await toolkit.to_thread(sum, [1, 2, 3])\n"
    "Names: asyncio, toolkit. Ctrl-C cancels a running statement; Ctrl-D leaves."
)


def new_namespace() -> dict[str, Any]:
    """Return the namespace statements run in."""
    return {
        "__name__": "__main__",
        "__builtins__": builtins,
        "__doc__": None,
        "asyncio": asyncio,
        "toolkit": toolkit,
    }


def _new_loop(uvloop: bool | None) -> asyncio.AbstractEventLoop:
    if uvloop:
        import uvloop as _uvloop

        loop: asyncio.AbstractEventLoop = _uvloop.new_event_loop()
        return loop
    return asyncio.new_event_loop()


async def _finish(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what the session left running, then stop the default executors."""
    me = asyncio.current_task()
    leftovers = [task for task in asyncio.all_tasks(loop) if task is not me]
    for task in leftovers:
        task.cancel()
    await asyncio.gather(*leftovers, return_exceptions=True)
    await toolkit.shutdown_default_executors()


def run_source(source: str, filename: str, *, uvloop: bool | None = False) -> int:
    """Run a whole program (top-level await allowed); return its exit status."""
    try:
        compiled = compile(source, filename, "exec", flags=_FLAGS, dont_inherit=True)
    except SyntaxError:
        traceback.print_exc(limit=0)
        return 1
    namespace = new_namespace()
    namespace["__file__"] = filename

    async def program() -> int:
        try:
            result = types.FunctionType(compiled, namespace)()
            if inspect.iscoroutine(result):
                await result
        except SystemExit as exc:
            return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except Exception:  # noqa: BLE001 - reported like the interpreter does
            traceback.print_exc()
            return 1
        finally:
            await _finish(asyncio.get_running_loop())
        return 0

    loop = _new_loop(uvloop)
    try:
        return loop.run_until_complete(program())
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


class _Console(code.InteractiveConsole):
    """Reads and compiles in its own thread; runs every statement on the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, namespace: dict[str, Any]) -> None:
        super().__init__(namespace, filename="<playground>")
        self.compile.compiler.flags |= _FLAGS
        self.loop = loop
        self.context = contextvars.copy_context()  # one context for the whole session
        self.running: asyncio.Future[Any] | None = None

    def runcode(self, code: types.CodeType) -> None:
        outcome: concurrent.futures.Future[Any] = concurrent.futures.Future()

        async def statement() -> None:
            # Resolve the console's future from inside the statement, not from a
            # done-callback: a callback would queue behind whatever the
            # statement left on the loop (prior-art-repl.md, section 7.1).
            try:
                result = types.FunctionType(code, self.locals)()
                if inspect.iscoroutine(result):
                    result = await result
            except BaseException as exc:  # noqa: BLE001 - shown by the console thread
                outcome.set_exception(exc)
            else:
                outcome.set_result(result)

        def start() -> None:
            self.running = self.loop.create_task(statement(), context=self.context)

        self.loop.call_soon_threadsafe(start)
        try:
            outcome.result()
        except SystemExit:
            raise
        except BaseException as exc:  # noqa: BLE001 - the user's error, shown like the stdlib console
            if isinstance(exc, KeyboardInterrupt | asyncio.CancelledError):
                self.write("KeyboardInterrupt\n")
            else:
                self.showtraceback()
        finally:
            self.running = None


def run_console(*, uvloop: bool | None = False) -> int:
    """Run the interactive console until EOF or exit(); return the exit status."""
    loop = _new_loop(uvloop)
    asyncio.set_event_loop(loop)
    console = _Console(loop, new_namespace())
    status = 0

    def interact() -> None:
        nonlocal status
        try:
            console.interact(banner=BANNER, exitmsg="")
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else 0
        finally:
            loop.call_soon_threadsafe(loop.stop)

    thread = threading.Thread(target=interact, name="playground-console", daemon=True)
    thread.start()
    while True:
        try:
            loop.run_forever()
        except KeyboardInterrupt:
            running = console.running
            if running is not None and not running.done():
                running.cancel()
            continue
        break
    try:
        loop.run_until_complete(_finish(loop))
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        asyncio.set_event_loop(None)
        loop.close()
    return status
