"""Pipe: two connected ends; the parent awaits the child's messages."""

from __future__ import annotations

import time
from typing import Any

import toolkit
from playground.recipes._common import PACE


def child(conn: Any, pace: float) -> None:
    for word in ["hello", "from", "the", "child"]:
        conn.sync.send(word)
        time.sleep(pace)
    print("child got:", conn.sync.recv())
    conn.close()


async def main(pace: float = PACE) -> None:
    here, there = toolkit.Pipe()
    async with toolkit.Process(
        target=child, args=(there, pace), name="recipe-pipe", capture_output=True
    ):
        there.close()  # the child has its own copy
        for _ in range(4):
            print("parent got:", await here.recv())
        await here.send("hello from the parent")
        try:
            await here.recv()
        except EOFError:
            print("the child closed its end")
    here.close()
