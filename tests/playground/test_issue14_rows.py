"""Issue 14, item 6: a clean end shows as "exited", not "dead"; finished rows can be
cleared; top's highlight follows the selected worker."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from playground import _views
from playground._top import Top
from tests.playground._vt import play, toolbar
from tests.playground.test_views import NOW, _snapshot, _worker
from toolkit.inspect import ProcessInfo

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.playground._vt import Session


@pytest.fixture(autouse=True)
def _show_cleared_rows_again() -> Iterator[None]:
    yield
    _views.forget_cleared()


def test_rows_exit_code_0_is_exited_and_a_crash_is_dead() -> None:
    snap = _snapshot(
        _worker("pool-1", "dead", exit_reason="stopped (maxtasksperchild)"),
        _worker("pool-2", "dead", exit_reason="killed by SIGKILL"),
        _worker("pool-3", "idle"),
        processes=(
            ProcessInfo("clean", 301, "exited", 0, "mod.main"),
            ProcessInfo("failed", 302, "exited", 1, "mod.main"),
            ProcessInfo("signalled", 303, "exited", -15, "mod.main"),
            ProcessInfo("running", 304, "running", None, "mod.main"),
        ),
    )
    rows = {r.name: r for r in _views.rows(snap)}
    shown = {name: row.status for name, row in rows.items()}
    assert shown == {
        "pool-1": "exited",
        "pool-2": "dead",
        "pool-3": "idle",
        "clean": "exited",
        "failed": "dead",
        "signalled": "dead",
        "running": "busy",
    }
    # Ended either way: nothing to signal (kill() and completion skip state "dead").
    assert rows["clean"].state == rows["failed"].state == "dead"
    assert _views.worker_counts(rows.values()) == {"busy": 1, "idle": 1, "dead": 3, "exited": 2}
    lines = _views.table(_views.sort_rows(rows.values(), "state"), NOW, width=110)
    clean = next(line for line in lines if line.startswith("clean"))
    assert clean.split()[3:6] == ["exited", "exit", "code"]  # state, then why it ended
    assert [line.split()[0] for line in lines[-2:]] == ["clean", "pool-1"]  # exited sort last
    assert _views.filter_rows(rows.values(), "exited") == [rows["pool-1"], rows["clean"]]


def test_rows_clear_hides_the_finished_ones_only() -> None:
    snap = _snapshot(
        _worker("pool-1", "dead", exit_reason="killed by SIGKILL", pid=201),
        _worker("pool-2", "busy", pid=202),
        processes=(ProcessInfo("clean", 301, "exited", 0, "mod.main"),),
    )
    assert _views.clear_finished(_views.rows(snap)) == 2
    assert [r.name for r in _views.rows(snap)] == ["pool-2"]
    assert _views.clear_finished(_views.rows(snap)) == 0
    # A new worker of the same name (a new pid) is someone else: it shows.
    again = _snapshot(_worker("pool-1", "idle", pid=203))
    assert [r.name for r in _views.rows(again)] == ["pool-1"]


def test_top_selection_follows_the_worker_then_a_neighbour() -> None:
    live = [
        _worker("w-1", "busy", pid=1),
        _worker("w-2", "busy", pid=2),
        _worker("w-3", "idle", pid=3),
    ]
    sampled: list[list[_views.Row]] = [_views.rows(_snapshot(*live))]
    top = Top(lambda: sampled[-1], kill=lambda row: "killed")
    top.move(1)
    assert top.current() is not None
    assert top.current().name == "w-2"  # type: ignore[union-attr]
    # w-2 is killed: the pool starts w-4; sorted by state, w-2 now sorts last.
    killed = [live[0], _worker("w-2", "dead", pid=2, exit_reason="killed by SIGKILL"), live[2]]
    sampled.append(_views.rows(_snapshot(*killed, _worker("w-4", "starting", pid=4))))
    top._sampled = 0.0
    assert top.current().name == "w-2"  # type: ignore[union-attr]
    assert top.selected == 3
    # It leaves the table (cleared): the highlight stays at its place, on a neighbour.
    top.clear_finished()
    assert top.message == "cleared 1 finished row"
    sampled.append(_views.rows(_snapshot(*killed, _worker("w-4", "idle", pid=4))))
    assert [r.name for r in top.rows()] == ["w-1", "w-3", "w-4"]
    assert top.current().name == "w-4"  # type: ignore[union-attr]
    top.move(-1)
    assert top.current().name == "w-3"  # type: ignore[union-attr]


def test_repl_toolbar_counts_a_clean_exit_as_exited_and_clear_forgets_it() -> None:
    def drive(s: Session) -> None:
        # The toolbar counts every pool and process of this test process: rows
        # that earlier tests left finished are cleared first.
        s.run("clear()")
        s.wait_for(lambda lines: "workers: none |" in toolbar(lines))
        s.run("c = process(abs, -1, name='clean'); await c.join(30); c.exitcode")
        s.wait_for(lambda lines: lines[s.prompt_row() - 1] == "0")
        s.wait_for(lambda lines: "workers: 1 exited |" in toolbar(lines))
        s.run("clear()")
        s.wait_for_text("cleared 1 finished row")
        s.wait_for(lambda lines: "workers: none |" in toolbar(lines))
        s.type("\x04")

    assert play(drive)[0] == 0
