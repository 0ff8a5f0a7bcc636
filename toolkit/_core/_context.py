"""Which multiprocessing start method the toolkit uses.

forkserver on Linux (Python 3.14's default there: a fork of a process that
runs threads, like an event loop with executors, can deadlock the child),
spawn on macOS and Windows. Any context or start method name can be passed.
"""

from __future__ import annotations

import multiprocessing
import sys
from multiprocessing.context import BaseContext

from ._cpython import forkserver_state, is_bootstrapping

__all__ = [
    "check_not_bootstrapping",
    "default_start_method",
    "get_context",
    "preload_in_forkserver",
]


def default_start_method() -> str:
    """Return the toolkit's start method on this platform: "forkserver" on Linux, else "spawn".

    The one ``Pool``, ``Process`` and the other objects use when no context
    is given. It raises nothing.
    """
    if sys.platform.startswith("linux") and "forkserver" in multiprocessing.get_all_start_methods():
        return "forkserver"
    return "spawn"


def get_context(context: BaseContext | str | None = None) -> BaseContext:
    """Resolve a context argument: None (the toolkit's default), a method name, or a context.

    Raises:
        ValueError: an unknown start method name.
        TypeError: anything else.
    """
    if context is None:
        return multiprocessing.get_context(default_start_method())
    if isinstance(context, str):
        if context not in multiprocessing.get_all_start_methods():
            methods = ", ".join(multiprocessing.get_all_start_methods())
            raise ValueError(f"unknown start method {context!r}; this platform has {methods}")
        return multiprocessing.get_context(context)
    if isinstance(context, BaseContext):
        return context
    raise TypeError(
        f"context must be a multiprocessing context, a start method name or None, not {context!r}"
    )


def preload_in_forkserver(context: BaseContext, module: str) -> None:
    """Have the forkserver import module before it forks anything, if it is not running yet.

    Every child forked from it then starts with the module loaded: a pool's
    replacement worker starts in milliseconds instead of importing the
    toolkit again (about 0.1 s). The stdlib's own setter replaces the list,
    so the current one (``__main__`` by default, or the user's) is kept.
    """
    if context.get_start_method() != "forkserver":
        return
    state = forkserver_state()
    if state is None:
        return  # another implementation: do without
    if state.pid is not None or module in state.preload:
        return
    context.set_forkserver_preload([*state.preload, module])


def check_not_bootstrapping(what: str) -> None:
    """Refuse to start workers from a child that is still importing the parent's script.

    Under spawn and forkserver, a child imports the parent's ``__main__``
    script before it runs its task. A script without the
    ``if __name__ == "__main__":`` guard then starts a pool again, in every
    child: the stdlib stops that only at ``Process.start`` (the toolkit
    starts workers in the background, where the error would be lost and the
    program would hang). Here the child fails at once, saying what to add;
    the parent's pool then breaks with the same hint.

    Raises:
        RuntimeError: called while this process is bootstrapping.
    """
    if is_bootstrapping():
        raise RuntimeError(
            f"{what} was called while this child process is still importing the main "
            "script of its parent (start method spawn or forkserver). Put the code that "
            "starts pools and processes under  if __name__ == '__main__':  in that script."
        )
