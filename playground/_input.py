"""``input()`` for statements: asked in the UI thread, which owns the terminal.

The builtin would read stdin under the running view (_running.py), which
reads it too. A statement's ``input()`` hands its prompt to the UI thread
and blocks (the statement, and so the loop, as the builtin does) until a
line is entered; the running view steps aside for it.
"""

from __future__ import annotations

import concurrent.futures
from typing import TYPE_CHECKING

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
        # How to stop the running view so that the prompt can be shown (set by the view).
        self.stop_view: Callable[[], None] = lambda: None

    @property
    def pending(self) -> bool:
        return bool(self._requests)

    def ask(self, prompt: object = "") -> str:
        """The ``input()`` of the session's namespace (engine thread).

        Ctrl-C raises KeyboardInterrupt, Ctrl-D EOFError, as the builtin does.
        """
        self._before_asking()
        reply: concurrent.futures.Future[str] = concurrent.futures.Future()
        self._requests.append((str(prompt), reply))
        loop = self.ui_loop
        if loop is None:
            raise RuntimeError("input() needs the playground's terminal")
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
