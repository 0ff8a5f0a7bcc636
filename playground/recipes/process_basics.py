"""Process basics: start a child process, await its end, read its exit code."""

from __future__ import annotations

import os
import time

import toolkit
from playground.recipes._common import PACE, who


def run_proc(name: str, pace: float) -> None:
    print(f"Run child process {name}: {who()}")
    time.sleep(pace * 4)


async def main(pace: float = PACE) -> None:
    print(f"Parent process {os.getpid()}.")
    p = toolkit.Process(
        target=run_proc, args=("test", pace), name="recipe-child", capture_output=True
    )
    print("Child process will start.")
    p.start()
    await p.join()  # the loop (and the prompt) keep running meanwhile
    print(f"Child process end, exit code {p.exitcode}.")
