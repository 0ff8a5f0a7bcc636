"""The monitor's wire format: a fixed-size opening, then length-prefixed JSON frames.

A client opens with 40 bytes, always the same size::

    b"TKMON/1\\n"  +  SHA-256 of the token (32 bytes; zeros without one)

so the server can refuse a wrong token having read exactly those bytes and
parsed nothing. Then every message, either way, is a frame::

    4 bytes: the payload's length (big-endian)  +  the payload: UTF-8 JSON

Requests are small objects (``{"op": "snapshot"}``) and may not pass
MAX_REQUEST; answers have no size limit but the client's (MAX_ANSWER), so a
snapshot of hundreds of workers arrives whole. No pickle, ever: a frame is
data, never code.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import secrets
import struct
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._core._asynctasks import AsyncTaskInfo
from .._core._inspection import (
    PoolSnapshot,
    PoolStats,
    ProcessInfo,
    Snapshot,
    TaskInfo,
    WorkerInfo,
)

if TYPE_CHECKING:
    import asyncio

__all__ = [
    "Address",
    "check_token",
    "digest",
    "endpoints_of",
    "frame",
    "new_token",
    "parse_address",
    "plain",
    "private_directory",
    "process_started",
    "raw_frame",
    "read_frame",
    "read_token_file",
    "snapshot_from_plain",
    "sweep_stale",
    "tasks_from_plain",
    "token_from_environment",
    "unix_sockets_supported",
    "write_token_file",
]

MAGIC = b"TKMON/1\n"
HELLO_SIZE = len(MAGIC) + 32
HEADER = struct.Struct("!I")
MAX_REQUEST = 64 * 1024  # a request is a few words: more is not a client of ours
MAX_ANSWER = 1 << 30  # a client's guard against a peer that is not a monitor

TOKEN_ENV = "TOOLKIT_MONITOR_TOKEN"
TOKEN_FILE_ENV = "TOOLKIT_MONITOR_TOKEN_FILE"
MIN_TOKEN_LENGTH = 32  # characters: 128 bits written in hex
_TOKEN_CHARS = re.compile(r"[!-~]+")  # printable ASCII, no spaces

Address = tuple[str, int] | str
"""Where a monitor listens: ``(host, port)`` for TCP, or a Unix socket's path (a str)."""

# The private directories of monitors: tempdir/toolkit-monitor-<pid>-<random>/.
DIRECTORY_PREFIX = "toolkit-monitor-"
ENDPOINT_FILE = "endpoint.json"  # where a console finds a monitor by its service's pid
SOCKET_FILE = "monitor.sock"
TOKEN_FILE = "token"


def new_token() -> str:
    """A fresh random token: 256 bits, as 64 hex characters (``secrets.token_hex``).

    It raises nothing.
    """
    return secrets.token_hex(32)


def check_token(token: object, source: str) -> str:
    """token itself if it may serve as one; else a ValueError or TypeError naming source."""
    if not isinstance(token, str):
        raise TypeError(f"{source}: a token is a str, not {type(token).__name__}")
    if len(token) < MIN_TOKEN_LENGTH or not _TOKEN_CHARS.fullmatch(token):
        raise ValueError(
            f"{source}: a token must be at least {MIN_TOKEN_LENGTH} printable characters "
            "without spaces (128 random bits in hex; toolkit.monitor.new_token() makes one)"
        )
    return token


def digest(token: str | None) -> bytes:
    """What the opening carries for token: its SHA-256, or zeros for none."""
    if token is None:
        return bytes(32)
    return hashlib.sha256(token.encode()).digest()


def read_token_file(path: str | os.PathLike[str]) -> str:
    """The token kept in a file, which only its owner may read (as ssh asks of its keys)."""
    file = Path(path)
    if os.name == "posix":
        mode = file.stat().st_mode & 0o777
        if mode & 0o077:
            raise PermissionError(
                f"the token file {file} can be read by others (mode {mode:04o}): chmod 600 it"
            )
    return check_token(file.read_text().strip(), f"the token file {file}")


def write_token_file(path: str | os.PathLike[str], token: str) -> None:
    """Write token to a new file only its owner can read, whatever the umask."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, 0o600)  # the umask may have taken bits away, never added: be exact
        os.write(fd, token.encode() + b"\n")
    finally:
        os.close(fd)


def token_from_environment() -> str | None:
    """The token named by TOOLKIT_MONITOR_TOKEN, or in the file TOOLKIT_MONITOR_TOKEN_FILE."""
    token = os.environ.get(TOKEN_ENV)
    if token:
        return check_token(token, TOKEN_ENV)
    path = os.environ.get(TOKEN_FILE_ENV)
    if path:
        return read_token_file(path)
    return None


def frame(data: Any) -> bytes:
    """One frame of JSON for data."""
    payload = json.dumps(data, separators=(",", ":")).encode()
    return HEADER.pack(len(payload)) + payload


def raw_frame(payload: bytes) -> bytes:
    """One frame around JSON already encoded."""
    return HEADER.pack(len(payload)) + payload


async def read_frame(reader: asyncio.StreamReader, limit: int) -> Any:
    """The next frame's JSON, decoded.

    Raises:
        asyncio.IncompleteReadError: the peer left (mid-frame or between frames).
        ValueError: a frame longer than limit, or not JSON.
    """
    (size,) = HEADER.unpack(await reader.readexactly(HEADER.size))
    if size > limit:
        raise ValueError(f"a frame of {size} bytes (at most {limit} expected)")
    payload = await reader.readexactly(size)
    return json.loads(payload)


def plain(obj: Any) -> Any:
    """A snapshot record as JSON-ready dicts and lists (faster than dataclasses.asdict)."""
    slots = getattr(type(obj), "__slots__", None)
    if slots is not None and dataclasses.is_dataclass(obj):
        return {name: plain(getattr(obj, name)) for name in slots}
    if isinstance(obj, tuple | list):
        return [plain(item) for item in obj]
    return obj


def snapshot_from_plain(data: Any) -> Snapshot:
    """The Snapshot that plain() turned into data."""
    pools = tuple(
        PoolSnapshot(
            PoolStats(**pool["stats"]),
            tuple(
                WorkerInfo(
                    **{**w, "task": TaskInfo(**w["task"]) if w["task"] is not None else None}
                )
                for w in pool["workers"]
            ),
        )
        for pool in data["pools"]
    )
    processes = tuple(ProcessInfo(**p) for p in data["processes"])
    return Snapshot(data["taken_at"], pools, processes)


def tasks_from_plain(data: Any) -> tuple[AsyncTaskInfo, ...]:
    """The task records that plain() turned into data."""
    return tuple(
        AsyncTaskInfo(**{**t, "stack": tuple(t["stack"]), "awaits": tuple(t["awaits"])})
        for t in data
    )


def private_directory() -> Path:
    """A new directory only this user can enter, named after this process."""
    # mkdtemp makes it 0700 whatever the umask.
    return Path(tempfile.mkdtemp(prefix=f"{DIRECTORY_PREFIX}{os.getpid()}-"))


def process_started(pid: int) -> float | None:
    """When process pid started (seconds since the epoch); None if there is no such process.

    With the pid, it names one process: a pid is reused once its process has
    ended, a start time is not.

    Raises:
        PermissionError: the system will not say (another user's process, on some systems).
    """
    import psutil  # here: a client that connects by address never needs it

    try:
        return float(psutil.Process(pid).create_time())
    except psutil.NoSuchProcess:  # a zombie too: it serves nothing any more
        return None
    except psutil.AccessDenied as exc:
        raise PermissionError(f"cannot tell when process {pid} started") from exc


# Start times read twice agree to a clock tick (10 ms on Linux); a pid is not
# reused within a second of its last owner's start.
_SAME_START = 1.0


def _stale(directory: Path) -> tuple[bool, dict[str, Any] | None]:
    """Whether a monitor directory outlived its service; its endpoint (None: none there yet).

    Stale: its pid has no process, or a process that started after the
    endpoint's service did (the pid was reused). A directory whose endpoint
    is not written yet belongs to a service starting, unless its pid is gone.
    """
    try:
        pid = int(directory.name[len(DIRECTORY_PREFIX) :].split("-", 1)[0])
    except ValueError:
        return False, None  # not named by this module: leave it alone
    try:
        data = json.loads((directory / ENDPOINT_FILE).read_text())
    except (OSError, ValueError):
        data = None  # being written or removed
    try:
        started = process_started(pid)
    except PermissionError:
        return False, data  # cannot tell: never remove what may be live
    if started is None:
        return True, data
    recorded = data.get("started") if isinstance(data, dict) else None
    if isinstance(recorded, int | float) and abs(started - recorded) > _SAME_START:
        return True, data
    return False, data


def _owned(directory: Path) -> bool:
    """Is the directory this user's? Another user's is never trusted, nor removed."""
    try:
        return os.name != "posix" or directory.stat().st_uid == os.getuid()
    except OSError:
        return False


def _remove(directory: Path) -> None:
    import shutil  # here: only a stale directory needs it

    shutil.rmtree(directory, ignore_errors=True)


def endpoints_of(pid: int) -> list[dict[str, Any]]:
    """The monitors that process pid announced (their endpoint files), newest first.

    The directories of a service that ended without closing its monitor (it
    was killed) are removed on the way, and never answer for a later process
    given the same pid.
    """
    found = []
    for directory in Path(tempfile.gettempdir()).glob(f"{DIRECTORY_PREFIX}{pid}-*"):
        if not _owned(directory):
            continue
        stale, data = _stale(directory)
        if stale:
            _remove(directory)
            continue
        if data is None:
            continue  # half written, or its service is closing it
        try:
            found.append(((directory / ENDPOINT_FILE).stat().st_mtime, data))
        except OSError:
            continue  # its service closed it meanwhile
    return [data for _, data in sorted(found, key=lambda item: item[0], reverse=True)]


def sweep_stale() -> int:
    """Remove this user's monitor directories whose services ended unclosed; return how many.

    A monitor starting calls it, so that those of killed services do not pile up.
    """
    removed = 0
    for directory in Path(tempfile.gettempdir()).glob(f"{DIRECTORY_PREFIX}*"):
        if _owned(directory) and _stale(directory)[0]:
            _remove(directory)
            removed += 1
    return removed


def parse_address(text: str) -> Address | int:
    """A console's ADDRESS argument: a pid, HOST:PORT ([v6]:PORT) or a Unix socket path.

    Digits only are a pid (an int); anything that is not HOST:PORT is a path.
    It raises nothing for a str; connect() says whether anything listens there.

    Raises:
        AttributeError: text is not a str.
    """
    if text.isdigit():
        return int(text)
    match = re.fullmatch(r"\[([^\]]+)\]:(\d+)|([^:/\\]+):(\d+)", text)
    if match:
        host = match.group(1) or match.group(3)
        return (host, int(match.group(2) or match.group(4)))
    return text


def unix_sockets_supported() -> bool:
    """Can asyncio serve on a Unix socket here? (Not on Windows.)"""
    return sys.platform != "win32"
