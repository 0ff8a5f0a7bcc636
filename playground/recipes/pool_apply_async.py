"""Pool.apply_async: submit without waiting, collect the handles' results later."""

from __future__ import annotations

import os
import time

import toolkit
from playground.recipes._common import PACE


def long_time_task(name: int, pace: float) -> tuple[int, int]:
    time.sleep(pace * (1 + name % 3))
    return name, os.getpid()


async def main(pace: float = PACE) -> None:
    async with toolkit.Pool(4, name="recipe-async") as pool:
        handles = [pool.apply_async(long_time_task, (i, pace)) for i in range(5)]
        print("Waiting for all subprocesses done...")
        for handle in handles:
            name, pid = await handle.get()
            print(f"Task {name} ran in process {pid}")
        print("All subprocesses done.")
