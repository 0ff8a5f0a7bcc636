"""Lock: one holder at a time, across processes and the parent's tasks."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import toolkit
from playground.recipes._common import PACE


def child_work(lock: Any, name: str, pace: float) -> None:
    with lock.sync:
        print(f"{name} in")
        time.sleep(pace)
        print(f"{name} out")


async def task_work(lock: toolkit.Lock, name: str, pace: float) -> None:
    async with lock:  # waits without blocking the loop
        print(f"{name} in")
        await asyncio.sleep(pace)
        print(f"{name} out")


async def main(pace: float = PACE) -> None:
    lock = toolkit.Lock()
    children = [
        toolkit.Process(
            target=child_work,
            args=(lock, f"child {i}", pace),
            name=f"recipe-lock-{i}",
            capture_output=True,
        )
        for i in range(3)
    ]
    for p in children:
        p.start()
    await asyncio.gather(*(task_work(lock, f"task {i}", pace) for i in range(2)))
    for p in children:
        await p.join()
