"""A running service's pools, processes and tasks, seen from outside: its monitor.

A service starts one inside its event loop::

    async with toolkit.monitor.serve() as monitor:
        print("monitor on", monitor.address)
        await run_the_service()

and a console on the same machine attaches to it (``toolkit-playground
--attach PID``, ``await attach(pid)`` at the playground's prompt) or a
script asks::

    snapshot = await toolkit.monitor.fetch(pid_of_the_service)

Safe by default:

- **Who may connect.** By default the monitor listens on a Unix socket,
  mode 0600, in a directory only its owner can enter; both are removed when
  it stops. TCP only when asked (``serve(("127.0.0.1", 0))``), and then only
  with a token: random, 256 bits, compared in constant time before anything
  else is read; it is passed by file (``token_file``, 0600) or environment
  variable (``TOOLKIT_MONITOR_TOKEN``, ``TOOLKIT_MONITOR_TOKEN_FILE``), never
  on a command line.
- **What crosses the wire**: JSON only (never pickle), in frames with
  explicit lengths, of any size.
- **It cannot hurt the service**: it yields to the loop between requests,
  takes at most ``rate`` requests a second from a client and
  ``max_clients`` clients, and builds a snapshot in time linear in the
  workers.
- **Control is opt-in**: ``serve(control=True)`` lets a console cancel a
  task, terminate or kill a worker and resize a pool, each action logged
  on the ``toolkit.monitor`` logger. Without it the monitor is read-only.

The wire format is in docs/monitor.md. For Prometheus, see
``toolkit.monitor.metrics``.
"""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Any

from ._monitor._client import MonitorClient, connect, fetch
from ._monitor._protocol import Address, new_token, parse_address, snapshot_from_plain
from ._monitor._server import MonitorServer

if TYPE_CHECKING:
    import os

    from ._core._inspection import Snapshot
    from ._monitor._metrics import Collector

__all__ = [
    "Address",
    "MonitorClient",
    "MonitorServer",
    "connect",
    "fetch",
    "from_json",
    "metrics",
    "new_token",
    "parse_address",
    "serve",
    "to_json",
]


def to_json(snapshot: Snapshot) -> str:
    """One line of JSON for a snapshot (from_json reads it back).

    Raises:
        TypeError: snapshot is not a dataclass instance (a ``Snapshot``).
    """
    return json.dumps(dataclasses.asdict(snapshot), separators=(",", ":"))


def from_json(text: str | bytes) -> Snapshot:
    """The snapshot a to_json line describes.

    Raises:
        json.JSONDecodeError: text is not JSON (a ``ValueError``).
        KeyError: the JSON lacks a field a snapshot has.
        TypeError: a record has fields a snapshot's records do not (another version's).
    """
    return snapshot_from_plain(json.loads(text))


def serve(
    address: Address | None = None,
    *,
    token: str | None = None,
    token_file: str | os.PathLike[str] | None = None,
    control: bool = False,
    max_clients: int = 8,
    rate: float = 20.0,
) -> MonitorServer:
    """A monitor for this process; ``async with`` it (or await its start() and close()).

    Args:
        address: None: a private Unix socket (on Windows: loopback TCP with a
            token). A str: a Unix socket path. (host, port): TCP, with a token.
        token: the secret a client must present (TCP: made and written to
            ``server.token_file`` when neither it nor token_file is given nor
            set in the environment).
        token_file: a file holding the token (read if it exists, else
            written, mode 0600).
        control: let consoles cancel tasks, kill workers and resize pools.
        max_clients: connections at once.
        rate: requests a second per client.

    Raises:
        TypeError: an address that is neither (host, port) nor a path; control
            not a bool; a token that is not a str (at the call).
        ValueError: max_clients or rate not positive; a token too short or
            with spaces; a Unix socket path on Windows (at the call).
    """
    return MonitorServer(
        address,
        token=token,
        token_file=token_file,
        control=control,
        max_clients=max_clients,
        rate=rate,
    )


def metrics(registry: Any = None) -> Collector:
    """Export the toolkit's figures to Prometheus (needs ``toolkit[metrics]``: prometheus_client).

    Registers a collector on registry (prometheus_client's default
    REGISTRY when None) and returns it; scrapes read the live pools then.
    See docs/monitor.md for the metric names.

    Raises:
        ModuleNotFoundError: prometheus_client is not installed (``toolkit[metrics]``).
        ValueError: registry has these metrics already (register once per registry).
    """
    from ._monitor._metrics import register

    return register(registry)
