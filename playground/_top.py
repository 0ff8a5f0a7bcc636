"""``top``: a full-screen, refreshing worker table with keys to sort, filter, inspect and kill.

It runs in the UI thread and reads only snapshots, so it keeps refreshing
while the engine loop is blocked. Keys: arrows select; s cycles the sort
(c cpu, m memory, n name, p pid); / filters; Enter shows the details of the
selected row; k kills it after a y/n confirmation; x clears the rows that
ended (exited or dead); q or Esc leaves. The highlight follows the selected
worker (its identity, not its place) as sorting or a kill moves it.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from prompt_toolkit.application import Application
from prompt_toolkit.data_structures import Point
from prompt_toolkit.filters import Condition
from prompt_toolkit.key_binding import KeyBindings
from prompt_toolkit.layout import ConditionalContainer, HSplit, Layout, Window
from prompt_toolkit.layout.controls import FormattedTextControl

from playground import _views
from playground._session import STYLE

if TYPE_CHECKING:
    from collections.abc import Callable

    from prompt_toolkit.key_binding import KeyPressEvent

    from playground._views import Fragments, Row, SortKey


class Top:
    """The state of one top screen: sort, filter, selection, pending confirmation."""

    def __init__(
        self,
        sample: Callable[[], list[Row]],
        kill: Callable[[Row], str],
        header: Callable[[], str] = lambda: "",
    ) -> None:
        self._sample = sample
        self._kill = kill
        self._header = header
        self.sort: SortKey = "state"
        self.filter = ""
        self.filtering = False
        self.selected = 0
        # Who is selected: the highlight follows that row when sorting or a kill moves it.
        self._selected_key: tuple[object, ...] | None = None
        self.detail = False
        self.confirm: Row | None = None
        self.message = ""
        self._rows: list[Row] = []
        self._sampled = 0.0

    def rows(self) -> list[Row]:
        """The rows shown, sampled at most twice a second, sorted and filtered."""
        now = time.monotonic()
        if now - self._sampled >= 0.4:
            self._rows = self._sample()
            self._sampled = now
        shown = _views.filter_rows(_views.sort_rows(self._rows, self.sort), self.filter)
        if self._selected_key is not None:
            # The selected worker, wherever it is now; gone (cleared, filtered
            # out): the row that took its place, a neighbour.
            keys = [r.key for r in shown]
            if self._selected_key in keys:
                self.selected = keys.index(self._selected_key)
        self.selected = max(0, min(self.selected, len(shown) - 1))
        self._selected_key = shown[self.selected].key if shown else None
        return shown

    def move(self, delta: int) -> None:
        """Select the row delta rows down (up when negative)."""
        self.rows()
        self.selected = max(0, self.selected + delta)
        self._selected_key = None  # rows() takes the row at the new index

    def clear_finished(self) -> None:
        """Stop listing the rows that ended (exited or dead), here, in ps and the toolbar."""
        count = _views.clear_finished(self._rows)
        self.message = f"cleared {count} finished row{'' if count == 1 else 's'}"
        self._sampled = 0.0

    def current(self) -> Row | None:
        shown = self.rows()
        return shown[self.selected] if shown else None

    def _title(self) -> Fragments:
        shown = self.rows()
        counts = " ".join(f"{n} {s}" for s, n in _views.worker_counts(shown).items())
        text = f" top  {len(shown)} workers ({counts or 'none'})  sort: {self.sort}"
        if self.filter or self.filtering:
            text += f"  filter: {self.filter}" + ("_" if self.filtering else "")
        extra = self._header()
        return [("class:top.status", f"{text}  {extra}\n")]

    def _table(self) -> Fragments:
        shown = self.rows()
        width = _width()
        if not shown:
            return [("", "no workers: start one with pool(), threadpool() or process()\n")]
        return _views.top_fragments(shown, time.time(), width, self.selected)

    def _detail(self) -> Fragments:
        row = self.current()
        if row is None:
            return []
        return [("", "\n".join(_views.detail(row, time.time())) + "\n")]

    def _status(self) -> Fragments:
        if self.confirm is not None:
            pid = self.confirm.pid
            return [("class:top.alert", f" kill {self.confirm.name} (pid {pid})? y/n ")]
        if self.filtering:
            return [("class:top.status", " type to filter, Enter keeps it, Esc clears ")]
        keys = " arrows select  s/c/m/n/p sort  / filter  Enter details  k kill  x clear  q quit "
        return [("class:top.status", (f" {self.message} |" if self.message else "") + keys)]

    def application(self) -> Application[None]:
        """The full-screen application; run it with run_async()."""
        layout = Layout(
            HSplit(
                [
                    Window(FormattedTextControl(self._title), height=1),
                    # The cursor on the selected row: the window scrolls to keep it in view.
                    Window(
                        FormattedTextControl(
                            self._table, get_cursor_position=lambda: Point(0, self.selected + 1)
                        ),
                        wrap_lines=False,
                    ),
                    ConditionalContainer(
                        Window(FormattedTextControl(self._detail), height=11),
                        filter=Condition(lambda: self.detail),
                    ),
                    Window(FormattedTextControl(self._status), height=1),
                ]
            )
        )
        return Application(
            layout=layout,
            key_bindings=self._bindings(),
            full_screen=True,
            refresh_interval=0.5,
            style=STYLE,
            terminal_size_polling_interval=0.5,
        )

    def _bindings(self) -> KeyBindings:
        bindings = KeyBindings()
        confirming = Condition(lambda: self.confirm is not None)
        filtering = Condition(lambda: self.filtering)
        normal = ~confirming & ~filtering

        @bindings.add("q", filter=normal)
        @bindings.add("escape", filter=normal, eager=True)
        @bindings.add("c-c", filter=normal)
        def _quit(event: KeyPressEvent) -> None:
            if self.detail and event.key_sequence[0].key != "q":
                self.detail = False
                return
            event.app.exit()

        @bindings.add("up", filter=normal)
        def _up(event: KeyPressEvent) -> None:
            self.move(-1)

        @bindings.add("down", filter=normal)
        def _down(event: KeyPressEvent) -> None:
            self.move(1)

        @bindings.add("s", filter=normal)
        def _cycle(event: KeyPressEvent) -> None:
            keys = _views.SORT_KEYS
            self.sort = keys[(keys.index(self.sort) + 1) % len(keys)]

        for key, sort in (("c", "cpu"), ("m", "rss"), ("n", "name"), ("p", "pid")):

            def _sort(event: KeyPressEvent, sort: SortKey = sort) -> None:  # type: ignore[assignment]
                self.sort = sort

            bindings.add(key, filter=normal)(_sort)

        @bindings.add("x", filter=normal)
        def _clear(event: KeyPressEvent) -> None:
            self.clear_finished()

        @bindings.add("enter", filter=normal)
        def _toggle_detail(event: KeyPressEvent) -> None:
            self.detail = not self.detail

        @bindings.add("k", filter=normal)
        def _ask_kill(event: KeyPressEvent) -> None:
            self.confirm = self.current()

        @bindings.add("y", filter=confirming)
        def _kill(event: KeyPressEvent) -> None:
            assert self.confirm is not None
            self.message = self._kill(self.confirm)
            self.confirm = None
            self._sampled = 0.0  # show the death at once

        @bindings.add("<any>", filter=confirming)
        def _keep(event: KeyPressEvent) -> None:
            self.confirm = None
            self.message = "not killed"

        @bindings.add("/", filter=normal)
        def _start_filter(event: KeyPressEvent) -> None:
            self.filtering = True

        @bindings.add("enter", filter=filtering)
        def _keep_filter(event: KeyPressEvent) -> None:
            self.filtering = False

        @bindings.add("escape", filter=filtering, eager=True)
        def _clear_filter(event: KeyPressEvent) -> None:
            self.filter = ""
            self.filtering = False

        @bindings.add("backspace", filter=filtering)
        def _erase(event: KeyPressEvent) -> None:
            self.filter = self.filter[:-1]

        @bindings.add("<any>", filter=filtering)
        def _type(event: KeyPressEvent) -> None:
            if event.data.isprintable():
                self.filter += event.data

        return bindings


def _width() -> int:
    from prompt_toolkit.application import get_app

    return get_app().output.get_size().columns
