"""The pure views: rows from snapshots, sorting, filtering, the table, the toolbar."""

from __future__ import annotations

from playground import _views
from toolkit.inspect import (
    PoolSnapshot,
    PoolStats,
    ProcessInfo,
    Snapshot,
    TaskInfo,
    WorkerInfo,
)

NOW = 1_000_000.0


def _worker(name: str, state: str = "idle", **kw: object) -> WorkerInfo:
    fields: dict[str, object] = {
        "name": name,
        "kind": "process",
        "pid": 100,
        "tid": None,
        "state": state,
        "task": None,
        "since": NOW - 5,
        "tasks_done": 0,
        "failures": 0,
        "exit_reason": None,
        "cpu_percent": 0.0,
        "rss": 1024,
    }
    fields.update(kw)
    return WorkerInfo(**fields)  # type: ignore[arg-type]


def _snapshot(*workers: WorkerInfo, processes: tuple[ProcessInfo, ...] = ()) -> Snapshot:
    stats = PoolStats("pool", "process", 2, 1, 1, 0, 0, 3, 1, 10, 6, 1, 0, 0, 0, 2, "running")
    return Snapshot(NOW, (PoolSnapshot(stats, workers),), processes)


def test_views_formats() -> None:
    assert _views.format_bytes(None) == "-"
    assert _views.format_bytes(512) == "512B"
    assert _views.format_bytes(1536) == "1.5K"
    assert _views.format_bytes(3 * 1024**3) == "3.0G"
    assert _views.format_duration(0.25) == "0.2s"
    assert _views.format_duration(75) == "1m15s"
    assert _views.format_duration(4000) == "1h06m"
    assert _views.progress_bar(5, 10, 10) == "[#####.....] 5/10"
    assert _views.progress_bar(3, None, 4) == "[????] 3/?"
    assert _views.exit_description(-9) == "killed by SIGKILL"
    assert _views.exit_description(1) == "exit code 1"


def test_views_rows_cover_pool_workers_and_processes() -> None:
    task = TaskInfo(7, "mod.slow", "(60,)", NOW - 2)
    process = ProcessInfo("Process-1", 300, "exited", -15, "mod.main")
    snap = _snapshot(
        _worker("pool-1", "busy", task=task, cpu_percent=99.0),
        _worker("pool-2", "dead", exit_reason="killed by SIGKILL", pid=200),
        processes=(process,),
    )
    rows = _views.rows(snap, {300: (5.0, 2048)})
    assert [r.name for r in rows] == ["pool-1", "pool-2", "Process-1"]
    assert rows[0].task == "#7 mod.slow((60,))"
    chunk = _views.worker_row(
        _worker("w", "busy", task=TaskInfo(8, "m.f", "[1, 2, 3, ...]", NOW, items=4)), ""
    )
    assert chunk.task == "#8 m.f over 4 inputs [1, 2, 3, ...]"
    assert rows[2].state == "dead"
    assert rows[2].exit_reason == "killed by SIGTERM"
    lines = _views.table(rows, NOW, width=110)
    assert lines[0].split() == [
        "NAME", "KIND", "PID/TID", "STATE", "TASK", "SINCE", "CPU%", "RSS", "DONE", "FAIL"
    ]  # fmt: skip
    assert "#7 mod.slow((60,))" in lines[1]
    assert "99" in lines[1]
    assert "killed by SIGKILL" in lines[2]  # a dead worker shows why, where its task was
    assert all(len(line) <= 110 for line in lines)


def test_views_sort_and_filter() -> None:
    rows = _views.rows(
        _snapshot(
            _worker("b", "idle", cpu_percent=1.0, rss=10, tasks_done=5),
            _worker("a", "busy", cpu_percent=50.0, rss=5, tasks_done=1),
            _worker("c", "dead", cpu_percent=None, rss=None),
        )
    )

    def names(key: _views.SortKey) -> list[str]:
        return [r.name for r in _views.sort_rows(rows, key)]

    assert names("name") == ["a", "b", "c"]
    assert names("cpu") == ["a", "b", "c"]
    assert names("rss") == ["b", "a", "c"]
    assert names("state") == ["a", "b", "c"]
    assert names("done") == ["b", "a", "c"]
    assert [r.name for r in _views.filter_rows(rows, "BUSY")] == ["a"]
    assert len(_views.filter_rows(rows, "")) == 3


def test_views_toolbar_says_blocked_and_shows_progress() -> None:
    state = _views.ToolbarState(
        loop_name="uvloop",
        lag=0.002,
        blocked_for=3.25,
        running="await p.map(f, range(100))",
        running_for=4.0,
        workers={"busy": 2, "idle": 1},
        queued=7,
        cpu=12.0,
        rss=50 * 1024 * 1024,
        progress=(_views.Progress("map", 40, 100),),
    )
    text = "".join(f[1] for f in _views.toolbar(state, width=300))
    assert "uvloop BLOCKED 3.2s" in text
    assert "running await p.map(f, range(100)) 4.0s" in text
    assert "workers: 2 busy 1 idle | queued 7" in text
    assert "rss 50.0M" in text
    assert "40/100" in text
    short = "".join(f[1] for f in _views.toolbar(state, width=60))
    assert len(short) <= 60


def test_views_detail_lists_every_field() -> None:
    row = _views.rows(_snapshot(_worker("w", "dead", exit_reason="timeout")))[0]
    text = "\n".join(_views.detail(row, NOW))
    for field in ("name:", "kind:", "pid:", "tid:", "state:", "task:", "cpu:", "rss:"):
        assert field in text
    assert "exit reason: timeout" in text
