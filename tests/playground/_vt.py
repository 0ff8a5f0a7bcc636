"""A headless terminal for the REPL: pipe input for keys, a pyte screen for what a person sees.

prompt-toolkit draws the bottom toolbar only once it knows the terminal's
height, which it learns by asking the terminal for the cursor position
(ESC[6n), and asks only when its output is a TTY (docs/playground.md, "How it works").
This stream claims to be one and answers every request through the pipe.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import TYPE_CHECKING

import pyte
from prompt_toolkit.data_structures import Size
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output.vt100 import Vt100_Output

from playground._repl import Repl

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from prompt_toolkit.input import PipeInput

_CPR = "\x1b[6n"


class Screen:
    """A file-like terminal: bytes written are drawn on a pyte screen."""

    def __init__(self, keys: PipeInput, columns: int = 100, lines: int = 30) -> None:
        self.size = Size(rows=lines, columns=columns)
        self._keys = keys
        self._lock = threading.Lock()
        self._screen = pyte.Screen(columns, lines)
        self._screen.set_mode(pyte.modes.LNM)  # a tty's onlcr: "\n" also returns the carriage
        self._stream = pyte.Stream(self._screen)
        self.encoding = "utf-8"

    def write(self, data: str) -> int:
        with self._lock:
            *before_requests, last = data.split(_CPR)
            for part in before_requests:
                self._stream.feed(part)
                row, column = self._screen.cursor.y + 1, self._screen.cursor.x + 1
                self._keys.send_text(f"\x1b[{row};{column}R")
            self._stream.feed(last)
        return len(data)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return True

    def lines(self) -> list[str]:
        """The screen's rows, trailing spaces stripped."""
        with self._lock:
            return [line.rstrip() for line in self._screen.display]


class Session:
    """Drives one Repl: type keys, wait until the screen shows something."""

    def __init__(self, keys: PipeInput, screen: Screen) -> None:
        self.keys = keys
        self.screen = screen

    def type(self, text: str) -> None:
        self.keys.send_text(text)

    def run(self, line: str) -> None:
        """Type a line and Enter (wait for the result with wait_for)."""
        self.type(line + "\r")

    def wait_for(self, predicate: Callable[[list[str]], bool], timeout: float = 15) -> list[str]:
        """Poll the screen until predicate(lines) holds; fail with the screen after timeout."""
        deadline = time.monotonic() + timeout
        while True:
            lines = self.screen.lines()
            if predicate(lines):
                return lines
            if time.monotonic() > deadline:
                shown = "\n".join(lines)
                raise AssertionError(f"screen never matched; it shows:\n{shown}")
            time.sleep(0.02)

    def wait_for_text(self, text: str, timeout: float = 15) -> list[str]:
        return self.wait_for(lambda lines: any(text in line for line in lines), timeout)

    def prompt_row(self) -> int:
        """The index of the last line starting with the prompt."""
        lines = self.screen.lines()
        return max((i for i, line in enumerate(lines) if line.startswith(">>>")), default=0)


def toolbar(lines: list[str]) -> str:
    """The bottom toolbar: the last non-empty line."""
    return next(line for line in reversed(lines) if line).strip()


@contextlib.contextmanager
def _driving(drive: Callable[[Session], None], session: Session) -> Iterator[list[BaseException]]:
    errors: list[BaseException] = []

    def body() -> None:
        try:
            session.wait_for(lambda lines: any(line.startswith(">>>") for line in lines))
            drive(session)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            errors.append(exc)
            # Leave the session whatever it was doing: cancel, interrupt, clear, exit.
            session.type("\x03")
            time.sleep(0.3)
            session.type("\x03")
            time.sleep(0.3)
            session.type("\x03exit()\r")

    thread = threading.Thread(target=body, name="test-driver")
    thread.start()
    try:
        yield errors
    finally:
        thread.join(30)


def play(
    drive: Callable[[Session], None],
    *,
    uvloop: bool = False,
    history: Path | None = None,
    columns: int = 100,
    lines: int = 30,
) -> tuple[int, Session]:
    """Run a REPL in this (main) thread while drive() types into it; return (status, session)."""
    with create_pipe_input() as keys:
        screen = Screen(keys, columns, lines)
        output = Vt100_Output(screen, lambda: screen.size, term="xterm")  # type: ignore[arg-type]
        session = Session(keys, screen)
        repl = Repl(uvloop=uvloop, history=history, input=keys, output=output)
        with _driving(drive, session) as errors:
            status = repl.run()
        if errors:
            raise errors[0]
        return status, session
