"""What the Dask tests share: stopping the command-line programs they start."""

from __future__ import annotations

import contextlib
import signal
import subprocess


def stop_programs(*processes: subprocess.Popen[bytes]) -> None:
    """SIGTERM each (workers first: they leave their scheduler cleanly), then SIGKILL laggards."""
    for process in processes:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
