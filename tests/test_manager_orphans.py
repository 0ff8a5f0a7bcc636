"""A manager's server ends with its parent, even a SIGKILLed one, and frees its fixed port.

Real processes: a service script serves a manager on a fixed TCP port; a
supervisor process (a child subreaper, so that the orphans become its
children: ``_manager_helpers.check_orphans``) kills the service, times the
end of the server and of the process the server started, restarts the
service on the same port, and stops it. The pytest process itself is left
as it is (no subreaper setting), and the supervisor's whole process group
is killed at the end whatever happens.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path
from typing import Any

import pytest

from tests._supervisor import supervise

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="PR_SET_CHILD_SUBREAPER is Linux's"
)

_ROOT = Path(__file__).resolve().parent.parent

# Takes (start method, port, "child" or "plain"). With "child", its server starts
# a child of its own (a Sleeper), which must end with it when the parent is
# killed. Prints the server's pid (and the child's) once served.
_SERVICE = """
import asyncio
import multiprocessing.util
import subprocess
import sys

import toolkit


class Sleeper:
    def __init__(self):
        self.process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        # An orderly shutdown leaves the server's children alone (as the
        # stdlib's): this one goes at the server's orderly exit by itself, say
        # when toolkit.run shuts down on SIGTERM. Not when the server is ended
        # by its parent's death (os._exit): then only the manager's guard kills it.
        multiprocessing.util.Finalize(self, self.process.kill, exitpriority=10)

    def pid(self):
        return self.process.pid


class Service(toolkit.Manager):
    pass


Service.register("Sleeper", Sleeper)


async def main(method, port, child):
    address = ("127.0.0.1", port)
    async with Service(address=address, authkey=b"orphans", context=method) as m:
        pids = [m.pid]
        if child == "child":
            sleeper = await m.Sleeper()
            pids.append(await sleeper.pid())
        else:
            shared = await m.dict(served=True)  # a round trip: it serves
            assert await shared.get("served")
        print(*pids, flush=True)
        await asyncio.sleep(3600)


if __name__ == "__main__":
    try:
        toolkit.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
    except KeyboardInterrupt:  # the supervisor's SIGINT: the manager was shut down in order
        pass
"""

_SUPERVISE = (
    "import json, sys\n"
    "from tests._manager_helpers import check_orphans\n"
    "print(json.dumps(check_orphans(*sys.argv[1:])))\n"
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _supervise(service: Path, method: str, signame: str, port: int) -> dict[str, Any]:
    """Run check_orphans in a process (and process group) of its own; return its report."""
    return supervise(_SUPERVISE, str(service), method, signame, str(port), timeout=45)


@pytest.mark.parametrize("signame", ["SIGKILL", "SIGTERM"])
@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_manager_server_ends_with_killed_parent_and_port_is_reused(
    tmp_path: Path, method: str, signame: str
) -> None:
    service = tmp_path / "service.py"
    service.write_text(_SERVICE, encoding="utf-8")
    report = _supervise(service, method, signame, _free_port())
    details = report["stderr"]
    assert report["gone_after"] is not None, f"server or its child still alive 5 s on\n{details}"
    assert report["gone_after"] < 1.0, f"gone only after {report['gone_after']:.2f} s\n{details}"
    # The same fixed port served again at once ("Address already in use" before).
    assert len(report["restarted"]) == 1, details
    assert report["restarted_exit"] == 0, details
    assert report["left"] == [], details
