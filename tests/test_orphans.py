"""Worker processes end with their parent, even a SIGKILLed one: no orphan is left.

Real processes: a script (written to tmp_path) starts two tasks on a pool or
executor; each task starts a grandchild (``sleep 60``), writes its pids to a
file, then holds its worker, sleeping or inside a C call that holds the GIL
for ~30 minutes. Once both run, the script prints its pid. A supervisor
process (a child subreaper, so that the orphans become its children:
``_orphan_helpers.check_orphans``) takes the script's descendants (workers,
grandchildren, the forkserver, the resource tracker), signals the script and
times how long they take to go. The pytest process itself is left as it is
(no subreaper setting), and the supervisor's whole process group is killed
at the end whatever happens.
"""

from __future__ import annotations

import collections
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from tests._supervisor import supervise

pytestmark = [
    pytest.mark.skipif(
        not sys.platform.startswith("linux"), reason="PR_SET_CHILD_SUBREAPER is Linux's"
    ),
    pytest.mark.timeout(60),
]

_ROOT = Path(__file__).resolve().parent.parent

# Takes (directory, kind, start method, how): kind is "pool", "executor" or
# "to_process" (the default start method: no method given), how is "sleep"
# or "gil" (_orphan_helpers.hold).
_SCRIPT = """
import asyncio
import concurrent.futures
import multiprocessing
import os
import sys

import toolkit
from tests._orphan_helpers import hold


async def say_when_started(directory, count):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while sum(not name.endswith(".tmp") for name in os.listdir(directory)) < count:
        if loop.time() > deadline:
            sys.exit("the tasks did not start in 20 s")
        await asyncio.sleep(0.005)
    print(os.getpid(), flush=True)


async def main(directory, kind, method, how):
    if kind == "pool":
        async with toolkit.Pool(2, context=method) as pool:
            tasks = asyncio.gather(*(pool.apply(hold, (directory, how)) for _ in range(2)))
            await say_when_started(directory, 2)
            await tasks
    elif kind == "executor":
        context = multiprocessing.get_context(method)
        executor = concurrent.futures.ProcessPoolExecutor(2, mp_context=context)
        async with toolkit.AsyncExecutor(executor) as facade:
            tasks = asyncio.gather(*(facade.run(hold, directory, how) for _ in range(2)))
            await say_when_started(directory, 2)
            await tasks
    else:
        tasks = asyncio.gather(*(toolkit.to_process(hold, directory, how) for _ in range(2)))
        await say_when_started(directory, 2)
        await tasks


if __name__ == "__main__":
    toolkit.run(main(*sys.argv[1:]))
"""

_SUPERVISE = (
    "import json, sys\n"
    "from tests._orphan_helpers import check_orphans\n"
    "print(json.dumps(check_orphans(*sys.argv[1:])))\n"
)


def _supervise(tmp_path: Path, signame: str, kind: str, method: str, how: str) -> dict[str, Any]:
    """Run check_orphans in a process (and process group) of its own; return its report."""
    script = tmp_path / "parent.py"
    script.write_text(_SCRIPT, encoding="utf-8")
    directory = tmp_path / "tasks"
    directory.mkdir()
    return supervise(
        _SUPERVISE,
        *(str(script), signame, str(directory), kind, method, how),
        timeout=45,
        env={**os.environ, "PYTHONPATH": str(_ROOT)},  # for the script's `import tests`
    )


def _check(report: dict[str, Any], method: str, limit: float) -> None:
    """Every descendant was there before the signal, and all went within limit seconds."""
    descendants = report["descendants"]
    details = json.dumps(descendants, indent=1) + "\n" + report["stderr"]
    roles = collections.Counter(d["role"] for d in descendants)
    assert roles["worker"] == 2, details
    assert roles["grandchild"] == 2, details
    assert roles["resource tracker"] == 1, details
    assert roles["forkserver"] == (1 if method == "forkserver" else 0), details
    assert report["gone_after"] is not None, f"still alive 5 s on: {report['left']}\n{details}"
    assert report["gone_after"] < limit, f"gone only after {report['gone_after']:.2f} s\n{details}"
    assert report["left"] == [], details


@pytest.mark.parametrize(
    ("method", "how"), [("forkserver", "gil"), ("forkserver", "sleep"), ("spawn", "sleep")]
)
def test_pool_workers_end_with_sigkilled_parent(tmp_path: Path, method: str, how: str) -> None:
    report = _supervise(tmp_path, "SIGKILL", "pool", method, how)
    _check(report, method, 1.0)


@pytest.mark.parametrize(
    ("method", "how"), [("forkserver", "gil"), ("forkserver", "sleep"), ("spawn", "sleep")]
)
def test_async_executor_workers_end_with_sigkilled_parent(
    tmp_path: Path, method: str, how: str
) -> None:
    report = _supervise(tmp_path, "SIGKILL", "executor", method, how)
    _check(report, method, 1.0)


def test_to_process_workers_end_with_sigkilled_parent(tmp_path: Path) -> None:
    report = _supervise(tmp_path, "SIGKILL", "to_process", "default", "sleep")
    _check(report, "forkserver", 1.0)  # the toolkit's default on Linux


def test_pool_workers_end_with_sigtermed_parent(tmp_path: Path) -> None:
    report = _supervise(tmp_path, "SIGTERM", "pool", "forkserver", "sleep")
    _check(report, "forkserver", 2.0)


def test_to_process_workers_end_with_sigtermed_parent(tmp_path: Path) -> None:
    report = _supervise(tmp_path, "SIGTERM", "to_process", "default", "sleep")
    _check(report, "forkserver", 2.0)
