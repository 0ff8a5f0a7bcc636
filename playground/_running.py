"""The running view: a one-line status while a statement runs, and Ctrl-C as a key.

While a statement runs, the terminal stays in raw mode: a Ctrl-C arrives as
a key and is turned into an interrupt of the engine thread only, never a
SIGINT to the whole process group (the pool workers in it). The view shows
what Ctrl-C will do, a progress bar for a long map, and the toolbar; keys
typed meanwhile are handed to the next prompt. It steps aside for a
statement's ``input()`` (_input.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from prompt_toolkit.application import Application, get_app_session
from prompt_toolkit.input.typeahead import get_typeahead, store_typeahead
from prompt_toolkit.key_binding import KeyBindings
from prompt_toolkit.layout import HSplit, Layout, Window
from prompt_toolkit.layout.controls import FormattedTextControl

from playground import _views
from playground._session import STYLE

if TYPE_CHECKING:
    from collections.abc import Callable

    from prompt_toolkit.key_binding import KeyPress, KeyPressEvent

    from playground._eval import Engine, Outcome
    from playground._input import InputBridge


async def run_with_view(
    future: Any,
    engine: Engine,
    inputs: InputBridge,
    toolbar: Callable[[], _views.Fragments],
    progress: Callable[[], list[_views.Progress]],
) -> Outcome:
    """Wait for the statement, showing the running view and taking Ctrl-C as a key."""
    outcome: asyncio.Future[Outcome] = asyncio.wrap_future(future)
    # Quick statements show no view (no flicker), but the terminal goes raw
    # at once: a Ctrl-C in cooked mode would SIGINT our whole process group,
    # pool workers included.
    with get_app_session().input.raw_mode():
        done, _ = await asyncio.wait([outcome], timeout=0.1)
    if done:
        return outcome.result()
    bindings = KeyBindings()

    @bindings.add("c-c")
    def _interrupt(event: KeyPressEvent) -> None:
        engine.interrupt()

    typeahead: list[KeyPress] = []

    @bindings.add("<any>")
    def _keep(event: KeyPressEvent) -> None:
        # Typed ahead while the statement runs: handed to the next prompt, as a terminal would.
        typeahead.extend(event.key_sequence)

    def status() -> _views.Fragments:
        again = engine.interrupts
        hint = "Ctrl-C again interrupts blocking code" if again else "Ctrl-C cancels"
        fragments: _views.Fragments = [("class:toolbar.running", f" {hint} ")]
        for item in progress()[:1]:  # long maps: a bar on the statement's own line
            bar = _views.progress_bar(item.done, item.total, 30)
            fragments.append(("class:toolbar.progress", f" {item.label} {bar}"))
        return fragments

    app: Application[None] = Application(
        layout=Layout(
            HSplit(
                [
                    Window(FormattedTextControl(status), height=1),
                    Window(
                        FormattedTextControl(toolbar),
                        height=1,
                        style="class:bottom-toolbar",
                    ),
                ]
            )
        ),
        key_bindings=bindings,
        style=STYLE,
        refresh_interval=0.5,
        erase_when_done=True,
        terminal_size_polling_interval=0.5,
    )

    def stop_view() -> None:
        with contextlib.suppress(Exception):  # not running (any more): nothing to stop
            app.exit()

    def registered() -> None:
        inputs.stop_view = stop_view
        if inputs.pending:  # asked for while the view was starting
            stop_view()

    outcome.add_done_callback(lambda _: inputs.stop_view())
    while True:
        await inputs.answer()
        if outcome.done():
            break
        await app.run_async(pre_run=registered)
        inputs.stop_view = lambda: None
        if typeahead:
            # prompt-toolkit stored the keys the view had not processed when it
            # closed (an Enter right behind "got"): they come after ours.
            later = get_typeahead(app.input)
            store_typeahead(app.input, typeahead + later)
            typeahead.clear()
    return await outcome


async def wait_or_abandon(
    waiting: asyncio.Future[Any],
    waited_for: Callable[[], list[str]],
    toolbar: Callable[[], _views.Fragments],
) -> bool:
    """Leaving: wait for the session's shutdown, saying what it waits for; True when
    Ctrl-C abandoned the wait (the caller kills what it can and leaves the rest)."""
    bindings = KeyBindings()
    abandoned = False

    @bindings.add("c-c")
    def _abandon(event: KeyPressEvent) -> None:
        nonlocal abandoned
        abandoned = True
        event.app.exit()

    @bindings.add("<any>")
    def _ignore(event: KeyPressEvent) -> None:
        pass  # no prompt will read them

    def status() -> _views.Fragments:
        items = waited_for()
        what = "; ".join(items) if items else "the workers to stop"
        return [("class:toolbar.alert", f" leaving: waiting for {what}  Ctrl-C abandons it ")]

    app: Application[None] = Application(
        layout=Layout(
            HSplit(
                [
                    Window(FormattedTextControl(status), height=1, wrap_lines=True),
                    Window(FormattedTextControl(toolbar), height=1, style="class:bottom-toolbar"),
                ]
            )
        ),
        key_bindings=bindings,
        style=STYLE,
        refresh_interval=0.5,
        erase_when_done=True,
        terminal_size_polling_interval=0.5,
    )

    def stop(_: object = None) -> None:
        with contextlib.suppress(Exception):  # not running (yet, or any more)
            app.exit()

    def started() -> None:
        if waiting.done():  # done while the view was starting
            stop()

    waiting.add_done_callback(stop)
    await app.run_async(pre_run=started)
    return abandoned
