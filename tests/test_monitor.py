"""toolkit.monitor: who may connect, what crosses the wire, what it costs the service, control."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import stat
import struct
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest

import toolkit
import toolkit.inspect
from tests import _helpers
from tests._waiting import wait_until
from toolkit._monitor import _protocol

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture
def umask_zero() -> Iterator[None]:
    """The most permissive umask: what the monitor creates must not depend on it."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


async def _opened(
    address: Any, opening: bytes
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    if isinstance(address, str):
        reader, writer = await asyncio.open_unix_connection(address)
    else:
        reader, writer = await asyncio.open_connection(*address)
    writer.write(opening)
    return reader, writer


async def _read_frame(reader: asyncio.StreamReader) -> Any:
    async with asyncio.timeout(10):
        return await _protocol.read_frame(reader, _protocol.MAX_ANSWER)


async def _started_worker(pool: toolkit.Pool, tmp_path: Path) -> tuple[asyncio.Future[Any], Path]:
    gate = tmp_path / "gate"
    handle = asyncio.ensure_future(
        pool.apply(_helpers.mark_then_wait, (str(tmp_path / "started"), str(gate)))
    )
    await wait_until(lambda: (tmp_path / "started").exists(), 30)
    return handle, gate


# -- who may connect ---------------------------------------------------------------------------


@pytest.mark.skipif(sys.platform == "win32", reason="Unix sockets: POSIX")
async def test_default_endpoint_is_a_private_unix_socket_removed_at_close(
    umask_zero: None, tmp_path: Path
) -> None:
    async with toolkit.Pool(1, name="watched") as pool, toolkit.monitor.serve() as server:
        address = server.address
        assert isinstance(address, str)
        directory = server.directory
        assert directory is not None
        assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(address).st_mode) == 0o600
        assert stat.S_ISSOCK(os.stat(address).st_mode)
        assert server.token_file is None  # the directory is the lock: no token needed
        handle, gate = await _started_worker(pool, tmp_path)
        snap = await toolkit.monitor.fetch(address)
        (watched,) = [p for p in snap.pools if p.stats.name == "watched"]
        (busy,) = [w for w in watched.workers if w.state == "busy"]
        assert busy.task is not None
        assert busy.task.function.endswith("mark_then_wait")
        gate.touch()
        assert await handle is True
    assert not directory.exists()  # the socket with it


@pytest.mark.skipif(sys.platform == "win32", reason="Unix sockets: POSIX")
async def test_a_unix_socket_path_is_made_0600_whatever_the_umask(
    umask_zero: None, tmp_path: Path
) -> None:
    path = tmp_path / "monitor.sock"
    async with toolkit.monitor.serve(str(path)) as server:
        assert server.address == str(path)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert (await toolkit.monitor.fetch(str(path))).pools == ()
    assert not path.exists()


async def test_a_console_in_another_process_finds_the_monitor_by_the_services_pid() -> None:
    async with toolkit.Pool(1, name="by-pid"), toolkit.monitor.serve():
        code = (
            "import asyncio, sys, toolkit\n"
            "s = asyncio.run(toolkit.monitor.fetch(int(sys.argv[1])))\n"
            "print(' '.join(p.stats.name for p in s.pools))\n"
        )
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c", code, str(os.getpid()), stdout=asyncio.subprocess.PIPE
        )
        out, _ = await asyncio.wait_for(child.communicate(), 60)
        assert child.returncode == 0
        assert "by-pid" in out.decode().split()
    with pytest.raises(LookupError, match="no toolkit monitor of process"):
        await toolkit.monitor.fetch(os.getpid())


# -- what a service leaves behind ---------------------------------------------------------------


def _fake_endpoint(pid: int, started: float | None) -> Path:
    """A monitor directory as a service of that pid would leave it, killed before its close."""
    import tempfile
    from pathlib import Path

    directory = Path(tempfile.mkdtemp(prefix=f"{_protocol.DIRECTORY_PREFIX}{pid}-"))
    endpoint = {"pid": pid, "address": str(directory / "monitor.sock"), "token_file": None}
    if started is not None:
        endpoint["started"] = started
    (directory / _protocol.ENDPOINT_FILE).write_text(json.dumps(endpoint))
    return directory


def _directories_of(pid: int) -> list[Path]:
    """The monitor directories named after pid, in the temp dir."""
    import tempfile
    from pathlib import Path

    return list(Path(tempfile.gettempdir()).glob(f"{_protocol.DIRECTORY_PREFIX}{pid}-*"))


async def _ended_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await asyncio.wait_for(child.wait(), 60)
    return child.pid


async def test_a_killed_services_monitor_is_not_found_and_its_directory_goes() -> None:
    code = (
        "import asyncio, sys, toolkit\n"
        "async def main():\n"
        "    async with toolkit.monitor.serve():\n"
        "        print('serving', flush=True)\n"
        "        await asyncio.sleep(60)\n"
        "asyncio.run(main())\n"
    )
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE
    )
    assert child.stdout is not None
    assert await asyncio.wait_for(child.stdout.readline(), 60) == b"serving\n"
    assert _protocol.endpoints_of(child.pid)  # found while it serves
    child.kill()  # no close: its directory stays behind
    await asyncio.wait_for(child.wait(), 60)
    with pytest.raises(LookupError, match="no toolkit monitor of process"):
        await toolkit.monitor.fetch(child.pid)
    assert not _protocol.endpoints_of(child.pid)
    assert not _directories_of(child.pid)


async def test_a_reused_pid_does_not_find_the_monitor_of_its_last_owner() -> None:
    # A service killed long ago left its directory; this process now has its pid.
    started = _protocol.process_started(os.getpid())
    assert started is not None
    directory = _fake_endpoint(os.getpid(), started - 3600)
    try:
        with pytest.raises(LookupError, match="no toolkit monitor of process"):
            await toolkit.monitor.fetch(os.getpid())
        assert not directory.exists()
    finally:
        import shutil

        shutil.rmtree(directory, ignore_errors=True)


async def test_a_monitor_starting_removes_the_directories_of_ended_services() -> None:
    dead = _fake_endpoint(await _ended_pid(), None)
    live = _fake_endpoint(os.getpid(), _protocol.process_started(os.getpid()))
    try:
        async with toolkit.monitor.serve():
            assert not dead.exists()
            assert live.exists()  # a live service's: never touched
    finally:
        import shutil

        shutil.rmtree(dead, ignore_errors=True)
        shutil.rmtree(live, ignore_errors=True)


async def test_a_service_that_exits_without_closing_its_monitor_leaves_no_files() -> None:
    code = (
        "import asyncio, toolkit\n"
        "async def main():\n"
        "    server = toolkit.monitor.serve()\n"
        "    await server.start()\n"
        "    print(server.directory, flush=True)\n"
        "asyncio.run(main())\n"
    )
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(child.communicate(), 60)
    assert child.returncode == 0
    assert _directories_of(child.pid) == []
    assert f"{_protocol.DIRECTORY_PREFIX}{child.pid}-" in out.decode()  # it had one


async def test_tcp_needs_a_token_made_0600_and_refuses_without_it(umask_zero: None) -> None:
    async with toolkit.monitor.serve(("127.0.0.1", 0)) as server:
        address = server.address
        assert isinstance(address, tuple)
        assert address[0] == "127.0.0.1"
        assert address[1] != 0
        token_file = server.token_file
        assert token_file is not None
        assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
        token = token_file.read_text().strip()
        assert len(bytes.fromhex(token)) * 8 >= 128
        with pytest.raises(PermissionError, match="takes a token"):
            await toolkit.monitor.fetch(address)  # refused before connecting
        with pytest.raises(PermissionError, match="wrong or missing token"):
            await toolkit.monitor.fetch(address, token=_protocol.new_token())
        assert (await toolkit.monitor.fetch(address, token_file=token_file)).pools == ()
        assert (await toolkit.monitor.fetch(address, token=token)).pools == ()
        # By pid, the console reads the token from the file the service announced.
        assert (await toolkit.monitor.fetch(os.getpid())).pools == ()
    assert not token_file.exists()


async def test_a_wrong_token_is_refused_before_any_request_is_read() -> None:
    async with toolkit.monitor.serve(("127.0.0.1", 0)) as server:
        wrong = _protocol.MAGIC + _protocol.digest(_protocol.new_token())
        request = _protocol.frame({"op": "snapshot"})
        reader, writer = await _opened(server.address, wrong + request)
        answer = await _read_frame(reader)
        assert answer == {"error": "refused: wrong or missing token", "type": "PermissionError"}
        async with asyncio.timeout(10):
            assert await reader.read() == b""  # closed: the request got no answer
        writer.close()


async def test_tokens_come_from_the_environment_or_a_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    token = toolkit.monitor.new_token()
    monkeypatch.setenv("TOOLKIT_MONITOR_TOKEN", token)
    async with toolkit.monitor.serve(("127.0.0.1", 0)) as server:
        assert server.token_file is None  # not written anywhere: the environment has it
        assert (await toolkit.monitor.fetch(server.address)).pools == ()
    monkeypatch.delenv("TOOLKIT_MONITOR_TOKEN")
    given = tmp_path / "token"
    async with toolkit.monitor.serve(("127.0.0.1", 0), token_file=given) as server:
        assert given.exists()  # made, 0600
        monkeypatch.setenv("TOOLKIT_MONITOR_TOKEN_FILE", str(given))
        assert (await toolkit.monitor.fetch(server.address)).pools == ()
    if os.name == "posix":
        given.write_text(token)  # still 0600: rewritten, not recreated
        given.chmod(0o644)
        with pytest.raises(PermissionError, match="chmod 600"):
            await toolkit.monitor.fetch(("127.0.0.1", 1), token_file=given)


async def test_bad_arguments_fail_at_the_call() -> None:
    with pytest.raises(TypeError):
        toolkit.monitor.serve(8080)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        toolkit.monitor.serve(("127.0.0.1", "80"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 32"):
        toolkit.monitor.serve(("127.0.0.1", 0), token="secret")
    with pytest.raises(ValueError, match="rate"):
        toolkit.monitor.serve(rate=0)
    with pytest.raises(ValueError, match="max_clients"):
        toolkit.monitor.serve(max_clients=0)
    with pytest.raises(TypeError, match="control"):
        toolkit.monitor.serve(control="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="a monitor address"):
        await toolkit.monitor.fetch(True)
    with pytest.raises(TypeError, match="a monitor address"):
        await toolkit.monitor.fetch(("127.0.0.1",))  # type: ignore[arg-type]
    with pytest.raises(ConnectionRefusedError):
        await toolkit.monitor.fetch(("127.0.0.1", 1), token=toolkit.monitor.new_token())


# -- what crosses the wire ---------------------------------------------------------------------


async def test_a_snapshot_of_250_busy_threads_arrives_whole() -> None:
    release = threading.Event()
    async with toolkit.ThreadPool(250, name="wide") as pool, toolkit.monitor.serve() as server:
        waits = [pool.apply_async(release.wait) for _ in range(250)]
        try:
            await wait_until(lambda: pool.stats().busy == 250, 30)
            snap = await toolkit.monitor.fetch(server.address)
            assert len(toolkit.monitor.to_json(snap)) > 64 * 1024  # past the old line limit
            (wide,) = snap.pools
            assert len(wide.workers) == 250
            assert sum(w.state == "busy" for w in wide.workers) == 250
        finally:
            release.set()
        for wait in waits:
            await wait


async def test_the_wire_is_length_framed_json_and_bad_requests_get_named_errors() -> None:
    async with toolkit.monitor.serve() as server:
        reader, writer = await _opened(server.address, _protocol.MAGIC + bytes(32))
        hello = await _read_frame(reader)
        assert hello["protocol"] == 1
        assert hello["pid"] == os.getpid()
        assert hello["control"] is False
        for request, words in [
            ({"op": "fly"}, "unknown request 'fly'"),
            (["snapshot"], 'a JSON object with "op"'),
            ({"op": "kill", "worker": 1}, "read-only"),
        ]:
            writer.write(_protocol.frame(request))
            answer = await _read_frame(reader)
            assert words in answer["error"]
        writer.write(_protocol.frame({"op": "snapshot"}))
        answer = await _read_frame(reader)
        assert toolkit.monitor.from_json(json.dumps(answer["result"])).pools == ()
        writer.write(struct.pack("!I", _protocol.MAX_REQUEST + 1))  # too long: let go
        async with asyncio.timeout(10):
            assert await reader.read() == b""
        writer.close()


async def test_a_stranger_that_does_not_open_with_the_magic_gets_nothing() -> None:
    async with toolkit.monitor.serve() as server:
        reader, writer = await _opened(server.address, b"GET / HTTP/1.1\r\n" + bytes(24))
        async with asyncio.timeout(10):
            assert await reader.read() == b""
        writer.close()


# -- it cannot hurt the service ----------------------------------------------------------------


async def test_a_client_that_pipelines_requests_lets_the_loop_run_between_answers() -> None:
    async with toolkit.monitor.serve(rate=10_000) as server:
        requests = _protocol.frame({"op": "snapshot"}) * 50
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        ticking = asyncio.ensure_future(ticker())
        try:
            reader, writer = await _opened(server.address, _protocol.MAGIC + bytes(32) + requests)
            await _read_frame(reader)  # hello
            ticks = 0
            for _ in range(50):
                assert "result" in await _read_frame(reader)
            # Once between any two answers (give or take the first): none before.
            assert ticks >= 45
        finally:
            ticking.cancel()
        writer.close()


async def test_requests_past_the_rate_wait_their_turn_and_are_all_answered() -> None:
    async with toolkit.monitor.serve(rate=20) as server:
        requests = _protocol.frame({"op": "hello"}) * 30
        reader, writer = await _opened(server.address, _protocol.MAGIC + bytes(32) + requests)
        await _read_frame(reader)
        started = time.monotonic()
        for _ in range(30):
            assert "result" in await _read_frame(reader)
        # 20 at once (a second's worth), the next 10 at 20 a second.
        assert time.monotonic() - started >= 0.4
        writer.close()


async def test_clients_past_max_clients_are_told_and_closed() -> None:
    async with toolkit.monitor.serve(max_clients=2) as server:
        first = await toolkit.monitor.connect(server.address)
        second = await toolkit.monitor.connect(server.address)
        with pytest.raises(ConnectionRefusedError, match="busy: 2 clients"):
            await toolkit.monitor.connect(server.address)
        await first.close()
        await wait_until(lambda: len(server._clients) < 2)
        async with await toolkit.monitor.connect(server.address) as third:
            assert (await third.snapshot()).pools == ()
        await second.close()


async def test_a_silent_connection_is_let_go(monkeypatch: pytest.MonkeyPatch) -> None:
    from toolkit._monitor import _server

    monkeypatch.setattr(_server, "_HANDSHAKE_TIMEOUT", 0.2)
    async with toolkit.monitor.serve() as server:
        reader, writer = await _opened(server.address, b"")
        async with asyncio.timeout(10):
            assert await reader.read() == b""
        writer.close()


# -- control -----------------------------------------------------------------------------------


async def test_without_control_the_console_is_read_only(tmp_path: Path) -> None:
    async with toolkit.Pool(1) as pool, toolkit.monitor.serve() as server:
        handle, gate = await _started_worker(pool, tmp_path)
        async with await toolkit.monitor.connect(server.address) as client:
            assert client.control is False
            (worker,) = pool.workers
            with pytest.raises(PermissionError, match="read-only"):
                await client.kill(worker.name)
            with pytest.raises(PermissionError, match="read-only"):
                await client.resize(pool.name, 2)
        gate.touch()
        assert await handle is True
        assert pool.stats().worker_deaths == 0


async def test_control_kills_a_worker_resizes_and_cancels_each_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="toolkit.monitor")
    never = asyncio.Event()
    waiting = asyncio.ensure_future(never.wait())
    waiting.set_name("waits-forever")
    async with (
        toolkit.Pool(1, name="ctl") as pool,
        toolkit.ThreadPool(1, name="ctl-threads") as threads,
        toolkit.monitor.serve(control=True) as server,
    ):
        handle, _gate = await _started_worker(pool, tmp_path)
        async with await toolkit.monitor.connect(server.address) as client:
            assert client.control is True
            (worker,) = [w for w in pool.workers if w.state == "busy"]
            said = await client.kill(worker.name)
            assert "SIGKILL" in said
            assert worker.name in said
            with pytest.raises(toolkit.WorkerDiedError):
                await handle
            assert await client.resize("ctl", 2) == "resized ctl to 2"
            assert pool.stats().size == 2
            assert "waits-forever" in await client.cancel("waits-forever")
            with pytest.raises(asyncio.CancelledError):
                await waiting
            (thread,) = threads.workers
            with pytest.raises(TypeError, match="a thread cannot be killed"):
                await client.kill(thread.name)
            with pytest.raises(LookupError, match="no running worker"):
                await client.kill("nobody-1")
            with pytest.raises(LookupError, match="no pool"):
                await client.resize("nobody", 2)
    logged = [r.getMessage() for r in caplog.records if r.name == "toolkit.monitor"]
    assert any("SIGKILL" in m and worker.name in m for m in logged)
    assert any("resized pool ctl to 2" in m for m in logged)
    assert any("cancelled task waits-forever" in m for m in logged)


# -- tasks -------------------------------------------------------------------------------------


async def _leaf(event: asyncio.Event) -> None:
    await event.wait()


async def _parent(event: asyncio.Event) -> None:
    async with asyncio.TaskGroup() as group:
        group.create_task(_leaf(event), name="child-a")
        group.create_task(_leaf(event), name="child-b")


async def _gatherer(event: asyncio.Event) -> None:
    await asyncio.gather(asyncio.create_task(_leaf(event), name="gathered"), asyncio.sleep(0))


async def test_tasks_show_await_chains_and_which_tasks_wait_for_which() -> None:
    event = asyncio.Event()
    parent = asyncio.create_task(_parent(event), name="parent")
    gatherer = asyncio.create_task(_gatherer(event), name="gatherer")
    try:
        await wait_until(lambda: len(asyncio.all_tasks()) >= 6)
        async with (
            toolkit.monitor.serve() as server,
            await toolkit.monitor.connect(server.address) as client,
        ):
            tasks = {t.name: t for t in await client.tasks()}
        names = {"parent", "gatherer", "child-a", "child-b", "gathered"}
        here = {t.name: t for t in toolkit.inspect.tasks() if t.name in names}
        assert {name: tasks[name] for name in names} == here
        by_id = {t.id: t.name for t in tasks.values()}
        assert sorted(by_id[i] for i in tasks["parent"].awaits) == ["child-a", "child-b"]
        assert [by_id[i] for i in tasks["gatherer"].awaits] == ["gathered"]
        assert tasks["child-a"].stack[0].startswith("_leaf (test_monitor.py:")
        assert any("Event.wait" in link for link in tasks["child-a"].stack)
        assert tasks["parent"].coroutine == "_parent"
        assert tasks["parent"].state == "pending"
    finally:
        event.set()
        await parent
        await gatherer


# -- the server's own tasks end cleanly --------------------------------------------------------


async def test_a_cancelled_client_task_ends_cancelled_and_closes_its_connection() -> None:
    # The rule: a cancellation is never swallowed. The task serving a client
    # ends cancelled, its connection closed, and nothing is reported as an error.
    errors: list[dict[str, object]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _, context: errors.append(context))
    async with toolkit.monitor.serve() as server:
        client = await toolkit.monitor.connect(server.address)
        (task,) = server._clients
        task.cancel()
        await asyncio.wait([task], timeout=10)
        assert task.cancelled()
        with pytest.raises(ConnectionResetError, match="went away"):
            await client.snapshot()
        await client.close()
        assert not server._clients
        assert (await toolkit.monitor.fetch(server.address)).pools == ()  # serves on
    assert errors == []


async def test_close_cancels_its_client_tasks_and_waits_for_them() -> None:
    server = toolkit.monitor.serve()
    await server.start()
    client = await toolkit.monitor.connect(server.address)
    (task,) = server._clients
    await asyncio.wait_for(server.close(), 10)
    assert task.cancelled()
    assert not server._clients
    with pytest.raises(ConnectionError):
        await client.snapshot()
    await client.close()


# -- metrics -----------------------------------------------------------------------------------


async def test_prometheus_scrapes_the_pools_figures_over_http() -> None:
    import urllib.request

    import prometheus_client

    registry = prometheus_client.CollectorRegistry()
    toolkit.monitor.metrics(registry)
    with pytest.raises(ValueError, match="Duplicated"):
        toolkit.monitor.metrics(registry)
    http, thread = prometheus_client.start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        port = http.server_address[1]
        async with toolkit.Pool(2, name="scraped") as pool:
            assert await pool.map(abs, range(-10, 0)) == list(range(10, 0, -1))
            with pytest.raises(ZeroDivisionError):
                await pool.apply(divmod, (1, 0))
            with pytest.raises(toolkit.TaskTimeoutError):
                await pool.apply(time.sleep, (30,), timeout=0.1)

            def scrape() -> str:
                url = f"http://127.0.0.1:{port}/metrics"
                with urllib.request.urlopen(url, timeout=10) as answer:
                    return str(answer.read().decode())

            text = await asyncio.to_thread(scrape)
    finally:
        http.shutdown()
        http.server_close()
        thread.join(10)
    labels = 'kind="process",pool="scraped"'
    assert f"toolkit_tasks_submitted_total{{{labels}}} " in text
    assert f"toolkit_tasks_failed_total{{{labels}}} 2.0" in text
    assert f"toolkit_tasks_timed_out_total{{{labels}}} 1.0" in text
    assert f"toolkit_pool_size{{{labels}}} 2.0" in text
    assert f'toolkit_workers{{{labels},state="idle"}}' in text
    assert f"toolkit_tasks_queued{{{labels}}} 0.0" in text
    assert 'toolkit_task_duration_seconds_bucket{kind="process",le="+Inf",pool="scraped"}' in text
    (count,) = [
        line
        for line in text.splitlines()
        if line.startswith(f"toolkit_task_duration_seconds_count{{{labels}}}")
    ]
    assert float(count.split()[-1]) == 11  # 10 mapped items and the failure (not the timeout)


async def test_where_asyncio_has_no_unix_sockets_the_default_is_tcp_with_a_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Windows' path, forced here: serve() listens on loopback TCP, makes a token
    # in its private directory, and a console still finds both by the pid.
    monkeypatch.setattr(_protocol, "unix_sockets_supported", lambda: False)
    with pytest.raises(ValueError, match="Unix sockets are not served here"):
        toolkit.monitor.serve("/tmp/x.sock")
    async with toolkit.Pool(1, name="portable"), toolkit.monitor.serve() as server:
        address = server.address
        assert isinstance(address, tuple)
        assert address[0] == "127.0.0.1"
        assert server.token_file is not None
        assert server.directory is not None
        assert server.token_file.parent == server.directory
        snap = await toolkit.monitor.fetch(os.getpid())
        assert [p.stats.name for p in snap.pools] == ["portable"]
        with pytest.raises(PermissionError, match="takes a token"):
            await toolkit.monitor.fetch(address)


async def test_a_cancelled_request_leaves_the_next_one_its_own_answer() -> None:
    # The cancelled request was sent: its answer is read and dropped, not
    # handed to the next request (which asks something else).
    async with (
        toolkit.monitor.serve(rate=10) as server,
        await toolkit.monitor.connect(server.address) as client,
    ):
        for _ in range(10):  # a second's worth at once: the next one waits 0.1 s
            assert (await client.snapshot()).pools == ()
        slow = asyncio.ensure_future(client.snapshot())  # waits for the rate
        await asyncio.sleep(0.02)
        slow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await slow
        tasks = await client.tasks()  # not the snapshot sent before it
        assert isinstance(tasks, tuple)
        assert all(isinstance(t, toolkit.inspect.AsyncTaskInfo) for t in tasks)


async def test_a_close_cancelled_while_clients_end_leaves_nothing_on_disk() -> None:
    server = toolkit.monitor.serve()
    await server.start()
    directory = server.directory
    assert directory is not None
    client = await toolkit.monitor.connect(server.address)
    closing = asyncio.ensure_future(server.close())
    await asyncio.sleep(0)
    closing.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await closing
    assert not directory.exists()
    await client.close()
