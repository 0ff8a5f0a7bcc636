"""Every recipe runs to its end (at pace 0) and shows what it is about."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from playground import recipes

_RUN_ALL = """
for name in recipes.ALL:
    print(f"== {name}")
    await recipes.get(name)(pace=0.0)
print("== end")
"""

# One line per recipe that only a correct run prints.
_EXPECTED = {
    "process_basics": "Child process end, exit code 0.",
    "pool_map": "squares: [0, 1, 4, 9, 16, 25, 36, 49, 64, 81, 100, 121]",
    "pool_apply_async": "All subprocesses done.",
    "pool_apply": "hello 3 from",
    "pool_dask": "squares on the cluster: [0, 1, 4, 9, 16, 25, 36, 49, 64, 81, 100, 121]",
    "queue_producer_consumer": "Get C from queue.",
    "joinable_queue": "every item is processed",
    "value_array": "counter: 20",
    "manager": "list: [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]",
    "pipe": "the child closed its end",
    "lock": "child 2 out",
    "rlock": "child: in twice",
    "semaphore": "most inside at once:",
    "condition": "parent: stage 1 is done",
    "event": "wait_for_event: e.is_set() -> True",
    "thread_pool": "8 calls of 0.0s on 4 threads",
    "futures": "wait(FIRST_COMPLETED): 1 done, 1 pending",
    "gil": "on 4 processes:",
}


def test_recipes_are_listed_once_each() -> None:
    modules = {p.stem for p in Path(recipes.__file__).parent.glob("[!_]*.py")}
    assert modules == set(recipes.ALL) == set(_EXPECTED)


def test_recipes_all_run_in_the_playground_namespace() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "playground", "-c", _RUN_ALL],
        capture_output=True,
        text=True,
        timeout=50,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    sections = result.stdout.split("== ")
    output = {s.split("\n", 1)[0]: s for s in sections[1:]}
    assert list(output) == [*recipes.ALL, "end"]
    for name, line in _EXPECTED.items():
        assert line in output[name], f"{name}:\n{output[name]}"
