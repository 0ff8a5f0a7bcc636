"""The monitor's client: connect() for a console that stays, fetch() for one snapshot."""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import os
from typing import TYPE_CHECKING, Any

from . import _protocol

if TYPE_CHECKING:
    from types import TracebackType
    from typing import Self

    from .._core._asynctasks import AsyncTaskInfo
    from .._core._inspection import Snapshot
    from ._protocol import Address

_ERRORS = ("LookupError", "PermissionError", "TypeError", "ValueError", "ConnectionRefusedError")


__all__ = ["MonitorClient", "connect", "fetch", "resolve"]


def resolve(address: object) -> tuple[Address, str | None]:
    """The endpoint and token file an address names: a pid is looked up in its monitor's files.

    Raises:
        TypeError: address is neither (host, port), a path nor a pid.
        LookupError: no monitor of that pid can be found.
    """
    if isinstance(address, bool):
        raise TypeError(
            f"a monitor address is (host, port), a Unix socket path or a pid: {address!r}"
        )
    if isinstance(address, int):
        endpoints = _protocol.endpoints_of(address)
        if not endpoints:
            raise LookupError(
                f"no toolkit monitor of process {address} was found (a service starts one with "
                "toolkit.monitor.serve(), which says where it listens; pass that address)"
            )
        found = endpoints[0]
        where = found["address"]
        endpoint: Address = str(where)
        if isinstance(where, list):
            endpoint = (str(where[0]), int(where[1]))
        return endpoint, found.get("token_file")
    if isinstance(address, os.PathLike):
        address = os.fspath(address)
    if isinstance(address, str):
        if not address:
            raise ValueError("an empty monitor address")
        return address, None
    if (
        isinstance(address, tuple)
        and len(address) == 2
        and isinstance(address[0], str)
        and isinstance(address[1], int)
        and not isinstance(address[1], bool)
    ):
        return (address[0], address[1]), None
    raise TypeError(
        f"a monitor address is (host, port), a Unix socket path or a pid, not {address!r}"
    )


def _consume(exchange: asyncio.Future[Any]) -> None:
    """Retrieve an exchange's error: its caller may have been cancelled and never will."""
    if not exchange.cancelled():
        exchange.exception()


def _raise(answer: dict[str, Any]) -> None:
    name = answer.get("type")
    kind = getattr(builtins, name, RuntimeError) if name in _ERRORS else RuntimeError
    raise kind(answer.get("error", "the monitor answered with an error"))


class MonitorClient:
    """A connection to a service's monitor; ``async with`` it, or close() it.

    Attributes:
        address: where the monitor listens.
        hello: what the service said of itself on connecting: pid, argv,
            python, toolkit, loop, control (may this client act), rate.
    """

    def __init__(
        self,
        address: Address,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        hello: dict[str, Any],
        timeout: float,
    ) -> None:
        self.address = address
        self.hello = hello
        self._reader = reader
        self._writer = writer
        self._timeout = timeout
        self._lock = asyncio.Lock()  # one request in flight: answers come in order
        self._exchanges: set[asyncio.Future[Any]] = set()  # some maybe of cancelled callers

    @property
    def control(self) -> bool:
        """Does the service let this console act (cancel, terminate, kill, resize)?"""
        return bool(self.hello.get("control"))

    async def request(self, op: str, **fields: Any) -> Any:
        """Send one request and return its result.

        Raises:
            PermissionError: a control request to a read-only monitor.
            LookupError, TypeError, ValueError: the service's answer to a bad request.
            ConnectionError: the service went away.
            TimeoutError: no answer within the client's timeout.
            ValueError: the answer is not a monitor's.
            RuntimeError: any other error the service met answering.

        Cancellation:
            Safe: the exchange goes on without the caller, its answer is read
            and dropped, and the next request gets its own answer. A control
            request that was sent may still be carried out by the service.
            A timeout is different: an answer may still come, so the
            connection is closed and later requests raise ConnectionError.
        """
        exchange = asyncio.ensure_future(self._exchange({"op": op, **fields}))
        # Whoever cancels the caller, the answer must be read off the stream.
        self._exchanges.add(exchange)
        exchange.add_done_callback(self._exchanges.discard)
        exchange.add_done_callback(_consume)
        answer = await asyncio.shield(exchange)
        if not isinstance(answer, dict):
            raise ValueError(f"not a monitor's answer: {str(answer)[:80]!r}")
        if "error" in answer:
            _raise(answer)
        return answer.get("result")

    async def _exchange(self, request: dict[str, Any]) -> Any:
        """Write one request and read its answer, alone on the connection."""
        async with self._lock:
            if self._writer.is_closing():
                raise ConnectionResetError(f"the connection to {self.address!r} is closed")
            try:
                async with asyncio.timeout(self._timeout):
                    self._writer.write(_protocol.frame(request))
                    await self._writer.drain()
                    return await _protocol.read_frame(self._reader, _protocol.MAX_ANSWER)
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                raise ConnectionResetError(f"the monitor at {self.address!r} went away") from exc
            except TimeoutError:
                # Its answer may arrive later and be taken for the next one's.
                self._writer.close()
                raise

    async def snapshot(self) -> Snapshot:
        """The service's pools and processes (``toolkit.inspect.snapshot()`` there).

        Raises:
            ConnectionError: the service went away.
            TimeoutError: no answer within the client's timeout.

        Cancellation:
            As ``request``: safe for the connection (the answer of a request
            already sent is read and dropped); a timeout closes the connection.
        """
        return _protocol.snapshot_from_plain(await self.request("snapshot"))

    async def tasks(self) -> tuple[AsyncTaskInfo, ...]:
        """The asyncio tasks of the service's loop, with what each awaits.

        Raises:
            ConnectionError: the service went away.
            TimeoutError: no answer within the client's timeout.

        Cancellation:
            As ``request``: safe for the connection (the answer of a request
            already sent is read and dropped); a timeout closes the connection.
        """
        return _protocol.tasks_from_plain(await self.request("tasks"))

    async def cancel(self, task: int | str) -> str:
        """Cancel one of the service's tasks (its id or name). Needs control.

        Returns the service's account of what it did.

        Raises:
            ConnectionError: the service went away.
            TimeoutError: no answer within the client's timeout.
            PermissionError: the monitor is read-only (no control).
            LookupError: no task of the service has that id or name.

        Cancellation:
            As ``request``: safe for the connection (the answer of a request
            already sent is read and dropped); a timeout closes the connection.
            The action may have been taken.
        """
        return str(await self.request("cancel", task=task))

    async def terminate(self, worker: int | str) -> str:
        """SIGTERM a worker or Process of the service (name or pid). Needs control.

        Raises:
            ConnectionError: the service went away.
            TimeoutError: no answer within the client's timeout.
            PermissionError: the monitor is read-only (no control).
            LookupError: no worker or Process of the service has that name or pid.

        Cancellation:
            As ``request``: safe for the connection (the answer of a request
            already sent is read and dropped); a timeout closes the connection.
            The signal may have been sent.
        """
        return str(await self.request("terminate", worker=worker))

    async def kill(self, worker: int | str) -> str:
        """SIGKILL a worker or Process of the service (a cluster worker: restarted).

        Needs control.

        Raises:
            ConnectionError: the service went away.
            TimeoutError: no answer within the client's timeout.
            PermissionError: the monitor is read-only (no control).
            LookupError: no worker or Process of the service has that name or pid.

        Cancellation:
            As ``request``: safe for the connection (the answer of a request
            already sent is read and dropped); a timeout closes the connection.
            The signal may have been sent.
        """
        return str(await self.request("kill", worker=worker))

    async def resize(self, pool: str, size: int) -> str:
        """Resize a pool of the service to size workers. Needs control.

        Raises:
            ConnectionError: the service went away.
            TimeoutError: no answer within the client's timeout.
            PermissionError: the monitor is read-only (no control).
            LookupError: the service has no live pool of that name.
            ValueError: size is not a positive int, or the pool is closed.
            RuntimeError: the pool cannot be resized (a ``DaskPool``).

        Cancellation:
            As ``request``: safe for the connection (the answer of a request
            already sent is read and dropped); a timeout closes the connection.
            The resize may have been made.
        """
        return str(await self.request("resize", pool=pool, size=size))

    async def close(self) -> None:
        """Close the connection (``async with`` does it on the way out).

        It raises nothing; closing twice is fine.

        Cancellation:
            The connection is closed at once; only the wait for the transport
            to finish closing is cut short.
        """
        self._writer.close()
        for exchange in list(self._exchanges):  # of callers cancelled: nobody awaits them
            exchange.cancel()
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


async def connect(
    address: Address | int,
    *,
    token: str | None = None,
    token_file: str | os.PathLike[str] | None = None,
    timeout: float = 5.0,
) -> MonitorClient:
    """Connect to the monitor at address: (host, port), a Unix socket path, or the service's pid.

    The token, if the monitor needs one: token, else token_file, else the
    file the service announced (found by pid), else TOOLKIT_MONITOR_TOKEN or
    TOOLKIT_MONITOR_TOKEN_FILE.

    Raises:
        TypeError, ValueError: address or token is not one (at the call).
        LookupError: no monitor of that pid.
        OSError: nothing listens there (ConnectionRefusedError, FileNotFoundError).
        PermissionError: the monitor refused the token (or its absence).
        ConnectionRefusedError: the monitor has as many clients as it takes.
        TimeoutError: no answer within timeout seconds.

    Cancellation:
        Safe: a connection opened meanwhile is closed; nothing is returned.
    """
    endpoint, announced = resolve(address)
    if token is not None:
        secret: str | None = _protocol.check_token(token, "token")
    elif token_file is not None:
        secret = _protocol.read_token_file(token_file)
    elif announced is not None:
        secret = _protocol.read_token_file(announced)
    else:
        secret = _protocol.token_from_environment()
    if isinstance(endpoint, tuple) and secret is None:
        raise PermissionError(
            f"the monitor at {endpoint[0]}:{endpoint[1]} takes a token: pass token_file=, or set "
            f"{_protocol.TOKEN_FILE_ENV} (or {_protocol.TOKEN_ENV})"
        )
    async with asyncio.timeout(timeout):
        if isinstance(endpoint, str):
            reader, writer = await asyncio.open_unix_connection(endpoint)
        else:
            reader, writer = await asyncio.open_connection(*endpoint)
        try:
            writer.write(_protocol.MAGIC + _protocol.digest(secret))
            try:
                hello = await _protocol.read_frame(reader, _protocol.MAX_REQUEST)
            except asyncio.IncompleteReadError as exc:
                raise ConnectionResetError(
                    f"{endpoint!r} closed the connection: not a toolkit monitor?"
                ) from exc
            except ValueError as exc:
                raise ValueError(f"not a toolkit monitor at {endpoint!r}: {exc}") from exc
            if not isinstance(hello, dict):
                raise ValueError(f"not a toolkit monitor at {endpoint!r}")
            if "error" in hello:
                _raise(hello)
            if hello.get("protocol") != 1:
                raise ValueError(f"not a toolkit monitor at {endpoint!r} (or a newer one)")
        except BaseException:
            writer.close()
            raise
    return MonitorClient(endpoint, reader, writer, hello, timeout)


async def fetch(
    address: Address | int,
    *,
    token: str | None = None,
    token_file: str | os.PathLike[str] | None = None,
    timeout: float = 5.0,
) -> Snapshot:
    """One snapshot of the service at address (see connect for the address and the token).

    Connects, asks, and closes; timeout bounds the whole of it.

    Raises:
        TypeError: address or token is not one (at the call).
        ValueError: a malformed address or token, or not a monitor's answer.
        LookupError: no monitor of that pid.
        OSError: nothing listens there (``ConnectionRefusedError``, ``FileNotFoundError``).
        PermissionError: the monitor refused the token (or its absence).
        ConnectionError: the service went away meanwhile.
        TimeoutError: not done within timeout seconds.

    Cancellation:
        Safe: the connection is closed on the way out; nothing is returned.
    """
    async with asyncio.timeout(timeout):
        client = await connect(address, token=token, token_file=token_file, timeout=timeout)
        async with client:
            return await client.snapshot()
