"""Command line: ``python -m playground [--uvloop | --no-uvloop] [-c CODE | SCRIPT [ARGS...]]``."""

from __future__ import annotations

import argparse
import sys

from playground._console import run_console, run_source


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m playground",
        description="A Python console on a running event loop: top-level await, toolkit imported.",
    )
    loop = parser.add_mutually_exclusive_group()
    loop.add_argument(
        "--uvloop", dest="uvloop", action="store_true", default=None, help="run on uvloop"
    )
    loop.add_argument(
        "--no-uvloop", dest="uvloop", action="store_false", help="run on asyncio's loop"
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "-c", dest="code", metavar="CODE", help="run CODE (top-level await allowed) and exit"
    )
    source.add_argument(
        "script", nargs="?", help="run a script file (top-level await allowed) and exit"
    )
    parser.add_argument(
        "args", nargs=argparse.REMAINDER, help="arguments for the script (sys.argv[1:])"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments and run the console, the code or the script; return the exit status."""
    options = _parser().parse_args(argv)
    uvloop: bool | None = options.uvloop if options.uvloop is not None else False
    if options.code is not None:
        sys.argv = ["-c", *options.args]
        return run_source(options.code, "<string>", uvloop=uvloop)
    if options.script is not None:
        try:
            with open(options.script, encoding="utf-8") as file:
                source = file.read()
        except OSError as exc:
            print(f"playground: cannot open {options.script}: {exc.strerror}", file=sys.stderr)
            return 2
        sys.argv = [options.script, *options.args]
        return run_source(source, options.script, uvloop=uvloop)
    return run_console(uvloop=uvloop)
