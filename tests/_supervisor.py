"""Run an orphan-checking supervisor in a process group of its own and read its JSON report.

The supervisors (tests/_manager_helpers.py, _orphan_helpers.py, _fault_helpers.py)
make themselves child subreapers, so they must not run in the pytest process.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def supervise(
    code: str, *args: str, timeout: float, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run ``python -c code args...``; return the JSON it prints. Nothing it started survives."""
    supervisor = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,  # for `import tests`
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its group: everything it and its children start
    )
    try:
        out, err = supervisor.communicate(timeout=timeout)
    finally:
        # Nothing survives the test, whatever happened: the group's leftovers included.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(supervisor.pid, signal.SIGKILL)
        supervisor.wait()
    assert supervisor.returncode == 0, f"the supervisor failed:\n{out}\n{err}"
    report: dict[str, Any] = json.loads(out)
    return report
