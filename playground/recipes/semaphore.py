"""Semaphore guarding a resource: at most two of five processes use it at once."""

from __future__ import annotations

import time
from typing import Any

import toolkit
from playground.recipes._common import PACE


def use_resource(sem: Any, inside: Any, peak: Any, i: int, pace: float) -> None:
    with sem.sync:
        with inside.get_lock().sync:
            inside.value += 1
            peak.value = max(peak.value, inside.value)
            print(f"worker {i} acquired the resource ({inside.value} inside)")
        time.sleep(pace * 2)
        with inside.get_lock().sync:
            inside.value -= 1
        print(f"worker {i} released it")


async def main(pace: float = PACE) -> None:
    sem = toolkit.Semaphore(2)
    inside, peak = toolkit.Value("i", 0), toolkit.Value("i", 0)
    children = [
        toolkit.Process(
            target=use_resource,
            args=(sem, inside, peak, i, pace),
            name=f"recipe-sem-{i}",
            capture_output=True,
        )
        for i in range(5)
    ]
    for p in children:
        p.start()
    for p in children:
        await p.join()
    print("most inside at once:", peak.value)  # 2
