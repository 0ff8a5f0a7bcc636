"""Input handling without a terminal: when Enter runs the input, what completes."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document

from playground._session import PlaygroundCompleter, is_complete

if TYPE_CHECKING:
    from collections.abc import Iterable


@pytest.mark.parametrize(
    ("text", "complete"),
    [
        ("1 + 1", True),
        ("await asyncio.sleep(0)", True),
        ("async for x in y: print(x)", False),  # a compound statement: an empty line ends it
        ("def f(:", True),  # a syntax error runs, to be shown at once
        ("def f():", False),
        ("async with lock:", False),
        ("f(1,", False),
        ("def f():\n    return 1", False),  # a block ends with an empty line
        ("def f():\n    return 1\n", True),
    ],
)
def test_session_enter_runs_complete_input(text: str, complete: bool) -> None:
    assert is_complete(text) is complete


def _complete(text: str, arguments: dict[str, list[str]] | None = None) -> list[str]:
    namespace = {
        "asyncio": asyncio,
        "my_pool": object(),
        "my_queue": asyncio.Queue(3),
        "kill": print,
    }

    def ids(command: str) -> Iterable[str]:
        return (arguments or {}).get(command, [])

    completer = PlaygroundCompleter(namespace, ids)
    document = Document(text, len(text))
    return [c.text for c in completer.get_completions(document, CompleteEvent())]


def test_session_completes_names_attributes_and_worker_ids() -> None:
    assert "my_pool" in _complete("my_")
    assert "print" in _complete("pri")
    assert "sleep" in _complete("asyncio.sl")
    assert "_get_loop" not in _complete("asyncio.")  # private only when asked for
    assert {"get_event_loop", "get_running_loop"} <= set(_complete("asyncio.get_"))
    assert "join" in _complete("my_queue.jo")  # an instance: its class's attributes
    assert "maxsize" in _complete("my_queue.max")  # and its own
    assert _complete('kill("Pool-1-', {"kill": ["Pool-1-1", "Pool-1-2", "Other-1"]}) == [
        "Pool-1-1",
        "Pool-1-2",
    ]


def test_session_completion_never_runs_instance_code() -> None:
    class Trap:
        @property
        def boom(self) -> object:
            raise AssertionError("a property ran during completion")

    completer = PlaygroundCompleter({"t": Trap()}, lambda command: [])
    text = "t.boom.x"
    assert list(completer.get_completions(Document(text, len(text)), CompleteEvent())) == []
