"""What a monitor client flooding requests costs a service: its loop's stalls and throughput.

The service runs sequential ``await pool.apply(abs, (-1,))`` on a Pool(2)
beside an idle ThreadPool(32) (so that each snapshot has 34 workers to
describe), with a 1 ms ticker measuring its loop's stalls. Three settings,
rounds interleaved, the median of the rounds reported:

* no client (the baseline);
* one client in another process pipelining ``snapshot`` requests as fast
  as it can, against the monitor as shipped (``rate=20`` a second);
* the same client against a monitor with no rate limit (``rate=1e9``): what
  the limit buys. The old monitor (one line per request, no yield between
  requests) is not kept: it held the loop for seconds under this client.

There is no other library's monitor to run beside it: the baseline is the
service with nobody attached.
"""

from __future__ import annotations

import asyncio
import sys
import time

import toolkit
from benchmarks._report import OTHER, Report
from benchmarks._util import StallMeter, loop_factories, median

SECONDS = 1.5
ROUNDS = 3

# The flooding client: blocking sockets in its own process, 64 requests in
# flight at a time, for ever (killed at the end of the round).
_FLOODER = r"""
import socket, struct, sys
from toolkit._monitor import _protocol
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
sock.connect(sys.argv[1])
sock.sendall(_protocol.MAGIC + bytes(32))
stream = sock.makefile("rb")
def frame():
    (size,) = struct.unpack("!I", stream.read(4))
    return stream.read(size)
frame()
print("attached", flush=True)
batch = _protocol.frame({"op": "snapshot"}) * 64
while True:
    sock.sendall(batch)
    for _ in range(64):
        frame()
"""


async def _service(pool: toolkit.Pool, seconds: float) -> tuple[float, float, float]:
    """(calls a second, worst stall ms, p99 stall ms) of sequential applies for seconds."""
    calls = 0
    async with StallMeter() as meter:
        deadline = time.perf_counter() + seconds
        started = time.perf_counter()
        while time.perf_counter() < deadline:
            await pool.apply(abs, (-1,))
            calls += 1
        elapsed = time.perf_counter() - started
    return calls / elapsed, meter.worst_ms, meter.p99_ms


async def _round(
    pool: toolkit.Pool, rate: float | None, seconds: float
) -> tuple[float, float, float]:
    if rate is None:
        return await _service(pool, seconds)
    async with toolkit.monitor.serve(rate=rate) as server:
        flooder = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _FLOODER, str(server.address), stdout=asyncio.subprocess.PIPE
        )
        try:
            assert flooder.stdout is not None
            await asyncio.wait_for(flooder.stdout.readline(), 30)
            return await _service(pool, seconds)
        finally:
            flooder.kill()
            await flooder.wait()


SETTINGS = {
    "no client": None,
    "flooding client, rate=20 (default)": 20.0,
    "flooding client, no rate limit": 1e9,
}


async def _measure(rounds: int, seconds: float) -> dict[str, list[tuple[float, float, float]]]:
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in SETTINGS}
    async with toolkit.Pool(2, name="service") as pool, toolkit.ThreadPool(32, name="idle"):
        for _ in range(50):
            await pool.apply(abs, (-1,))  # warm
        for _ in range(rounds):
            for name, rate in SETTINGS.items():
                results[name].append(await _round(pool, rate, seconds))
    return results


def run(quick: bool = False) -> Report:
    report = Report(
        "monitor",
        "Monitor under a flooding client (sequential Pool(2).apply; 34 workers in each snapshot)",
        ["loop", "setting", "applies/s", "vs no client", "worst stall ms", "p99 stall ms"],
        [],
        quick=quick,
    )
    for loop_name, factory in loop_factories().items():
        with asyncio.Runner(loop_factory=factory) as runner:
            results = runner.run(_measure(1 if quick else ROUNDS, 0.5 if quick else SECONDS))
        # Every round's (applies/s, worst stall ms, p99 stall ms), by setting.
        report.figures[loop_name] = results
        base = median([r[0] for r in results["no client"]])
        for name, values in results.items():
            throughput = median([v[0] for v in values])
            report.rows.append(
                [
                    loop_name,
                    name,
                    f"{throughput:,.0f}",
                    f"{throughput / base:.2f}x",
                    f"{max(v[1] for v in values):.1f}",
                    f"{median([v[2] for v in values]):.2f}",
                ]
            )
            if SETTINGS[name] is not None:
                # No other library's monitor: the service's own throughput with nobody attached.
                report.ratio(loop_name, f"{name} vs no client", OTHER, throughput / base)
    return report
