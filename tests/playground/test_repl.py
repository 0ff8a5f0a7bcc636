"""The REPL as a person sees it: keys into a pipe, assertions on a virtual terminal screen."""

from __future__ import annotations

import multiprocessing
from typing import TYPE_CHECKING

import pytest

from tests.playground._vt import Session, play, toolbar

if TYPE_CHECKING:
    from pathlib import Path

LOOPS = pytest.mark.parametrize("uvloop", [False, True], ids=["asyncio", "uvloop"])


@LOOPS
def test_repl_top_level_await_result_and_toolbar(uvloop: bool) -> None:
    def drive(s: Session) -> None:
        s.run("await asyncio.sleep(0.01, result=6 * 7)")
        s.wait_for_text("42")
        loop = "uvloop" if uvloop else "asyncio"
        s.wait_for(lambda lines: toolbar(lines).startswith(loop) and "workers:" in toolbar(lines))
        s.run("_ + 1")
        s.wait_for_text("43")
        # One contextvars context for the whole session (cpython#124594).
        s.run("import contextvars; v = contextvars.ContextVar('v'); t = v.set(5)")
        s.run("async def gen():\ryield 1\r")
        s.run("async for i in gen(): r = v.get() * 10 + i")
        s.type("\r")  # a compound statement ends with an empty line
        s.run("async with asyncio.timeout(5): r + 1000")
        s.type("\r")
        s.run("r")
        s.wait_for_text("51")
        s.type("\x04")

    status, _ = play(drive, uvloop=uvloop)
    assert status == 0


def test_repl_errors_leave_the_session_usable() -> None:
    def drive(s: Session) -> None:
        s.run("asyncio.get_running_loop().stop()")  # the session's loop carries on
        s.run("await asyncio.sleep(0, result='loop alive')")
        s.wait_for_text("'loop alive'")
        s.run("1 / 0")
        s.wait_for_text("ZeroDivisionError: division by zero")
        lines = s.screen.lines()
        assert not any("_eval.py" in line for line in lines), "runner frames in the traceback"
        s.run("def f(:")
        s.wait_for_text("SyntaxError")
        s.run("'still' + ' here'")
        s.wait_for_text("'still here'")
        s.run("exit(3)")

    status, _ = play(drive)
    assert status == 3


def test_repl_multiline_block_runs_after_an_empty_line() -> None:
    def drive(s: Session) -> None:
        s.type("async def twice(x):\r")
        s.type("return 2 * x\r")
        s.wait_for_text("...     return 2 * x")  # indented after the colon
        s.type("\r")
        s.run("await twice(21)")
        s.wait_for_text("42")
        s.type("\x04")

    assert play(drive)[0] == 0


def test_repl_background_output_lands_above_an_intact_prompt(tmp_path: Path) -> None:
    gate = tmp_path / "go"

    def drive(s: Session) -> None:
        s.run(f"import threading, time, logging, os; gate = {str(gate)!r}")
        # A handler made in the session binds the session's stderr (amplifier PR #301).
        s.run("log = logging.getLogger('demo'); log.addHandler(logging.StreamHandler())")
        s.run(
            "def chatter():\r"
            "while not os.path.exists(gate): time.sleep(0.01)\r"
            "for i in range(3): print('tick', i); time.sleep(0.05)\r"
            "log.warning('careful')\r"
        )
        s.run("threading.Thread(target=chatter, name='chat').start()")
        s.wait_for(lambda lines: lines[s.prompt_row()] == ">>>")
        s.type("abc")  # half-typed input must survive the background lines
        s.wait_for(lambda lines: lines[s.prompt_row()] == ">>> abc")
        gate.touch()
        lines = s.wait_for_text("[thread chat] careful")
        row = s.prompt_row()
        assert lines[row] == ">>> abc"
        ticks = [i for i, line in enumerate(lines) if line.startswith("[thread chat] tick")]
        assert len(ticks) == 3
        assert max(ticks) < row
        s.type("\x03")  # clears the line
        s.type("\x04")

    assert play(drive)[0] == 0


@LOOPS
def test_repl_ctrl_c_cancels_then_interrupts_blocking_code(uvloop: bool) -> None:
    def drive(s: Session) -> None:
        s.run("import time; task = background(asyncio.sleep(60), name='keeper')")
        s.run("await asyncio.sleep(60)")
        s.wait_for_text("running await asyncio.sleep(60)")
        s.type("\x03")
        s.wait_for_text("KeyboardInterrupt")
        s.run("time.sleep(60)")
        s.wait_for_text("running time.sleep(60)")
        s.type("\x03")
        s.wait_for_text("Ctrl-C again interrupts blocking code")
        s.type("\x03")
        s.wait_for(lambda lines: sum("KeyboardInterrupt" in line for line in lines) == 2)
        s.run("task.done(), 1 + 1")  # background work survived both
        s.wait_for_text("(False, 2)")
        s.type("\x04")

    assert play(drive, uvloop=uvloop)[0] == 0


def test_repl_toolbar_says_the_loop_is_blocked_while_the_prompt_works() -> None:
    def drive(s: Session) -> None:
        s.run("import time; blocker = background(asyncio.to_thread(lambda: 0))")
        s.run("async def block(): time.sleep(3)")
        s.type("\r")
        s.run("b = background(block())")
        s.wait_for(lambda lines: "BLOCKED" in toolbar(lines))
        s.type("typing works")
        s.wait_for(lambda lines: lines[s.prompt_row()] == ">>> typing works")
        s.wait_for(lambda lines: "lag" in toolbar(lines), timeout=10)
        s.type("\x03\x04")

    assert play(drive)[0] == 0


def test_repl_exit_stops_every_worker_it_started() -> None:
    def drive(s: Session) -> None:
        s.run("import time; p = process(time.sleep, 60)")
        s.run("p.is_alive()")
        s.wait_for_text("True")
        s.type("\x04")
        s.wait_for_text("shutting down")

    status, _ = play(drive)
    assert status == 0
    assert multiprocessing.active_children() == []


def test_repl_top_sorts_filters_details_and_confirms_kills() -> None:
    def drive(s: Session) -> None:
        s.run("import threading; gate = threading.Event(); t = threadpool(2, name='tp')")
        s.run("f = t.submit(gate.wait)")
        s.wait_for(lambda lines: "1 busy" in toolbar(lines))
        s.run("top()")
        lines = s.wait_for(lambda lines: lines[0].startswith(" top "))
        assert "sort: state" in lines[0]
        s.type("/tp\r")  # filter: this pool's workers only (earlier tests' may linger)
        s.wait_for(lambda lines: "#1 threading.Event" in lines[2] and "busy" in lines[2])
        s.type("n")  # sort by name
        s.wait_for(lambda lines: "sort: name" in lines[0] and lines[2].startswith("tp-1"))
        s.type("/-2\r")  # narrow the filter to tp-2
        s.wait_for(lambda lines: lines[2].startswith("tp-2") and lines[3] == "")
        s.type("\r")  # details of the selected row
        s.wait_for_text("exit reason: -")
        s.type("k")
        s.wait_for_text("kill tp-2 (pid")
        s.type("y")
        s.wait_for_text("tp-2 is a thread: cancel its task instead")
        s.type("kn")  # asked again, answered no
        s.wait_for_text("not killed")
        s.type("q")
        s.wait_for(lambda lines: lines[s.prompt_row()] == ">>>")
        s.run("gate.set(); await f")
        s.wait_for_text("True")
        s.type("\x04")

    assert play(drive)[0] == 0


def test_repl_history_survives_the_session(tmp_path: Path) -> None:
    history = tmp_path / "history"

    def first(s: Session) -> None:
        s.run("remembered = 6 * 7")
        s.type("\x04")

    def second(s: Session) -> None:
        # Up: the previous session's line. History loads in a thread after the
        # prompt shows, so press again until it is there (one entry: extra Ups
        # stay on it).
        def recalled(lines: list[str]) -> bool:
            if lines[s.prompt_row()] == ">>> remembered = 6 * 7":
                return True
            s.type("\x1b[A")
            return False

        s.wait_for(recalled)
        s.type("\x03\x04")

    assert play(first, history=history)[0] == 0
    assert play(second, history=history)[0] == 0


def test_repl_keys_typed_while_a_statement_runs_go_to_the_next_prompt() -> None:
    def drive(s: Session) -> None:
        s.run("await asyncio.sleep(0.5)")
        s.wait_for_text("running await asyncio.sleep(0.5)")
        s.run("6 * 7")  # typed ahead, as in a terminal
        s.wait_for(lambda lines: lines[s.prompt_row() - 1] == "42")
        s.type("\x04")

    assert play(drive)[0] == 0


def test_repl_input_asks_in_the_terminal() -> None:
    def drive(s: Session) -> None:
        s.run("print('hello', end=' '); name = input('who? ')")
        s.wait_for(lambda lines: "hello" in lines and "who?" in lines)
        s.type("Ada\r")
        s.run("name")
        s.wait_for_text("'Ada'")
        s.run("await asyncio.sleep(0.3); input('again? ')")  # asked while the view is up
        s.wait_for_text("again?")
        s.type("\x03")  # Ctrl-C at the question interrupts the statement
        s.wait_for_text("KeyboardInterrupt")
        s.type("\x04")

    assert play(drive)[0] == 0
