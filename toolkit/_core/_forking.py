"""What a forked child must not inherit: locks another thread of its parent held.

``fork`` copies the whole memory but only the thread that called it. A lock
that another thread (a helper wait, a pool's result thread, the monitor's
server) held at that moment stays held in the child for ever, and the
child's first ``with lock:`` hangs. Each module-level lock that threads take
is replaced by a new one in the child, before any of the child's code runs.
The state such a lock guards is a dict or set updated in one step under it,
so no update is ever caught half done.

The same goes for multiprocessing's own forkserver: a fork child forgets its
parent's and starts its own when it needs one (``forget_inherited_forkserver``).
"""

from __future__ import annotations

import os
import threading
from typing import Any

from ._cpython import forget_inherited_forkserver

__all__ = ["renew_locks_in_child"]


def renew_locks_in_child(namespace: dict[str, Any], *names: str) -> None:
    """In every forked child, rebind each named module global to a new, unheld Lock.

    Args:
        namespace: the module's ``globals()``.
        names: the globals holding a ``threading.Lock`` (read by name, never kept).
    """
    for name in names:
        if not isinstance(namespace.get(name), type(threading.Lock())):
            raise TypeError(f"{name} is not a module-level threading.Lock")

    def renew() -> None:
        for name in names:
            namespace[name] = threading.Lock()

    if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
        os.register_at_fork(after_in_child=renew)


if hasattr(os, "register_at_fork"):
    # Whoever forks: the toolkit's default process pool and Pool(context=
    # "forkserver") in a fork child need a forkserver of the child's own.
    os.register_at_fork(after_in_child=forget_inherited_forkserver)
