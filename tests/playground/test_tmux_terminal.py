"""Issue 14 in a real terminal (tmux, fixture in conftest.py): code that reads the terminal,
leaving with work still running, top's selection, and what blocks the loop."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import psutil

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.playground.conftest import Tmux


def _prompt(t: Tmux) -> None:
    """Wait for an empty prompt at the bottom of the output (the last '>>>' line)."""
    t.wait_for(lambda lines: [ln for ln in lines if ln.startswith(">>>")][-1:] == [">>>"])


def test_tmux_input_help_and_pdb_get_the_terminal(tmux: Callable[[list[str]], Tmux]) -> None:
    t = tmux([])
    t.wait_for(lambda lines: lines[-1].strip().startswith("asyncio"))

    t.line("name = input('x? ')")
    t.wait_for(lambda lines: any(ln.startswith("x?") for ln in lines))
    t.line("hello")
    t.line("name.upper()")
    t.wait_for_text("'HELLO'")

    # help() prompts "help> " and reads its own lines until "quit".
    t.line("help()")
    t.wait_for(lambda lines: any(ln.startswith("help>") for ln in lines))
    t.line("quit")
    t.wait_for_text("You are now leaving help")
    t.line("'back' + ' at the prompt'")
    t.wait_for_text("'back at the prompt'")

    # breakpoint(): pdb's prompt, its commands, then c continues the statement.
    t.line("breakpoint(); print('after', 6 * 7)")
    t.wait_for(lambda lines: any(ln.startswith("(Pdb)") for ln in lines))
    t.line("p 6 * 7")
    t.wait_for(lambda lines: "42" in lines)
    t.line("c")
    t.wait_for(lambda lines: "after 42" in lines)
    # pdb's c took SIGINT for itself: Ctrl-C must cancel the next statement again.
    t.line("await asyncio.sleep(30)")
    t.wait_for_text("running await asyncio.sleep(30)")
    t.keys("C-c")
    t.wait_for_text("KeyboardInterrupt")

    # Reading sys.stdin itself: the half line printed before is the prompt.
    t.line("import sys; print('line:', end=' '); got = sys.stdin.readline()")
    t.wait_for(lambda lines: any(ln.startswith("line:") for ln in lines))
    t.line("typed")
    t.line("got")
    t.wait_for_text("'typed\\n'")
    _prompt(t)
    t.keys("C-d")
    t.wait_for_text("EXITED:0")


def test_tmux_leaving_says_what_it_waits_for_and_ctrl_c_abandons_it(
    tmux: Callable[[list[str]], Tmux],
) -> None:
    t = tmux([])
    t.wait_for(lambda lines: lines[-1].strip().startswith("asyncio"))
    t.line("import os, time, subprocess; print('pid', os.getpid())")
    lines = t.wait_for(lambda lines: any(ln.startswith("pid ") for ln in lines))
    session = psutil.Process(int(next(ln for ln in lines if ln.startswith("pid ")).split()[1]))
    t.line("a = background(asyncio.to_thread(time.sleep, 30))")
    t.line("b = background(toolkit.to_thread(subprocess.run, ['sleep', '31']))")
    deadline = time.monotonic() + 10
    while not (children := [c for c in session.children() if c.name() == "sleep"]):
        assert time.monotonic() < deadline, "the sleep child never started"
        time.sleep(0.05)
    _prompt(t)
    t.keys("C-d")
    # Both calls are named, as the user wrote them.
    named = ("running time.sleep(30)", "running subprocess.run(['sleep', '31'])")
    t.wait_for(lambda lines: all(call in "".join(lines) for call in named))
    t.wait_for_text("Ctrl-C abandons")
    started = time.monotonic()
    t.keys("C-c")
    t.wait_for_text("EXITED:0", timeout=10)
    assert time.monotonic() - started < 8  # not the 30 s the threads still sleep
    t.wait_for_text("abandoned the wait")
    assert psutil.wait_procs([session, *children], timeout=5)[1] == []  # nothing left behind
