"""The playground in a real terminal: tmux on a private socket, keys in, the pane polled.

These tests need tmux (the fixture is in conftest.py). CI installs it
(.ci/run); a machine without it fails here, saying how to install it, instead
of silently skipping the only test of the real terminal path (raw mode,
SIGINT, the fd relay, resize polling).
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING

import pytest

from tests.playground.conftest import gone

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.playground.conftest import Tmux


@pytest.mark.parametrize("loop", ["--no-uvloop", "--uvloop"])
def test_tmux_pool_top_kill_and_clean_exit(tmux: Callable[[list[str]], Tmux], loop: str) -> None:
    t = tmux([loop])
    name = "uvloop" if loop == "--uvloop" else "asyncio"
    t.wait_for(lambda lines: any(line.startswith(">>>") for line in lines))
    t.wait_for(lambda lines: lines[-1].strip().startswith(name))  # the toolbar, at the bottom

    t.line("import os, time; p = pool(2)")
    t.line("def slow(x):")
    t.line("print('working on', x); time.sleep(x); return x")
    t.line("")
    t.line("r = p.apply_async(slow, (60,))")
    t.wait_for(lambda lines: "1 busy" in lines[-1])
    # A pool worker's output arrives tagged with the worker (capture_output).
    worker_line = re.compile(r"\[Pool-\d+-\d+ \d+\] working on 60$")
    t.wait_for(lambda lines: any(worker_line.match(line) for line in lines))
    t.line("print('pids', os.getpid(), *[w.pid for w in p.workers])")
    lines = t.wait_for(lambda lines: any(line.startswith("pids ") for line in lines))
    pids = [int(n) for n in next(ln for ln in lines if ln.startswith("pids ")).split()[1:]]

    # A child's prints, and its raw writes to fd 1, land above the prompt, tagged.
    t.line("c = process(print, 'hello from a child', name='kid')")
    t.wait_for(lambda lines: any(re.match(r"\[kid \d+\] hello from a child$", ln) for ln in lines))
    t.line("c = process(os.system, 'echo raw line')")
    t.wait_for_text("[fd 1] raw line")

    t.line("top()")
    t.wait_for(lambda lines: lines[0].startswith(" top ") and "slow(60)" in "\n".join(lines))
    t.keys("k")  # sorted by state: the busy worker is the selected first row
    t.wait_for_text("? y/n")
    t.keys("y")
    t.wait_for(lambda lines: any("dead" in ln and "killed by SIGKILL" in ln for ln in lines))
    t.keys("q")
    t.wait_for(lambda lines: lines[-1].strip().startswith(name))

    t.line("await r.get()")
    t.wait_for_text("WorkerDiedError")
    t.line("await p.apply(slow, (0,))")  # the pool replaced the worker
    t.wait_for(lambda lines: any(line == "0" for line in lines))

    t.keys("C-d")
    t.wait_for_text("EXITED:0")
    deadline = time.monotonic() + 10
    while not gone(pids):
        assert time.monotonic() < deadline, f"processes left running: {pids}"
        time.sleep(0.05)


def test_tmux_ctrl_c_keeps_the_session_and_the_workers(tmux: Callable[[list[str]], Tmux]) -> None:
    t = tmux([])
    t.wait_for(lambda lines: lines[-1].strip().startswith("asyncio"))
    t.line("import time; p = pool(1); await p.apply(abs, (-1,))")
    t.wait_for(lambda lines: any(line == "1" for line in lines))
    t.line("await asyncio.sleep(60)")
    t.wait_for_text("running await asyncio.sleep(60)")
    t.keys("C-c")
    t.wait_for_text("KeyboardInterrupt")
    t.line("time.sleep(60)")
    t.wait_for_text("running time.sleep(60)")
    t.keys("C-c")
    t.wait_for_text("Ctrl-C again")
    t.keys("C-c")
    t.wait_for(lambda lines: sum("KeyboardInterrupt" in line for line in lines) == 2)
    t.line("await p.apply(abs, (-2,))")  # the worker never saw a SIGINT
    t.wait_for(lambda lines: any(line == "2" for line in lines))
    t.line("exit()")
    t.wait_for_text("EXITED:0")
