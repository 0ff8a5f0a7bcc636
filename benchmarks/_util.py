"""Timing, loop-stall and memory helpers shared by the benchmarks."""

from __future__ import annotations

import asyncio
import os
import platform
import statistics
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable


def machine() -> str:
    """One line saying where the figures come from."""
    return (
        f"{os.cpu_count()} CPUs, {platform.machine()}, Linux {platform.release()}, "
        f"Python {sys.version.split()[0]}, {time.strftime('%Y-%m-%d')}"
    )


def loop_factories() -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    factories: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
        "asyncio": asyncio.new_event_loop
    }
    try:
        import uvloop
    except ImportError:
        return factories
    factories["uvloop"] = uvloop.new_event_loop
    return factories


async def rate(n: int, body: Callable[[], Awaitable[object]]) -> float:
    """Run body once; return n / seconds."""
    start = time.perf_counter()
    await body()
    return n / (time.perf_counter() - start)


def median(values: list[float]) -> float:
    return statistics.median(values)


class StallMeter:
    """A 1 ms ticker on the loop; the longest gap between ticks is the worst stall.

    Each gap is kept with when its tick came (seconds since the meter
    started): the map benchmark charts the stalls over time.
    """

    def __init__(self, period: float = 0.001) -> None:
        self._period = period
        self._gaps: list[float] = []
        self._times: list[float] = []
        self._task: asyncio.Task[None] | None = None
        self._running = False

    async def _tick(self) -> None:
        first = last = time.perf_counter()
        while self._running:
            await asyncio.sleep(self._period)
            now = time.perf_counter()
            self._gaps.append(now - last - self._period)
            self._times.append(now - first)
            last = now

    @property
    def period_ms(self) -> float:
        return self._period * 1e3

    def series_ms(self) -> tuple[list[float], list[float]]:
        """(tick times, stalls): every tick, in milliseconds."""
        return [t * 1e3 for t in self._times], [g * 1e3 for g in self._gaps]

    async def __aenter__(self) -> StallMeter:
        self._running = True
        self._task = asyncio.create_task(self._tick())
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._running = False
        assert self._task is not None
        await self._task

    @property
    def worst_ms(self) -> float:
        return max(self._gaps, default=0.0) * 1e3

    @property
    def p99_ms(self) -> float:
        if not self._gaps:
            return 0.0
        ordered = sorted(self._gaps)
        return ordered[int(0.99 * (len(ordered) - 1))] * 1e3


def table(title: str, header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=False)]
    lines = [f"### {title}", ""]
    lines.append("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |")
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        lines.append(
            "| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
        )
    return "\n".join(lines) + "\n"
