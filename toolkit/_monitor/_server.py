"""The monitor server a service runs in its own loop.

Whom it lets in: on a Unix socket, whoever can reach the socket (it sits in a
directory only its owner can enter and is itself 0600); on TCP, only a client
that opens with the token's digest (compared in constant time, before any
frame is read). What it costs the service: each client is served by one
task that yields to the loop after every answer and takes at most ``rate``
requests a second (more wait their turn: nothing is dropped, nothing
queues up); at most ``max_clients`` connections are kept; a snapshot is
built in time linear in the workers, and encoded in slices with the loop
let in between, once per _REUSE seconds however many clients ask.
"""

from __future__ import annotations

import asyncio
import atexit
import builtins
import contextlib
import hmac
import json
import logging
import os
import signal
import socket
import struct
import sys
import time
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._core._asynctasks import task_snapshot
from .._core._inspection import Snapshot, find_pool, snapshot as take_snapshot
from .._core._version import __version__
from . import _protocol
from ._protocol import Address, frame, plain, raw_frame

if TYPE_CHECKING:
    from types import TracebackType
    from typing import Self

logger = logging.getLogger("toolkit.monitor")

_HANDSHAKE_TIMEOUT = 5.0  # a silent connection is let go after this
_REUSE = 0.05  # seconds a built snapshot answers every client that asks
_SLICE = 0.001  # seconds of encoding between two looks at the loop
_CHUNK = 32  # workers encoded between two clock readings
_ERROR_TYPES = ("LookupError", "PermissionError", "TypeError", "ValueError")


__all__ = ["MonitorServer", "encode_snapshot", "logger"]


# Monitors started and not closed: at exit their files go too (a service that
# returns without closing its monitor must not leave them in the temp dir).
_unclosed: weakref.WeakSet[MonitorServer] = weakref.WeakSet()


@atexit.register
def _remove_files_of_unclosed() -> None:
    for server in list(_unclosed):
        server._cleanup()


class MonitorServer:
    """A running service's monitor (see ``toolkit.monitor``); ``async with`` it.

    Args:
        address: None (the default): a Unix socket in a new private
            directory (on Windows, which has no Unix sockets for asyncio:
            TCP on loopback, with a token). A str: a Unix socket at that
            path, created 0600 whatever the umask. (host, port): TCP, port
            0 for a free one; a token is then required.
        token: the secret a client must present. TCP without one: taken
            from token_file, else the environment (TOOLKIT_MONITOR_TOKEN or
            TOOLKIT_MONITOR_TOKEN_FILE), else made here and written to
            ``server.token_file``. Never put one on a command line.
        token_file: a file holding the token (read if it exists, else
            written, 0600).
        control: let attached consoles cancel tasks, terminate or kill
            workers and resize pools (each action is logged on the
            ``toolkit.monitor`` logger). Off by default: read-only.
        max_clients: connections kept at once; more are told so and closed.
        rate: requests a second each client may make; more wait their turn.
    """

    def __init__(
        self,
        address: Address | None = None,
        *,
        token: str | None = None,
        token_file: str | os.PathLike[str] | None = None,
        control: bool = False,
        max_clients: int = 8,
        rate: float = 20.0,
    ) -> None:
        if address is None:
            tcp = not _protocol.unix_sockets_supported()
        elif isinstance(address, tuple):
            if (
                len(address) != 2
                or not isinstance(address[0], str)
                or isinstance(address[1], bool)
                or not isinstance(address[1], int)
            ):
                raise TypeError(f"address must be (host, port) or a Unix socket path: {address!r}")
            tcp = True
        elif isinstance(address, str | os.PathLike):
            if not _protocol.unix_sockets_supported():
                raise ValueError("Unix sockets are not served here (Windows): use (host, port)")
            address = os.fspath(address)
            tcp = False
        else:
            raise TypeError(f"address must be (host, port) or a Unix socket path: {address!r}")
        if not isinstance(control, bool):
            raise TypeError(f"control must be True or False, not {control!r}")
        if isinstance(max_clients, bool) or not isinstance(max_clients, int) or max_clients < 1:
            raise ValueError(f"max_clients must be a positive int, not {max_clients!r}")
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not rate > 0:
            raise ValueError(f"rate must be a positive number of requests a second: {rate!r}")
        if token is not None:
            _protocol.check_token(token, "token")
        self._requested = address
        self._tcp = tcp
        self._token = token
        self._token_file = Path(token_file) if token_file is not None else None
        self._made_token_file = False
        self._pid = os.getpid()
        self.control = control
        self.max_clients = max_clients
        self.rate = float(rate)
        self._directory: Path | None = None
        self._socket_path: str | None = None
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()
        self._cached: tuple[float, bytes] | None = None
        self._building: asyncio.Lock | None = None

    # -- where --------------------------------------------------------------------------------

    @property
    def address(self) -> Address:
        """Where it listens (the real port once started, if 0 was asked for)."""
        if self._server is None:
            if self._requested is None:
                return ("127.0.0.1", 0) if self._tcp else ""
            return self._requested
        if self._socket_path is not None:
            return self._socket_path
        name = self._server.sockets[0].getsockname()
        return (name[0], name[1])

    @property
    def token_file(self) -> Path | None:
        """The file a client reads the token from (None: no token, or given as a string)."""
        return self._token_file

    @property
    def directory(self) -> Path | None:
        """The private directory of this monitor (its socket, token and endpoint files)."""
        return self._directory

    # -- start and stop -----------------------------------------------------------------------

    async def start(self) -> None:
        """Start listening (in the running loop); starting twice does nothing.

        Makes the private directory, the socket (or the TCP listener and,
        when needed, the token file) and the endpoint file consoles find it by.

        Raises:
            OSError: the address cannot be served (in use, a path too long,
                no permission).
            PermissionError: the token file can be read by others (chmod 600 it).
            ValueError: the token file or the environment's token is not a token.

        Cancellation:
            What was made so far is removed (directory, socket, token file);
            the server is not listening and start() may be called again.
        """
        if self._server is not None:
            return
        self._building = asyncio.Lock()
        with contextlib.suppress(OSError):  # best effort: it must not stop a monitor starting
            _protocol.sweep_stale()  # killed services' directories, not left to pile up
        self._directory = _protocol.private_directory()
        self._pid = os.getpid()
        _unclosed.add(self)
        try:
            if self._tcp:
                self._take_token()
                host, port = (
                    self._requested if isinstance(self._requested, tuple) else ("127.0.0.1", 0)
                )
                self._server = await asyncio.start_server(self._accept, host, port)
            else:
                if self._token is None and self._token_file is not None:
                    self._token = self._token_or_new(self._token_file)
                path = self._requested if isinstance(self._requested, str) else None
                path = path or str(self._directory / _protocol.SOCKET_FILE)
                self._server = await asyncio.start_unix_server(
                    self._accept, sock=_unix_socket(path)
                )
                self._socket_path = path
            self._announce()
        except BaseException:
            self._cleanup()
            raise
        logger.info(
            "monitor listening on %r (control %s)", self.address, "on" if self.control else "off"
        )

    def _take_token(self) -> None:
        if self._token is not None:
            return
        if self._token_file is not None:
            self._token = self._token_or_new(self._token_file)
            return
        self._token = _protocol.token_from_environment()
        if self._token is None:
            assert self._directory is not None
            self._token_file = self._directory / _protocol.TOKEN_FILE
            self._token = self._token_or_new(self._token_file)

    def _token_or_new(self, path: Path) -> str:
        if path.exists():
            return _protocol.read_token_file(path)
        token = _protocol.new_token()
        _protocol.write_token_file(path, token)
        self._made_token_file = True
        return token

    def _announce(self) -> None:
        """Write the endpoint file a console finds this monitor by (by this process's pid)."""
        assert self._directory is not None
        address = self.address
        endpoint = {
            "pid": os.getpid(),
            # Tells this service from a later process given the same pid.
            "started": _protocol.process_started(os.getpid()),
            "address": list(address) if isinstance(address, tuple) else address,
            "token_file": str(self._token_file) if self._token_file is not None else None,
        }
        temporary = self._directory / (_protocol.ENDPOINT_FILE + ".new")
        temporary.write_text(json.dumps(endpoint))
        temporary.replace(self._directory / _protocol.ENDPOINT_FILE)  # never seen half written

    async def close(self) -> None:
        """Stop listening, drop every client, remove the socket and the private directory.

        Closing a monitor that is not listening does nothing. It raises nothing.

        Cancellation:
            Safe: it stops listening, removes the socket, the token it made
            and the private directory, and cancels its clients before it
            waits for anything; cancelled while waiting for them to end,
            nothing is left on disk.
        """
        if self._server is None:
            return
        server, self._server = self._server, None
        server.close()
        # The files first: a close cancelled while it waits for its clients
        # must not leave the socket, the token or the endpoint behind.
        self._cleanup()
        for client in list(self._clients):
            client.cancel()
        await asyncio.gather(*self._clients, return_exceptions=True)
        await server.wait_closed()

    def _cleanup(self) -> None:
        _unclosed.discard(self)
        if self._pid != os.getpid():
            return  # a fork child's copy: the files are its parent's monitor's
        if self._socket_path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._socket_path)
            self._socket_path = None
        if self._made_token_file and self._token_file is not None:
            with contextlib.suppress(OSError):
                self._token_file.unlink()
            self._made_token_file = False
        if self._directory is not None:
            for name in (_protocol.ENDPOINT_FILE, _protocol.ENDPOINT_FILE + ".new"):
                with contextlib.suppress(OSError):
                    (self._directory / name).unlink()
            with contextlib.suppress(OSError):
                self._directory.rmdir()
            self._directory = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- clients ------------------------------------------------------------------------------

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._clients) >= self.max_clients:
            # Told, not served: the fd is given back at once.
            writer.write(
                frame(
                    {
                        "error": f"busy: {self.max_clients} clients are attached already",
                        "type": "ConnectionRefusedError",
                    }
                )
            )
            writer.close()
            return
        # Each client is served by a task of our own, not by one asyncio's
        # server makes from a coroutine callback: the done-callback asyncio puts
        # on that one calls exception() on it, which a cancelled task raises
        # (3.11, 3.12: logged as an error). Ours may end cancelled, as any task.
        task = asyncio.ensure_future(self._serve(reader, writer))
        self._clients.add(task)
        task.add_done_callback(self._clients.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answer one client until it leaves.

        Cancellation (``close()``, the loop ending): not caught; the writer is
        closed on the way out and the task ends cancelled.
        """
        peer = _peer(writer)
        try:
            try:
                async with asyncio.timeout(_HANDSHAKE_TIMEOUT):
                    opening = await reader.readexactly(_protocol.HELLO_SIZE)
            except (TimeoutError, asyncio.IncompleteReadError):
                return
            if opening[: len(_protocol.MAGIC)] != _protocol.MAGIC:
                return  # not a toolkit console: nothing to say to it
            if self._token is not None and not hmac.compare_digest(
                opening[len(_protocol.MAGIC) :], _protocol.digest(self._token)
            ):
                logger.warning("monitor refused %s: wrong or missing token", peer)
                writer.write(
                    frame({"error": "refused: wrong or missing token", "type": "PermissionError"})
                )
                return
            writer.write(frame(self._hello()))
            bucket = _Bucket(self.rate)
            while True:
                try:
                    request = await _protocol.read_frame(reader, _protocol.MAX_REQUEST)
                except (asyncio.IncompleteReadError, ValueError):
                    return  # it left, or it is not speaking our protocol
                await bucket.take()
                writer.write(await self._answer(request, peer))
                await writer.drain()
                # Requests already buffered would be read without a pause:
                # let the service's own work run between any two answers.
                await asyncio.sleep(0)
        except ConnectionError:
            return  # the client left: its end, not an error
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _hello(self) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        return {
            "protocol": 1,
            "pid": os.getpid(),
            "argv": sys.argv,
            "python": sys.version.split()[0],
            "toolkit": __version__,
            "loop": f"{type(loop).__module__}.{type(loop).__qualname__}",
            "control": self.control,
            "rate": self.rate,
        }

    async def _answer(self, request: Any, peer: str) -> bytes:
        try:
            if not isinstance(request, dict) or not isinstance(request.get("op"), str):
                raise ValueError('a request is a JSON object with "op": see toolkit.monitor')
            op = request["op"]
            if op == "snapshot":
                return raw_frame(b'{"result":' + await self._snapshot_payload() + b"}")
            if op == "tasks":
                return frame({"result": plain(task_snapshot())})
            if op == "hello":
                return frame({"result": self._hello()})
            if op in _CONTROL:
                if not self.control:
                    raise PermissionError(
                        "read-only: this service's monitor was started without control=True"
                    )
                return frame({"result": _CONTROL[op](request, peer)})
            raise ValueError(
                f"unknown request {op!r}: snapshot, tasks, hello, {', '.join(_CONTROL)}"
            )
        except Exception as exc:  # noqa: BLE001 - told to the client, the service goes on
            return frame({"error": str(exc), "type": _error_type(exc)})

    async def _snapshot_payload(self) -> bytes:
        """The snapshot as JSON, shared by every client that asks within _REUSE seconds."""
        assert self._building is not None
        async with self._building:
            cached = self._cached
            if cached is not None and time.monotonic() - cached[0] < _REUSE:
                return cached[1]
            payload = await encode_snapshot(take_snapshot())
            self._cached = (time.monotonic(), payload)
            return payload


def _error_type(exc: BaseException) -> str:
    """The kind of error the client raises again: one of _ERROR_TYPES, else RuntimeError."""
    for name in _ERROR_TYPES:
        if isinstance(exc, getattr(builtins, name)):
            return name
    return "RuntimeError"


async def encode_snapshot(snap: Snapshot) -> bytes:
    """snap as JSON, the loop let in every _SLICE seconds (a pool of 400 threads is ~4 ms)."""
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    parts = ['{"taken_at":', dumps(snap.taken_at), ',"pools":[']
    deadline = time.perf_counter() + _SLICE
    for index, pool in enumerate(snap.pools):
        parts.append("," if index else "")
        parts.append('{"stats":' + dumps(plain(pool.stats)) + ',"workers":[')
        workers = pool.workers
        for start in range(0, len(workers), _CHUNK):
            parts.append("," if start else "")
            parts.append(dumps([plain(w) for w in workers[start : start + _CHUNK]])[1:-1])
            if time.perf_counter() > deadline:
                await asyncio.sleep(0)
                deadline = time.perf_counter() + _SLICE
        parts.append("]}")
    parts.append('],"processes":' + dumps(plain(snap.processes)) + "}")
    return "".join(parts).encode()


class _Bucket:
    """A token bucket: rate requests a second, up to a second's worth at once."""

    def __init__(self, rate: float) -> None:
        self._rate = rate
        self._tokens = max(1.0, rate)
        self._at = time.monotonic()

    async def take(self) -> None:
        now = time.monotonic()
        self._tokens = min(max(1.0, self._rate), self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens < 1.0:
            await asyncio.sleep((1.0 - self._tokens) / self._rate)
            self._tokens = 1.0
            self._at = time.monotonic()
        self._tokens -= 1.0


def _unix_socket(path: str) -> socket.socket:
    """A listening Unix socket at path, mode 0600 before anyone can connect."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        # Bound but not listening yet: nobody can connect before the mode is
        # right, whatever the umask made of it.
        os.chmod(path, 0o600)
        sock.listen(100)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    return sock


def _peer(writer: asyncio.StreamWriter) -> str:
    """Who a client is, for the log: host:port, or the pid and uid of a local one."""
    sock = writer.get_extra_info("socket")
    name = writer.get_extra_info("peername")
    if isinstance(name, tuple):
        return f"{name[0]}:{name[1]}"
    peercred = getattr(socket, "SO_PEERCRED", None)
    if sock is not None and peercred is not None:
        with contextlib.suppress(OSError):
            pid, uid, _ = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, peercred, 12))
            return f"pid {pid} (uid {uid})"
    return "a local client"


# -- control (only with control=True) ---------------------------------------------------------


def _cancel(request: dict[str, Any], peer: str) -> str:
    wanted = request.get("task")
    for task in asyncio.all_tasks():
        if id(task) == wanted or task.get_name() == wanted:
            task.cancel()
            logger.warning("monitor control from %s: cancelled task %s", peer, task.get_name())
            return f"cancelled task {task.get_name()}"
    raise LookupError(f"no pending task {wanted!r}")


def _signal_worker(request: dict[str, Any], peer: str, kill: bool) -> str:
    wanted = request.get("worker")
    snap = take_snapshot()
    for pool in snap.pools:
        for worker in pool.workers:
            if worker.state == "dead" or wanted not in (worker.name, worker.pid):
                continue
            if worker.kind == "thread":
                raise TypeError(
                    f"{worker.name} is a thread: a thread cannot be killed; cancel its task"
                )
            if worker.address is not None:  # a cluster worker: its pool restarts it there
                found = find_pool(pool.stats.name)
                if found is None:
                    raise LookupError(f"the pool of {worker.name} is gone")
                found.restart_worker(worker.name)
                what = f"restarted {worker.name} ({worker.address})"
            else:
                assert worker.pid is not None
                what = _kill(worker.name, worker.pid, kill)
            logger.warning("monitor control from %s: %s of pool %s", peer, what, pool.stats.name)
            return what
    for process in snap.processes:
        if process.state == "running" and wanted in (process.name, process.pid):
            assert process.pid is not None
            what = _kill(process.name, process.pid, kill)
            logger.warning("monitor control from %s: %s", peer, what)
            return what
    raise LookupError(f"no running worker or process {wanted!r}")


def _kill(name: str, pid: int, kill: bool) -> str:
    # Windows has no SIGKILL: os.kill ends the process there whatever the signal.
    signum = getattr(signal, "SIGKILL", signal.SIGTERM) if kill else signal.SIGTERM
    os.kill(pid, signum)
    return f"sent {signum.name} to {name} (pid {pid})"


def _resize(request: dict[str, Any], peer: str) -> str:
    name, size = request.get("pool"), request.get("size")
    pool = find_pool(name) if isinstance(name, str) else None
    if pool is None:
        raise LookupError(f"no pool {name!r}")
    pool.resize(size)
    logger.warning("monitor control from %s: resized pool %s to %s", peer, name, size)
    return f"resized {name} to {size}"


_CONTROL = {
    "cancel": _cancel,
    "terminate": lambda request, peer: _signal_worker(request, peer, kill=False),
    "kill": lambda request, peer: _signal_worker(request, peer, kill=True),
    "resize": _resize,
}
