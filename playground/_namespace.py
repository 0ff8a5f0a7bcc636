"""The user's namespace (toolkit, commands, recipes), and shutting down what it started."""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import multiprocessing
import sys
from typing import TYPE_CHECKING, Any, NoReturn

import toolkit
import toolkit.inspect
from playground import _views, recipes
from playground._commands import Commands, Registry, is_pool

if TYPE_CHECKING:
    from collections.abc import Callable

    from playground._commands import View

COMMANDS = (
    "pool",
    "threadpool",
    "dask",
    "process",
    "submit",
    "background",
    "ps",
    "attach",
    "top",
    "tasks",
    "info",
    "cancel",
    "terminate",
    "kill",
    "resize",
)


class _Exit:
    """exit() and quit() that end the session, not close sys.stdin (as site's do)."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return f"Use {self._name}() or Ctrl-D to leave (every worker is shut down)"

    def __call__(self, code: int | None = None) -> NoReturn:
        raise SystemExit(code)


class Namespace:
    """The globals statements run in, and the registry of what they started."""

    def __init__(self, request_view: Callable[[View], bool] | None = None) -> None:
        self.registry = Registry()
        self.commands = Commands(self.registry, request_view)
        self.globals: dict[str, Any] = {
            "__name__": "__main__",
            "__builtins__": builtins,
            "__doc__": None,
            "asyncio": asyncio,
            "toolkit": toolkit,
            "recipes": recipes,
            "recipe": self.recipe,
            "clear": self.clear,
            "exit": _Exit("exit"),
            "quit": _Exit("quit"),
        }
        for name in COMMANDS:
            self.globals[name] = getattr(self.commands, name)

    def recipe(self, name: str) -> asyncio.Task[Any]:
        """Start a recipe (see recipes.ALL) as a background task; watch it with top()."""
        main = recipes.get(name)
        return self.commands.background(main(), name=f"recipe:{name}")

    def clear(self) -> None:
        """Stop listing finished workers and processes (exited or dead) in ps(), top() and
        the toolbar; live ones stay."""
        count = _views.clear_finished(_views.rows(toolkit.inspect.snapshot()))
        print(f"cleared {count} finished row{'' if count == 1 else 's'}")

    async def shutdown(self) -> None:
        """Stop everything the session started: pools, processes, tasks, default executors.

        Pools go first: their own tasks must still run for terminate() and join().
        """
        # Pools and processes made with toolkit.Pool(...) directly count too.
        owned = [*self.registry.objects]
        owned += [v for v in list(self.globals.values()) if is_pool(v) and v not in owned]
        for obj in reversed(owned):
            with contextlib.suppress(Exception):
                if is_pool(obj):
                    obj.terminate()
                    await asyncio.wait_for(obj.join(), 10)
                elif isinstance(obj, toolkit.Process) and obj.pid is not None:
                    obj.kill()
                    await obj.join(5)
        me = asyncio.current_task()
        leftovers = [t for t in asyncio.all_tasks() if t is not me]
        for task in leftovers:
            task.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)
        await toolkit.shutdown_default_executors()
        # asyncio.to_thread's threads: waited for here, where leaving can say so and a
        # Ctrl-C abandon the wait, rather than at the interpreter's exit, silently.
        await asyncio.get_running_loop().shutdown_default_executor()
        # Anything else a statement started with multiprocessing itself.
        for child in multiprocessing.active_children():
            child.kill()
            child.join(5)
        with contextlib.suppress(Exception):
            sys.stdout.flush()
