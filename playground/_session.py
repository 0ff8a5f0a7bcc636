"""The prompt: a prompt-toolkit PromptSession with highlighting, completion, history and toolbar."""

from __future__ import annotations

import ast
import builtins
import codeop
import inspect
import keyword
import re
from typing import TYPE_CHECKING, Any

from prompt_toolkit import PromptSession
from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
from prompt_toolkit.completion import Completer, Completion, ThreadedCompleter
from prompt_toolkit.history import FileHistory, History, InMemoryHistory, ThreadedHistory
from prompt_toolkit.key_binding import KeyBindings
from prompt_toolkit.lexers import PygmentsLexer
from prompt_toolkit.styles import Style
from pygments.lexers.python import PythonLexer

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from pathlib import Path

    from prompt_toolkit.completion import CompleteEvent
    from prompt_toolkit.document import Document
    from prompt_toolkit.formatted_text import AnyFormattedText
    from prompt_toolkit.key_binding import KeyPressEvent

STYLE = Style.from_dict(
    {
        "bottom-toolbar": "noreverse bg:#222222 #aaaaaa",
        "toolbar.ok": "bg:#005f00 #ffffff",
        "toolbar.alert": "bg:#af0000 #ffffff bold",
        "toolbar.running": "bg:#005f87 #ffffff",
        "toolbar.progress": "#ffd700",
        "top.header": "reverse bold",
        "top.busy": "#5fd75f",
        "top.dead": "#d75f5f",
        "top.exited": "#808080",
        "top.selected": "reverse",
        "top.status": "bg:#222222 #aaaaaa",
        "top.alert": "bg:#af0000 #ffffff bold",
    }
)

_COMPILER = codeop.CommandCompiler()
_COMPILER.compiler.flags |= ast.PyCF_ALLOW_TOP_LEVEL_AWAIT


def is_complete(text: str) -> bool:
    """Should Enter run the input? A one-liner when it compiles; a block after an empty line."""
    if "\n" in text:
        return text.split("\n")[-1].strip() == ""
    try:
        return _COMPILER(text, "<input>", "single") is not None
    except (SyntaxError, ValueError, OverflowError):
        return True  # run it: the error is shown at once


def _indent_after(line: str) -> str:
    indent = line[: len(line) - len(line.lstrip())]
    return indent + "    " if line.rstrip().endswith(":") else indent


# Arguments that name something: kill("pool-1-2"), resize("pool-1", ...), recipe("pipe").
_ARGUMENT = re.compile(r"\b(\w+)\(\s*[\"']([\w.:\- ]*)$")
_DOTTED = re.compile(r"([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\.(\w*)$")
_NAME = re.compile(r"[A-Za-z_]\w*$")


class PlaygroundCompleter(Completer):
    """Names, attributes (looked up, never called), and the ids the commands take."""

    def __init__(
        self, namespace: dict[str, Any], arguments: Callable[[str], Iterable[str]]
    ) -> None:
        self._namespace = namespace
        self._arguments = arguments  # command name -> the ids it takes

    def get_completions(
        self, document: Document, complete_event: CompleteEvent
    ) -> Iterator[Completion]:
        before = document.text_before_cursor
        if match := _ARGUMENT.search(before):
            command, prefix = match.groups()
            for name in sorted(set(self._arguments(command))):
                if name.startswith(prefix):
                    yield Completion(name, -len(prefix))
            return
        if match := _DOTTED.search(before):
            path, prefix = match.groups()
            obj = self._resolve(path)
            if obj is None:
                return
            for name in sorted(dir(obj)):
                if name.startswith(prefix) and (prefix.startswith("_") or not name.startswith("_")):
                    yield Completion(name, -len(prefix))
            return
        if match := _NAME.search(before):
            prefix = match.group()
            names = {*list(self._namespace), *dir(builtins), *keyword.kwlist}
            for name in sorted(names):
                if name.startswith(prefix) and name != prefix and not name.startswith("__"):
                    yield Completion(name, -len(prefix))

    def _resolve(self, path: str) -> object | None:
        """The object a dotted path names, found without running any of its code."""
        first, *rest = path.split(".")
        missing = object()
        obj = self._namespace.get(first, getattr(builtins, first, missing))
        for part in rest:
            if obj is missing:
                return None
            # getattr_static never runs a property or __getattr__; a descriptor
            # other than a function would need running to know its value: stop.
            obj = inspect.getattr_static(obj, part, missing)
            if hasattr(type(obj), "__get__") and not inspect.isroutine(obj):
                return None
        return None if obj is missing else obj


def _key_bindings() -> KeyBindings:
    bindings = KeyBindings()

    @bindings.add("enter")
    def _enter(event: KeyPressEvent) -> None:
        buffer = event.current_buffer
        state = buffer.complete_state
        if state is not None and state.current_completion is not None:
            buffer.apply_completion(state.current_completion)
            return
        if is_complete(buffer.document.text):
            buffer.validate_and_handle()
        else:
            buffer.insert_text("\n" + _indent_after(buffer.document.current_line_before_cursor))

    @bindings.add("escape", "enter")
    def _run_now(event: KeyPressEvent) -> None:
        event.current_buffer.validate_and_handle()

    return bindings


def make_history(path: Path | None) -> History:
    """Input history kept across sessions in path (in memory when None)."""
    if path is None:
        return InMemoryHistory()
    path.parent.mkdir(parents=True, exist_ok=True)
    return ThreadedHistory(FileHistory(str(path)))


def make_session(
    *,
    namespace: dict[str, Any],
    arguments: Callable[[str], Iterable[str]],
    toolbar: Callable[[], AnyFormattedText],
    history: History,
) -> PromptSession[str]:
    """The prompt of the REPL; the toolbar is redrawn twice a second."""
    return PromptSession(
        message=">>> ",
        multiline=True,
        prompt_continuation="... ",
        lexer=PygmentsLexer(PythonLexer),
        completer=ThreadedCompleter(PlaygroundCompleter(namespace, arguments)),
        complete_while_typing=False,
        auto_suggest=AutoSuggestFromHistory(),
        history=history,
        key_bindings=_key_bindings(),
        bottom_toolbar=toolbar,
        style=STYLE,
        refresh_interval=0.5,
        enable_history_search=False,
        include_default_pygments_style=True,
    )
