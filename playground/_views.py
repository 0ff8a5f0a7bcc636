"""Pure rendering: snapshots in, text out (the toolbar, the ps/top table, a worker's details).

Nothing here reads a clock, a loop or a process: callers pass ``now`` and
the records, so every view is tested with plain values. One piece of state:
the rows the user cleared (``clear()``, ``x`` in top), hidden from every view.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from prompt_toolkit.formatted_text import StyleAndTextTuples

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from toolkit.inspect import ProcessInfo, Snapshot, WorkerInfo

Fragments = StyleAndTextTuples

SortKey = Literal["name", "cpu", "rss", "state", "pid", "done"]
SORT_KEYS: tuple[SortKey, ...] = ("name", "cpu", "rss", "state", "pid", "done")


def format_bytes(n: int | None) -> str:
    """1536 -> '1.5K'; None -> '-'."""
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "K", "M", "G"):
        if value < 1024 or unit == "G":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    raise AssertionError("unreachable")


def format_duration(seconds: float | None) -> str:
    """0.5 -> '0.5s', 75 -> '1m15s', 4000 -> '1h06m'; None -> '-'."""
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 10:
        return f"{seconds:.1f}s"
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def progress_bar(done: int, total: int | None, width: int = 20) -> str:
    """'[#########...........] 45/100'; an unknown total shows only the count."""
    if total is None:
        return f"[{'?' * width}] {done}/?"
    filled = width if total <= 0 else min(width, done * width // total)
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total}"


def exit_description(exitcode: int | None) -> str | None:
    """multiprocessing's exitcode in words: 'exit code 1', 'killed by SIGKILL'."""
    if exitcode is None:
        return None
    if exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"


@dataclass(frozen=True, slots=True)
class Row:
    """One line of ps/top: a pool worker or a toolkit.Process."""

    name: str
    kind: str  # "process", "thread", "dask" (pool workers) or "Process" (a toolkit.Process)
    owner: str  # the pool's name, "" for a Process
    pid: int | None
    tid: int | None
    state: str
    task: str
    since: float | None  # time.time() of the last state change
    cpu: float | None
    rss: int | None
    done: int | None
    failed: int | None
    exit_reason: str | None
    address: str | None = None  # a cluster worker's (kind "dask"): not a pid of this machine
    # It ended as asked: exit code 0, or a pool worker told to leave. Its state
    # stays "dead" (ended: nothing to signal) but it shows as "exited".
    clean: bool = False

    @property
    def status(self) -> str:
        """The state shown: "exited" for a clean end; "dead" is a crash, a signal, an error."""
        return "exited" if self.state == "dead" and self.clean else self.state

    @property
    def key(self) -> tuple[str, str, str, int | None, int | None]:
        """Who the row is, whatever its state or place in the table."""
        return (self.kind, self.owner, self.name, self.pid, self.tid)


@dataclass(frozen=True, slots=True)
class Progress:
    """A long-running map: label, items done, items in total (None: unknown)."""

    label: str
    done: int
    total: int | None


def _task_text(worker: WorkerInfo) -> str:
    if worker.task is None:
        return ""
    task = worker.task
    if task.items > 1:  # a map's chunk: its first inputs in args
        return f"#{task.id} {task.function} over {task.items} inputs {task.args}"
    return f"#{task.id} {task.function}({task.args})"


def worker_row(worker: WorkerInfo, owner: str) -> Row:
    """A pool worker as a table row."""
    address = getattr(worker, "address", None)
    return Row(
        name=worker.name,
        kind="dask" if address is not None else worker.kind,
        owner=owner,
        pid=worker.pid,
        tid=worker.tid,
        state=worker.state,
        task=_task_text(worker),
        since=worker.since,
        cpu=worker.cpu_percent,
        rss=worker.rss,
        done=worker.tasks_done,
        failed=worker.failures,
        exit_reason=worker.exit_reason,
        address=address,
        # "stopped": it left when asked (close, maxtasksperchild, resize).
        clean=worker.state == "dead" and (worker.exit_reason or "").startswith("stopped"),
    )


def process_row(
    process: ProcessInfo, usage: Mapping[int, tuple[float | None, int | None]] | None = None
) -> Row:
    """A toolkit.Process as a table row; usage maps pid to (cpu%, rss) when known."""
    cpu, rss = (usage or {}).get(process.pid or -1, (None, None))
    return Row(
        name=process.name,
        kind="Process",
        owner="",
        pid=process.pid,
        tid=None,
        state={"initial": "starting", "running": "busy", "exited": "dead"}[process.state],
        task=process.target,
        since=None,
        cpu=cpu,
        rss=rss,
        done=None,
        failed=None,
        exit_reason=exit_description(process.exitcode),
        clean=process.state == "exited" and process.exitcode == 0,
    )


def restart_cluster_worker(row: Row) -> str:
    """Kill a cluster worker's process through its pool (its nanny restarts it): its pid
    belongs to another machine, maybe, so it is never signalled from here."""
    import toolkit.inspect

    pool = toolkit.inspect.find_pool(row.owner)
    if pool is None or not hasattr(pool, "restart_worker"):
        raise LookupError(f"the pool of {row.name} is gone")
    pool.restart_worker(row.name)
    return f"restarting {row.name} ({row.address})"


# Finished rows the user cleared, by identity (Row.key): ps, top and the
# toolbar stop listing them. A set (membership and update are atomic under
# the GIL): cleared in the engine thread (clear()) or the UI's (top), read by both.
_cleared: set[tuple[str, str, str, int | None, int | None]] = set()


def clear_finished(items: Iterable[Row]) -> int:
    """Hide the rows that have ended (exited or dead) from now on; return how many."""
    finished = {r.key for r in items if r.state == "dead"} - _cleared
    _cleared.update(finished)
    return len(finished)


def forget_cleared() -> None:
    """Show cleared rows again (a new session, a test)."""
    _cleared.clear()


def rows(
    snapshot: Snapshot, usage: Mapping[int, tuple[float | None, int | None]] | None = None
) -> list[Row]:
    """Every worker of every pool, then every toolkit.Process, in the snapshot (but the
    finished ones the user cleared)."""
    result = [worker_row(w, pool.stats.name) for pool in snapshot.pools for w in pool.workers]
    result.extend(process_row(p, usage) for p in snapshot.processes)
    return [r for r in result if r.key not in _cleared] if _cleared else result


_STATE_ORDER = {"busy": 0, "starting": 1, "idle": 2, "stopping": 3, "dead": 4, "exited": 5}


def sort_rows(items: Iterable[Row], key: SortKey) -> list[Row]:
    """Sort for top: numbers descending (the busiest first), names ascending."""
    if key == "name":
        return sorted(items, key=lambda r: r.name)
    if key == "pid":
        return sorted(items, key=lambda r: (r.pid or 0, r.tid or 0))
    if key == "state":
        return sorted(items, key=lambda r: (_STATE_ORDER.get(r.status, 9), r.name))
    if key == "cpu":
        return sorted(items, key=lambda r: (-(r.cpu or 0.0), r.name))
    if key == "rss":
        return sorted(items, key=lambda r: (-(r.rss or 0), r.name))
    return sorted(items, key=lambda r: (-(r.done or 0), r.name))


def filter_rows(items: Iterable[Row], text: str) -> list[Row]:
    """Rows whose name, pool, kind, state, pid, address or task contain text (case-insensitive)."""
    needle = text.lower()

    def words(r: Row) -> str:
        return " ".join((r.name, r.owner, r.kind, r.status, str(r.pid), r.address or "", r.task))

    return [r for r in items if not needle or needle in words(r).lower()]


_COLUMNS = (  # title, width (0: takes what is left)
    ("NAME", 14),
    ("KIND", 7),
    ("PID/TID", 8),
    ("STATE", 8),
    ("TASK", 0),
    ("SINCE", 6),
    ("CPU%", 5),
    ("RSS", 7),
    ("DONE", 5),
    ("FAIL", 4),
)


def _cells(row: Row, now: float) -> list[str]:
    ident = str(row.tid) if row.tid is not None else str(row.pid) if row.pid else "-"
    task = row.task if row.state != "dead" else (row.exit_reason or "")  # why it ended
    since = None if row.since is None else now - row.since
    return [
        row.name,
        row.kind,
        ident,
        row.status,
        task,
        format_duration(since),
        "-" if row.cpu is None else f"{row.cpu:.0f}",
        format_bytes(row.rss),
        "-" if row.done is None else str(row.done),
        "-" if row.failed is None else str(row.failed),
    ]


def _line(cells: Sequence[str], width: int) -> str:
    fixed = sum(w + 1 for _, w in _COLUMNS if w)
    flexible = max(8, width - fixed)
    parts = []
    for (title, w), cell in zip(_COLUMNS, cells, strict=True):
        size = w or flexible
        text = cell if len(cell) <= size else cell[: size - 1] + "~"
        parts.append(
            text.rjust(size) if title in ("CPU%", "RSS", "DONE", "FAIL") else text.ljust(size)
        )
    return " ".join(parts)[:width].rstrip()


def table(items: Sequence[Row], now: float, width: int = 100) -> list[str]:
    """The ps/top table: a header line, then one line per row."""
    header = _line([title for title, _ in _COLUMNS], width)
    return [header, *(_line(_cells(r, now), width) for r in items)]


def top_fragments(items: Sequence[Row], now: float, width: int, selected: int | None) -> Fragments:
    """The top table as formatted text, the selected row highlighted."""
    lines = table(items, now, width)
    fragments: Fragments = [("class:top.header", lines[0].ljust(width) + "\n")]
    for index, (row, line) in enumerate(zip(items, lines[1:], strict=True)):
        style = "class:top.row"
        if row.status == "exited":
            style = "class:top.exited"
        elif row.state == "dead":
            style = "class:top.dead"
        elif row.state == "busy":
            style = "class:top.busy"
        if index == selected:
            style += " class:top.selected"
        fragments.append((style, line.ljust(width) + "\n"))
    return fragments


def detail(row: Row, now: float) -> list[str]:
    """Every field of one worker, one per line."""
    since = None if row.since is None else now - row.since
    return [
        f"name:        {row.name}",
        f"kind:        {row.kind}" + (f" (pool {row.owner})" if row.owner else ""),
        f"pid:         {row.pid if row.pid is not None else '-'}",
        f"tid:         {row.tid if row.tid is not None else '-'}",
        f"state:       {row.status} for {format_duration(since)}",
        f"task:        {row.task or '-'}",
        f"cpu:         {'-' if row.cpu is None else f'{row.cpu:.1f}%'}",
        f"rss:         {format_bytes(row.rss)}",
        f"tasks done:  {'-' if row.done is None else row.done}",
        f"failures:    {'-' if row.failed is None else row.failed}",
        f"exit reason: {row.exit_reason or '-'}",
    ]


def worker_counts(items: Iterable[Row]) -> dict[str, int]:
    """How many rows are in each state shown, in the order busy, starting, idle, stopping,
    dead, exited."""
    counts = dict.fromkeys(_STATE_ORDER, 0)
    for row in items:
        counts[row.status] = counts.get(row.status, 0) + 1
    return {state: n for state, n in counts.items() if n}


@dataclass(frozen=True, slots=True)
class ToolbarState:
    """Everything the bottom toolbar shows, gathered by the UI thread."""

    loop_name: str
    lag: float
    blocked_for: float | None
    running: str | None  # the running statement's first line
    running_for: float | None
    workers: Mapping[str, int]
    queued: int
    cpu: float
    rss: int
    progress: Sequence[Progress] = ()
    blocked_in: str | None = None  # what blocks the loop: "fn (file:line) task name"


def toolbar(state: ToolbarState, width: int = 100) -> Fragments:
    """The bottom toolbar: loop health, the running statement, workers, queue, CPU and memory."""
    fragments: Fragments = []
    if state.blocked_for is not None:
        where = f"in {state.blocked_in} " if state.blocked_in else ""
        fragments.append(
            (
                "class:toolbar.alert",
                f" {state.loop_name} BLOCKED {state.blocked_for:.1f}s {where}",
            )
        )
    else:
        fragments.append(
            ("class:toolbar.ok", f" {state.loop_name} ok lag {state.lag * 1000:.0f}ms ")
        )
    if state.running is not None:
        text = state.running if len(state.running) <= 30 else state.running[:29] + "~"
        fragments.append(
            ("class:toolbar.running", f" running {text} {format_duration(state.running_for)} ")
        )
    workers = " ".join(f"{n} {s}" for s, n in state.workers.items()) or "none"
    fragments.append(("class:toolbar", f" workers: {workers} | queued {state.queued} "))
    fragments.append(("class:toolbar", f"| cpu {state.cpu:.0f}% rss {format_bytes(state.rss)} "))
    for item in state.progress[:2]:
        fragments.append(
            ("class:toolbar.progress", f" {item.label} {progress_bar(item.done, item.total, 12)} ")
        )
    return _clip(fragments, width)


def _clip(fragments: Fragments, width: int) -> Fragments:
    """Cut the fragments to width characters: a toolbar that wraps pushes the prompt up."""
    clipped: Fragments = []
    room = width
    for style, text, *_ in fragments:
        if room <= 0:
            break
        clipped.append((style, text[:room]))
        room -= len(text)
    return clipped
