"""Issue 14 in a real terminal (tmux, fixture in conftest.py): code that reads the terminal,
leaving with work still running, top's selection, and what blocks the loop."""

from __future__ import annotations

from typing import TYPE_CHECKING

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

    # Reading sys.stdin itself: the half line printed before is the prompt.
    t.line("import sys; print('line:', end=' '); got = sys.stdin.readline()")
    t.wait_for(lambda lines: any(ln.startswith("line:") for ln in lines))
    t.line("typed")
    t.line("got")
    t.wait_for_text("'typed\\n'")
    _prompt(t)
    t.keys("C-d")
    t.wait_for_text("EXITED:0")
