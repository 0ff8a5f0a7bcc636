"""Background output above the prompt, never over it, each line tagged with its source.

    any thread: print() ─▶ sys.stdout = LineStream ─┐  complete lines, tagged
    child processes, C code: fd 1/2 ─▶ FdRelay ─────┼─▶ Terminal.write (thread-safe)
                                                    ▼
    UI loop: Terminal._drain ─▶ run_in_terminal(write)  (erase prompt, write, redraw)

prompt-toolkit's own ``patch_stdout`` schedules ``run_in_terminal`` without
the app session's context, so under any non-default ``AppSession`` (our UI
thread, every headless test) it finds no app and writes over the prompt
(docs/playground.md, "How it works"). The Terminal keeps the context it
was attached in and drains in it. Results are written by the UI thread itself
after draining, so they never race the next prompt (a print() would go through
the patched stream's flush thread and land after the next prompt is drawn).

Raw descriptor writes bypass ``sys.stdout``: a child process inherits fd 1
and its prints would land in the middle of the prompt. FdRelay points fd 1
and 2 at pipes before any child starts and relays their lines too.
"""

from __future__ import annotations

import asyncio
import contextvars
import io
import multiprocessing
import os
import re
import selectors
import sys
import threading
from typing import TYPE_CHECKING, Any, TextIO

from prompt_toolkit.application import get_app_or_none, run_in_terminal

if TYPE_CHECKING:
    from collections.abc import Callable

    from prompt_toolkit.output import Output


class Terminal:
    """Where every line meant for the screen goes; written from any thread, drained by the UI."""

    # Coalesce bursts: one redraw of the prompt per batch, not per line (ptk #680/#681).
    BATCH_DELAY = 0.05

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[str] = []
        self._scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._context: contextvars.Context | None = None
        self._output: Output | None = None

    def attach(self, output: Output) -> None:
        """Start drawing on output; call in the UI loop, inside its app session."""
        self._loop = asyncio.get_running_loop()
        self._context = contextvars.copy_context()
        self._output = output

    def detach(self) -> None:
        """Write what is pending and stop: later lines go straight to the output."""
        self.flush_now()
        with self._lock:
            self._loop = None

    def write(self, text: str) -> None:
        """Queue text (whole lines) for the screen; thread-safe."""
        with self._lock:
            self._pending.append(text)
            loop = self._loop
            schedule = loop is not None and not self._scheduled
            if schedule:
                self._scheduled = True
        if loop is None:
            self.flush_now()  # detached: no prompt to protect
        elif schedule:
            try:
                loop.call_soon_threadsafe(self._schedule, context=self._context)
            except RuntimeError:  # the UI loop has closed: write directly
                with self._lock:
                    self._loop = None
                self.flush_now()

    def _schedule(self) -> None:
        assert self._loop is not None
        self._loop.call_later(self.BATCH_DELAY, self._drain, context=self._context)

    def _take(self) -> str:
        with self._lock:
            text = "".join(self._pending)
            self._pending.clear()
            self._scheduled = False
        return text

    def _drain(self) -> None:
        text = self._take()
        if not text:
            return
        if get_app_or_none() is None:
            self._write_raw(text)
        else:
            run_in_terminal(lambda: self._write_raw(text))

    def flush_now(self) -> None:
        """Write what is pending now; call in the UI thread while no app is running."""
        text = self._take()
        if text:
            self._write_raw(text)

    def _write_raw(self, text: str) -> None:
        if self._output is None:
            return
        self._output.write_raw(text)
        self._output.flush()


class LineStream(io.TextIOBase):
    """A ``sys.stdout``/``sys.stderr`` replacement: complete lines go to the Terminal, tagged.

    tag() names the writer ("[thread worker-1] ") or returns "" for the
    statement's own output; it is called at each write, in the writer's thread.
    """

    encoding = "utf-8"
    errors = "replace"

    def __init__(
        self, terminal: Terminal, tag: Callable[[], str], fileno: int, style: str = ""
    ) -> None:
        super().__init__()
        self._terminal = terminal
        self._tag = tag
        self._fileno = fileno
        self._style = style
        self._lock = threading.Lock()
        self._partial: dict[str, str] = {}  # per source: writers don't split each other's lines

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        # Code that writes to the descriptor (faulthandler, subprocess) reaches the FdRelay.
        return self._fileno

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        tag = self._tag()
        with self._lock:
            text = self._partial.pop(tag, "") + text
            complete, newline, rest = text.rpartition("\n")
            if rest:
                self._partial[tag] = rest
        if newline:
            self._emit(tag, complete.split("\n"))
        return len(text)

    def flush(self) -> None:
        """Send the caller's half line now (other writers' half lines wait for their rest)."""
        tag = self._tag()
        with self._lock:
            rest = self._partial.pop(tag, "")
        if rest:
            self._emit(tag, [rest])

    def take_partial(self) -> str:
        """Remove and return the caller's half line (the question a read from stdin answers)."""
        tag = self._tag()
        with self._lock:
            return self._partial.pop(tag, "")

    def flush_all(self) -> None:
        """Send every writer's half line (a statement ended: its output is complete)."""
        with self._lock:
            partial = list(self._partial.items())
            self._partial.clear()
        for tag, rest in partial:
            self._emit(tag, [rest])

    def _emit(self, tag: str, lines: list[str]) -> None:
        end = "\x1b[0m" if self._style else ""
        self._terminal.write("".join(f"{self._style}{tag}{line}{end}\n" for line in lines))


# "[<worker name> <pid>] ": how pool workers' lines arrive, and TaggedTarget's.
_TAGGED = re.compile(rb"^\[[^\]\n]+ \d+\] ")


class FdRelay:
    """Points fd 1 and 2 at pipes and relays their lines to the Terminal, tagged.

    The real terminal moves to a duplicate descriptor (``terminal_fd``) that
    only prompt-toolkit writes to. Start it before any child process, so that
    every child (and the forkserver, which forks the rest) inherits the pipes.
    """

    def __init__(self, terminal: Terminal) -> None:
        self._terminal = terminal
        self.terminal_fd = os.dup(1)
        self._saved = (os.dup(1), os.dup(2))
        self._stop_r, self._stop_w = os.pipe()
        self._pipes: dict[int, str] = {}
        for fd, tag in ((1, "[fd 1] "), (2, "[fd 2] ")):
            read_end, write_end = os.pipe()
            os.dup2(write_end, fd)
            os.close(write_end)
            self._pipes[read_end] = tag
        self._thread = threading.Thread(target=self._relay, name="playground-fd-relay", daemon=True)
        self._thread.start()

    def _relay(self) -> None:
        partial = dict.fromkeys(self._pipes, b"")
        with selectors.DefaultSelector() as selector:
            for fd in self._pipes:
                selector.register(fd, selectors.EVENT_READ)
            selector.register(self._stop_r, selectors.EVENT_READ)
            while True:
                for key, _ in selector.select():
                    fd = key.fd
                    if fd == self._stop_r:
                        return
                    data = os.read(fd, 65536)
                    if not data:
                        selector.unregister(fd)
                        continue
                    *lines, partial[fd] = (partial[fd] + data).split(b"\n")
                    if lines:
                        self._terminal.write("".join(map(self._tagged, lines, [fd] * len(lines))))

    def _tagged(self, line: bytes, fd: int) -> str:
        tag = "" if _TAGGED.match(line) else self._pipes[fd]  # already says whose it is
        return f"{tag}{line.decode(errors='replace')}\n"

    def close(self) -> None:
        """Give fd 1 and 2 back to the terminal and stop relaying."""
        os.dup2(self._saved[0], 1)
        os.dup2(self._saved[1], 2)
        os.write(self._stop_w, b"x")
        self._thread.join(5)
        for fd in (*self._saved, *self._pipes, self._stop_r, self._stop_w, self.terminal_fd):
            os.close(fd)


class _Prefixed(io.TextIOBase):
    """A child's stdout/stderr: each line prefixed, written to the descriptor underneath."""

    def __init__(self, stream: TextIO, prefix: str) -> None:
        super().__init__()
        self._stream = stream
        self._prefix = prefix
        self._partial = ""

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._stream.fileno()

    def write(self, text: str) -> int:
        complete, newline, self._partial = (self._partial + text).rpartition("\n")
        if newline:
            self._stream.write("".join(f"{self._prefix}{line}\n" for line in complete.split("\n")))
            self._stream.flush()
        return len(text)

    def flush(self) -> None:
        if self._partial:
            self._stream.write(f"{self._prefix}{self._partial}\n")
            self._partial = ""
        self._stream.flush()


class TaggedTarget:
    """A Process target whose prints come out as "[<name> <pid>] line", like a pool worker's.

    It keeps the target's module and name, so top() and ps() still show the
    target. In the child, the real descriptors are used (under fork, the
    copied sys.stdout would be the parent's LineStream, bound to a loop that
    is not there).
    """

    def __init__(self, target: Callable[..., Any]) -> None:
        self.target = target
        self.__module__ = getattr(target, "__module__", None) or "?"
        self.__qualname__ = getattr(target, "__qualname__", type(target).__name__)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        prefix = f"[{multiprocessing.current_process().name} {os.getpid()}] "
        streams = (sys.__stdout__, sys.__stderr__)
        if streams[0] is not None and streams[1] is not None:
            sys.stdout, sys.stderr = _Prefixed(streams[0], prefix), _Prefixed(streams[1], prefix)
        try:
            return self.target(*args, **kwargs)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
