"""Output routing: whole lines, tagged per writer, nothing lost when no prompt is shown."""

from __future__ import annotations

import io
import threading

from prompt_toolkit.data_structures import Size
from prompt_toolkit.output.vt100 import Vt100_Output

from playground._output import LineStream, Terminal


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _terminal() -> tuple[Terminal, _Tty]:
    stream = _Tty()
    terminal = Terminal()
    terminal._output = Vt100_Output(stream, lambda: Size(24, 80), term="xterm")  # detached
    return terminal, stream


def test_output_lines_are_whole_and_tagged_per_writer() -> None:
    terminal, stream = _terminal()
    tags = {"main": "", "other": "[thread other] "}
    current = threading.local()

    def tag() -> str:
        return tags[getattr(current, "name", "main")]

    out = LineStream(terminal, tag, 1)
    out.write("par")
    assert stream.getvalue() == ""  # half a line waits for the rest

    def other() -> None:
        current.name = "other"
        out.write("from a thread\nand a half")
        out.flush()

    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert stream.getvalue().count("\n") == 2  # the thread's lines only
    out.write("tial\n")
    assert stream.getvalue().splitlines() == [
        "[thread other] from a thread",
        "[thread other] and a half",
        "partial",
    ]
    assert out.fileno() == 1
    assert out.writable()
