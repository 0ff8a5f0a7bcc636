"""Condition: stage 2 waits until stage 1 says its part is done."""

from __future__ import annotations

import time
from typing import Any

import toolkit
from playground.recipes._common import PACE


def stage_1(cond: Any, done: Any, pace: float) -> None:
    print("stage 1 starting")
    time.sleep(pace * 2)
    with cond.sync:
        done.value = 1
        print("stage 1 done: notifying")
        cond.sync.notify_all()


def stage_2(cond: Any, done: Any, name: str) -> None:
    with cond.sync:
        cond.sync.wait_for(lambda: done.value == 1)
        print(f"{name}: stage 2 running")


async def main(pace: float = PACE) -> None:
    cond, done = toolkit.Condition(), toolkit.Value("i", 0)
    second = [
        toolkit.Process(
            target=stage_2,
            args=(cond, done, f"s2-{i}"),
            name=f"recipe-stage2-{i}",
            capture_output=True,
        )
        for i in range(2)
    ]
    for p in second:
        p.start()
    first = toolkit.Process(
        target=stage_1, args=(cond, done, pace), name="recipe-stage1", capture_output=True
    )
    async with first, cond:  # the parent waits too, without blocking its loop
        await cond.wait_for(lambda: done.value == 1)
        print("parent: stage 1 is done")
    for p in second:
        await p.join()
