"""``python -m toolkit``: what this machine runs the toolkit with, for a bug report.

Prints the platform, Python (and whether its build is free-threaded), the
event loop ``toolkit.run`` would use, the default start method, the readiness
backend in use and those the platform offers, and the versions of the
libraries the toolkit leans on. Nothing is started: no loop, no process.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
import sysconfig

import toolkit
from toolkit._loop import uvloop_available

__all__ = ["main", "report"]

_LIBRARIES = ("uvloop", "anyio", "prompt_toolkit", "psutil", "cloudpickle", "distributed")


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name.replace("_", "-"))
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def report() -> list[tuple[str, str]]:
    """The report's lines, as (label, value)."""
    free_threaded = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    gil = ""
    if free_threaded:
        is_enabled = getattr(sys, "_is_gil_enabled", None)
        gil = " (free-threaded build, GIL " + (
            "enabled)" if is_enabled is None or is_enabled() else "disabled)"
        )
    try:
        backend = toolkit.get_backend()
    except ValueError as exc:  # a TOOLKIT_BACKEND this platform cannot run: say so
        backend = f"none: {exc}"
    forced = os.environ.get("TOOLKIT_BACKEND")
    return [
        ("toolkit", toolkit.__version__),
        ("platform", f"{platform.platform()} ({sys.platform}, {platform.machine()})"),
        ("python", f"{platform.python_implementation()} {platform.python_version()}{gil}"),
        ("cpus", f"{os.cpu_count()} (this process may use {_usable_cpus()})"),
        ("event loop", "uvloop" if uvloop_available() else "asyncio"),
        ("start method", toolkit.default_start_method()),
        ("backend", backend + (f" (forced: TOOLKIT_BACKEND={forced})" if forced else "")),
        ("backends here", ", ".join(toolkit.available_backends())),
        *((name, _version(name)) for name in _LIBRARIES),
    ]


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def main() -> None:
    lines = report()
    width = max(len(label) for label, _ in lines)
    for label, value in lines:
        sys.stdout.write(f"{label:<{width}}  {value}\n")


if __name__ == "__main__":
    main()
