"""RLock: the holder may take it again (per task here, per thread in a child)."""

from __future__ import annotations

import asyncio
from typing import Any

import toolkit
from playground.recipes._common import PACE


async def log(rlock: toolkit.RLock, who: str, message: str) -> None:
    async with rlock:  # the task holding it gets in again
        print(f"{who}: {message}")


async def transfer(rlock: toolkit.RLock, who: str, pace: float) -> None:
    async with rlock:
        await log(rlock, who, "step 1")
        await asyncio.sleep(pace)  # the other task waits: it does not own the lock
        await log(rlock, who, "step 2")


def child_transfer(rlock: Any) -> None:
    with rlock.sync, rlock.sync:
        print("child: in twice")


async def main(pace: float = PACE) -> None:
    rlock = toolkit.RLock()
    await asyncio.gather(transfer(rlock, "task A", pace), transfer(rlock, "task B", pace))
    async with toolkit.Process(
        target=child_transfer, args=(rlock,), name="recipe-rlock", capture_output=True
    ):
        pass
