"""Queue: a writer process puts items, the parent reads them without blocking the loop."""

from __future__ import annotations

import time

import toolkit
from playground.recipes._common import PACE, who


def write(q: toolkit.Queue[str | None], pace: float) -> None:
    print(f"Process to write: {who()}")
    for value in ["A", "B", "C"]:
        print(f"Put {value} to queue...")
        q.sync.put(value)
        time.sleep(pace)
    q.sync.put(None)  # no more


async def main(pace: float = PACE) -> None:
    q: toolkit.Queue[str | None] = toolkit.Queue()
    async with toolkit.Process(
        target=write, args=(q, pace), name="recipe-writer", capture_output=True
    ):
        while (value := await q.get()) is not None:
            print(f"Get {value} from queue.")
