"""DaskPool across hosts, by simulation: scheduler, workers and client in network namespaces.

Three namespaces joined by a bridge (a fourth namespace), each with its own
address: the scheduler at 10.231.0.2, two workers at 10.231.0.3, the client
(the pool) at 10.231.0.4. Nothing is on loopback between them, so the pool
really talks to other hosts. Needs root and ``ip`` (iproute2, which
``.ci/run`` installs); skipped, saying why, where namespaces cannot be made.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests._dask_helpers import stop_programs

if TYPE_CHECKING:
    from collections.abc import Iterator

pytest.importorskip("distributed")

pytestmark = [pytest.mark.dask, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parent.parent
SUBNET = "10.231.0"
NODES = {"sch": 2, "wrk": 3, "cli": 4}  # namespace role -> last byte of its address


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


class Lan:
    """Namespaces for the scheduler, the workers and the client, on one bridge."""

    def __init__(self) -> None:
        tag = str(os.getpid())[-6:]
        self.lan = f"tk-lan-{tag}"
        self.ns = {role: f"tk-{role}-{tag}" for role in NODES}
        self._made: list[str] = []
        try:
            for name in (self.lan, *self.ns.values()):
                _ip("netns", "add", name)
                self._made.append(name)
            _ip("-n", self.lan, "link", "add", "br0", "type", "bridge")
            _ip("-n", self.lan, "link", "set", "br0", "up")
            for role, last in NODES.items():
                inside, port = f"v{role}{tag}", f"p{role}{tag}"  # <= 15 characters
                _ip("link", "add", inside, "type", "veth", "peer", "name", port)
                _ip("link", "set", inside, "netns", self.ns[role])
                _ip("link", "set", port, "netns", self.lan)
                _ip("-n", self.lan, "link", "set", port, "master", "br0", "up")
                _ip("-n", self.ns[role], "addr", "add", f"{SUBNET}.{last}/24", "dev", inside)
                _ip("-n", self.ns[role], "link", "set", inside, "up")
                _ip("-n", self.ns[role], "link", "set", "lo", "up")
        except BaseException:
            self.remove()
            raise

    def address(self, role: str) -> str:
        return f"{SUBNET}.{NODES[role]}"

    def command(self, role: str, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.ns[role], *argv]

    def remove(self) -> None:
        for name in reversed(self._made):  # its veth ends go with it
            with contextlib.suppress(subprocess.SubprocessError):
                _ip("netns", "delete", name)
        self._made.clear()


def _why_no_namespaces() -> str | None:
    if not sys.platform.startswith("linux"):
        return "network namespaces are Linux's"
    if os.geteuid() != 0:
        return "making network namespaces needs root"
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is missing"
    probe = f"tk-probe-{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"ip netns add failed here: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "delete", probe], capture_output=True)
    return None


class NetnsCluster:
    def __init__(self, lan: Lan, directory: Path) -> None:
        self.lan = lan
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        dask = str(Path(sys.executable).with_name("dask"))
        here = lan.address("sch")
        self.address = f"tcp://{here}:8786"
        self._log = log = (directory / "cluster.log").open("w")
        self.scheduler = subprocess.Popen(
            lan.command("sch", dask, "scheduler", "--host", here, "--port", "8786",
                        "--dashboard-address", f"{here}:0"),
            cwd=directory, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        there = lan.address("wrk")
        self.workers = subprocess.Popen(
            lan.command("wrk", dask, "worker", self.address, "--host", there, "--nworkers", "2",
                        "--nthreads", "1", "--dashboard-address", f"{there}:0",
                        "--local-directory", str(directory), "--death-timeout", "20"),
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def stop(self) -> None:
        stop_programs(self.workers, self.scheduler)
        self._log.close()


@pytest.fixture(scope="module")
def netns_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetnsCluster]:
    why = _why_no_namespaces()
    if why is not None:
        pytest.skip(f"no network namespaces: {why}")
    lan = Lan()
    try:
        cluster = NetnsCluster(lan, tmp_path_factory.mktemp("dask-netns"))
        try:
            yield cluster
        finally:
            cluster.stop()
    finally:
        lan.remove()


# Runs in the client's namespace: a pool on the other hosts' workers.
_CLIENT = """
import asyncio, os, sys, time
import toolkit
from tests import _helpers

def addresses(_=None):
    import psutil
    return sorted(a.address for nic in psutil.net_if_addrs().values() for a in nic
                  if a.family.name == "AF_INET")

async def main(address, started):
    async with toolkit.DaskPool(address, connect_timeout=30) as pool:
        deadline = time.monotonic() + 60
        while sum(w.state == "idle" for w in pool.workers) < 2:
            assert time.monotonic() < deadline, pool.workers
            await asyncio.sleep(0.1)
        print("seen", sorted({a for r in await pool.map(addresses, range(8)) for a in r}))
        print("hosts", sorted({w.host for w in pool.workers if w.state != "dead"}))
        squares = await pool.map(_helpers.square, range(1000))
        print("squares", squares == [i * i for i in range(1000)])
        doomed = pool.apply(_helpers.mark_then_sleep, (started, 60))
        try:
            await asyncio.wait_for(doomed, 60)
        except toolkit.WorkerDiedError as exc:
            print("died", exc.host, exc.address)
        print("after", await pool.apply(_helpers.add, (20, 22)))

loop = sys.argv[3]
if loop == "uvloop":
    import uvloop
    uvloop.run(main(sys.argv[1], sys.argv[2]))
else:
    asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_dask_pool_talks_to_workers_on_other_hosts(
    netns_cluster: NetnsCluster, tmp_path: Path, loop: str
) -> None:
    lan = netns_cluster.lan
    started = tmp_path / "started"
    client = subprocess.Popen(
        lan.command("cli", sys.executable, "-c", _CLIENT, netns_cluster.address, str(started),
                    loop),
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        # The task's worker runs in another namespace, but in our pid namespace:
        # kill it as a machine failing would, mid-task.
        deadline = time.monotonic() + 90
        while not started.exists():
            assert client.poll() is None, client.communicate()
            assert time.monotonic() < deadline, "the task never started"
            time.sleep(0.05)
        os.kill(int(started.read_text()), signal.SIGKILL)
        out, err = client.communicate(timeout=90)
    finally:
        if client.poll() is None:
            client.kill()
            client.communicate()
    assert client.returncode == 0, err
    lines = dict(line.split(" ", 1) for line in out.splitlines() if " " in line)
    worker_ip = lan.address("wrk")
    # The tasks ran on the workers' host, not the client's.
    assert worker_ip in lines["seen"], out
    assert lan.address("cli") not in lines["seen"], out
    assert lines["hosts"] == repr([worker_ip]), out
    assert lines["squares"] == "True", out
    assert lines["died"].startswith(f"{worker_ip} tcp://{worker_ip}:"), out
    assert lines["after"] == "42", out
