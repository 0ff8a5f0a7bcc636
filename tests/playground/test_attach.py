"""attach: a running service watched live from the playground, its workers and its tasks."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from playground import _attach
from playground._commands import Commands, Registry
from tests.playground.conftest import ROOT
from toolkit.inspect import AsyncTaskInfo

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from tests.playground.conftest import Tmux

# A service: a Pool(1) running a long task, a task group, and a monitor
# (control when asked); prints its pid once it is ready, lives until killed.
SERVICE = """
import asyncio, sys, time, toolkit

async def leaf(event):
    await event.wait()

async def group(event):
    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(leaf(event), name="leaf-a")
        tasks.create_task(leaf(event), name="leaf-b")

async def main():
    event = asyncio.Event()
    control = sys.argv[1] == "control"
    async with toolkit.Pool(1, name="svc") as pool, toolkit.monitor.serve(control=control):
        waiting = asyncio.create_task(group(event), name="the-group")
        running = pool.apply_async(time.sleep, (120,))
        while not pool.workers or pool.workers[0].state != "busy":
            await asyncio.sleep(0.01)
        print("ready", flush=True)
        await asyncio.sleep(120)

toolkit.run(main())  # SIGTERM cancels main: the pool and the monitor close
"""


@pytest.fixture
def service() -> Iterator[Callable[[str], int]]:
    """start(mode) runs SERVICE ("control" or "read-only") and returns its pid once ready."""
    started: list[subprocess.Popen[str]] = []

    def start(mode: str) -> int:
        process = subprocess.Popen(
            [sys.executable, "-c", SERVICE, mode], stdout=subprocess.PIPE, text=True, cwd=ROOT
        )
        started.append(process)
        assert process.stdout is not None
        assert process.stdout.readline() == "ready\n"
        return process.pid

    yield start
    for process in started:
        process.terminate()  # toolkit.run turns SIGTERM into cancellation: nothing is left
        try:
            process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
        leftovers = list(Path(tempfile.gettempdir()).glob(f"toolkit-monitor-{process.pid}-*"))
        assert not leftovers, f"the service's monitor left {leftovers}"


def _info(
    ident: int, name: str, awaits: tuple[int, ...] = (), stack: tuple[str, ...] = ()
) -> AsyncTaskInfo:
    return AsyncTaskInfo(ident, name, "pending", name, stack or (f"{name} (x.py:1)",), awaits)


def test_task_tree_nests_waited_tasks_under_the_last_frame_of_their_waiter() -> None:
    tasks = [
        _info(1, "main", awaits=(2, 3), stack=("main (x.py:1)", "TaskGroup.__aexit__ (t.py:2)")),
        _info(2, "a"),
        _info(3, "b"),
        _info(4, "alone"),
        _info(5, "ring-1", awaits=(6,)),
        _info(6, "ring-2", awaits=(5,)),
    ]
    lines = [line for line, _ in _attach.task_tree(tasks)]
    assert lines[:7] == [
        "├── (T) main",
        "│   └──  main (x.py:1)",
        "│       └──  TaskGroup.__aexit__ (t.py:2)",
        "│           ├── (T) a",
        "│           │   └──  a (x.py:1)",
        "│           └── (T) b",
        "│               └──  b (x.py:1)",
    ]
    assert "└── (T) alone" not in lines  # not last: the ring follows
    assert "├── (T) alone" in lines
    # Tasks that wait for each other have no root: each is still drawn, once.
    assert sum("(T) ring-" in line for line in lines) == 2
    ids = [ident for _, ident in _attach.task_tree(tasks) if ident is not None]
    assert sorted(ids) == [1, 2, 3, 4, 5, 6]


async def test_attach_without_a_ui_prints_the_services_workers_and_task_tree(
    service: Callable[[str], int], capsys: pytest.CaptureFixture[str]
) -> None:
    pid = service("read-only")
    await Commands(Registry()).attach(pid)  # returns None: nothing echoed after the table
    out = capsys.readouterr().out
    assert f"pid {pid}" in out
    assert "read-only" in out
    assert "svc-1" in out
    assert "time.sleep(120)" in out
    assert "(T) the-group" in out
    assert "(T) leaf-a" in out


async def test_attach_to_a_wrong_address_is_a_clear_error_at_the_call(tmp_path: Path) -> None:
    commands = Commands(Registry())
    with pytest.raises(TypeError, match=r"\(host, port\), a Unix socket path or a pid"):
        await commands.attach(True)
    with pytest.raises(TypeError, match=r"\(host, port\), a Unix socket path or a pid"):
        await commands.attach(3.5)  # type: ignore[arg-type]
    with pytest.raises(LookupError, match="no toolkit monitor of process 1 "):
        await commands.attach(1)
    with pytest.raises(PermissionError, match="takes a token"):
        await commands.attach("127.0.0.1:9")
    with pytest.raises(FileNotFoundError):
        await commands.attach(str(tmp_path / "nothing.sock"))


def test_tmux_attach_shows_workers_and_tasks_live_and_acts_with_control(
    tmux: Callable[[list[str]], Tmux], service: Callable[[str], int]
) -> None:
    pid = service("control")
    t = tmux(["--attach", str(pid)])
    t.wait_for(lambda lines: f"pid {pid}" in lines[0] and "control" in lines[0])
    t.wait_for(lambda lines: any("svc-1" in ln and "time.sleep(120)" in ln for ln in lines))
    t.keys("t")
    t.wait_for_text("(T) the-group")
    t.wait_for_text("(T) leaf-b")
    t.keys("t")
    t.wait_for(lambda lines: any("svc-1" in ln for ln in lines))
    t.keys("k")
    t.wait_for_text("? y/n")
    t.keys("y")
    t.wait_for_text("sent SIGKILL to svc-1")
    # The service's pool saw its worker die and started another.
    t.wait_for(lambda lines: any("svc-2" in ln for ln in lines))
    t.keys("+")
    t.wait_for_text("resized svc to 2")
    t.wait_for(lambda lines: any("svc-3" in ln for ln in lines))
    t.keys("q")
    t.wait_for_text("EXITED:0")


def test_tmux_attach_read_only_from_the_prompt(
    tmux: Callable[[list[str]], Tmux], service: Callable[[str], int]
) -> None:
    pid = service("read-only")
    t = tmux(["--no-uvloop"])
    t.wait_for(lambda lines: any(line.startswith(">>>") for line in lines))
    t.line(f"await attach({pid})")
    t.wait_for(lambda lines: f"pid {pid}" in lines[0] and "read-only" in lines[0])
    t.keys("k")
    t.wait_for_text("? y/n")
    t.keys("y")
    t.wait_for_text("read-only: this service's monitor was started without control=True")
    t.keys("-")
    t.wait_for_text("svc keeps at least one worker")
    t.keys("t")
    t.wait_for_text("(T) the-group")
    t.keys("q")
    t.wait_for(lambda lines: lines[-1].strip().startswith("asyncio"))  # the prompt's toolbar
    t.line("print('back', 6 * 7)")
    t.wait_for_text("back 42")


def test_console_program_without_a_terminal_prints_once(service: Callable[[str], int]) -> None:
    pid = service("read-only")
    command = [sys.executable, "-m", "playground", "--attach", str(pid)]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=60, cwd=ROOT, stdin=subprocess.DEVNULL
    )
    assert done.returncode == 0, done.stderr
    assert "svc-1" in done.stdout
    assert "(T) the-group" in done.stdout
    wrong = subprocess.run(
        [sys.executable, "-m", "playground", "--attach", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert wrong.returncode == 1
    assert "cannot attach to 1: no toolkit monitor of process 1" in wrong.stderr
