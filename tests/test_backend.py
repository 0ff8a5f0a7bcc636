"""Readiness backends (toolkit/_core/_backend.py): the choice, forcing one, and the portable path.

The other suites run under each backend in CI (``TOOLKIT_BACKEND=posix`` and
``threads`` over the IPC, pool, executor and manager tests, in .ci/run). Here:
what chooses, what forcing does, and a Linux with its Linux-only parts
hidden, where the portable backend must be chosen and work end to end.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import toolkit
from toolkit._core import _backend

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def restore_backend() -> Iterator[None]:
    """Put the process's backend back as it was (TOOLKIT_BACKEND included)."""
    before = os.environ.get("TOOLKIT_BACKEND")
    yield
    toolkit.set_backend(before)


def _run(
    code: str, env: dict[str, str] | None = None, *module: str
) -> subprocess.CompletedProcess[str]:
    """Run code (or ``-m module``) in a fresh interpreter, with env added."""
    return subprocess.run(
        [sys.executable, *module] if module else [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
        env={**os.environ, **(env or {})},
    )


def test_backend_on_linux_is_the_fastest_and_all_three_are_there() -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("Linux only")
    out = _run(
        "import toolkit; print(toolkit.get_backend(), *toolkit.available_backends())",
        {"TOOLKIT_BACKEND": ""},
    )
    assert out.stdout.split() == ["linux", "linux", "posix", "threads"], out.stderr


def test_backend_choice_loads_no_module_the_backend_does_not_need() -> None:
    code = (
        "import sys, toolkit, playground\n"
        "assert toolkit.get_backend() == 'linux'\n"
        "print(*[m for m in ('fcntl', 'termios') if m in sys.modules])\n"
    )
    if not sys.platform.startswith("linux"):
        pytest.skip("Linux only")
    out = _run(code, {"TOOLKIT_BACKEND": ""})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


@pytest.mark.parametrize("name", ["nonsense", "", "LINUX ", 3, None])
def test_set_backend_refuses_what_is_not_a_backend(name: object, restore_backend: None) -> None:
    if name is None:
        toolkit.set_backend(None)  # None is "automatic again": accepted
        assert toolkit.get_backend() in _backend.BACKENDS
        return
    with pytest.raises(ValueError, match="unknown backend"):
        toolkit.set_backend(name)  # type: ignore[arg-type]


def test_an_unknown_toolkit_backend_is_said_at_the_first_wait() -> None:
    code = (
        "import asyncio, toolkit\n"
        "async def main():\n"
        "    q = toolkit.Queue()\n"
        "    await q.get(timeout=0.01)\n"
        "asyncio.run(main())\n"
    )
    out = _run(code, {"TOOLKIT_BACKEND": "kqueue"})
    assert out.returncode == 1
    assert "TOOLKIT_BACKEND=kqueue: unknown backend 'kqueue'" in out.stderr


def test_a_backend_the_platform_lacks_is_refused() -> None:
    if "posix" not in toolkit.available_backends():
        with pytest.raises(ValueError, match="cannot run here"):
            toolkit.set_backend("posix")
        return
    code = "import select; del select.epoll\nimport toolkit\ntoolkit.set_backend('linux')\n"
    out = _run(code)
    assert out.returncode == 1
    assert "the 'linux' backend cannot run here" in out.stderr


def test_pipes_as_handles_run_the_threads_backend_end_to_end() -> None:
    """TOOLKIT_HANDLES=1: the Windows path (no descriptor reads), here."""
    code = (
        "import asyncio, threading, toolkit\n"
        "async def main():\n"
        "    q = toolkit.Queue()\n"
        "    before = threading.active_count()\n"
        "    getters = [asyncio.ensure_future(q.get()) for _ in range(2000)]\n"
        "    await asyncio.sleep(0.05)\n"
        "    extra = threading.active_count() - before\n"
        "    for i in range(2000):\n"
        "        q.put_nowait(i)\n"
        "    got = await asyncio.wait_for(asyncio.gather(*getters), 60)\n"
        "    a, b = toolkit.Pipe()\n"
        "    async with a, b:\n"
        "        _, big = await asyncio.gather(a.send('x' * 300_000), b.recv())\n"
        "    e = toolkit.Event()\n"
        "    waiter = asyncio.ensure_future(e.wait())\n"
        "    await asyncio.sleep(0.01)\n"
        "    e.set()\n"
        "    await asyncio.wait_for(waiter, 10)\n"
        "    print(toolkit.get_backend(), *toolkit.available_backends(), extra,\n"
        "          sorted(got) == list(range(2000)), len(big))\n"
        "asyncio.run(main())\n"
    )
    out = _run(code, {"TOOLKIT_HANDLES": "1", "TOOLKIT_BACKEND": ""})
    assert out.returncode == 0, out.stderr
    backend, available, extra, whole, size = out.stdout.split()
    assert (backend, available, whole, size) == ("threads", "threads", "True", "300000"), out.stderr
    # The queue's feeder and one helper reading for the 2,000 getters (and the
    # helper threads' own cache), never a thread per getter.
    assert int(extra) <= 3, out.stdout


def test_set_backend_reaches_the_children(restore_backend: None) -> None:
    # Through the environment: a pool's workers and their parent watch follow it.
    code = (
        "import asyncio, toolkit\n"
        "async def main():\n"
        "    async with toolkit.Pool(1) as pool:\n"
        "        print(toolkit.get_backend(), await pool.apply(toolkit.get_backend))\n"
        "if __name__ == '__main__':\n"
        "    toolkit.set_backend('threads')\n"
        "    asyncio.run(main())\n"
    )
    out = _run(code, {"TOOLKIT_BACKEND": ""})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["threads", "threads"]


def test_python_m_toolkit_reports_the_backend_for_a_bug_report() -> None:
    forced = {"TOOLKIT_BACKEND": "posix"} if sys.platform.startswith("linux") else {}
    out = _run("", forced, "-m", "toolkit")
    assert out.returncode == 0, out.stderr
    lines = dict(line.split(None, 1) for line in out.stdout.splitlines() if line.strip())
    assert lines["toolkit"] == toolkit.__version__
    assert lines["python"].startswith(f"CPython {sys.version.split()[0]}")
    assert lines["start"].startswith("method")  # "start method  forkserver"
    assert "backends here" in out.stdout
    if sys.platform.startswith("linux"):
        assert lines["backend"] == "posix (forced: TOOLKIT_BACKEND=posix)"


# --- Linux with its Linux-only parts hidden ----------------------------------------------------

# Loaded by every interpreter of the run (the parent, the forkserver, spawned
# workers) through PYTHONPATH: no epoll, no preadv, no pidfds, no /proc.
_HIDE_LINUX = """
import builtins, io, os, select

for name in ("epoll", "EPOLLIN", "EPOLLONESHOT"):
    if hasattr(select, name):
        delattr(select, name)
for name in ("preadv", "RWF_NOWAIT", "pidfd_open"):
    if hasattr(os, name):
        delattr(os, name)

_open = builtins.open


def _no_proc(file, *args, **kwargs):
    if isinstance(file, (str, bytes, os.PathLike)) and os.fsdecode(file).startswith("/proc"):
        raise PermissionError(13, "hidden in this test", os.fsdecode(file))
    return _open(file, *args, **kwargs)


builtins.open = io.open = _no_proc
"""

_END_TO_END = """
import asyncio, os, sys
import toolkit
from tests import _helpers


async def main():
    assert toolkit.get_backend() == "posix", toolkit.get_backend()
    assert not hasattr(os, "preadv")
    # Queue and Pipe across a process, an Event, a Lock.
    q = toolkit.Queue()
    child = toolkit.Process(target=_helpers.produce_sync, args=(q, 100, 70_000))
    child.start()
    got = [await q.get(timeout=20) for _ in range(100)]
    await child.join()
    assert len(got) == 100 and child.exitcode == 0
    parent_end, child_end = toolkit.Pipe()
    child = toolkit.Process(target=_helpers.echo_sync, args=(child_end, 50))
    child.start()
    for i in range(50):
        await parent_end.send(i)
        assert await parent_end.recv() == 2 * i
    await child.join()
    event = toolkit.Event()
    child = toolkit.Process(target=_helpers.set_event, args=(event,))
    child.start()
    assert await event.wait(20)
    await child.join()
    lock = toolkit.Lock()
    async with lock:
        assert not await lock.acquire(timeout=0.01)
    # A pool: results, a crash named, a timeout that kills.
    async with toolkit.Pool(2) as pool:
        assert await pool.map(_helpers.square, range(200)) == [i * i for i in range(200)]
        with pytest_raises(toolkit.WorkerDiedError):
            await pool.apply(os._exit, (3,))
        with pytest_raises(toolkit.TaskTimeoutError):
            await pool.apply(_helpers.sleep_then, (30,), timeout=0.3)
        assert await pool.apply(_helpers.square, (7,)) == 49
    # A manager, to_thread and to_process.
    async with toolkit.Manager() as manager:
        shared = await manager.dict()
        await shared.update(a=1)
        assert await shared.get("a") == 1
    assert await toolkit.to_thread(sum, [1, 2]) == 3
    assert await toolkit.to_process(abs, -4) == 4
    await toolkit.shutdown_default_executors()
    print("END TO END OK")


class pytest_raises:
    def __init__(self, kind):
        self.kind = kind

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        assert kind is not None and issubclass(kind, self.kind), (kind, exc)
        return True


if __name__ == "__main__":
    toolkit.run(main())
"""


@pytest.fixture
def hidden_linux(tmp_path: Path) -> dict[str, str]:
    if not sys.platform.startswith("linux"):
        pytest.skip("hides the Linux-only modules of Linux")
    (tmp_path / "sitecustomize.py").write_text(_HIDE_LINUX)
    path = os.pathsep.join([str(tmp_path), str(ROOT), os.environ.get("PYTHONPATH", "")])
    return {"PYTHONPATH": path, "TOOLKIT_BACKEND": ""}


def test_hidden_linux_chooses_the_portable_backend(hidden_linux: dict[str, str]) -> None:
    code = (
        "import select, sys, toolkit\n"
        "assert not hasattr(select, 'epoll')\n"
        "print(toolkit.get_backend(), *toolkit.available_backends())\n"
    )
    out = _run(code, hidden_linux)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["posix", "posix", "threads"]


def test_hidden_linux_works_end_to_end(hidden_linux: dict[str, str], tmp_path: Path) -> None:
    script = tmp_path / "end_to_end.py"
    script.write_text(_END_TO_END)
    out = subprocess.run(
        [sys.executable, str(script)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=100,
        env={**os.environ, **hidden_linux},
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "END TO END OK" in out.stdout


def test_hidden_linux_playground_runs_a_statement(hidden_linux: dict[str, str]) -> None:
    code = textwrap.dedent(
        """
        import toolkit
        print("backend", toolkit.get_backend())
        print("result", await toolkit.to_process(abs, -5))
        await toolkit.shutdown_default_executors()
        """
    )
    out = subprocess.run(
        [sys.executable, "-m", "playground", "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=100,
        env={**os.environ, **hidden_linux},
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "backend posix" in out.stdout
    assert "result 5" in out.stdout
