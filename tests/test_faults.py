"""Fault injection: a busy service killed at random moments leaves nothing, and starts again.

Real processes: a service script (written to tmp_path) runs under
``toolkit.run``: a ``toolkit.Pool(2)`` with one long task and a stream of
short maps, two long ``toolkit.to_process`` calls, and a ``toolkit.Manager``
on a fixed TCP port whose dict it updates each round. It prints "ready"
once all of that runs. A supervisor process (a child subreaper, so that the
orphans become its children: ``_fault_helpers.run_faults``) kills it 20
times, each time at a random moment after "ready", with SIGKILL, SIGTERM
and SIGINT in a seeded random order (each at least 6 times), restarting it
on the same port each time, and once more after the last kill. After each
kill: nothing of the tree is left within 3 s, its stderr has no "leaked
semaphore" warning, the exit status is the signal's (SIGTERM: 143, SIGINT:
a KeyboardInterrupt), and the next start on the port succeeds. The pytest
process itself is left as it is (no subreaper setting), and the
supervisor's whole process group is killed at the end whatever happens.

The seed is random; TOOLKIT_FAULT_SEED=<n> replays a plan (the signals and
delays, not the timing of the processes).
"""

from __future__ import annotations

import collections
import os
import random
import socket
import sys
from pathlib import Path
from typing import Any

import pytest

from tests._fault_helpers import GONE_TIMEOUT, SIGNALS, expected_exit
from tests._supervisor import supervise

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="PR_SET_CHILD_SUBREAPER is Linux's"
)

_ROOT = Path(__file__).resolve().parent.parent

# Takes the port. Prints "ready <json: pid -> role>" once the pool's long task,
# its first map, both to_process calls and the manager all run.
_SERVICE = """
import asyncio
import faulthandler
import json
import multiprocessing.forkserver
import multiprocessing.resource_tracker
import os
import signal
import sys
import time

import toolkit
import toolkit.inspect


def to_process_pool():
    for pool in toolkit.inspect.snapshot().pools:
        if pool.stats.name == "to_process":
            return pool
    return None


def all_busy(pool):
    default = to_process_pool()
    return (
        pool.stats().busy >= 1
        and default is not None
        and default.stats.busy >= min(2, default.stats.size)
    )


def roles(manager, pool):
    named = {os.getpid(): "service", manager.pid: "manager server"}
    named.update((w.pid, "pool worker") for w in pool.workers if w.pid is not None)
    default = to_process_pool()
    if default is not None:
        named.update((w.pid, "to_process worker") for w in default.workers if w.pid is not None)
    forkserver = getattr(multiprocessing.forkserver._forkserver, "_forkserver_pid", None)
    tracker = getattr(multiprocessing.resource_tracker._resource_tracker, "_pid", None)
    if forkserver is not None:
        named[forkserver] = "forkserver"
    if tracker is not None:
        named[tracker] = "resource tracker"
    return {str(pid): role for pid, role in named.items()}


async def main(port):
    async with toolkit.Manager(address=("127.0.0.1", port), authkey=b"k") as m:
        shared = await m.dict(rounds=0)
        async with toolkit.Pool(2) as pool:
            background = [
                pool.apply(time.sleep, (30,)),
                asyncio.ensure_future(toolkit.to_process(time.sleep, 30)),
                asyncio.ensure_future(toolkit.to_process(time.sleep, 30)),
            ]
            await pool.map(time.sleep, [0.05] * 4)
            await shared.setitem("rounds", 1)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 20
            while not all_busy(pool):
                if loop.time() > deadline:
                    sys.exit("the background tasks did not start in 20 s")
                await asyncio.sleep(0.005)
            print("ready", json.dumps(roles(m, pool)), flush=True)
            rounds = 1
            while True:
                await pool.map(time.sleep, [0.05] * 4)
                rounds += 1
                await shared.setitem("rounds", rounds)
                assert await shared.get("rounds") == rounds


if __name__ == "__main__":
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # the supervisor's probe when stuck
    toolkit.run(main(int(sys.argv[1])))
"""

_SUPERVISE = (
    "import json, sys\n"
    "from tests._fault_helpers import run_faults\n"
    "print(json.dumps(run_faults(*sys.argv[1:])))\n"
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _supervise(service: Path, port: int, seed: int) -> dict[str, Any]:
    """Run run_faults in a process (and process group) of its own; return its report."""
    return supervise(_SUPERVISE, str(service), str(port), str(seed), timeout=100)


def _statuses(records: list[dict[str, Any]]) -> str:
    """The exit statuses seen, per signal: "SIGKILL: -9 x7; SIGTERM: 143 x7; ..."."""
    seen: dict[str, collections.Counter[Any]] = {name: collections.Counter() for name in SIGNALS}
    for record in records:
        seen[record["signal"]][record.get("exit")] += 1
    return "; ".join(
        f"{name}: " + (", ".join(f"{code} x{n}" for code, n in counter.items()) or "-")
        for name, counter in seen.items()
    )


def _explain(record: dict[str, Any], report: dict[str, Any]) -> str:
    """One failed start or kill, with everything needed to understand it."""
    if record["final"]:
        where = "the final start (port check), stopped with SIGTERM"
    else:
        where = f"iteration {record['index']}/20: {record['signal']}"
        where += f" {record['delay']:.3f} s after ready"
    lines = [f"--- {where} (seed {report['seed']}, port {report['port']})"]
    lines += [f"  problem: {problem}" for problem in record["problems"]]
    lines.append(
        f"  start {record.get('start_seconds')} s, exit {record.get('exit')} "
        f"(expected {expected_exit(record['signal'])}), exited after "
        f"{record.get('exited_after')} s, tree gone after {record.get('gone_after')} s"
    )
    if record.get("before"):
        lines.append("  the tree before the signal:")
        lines += [f"    {process}" for process in record["before"]]
    if record.get("left"):
        lines.append(f"  left {GONE_TIMEOUT:.0f} s after the signal (then SIGKILLed):")
        lines += [f"    {process}" for process in record["left"]]
    if record.get("left_when_killed"):
        lines.append(f"  would not die even by SIGKILL: {record['left_when_killed']}")
    lines.append("  stderr (tail):")
    lines += [f"    | {line}" for line in record.get("stderr", "").splitlines()[-60:]]
    return "\n".join(lines)


@pytest.mark.timeout(120)
def test_service_killed_at_random_leaves_nothing(tmp_path: Path) -> None:
    service = tmp_path / "service.py"
    service.write_text(_SERVICE, encoding="utf-8")
    seed = int(os.environ.get("TOOLKIT_FAULT_SEED") or random.randrange(2**32))
    report = _supervise(service, _free_port(), seed)
    records: list[dict[str, Any]] = report["records"]
    kills = collections.Counter(r["signal"] for r in records if not r["final"])
    assert len(records) == 21, f"only {len(records)} starts of 21 ran"
    assert all(kills[name] >= 6 for name in SIGNALS), kills
    failed = [record for record in records if record["problems"]]
    if failed:
        pytest.fail(
            f"{len(failed)} of {len(records)} starts failed (seed {seed}, "
            f"{report['seconds']} s); exit statuses: {_statuses(records)}\n"
            + "\n".join(_explain(record, report) for record in failed),
            pytrace=False,
        )
