"""Code that reads the terminal: asked in the UI thread, which owns the terminal.

The UI thread reads the terminal (raw mode) for the prompt and the running
view (_running.py). Code that read it too (the builtin ``input()``, pdb and
``breakpoint()``, ``help()``'s interactive prompt, ``sys.stdin.readline()``)
would race that reader: each side eats the other's keys, and the cursor
position replies prompt-toolkit asks the terminal for land in the user's
line. So for the session, ``builtins.input`` and ``sys.stdin`` hand each
line they need to the UI thread: the running view steps aside, a prompt
asks for the line (line editing, Ctrl-C raises KeyboardInterrupt, Ctrl-D
EOFError or end of file), then the view comes back. The caller blocks (the
statement, and so the loop, as the builtin does) until the line is entered.
"""

from __future__ import annotations

import builtins
import concurrent.futures
import io
import sys
import threading
from typing import TYPE_CHECKING, Any

from prompt_toolkit import PromptSession

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable

    from playground._output import Terminal


class InputBridge:
    """Requests from the engine thread's ``input()``, answered by the UI thread."""

    def __init__(self, terminal: Terminal, before_asking: Callable[[], None]) -> None:
        self._terminal = terminal
        self._before_asking = before_asking  # what the statement printed first, e.g. a question
        self._requests: list[tuple[str, concurrent.futures.Future[str]]] = []
        self.ui_loop: asyncio.AbstractEventLoop | None = None
        self.ui_thread: threading.Thread | None = None
        # How to stop the running view so that the prompt can be shown (set by the view).
        self.stop_view: Callable[[], None] = lambda: None
        self._saved: tuple[Any, Any] | None = None
        self.stdin: TerminalStdin | None = None

    @property
    def pending(self) -> bool:
        return bool(self._requests)

    def ask(self, prompt: object = "") -> str:
        """The ``input()`` of the session (any thread but the UI's).

        Ctrl-C raises KeyboardInterrupt, Ctrl-D EOFError, as the builtin does.
        """
        self._before_asking()
        reply: concurrent.futures.Future[str] = concurrent.futures.Future()
        loop = self.ui_loop
        if loop is None or threading.current_thread() is self.ui_thread:
            raise RuntimeError("input() needs the playground's terminal")
        self._requests.append((str(prompt), reply))
        loop.call_soon_threadsafe(lambda: self.stop_view())
        return reply.result()

    async def answer(self) -> None:
        """Prompt for every request waiting (UI thread)."""
        while self._requests:
            prompt, reply = self._requests.pop(0)
            self._terminal.flush_now()
            try:
                reply.set_result(await PromptSession[str]().prompt_async(prompt))
            except (KeyboardInterrupt, EOFError) as exc:
                reply.set_exception(type(exc)())

    # -- the process-wide readers ---------------------------------------------------------

    def install(self, take_prompt: Callable[[], str]) -> None:
        """Route ``builtins.input`` and ``sys.stdin`` through the UI (UI thread, at start).

        take_prompt returns (and removes) the half line the reader printed
        last: the question a ``sys.stdin.readline()`` answers.
        """
        self._saved = builtins.input, sys.stdin
        original_input = builtins.input
        self.stdin = stdin = TerminalStdin(self, take_prompt)

        def session_input(prompt: object = "") -> str:
            # pdb's Cmd and pydoc's help() call the builtin: their prompt goes
            # to the UI too. Code that pointed sys.stdin elsewhere reads there.
            if sys.stdin is not stdin or threading.current_thread() is self.ui_thread:
                return original_input(prompt)
            return self.ask(prompt)

        builtins.input = session_input
        sys.stdin = stdin

    def uninstall(self) -> None:
        """Give ``builtins.input`` and ``sys.stdin`` back (UI thread, at the end)."""
        if self._saved is not None:
            builtins.input, saved_stdin = self._saved
            if sys.stdin is self.stdin:
                sys.stdin = saved_stdin
            self._saved = None


class TerminalStdin(io.TextIOBase):
    """``sys.stdin`` for the session: each line is asked for in the UI thread.

    No ``fileno()``: descriptor 0 belongs to the UI's reader. End of file
    (Ctrl-D) reads as "" once; the next read asks again, as a terminal does.
    """

    encoding = "utf-8"
    errors = "strict"

    def __init__(self, bridge: InputBridge, take_prompt: Callable[[], str]) -> None:
        super().__init__()
        self._bridge = bridge
        self._take_prompt = take_prompt
        self._buffer = ""
        self._lock = threading.Lock()

    def readable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return True  # a person types the lines

    def _fill(self) -> bool:
        """Ask for one more line; False at end of file."""
        try:
            line = self._bridge.ask(self._take_prompt())
        except EOFError:
            return False
        self._buffer += line + "\n"
        return True

    def readline(self, size: int | None = -1, /) -> str:  # type: ignore[override]
        size = -1 if size is None else size
        with self._lock:
            if "\n" not in self._buffer and not self._fill() and not self._buffer:
                return ""
            end = self._buffer.find("\n") + 1 or len(self._buffer)
            if 0 <= size < end:
                end = size
            line, self._buffer = self._buffer[:end], self._buffer[end:]
            return line

    def read(self, size: int | None = -1) -> str:
        size = -1 if size is None else size
        with self._lock:
            while size < 0 or len(self._buffer) < size:
                if not self._fill():
                    break
            if size < 0:
                text, self._buffer = self._buffer, ""
            else:
                text, self._buffer = self._buffer[:size], self._buffer[size:]
            return text
