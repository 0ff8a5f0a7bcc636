"""Command line: ``python -m playground [--uvloop] [--history FILE] [--dask ADDRESS]
[-c CODE | SCRIPT [ARGS...] | --attach ADDRESS]``.

With a terminal and no code it opens the REPL; ``-c``, a script, or a
standard input that is not a terminal run the same namespace (commands,
recipes, top-level await) without one, then shut down what they started.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import threading
import time
from pathlib import Path

from playground._eval import Engine, Running, compile_statement, format_syntax_error
from playground._namespace import Namespace
from playground._repl import Repl, new_loop


def _prog() -> str:
    """How the user started us: the console script's name, or ``python -m playground``."""
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    return name if name.startswith("toolkit-playground") else "python -m playground"


def _parser() -> argparse.ArgumentParser:
    import toolkit

    parser = argparse.ArgumentParser(
        prog=_prog(),
        description="A live Python REPL on a running event loop: spawn, watch, control workers.",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"toolkit {toolkit.__version__} playground, Python {sys.version.split()[0]}",
    )
    loop = parser.add_mutually_exclusive_group()
    loop.add_argument(
        "--uvloop", dest="uvloop", action="store_true", default=False, help="run on uvloop"
    )
    loop.add_argument(
        "--no-uvloop", dest="uvloop", action="store_false", help="run on asyncio's loop (default)"
    )
    parser.add_argument(
        "--history",
        metavar="FILE",
        type=Path,
        default=None,
        help="input history file (default: $TOOLKIT_PLAYGROUND_HISTORY or"
        " $XDG_STATE_HOME/toolkit-playground/history)",
    )
    parser.add_argument(
        "--dask",
        metavar="ADDRESS",
        default=None,
        help="connect to a Dask scheduler (tcp://host:8786): `dask` is a pool on its"
        " workers, listed by ps() and top()",
    )
    parser.add_argument(
        "--attach",
        metavar="ADDRESS",
        default=None,
        help="watch a running service live through its toolkit.monitor: its pid, host:port or"
        " socket path (a TCP monitor's token: $TOOLKIT_MONITOR_TOKEN_FILE, never an argument)",
    )
    # As python's own: after -c CODE, every other argument goes to sys.argv[1:].
    parser.add_argument(
        "-c", dest="code", metavar="CODE", help="run CODE (top-level await allowed) and exit"
    )
    parser.add_argument(
        "script", nargs="?", help="run a script file (top-level await allowed) and exit"
    )
    parser.add_argument(
        "args", nargs=argparse.REMAINDER, help="arguments for the script or CODE (sys.argv[1:])"
    )
    return parser


def default_history() -> Path:
    """Where input history is kept between sessions."""
    if path := os.environ.get("TOOLKIT_PLAYGROUND_HISTORY"):
        return Path(path)
    state = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return Path(state) / "toolkit-playground" / "history"


def connect_dask(namespace: Namespace, loop: asyncio.AbstractEventLoop, address: str) -> None:
    """``--dask ADDRESS``: ``cluster``, a pool on that scheduler's workers, made on the
    session's loop (so that ps() and top() list its workers from the start)."""

    async def connect() -> None:
        namespace.globals["cluster"] = namespace.commands.dask(address, name="cluster")

    loop.run_until_complete(connect())
    print(f"cluster = dask({address!r}): a pool on the cluster's workers; see ps()")


def run_source(source: str, filename: str, *, uvloop: bool = False, dask: str | None = None) -> int:
    """Run a whole program in the playground's namespace; return its exit status."""
    try:
        compiled = compile_statement(source, filename)  # tracebacks name the script
    except (SyntaxError, ValueError) as exc:
        text = format_syntax_error(exc) if isinstance(exc, SyntaxError) else f"{exc!r}\n"
        sys.stderr.write(text)
        return 1
    namespace = Namespace()
    namespace.globals["__file__"] = filename
    loop = new_loop(uvloop)
    engine = Engine(loop, namespace.globals)
    if dask is not None:
        connect_dask(namespace, loop, dask)

    async def program() -> int:
        try:
            outcome = await engine.run(compiled)
        finally:
            await namespace.shutdown()
        if outcome.error is not None:
            sys.stderr.write(outcome.error)
            return 1
        if outcome.interrupted:
            sys.stderr.write("KeyboardInterrupt\n")
            return 130
        return outcome.exit_status or 0

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGINT, engine.on_sigint)
    try:
        task = loop.create_task(program())
        engine.running = Running(source, time.monotonic(), task)  # Ctrl-C cancels it
        while True:
            try:
                return loop.run_until_complete(task)
            except KeyboardInterrupt:
                continue  # the second Ctrl-C broke blocking code; the task reports it
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        asyncio.set_event_loop(None)


_TAKES_VALUE = frozenset({"--history", "--dask", "--attach"})


def _split_code_args(argv: list[str]) -> tuple[list[str], list[str]] | None:
    """(options up to -c CODE, CODE's arguments), if -c comes before any script."""
    skip = False
    for index, arg in enumerate(argv):
        if skip:  # the value of the option before
            skip = False
            continue
        if arg in _TAKES_VALUE:
            skip = True
            continue
        if arg == "-c" and index + 1 < len(argv):
            return argv[: index + 2], argv[index + 2 :]
        if arg.startswith("-c") and len(arg) > 2:  # -cCODE
            return argv[: index + 1], argv[index + 1 :]
        if not arg.startswith("-"):
            return None  # a script (or an option's value): argparse decides
    return None


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments and run the REPL, the code or the script; return the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    code_args = _split_code_args(argv)
    if code_args is not None:
        argv, rest = code_args
    options = _parser().parse_args(argv)
    if options.attach is not None:
        from playground._attach import run_console

        return run_console(options.attach, live=sys.stdin.isatty() and sys.stdout.isatty())
    if options.code is not None:
        # As python -c: every argument after CODE is the program's (sys.argv[1:]).
        if code_args is None:  # cannot happen with -c parsed, but never drop an argument
            rest = [] if options.script is None else [options.script, *options.args]
        sys.argv = ["-c", *rest]
        return run_source(options.code, "<string>", uvloop=options.uvloop, dask=options.dask)
    if options.script is not None:
        try:
            with open(options.script, encoding="utf-8") as file:
                source = file.read()
        except OSError as exc:
            print(f"playground: cannot open {options.script}: {exc.strerror}", file=sys.stderr)
            return 2
        sys.argv = [options.script, *options.args]
        return run_source(source, options.script, uvloop=options.uvloop, dask=options.dask)
    if not sys.stdin.isatty():
        sys.argv = ["-"]
        return run_source(sys.stdin.read(), "<stdin>", uvloop=options.uvloop, dask=options.dask)
    history = options.history or default_history()
    # Windows: fds 1 and 2 are not how the console is written, and its pipes
    # cannot be selected: children print to the console directly, untagged.
    repl = Repl(uvloop=options.uvloop, history=history, relay_fds=os.name != "nt")
    if options.dask is not None:
        connect_dask(repl.namespace, repl.loop, options.dask)
    status = repl.run()
    if repl.abandoned:
        # Ctrl-C abandoned threads that cannot be stopped (a to_thread call): the
        # interpreter's exit would join them (concurrent.futures' atexit, non-daemon
        # threads). The children are dead, the terminal restored: leave now.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status
