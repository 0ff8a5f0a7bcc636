"""Event: waiters block until one process sets the flag; one waits with a timeout."""

from __future__ import annotations

import time
from typing import Any

import toolkit
from playground.recipes._common import PACE


def wait_for_event(e: Any) -> None:
    print("wait_for_event: starting")
    e.sync.wait()
    print("wait_for_event: e.is_set() ->", e.is_set())


def wait_for_event_timeout(e: Any, t: float) -> None:
    print("wait_for_event_timeout: starting")
    e.sync.wait(t)
    print("wait_for_event_timeout: e.is_set() ->", e.is_set())


async def main(pace: float = PACE) -> None:
    e = toolkit.Event()
    w1 = toolkit.Process(target=wait_for_event, args=(e,), name="recipe-block", capture_output=True)
    w2 = toolkit.Process(
        target=wait_for_event_timeout, args=(e, pace), name="recipe-nonblock", capture_output=True
    )
    w1.start()
    w2.start()
    await toolkit.to_thread(time.sleep, pace * 3)
    e.set()
    print("main: event is set")
    await e.wait()  # already set: returns at once
    await w1.join()
    await w2.join()
