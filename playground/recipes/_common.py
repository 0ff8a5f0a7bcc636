"""What the recipes share: the pace a person can watch at, and a worker's own name."""

from __future__ import annotations

import multiprocessing
import os

# Seconds of pretend work per step: slow enough to watch in top(); tests pass 0.
PACE = 0.5


def who() -> str:
    """'Process-3 (pid 1234)': the process running this, as top() lists it."""
    return f"{multiprocessing.current_process().name} (pid {os.getpid()})"
