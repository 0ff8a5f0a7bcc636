"""Issue 14, item 7: a blocked loop's toolbar names what blocks it (frame and task)."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from typing import TYPE_CHECKING

from playground import _views
from playground._health import Heartbeat
from tests.playground._vt import play, toolbar

if TYPE_CHECKING:
    from pathlib import Path

    from tests.playground._vt import Session


def test_heartbeat_names_the_frame_and_task_that_block_the_loop() -> None:
    loop = asyncio.new_event_loop()
    heartbeat = Heartbeat(loop)
    release = threading.Event()
    blocking = threading.Event()

    async def hold_the_loop() -> None:
        blocking.set()
        release.wait(30)  # a blocking call in a coroutine: the loop stops

    runner = threading.Thread(
        target=loop.run_until_complete,
        args=(asyncio.sleep(0.3),),  # beats first, so the heartbeat knows the loop's thread
        name="test-loop",
    )
    try:
        heartbeat.start()
        runner.start()
        loop.call_soon_threadsafe(lambda: loop.create_task(hold_the_loop(), name="holder"))
        assert blocking.wait(10)
        deadline = time.monotonic() + 10
        while (state := heartbeat.state()).blocked_for is None:
            assert time.monotonic() < deadline, "never seen blocked"
            time.sleep(0.02)
        line = hold_the_loop.__code__.co_firstlineno + 2
        assert state.blocked_in == (
            f"test_heartbeat_names_the_frame_and_task_that_block_the_loop.<locals>.hold_the_loop"
            f" (test_issue14_blocked.py:{line}) task holder"
        )
        text = "".join(f[1] for f in _views.toolbar(_toolbar_state(state.blocked_in), 300))
        assert f"asyncio BLOCKED 2.0s in {state.blocked_in} " in text
    finally:
        release.set()
        runner.join(10)
        loop.run_until_complete(loop.shutdown_asyncgens())
        heartbeat.stop()
        loop.close()


def _toolbar_state(blocked_in: str | None) -> _views.ToolbarState:
    return _views.ToolbarState(
        loop_name="asyncio",
        lag=0.0,
        blocked_for=2.0,
        running=None,
        running_for=None,
        workers={},
        queued=0,
        cpu=0.0,
        rss=0,
        blocked_in=blocked_in,
    )


def test_repl_blocked_toolbar_names_the_blocking_line(tmp_path: Path) -> None:
    gate = tmp_path / "go"

    def drive(s: Session) -> None:
        s.run(f"import os, time; gate = {str(gate)!r}")
        s.run("async def hog():\rx = 1\rwhile not os.path.exists(gate): time.sleep(0.01)\r")
        s.run("h = background(hog(), name='hogger')")
        s.wait_for(lambda lines: "BLOCKED" in toolbar(lines))
        # The input's number depends on the tests before: <playground-N>, line 3.
        where = re.compile(r"BLOCKED \d+\.\ds in hog \(<playground-\d+>:3\) task hogger")
        s.wait_for(lambda lines: bool(where.search(toolbar(lines))))
        gate.touch()
        s.wait_for(lambda lines: "lag" in toolbar(lines), timeout=10)
        s.type("\x04")

    assert play(drive, columns=140)[0] == 0
