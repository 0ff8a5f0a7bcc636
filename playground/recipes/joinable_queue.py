"""JoinableQueue: the producer awaits until the consumer marked every item done."""

from __future__ import annotations

import time

import toolkit
from playground.recipes._common import PACE


def consumer(q: toolkit.JoinableQueue[str | None], pace: float) -> None:
    while (item := q.sync.get()) is not None:
        time.sleep(pace)  # the work
        print(f"consumer done with {item}")
        q.task_done()
    q.task_done()


async def main(pace: float = PACE) -> None:
    q: toolkit.JoinableQueue[str | None] = toolkit.JoinableQueue()
    async with toolkit.Process(
        target=consumer, args=(q, pace), name="recipe-consumer", capture_output=True
    ):
        for i in range(4):
            await q.put(f"item {i}")
            print(f"producer put item {i}")
        await q.join()  # until task_done() was called once per item
        print("every item is processed")
        await q.put(None)
