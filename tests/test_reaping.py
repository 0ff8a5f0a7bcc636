"""guard_poll: children polled from several threads at once keep their true exit codes."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import toolkit
from tests import _helpers
from toolkit._core._reaping import guard_poll

if TYPE_CHECKING:
    from multiprocessing.context import BaseContext


def test_reaping_concurrent_polls_keep_exit_codes(mp_context: BaseContext) -> None:
    # Process.start() polls every child (multiprocessing's _cleanup) from the
    # starting thread while this one joins: unguarded, one child in a few
    # hundred came back with 255 (forkserver) or None (spawn, ECHILD).
    wrong = []
    for _ in range(8):
        children = [mp_context.Process(target=_helpers.os_exit, args=(7,)) for _ in range(5)]  # type: ignore[attr-defined]
        for child in children:
            child.start()
            guard_poll(child)

        def start_more() -> None:
            for _ in range(5):
                other = mp_context.Process(target=_helpers.os_exit, args=(7,))  # type: ignore[attr-defined]
                other.start()
                guard_poll(other)
                other.join()
                if other.exitcode != 7:
                    wrong.append(other.exitcode)

        starter = threading.Thread(target=start_more)
        starter.start()
        for child in children:
            child.join()
            if child.exitcode != 7:
                wrong.append(child.exitcode)
        starter.join()
    assert wrong == []


async def test_reaping_toolkit_processes_are_guarded() -> None:
    async with toolkit.Process(target=_helpers.os_exit, args=(3,)) as process:
        pass
    assert process.exitcode == 3
    assert "poll" in vars(process.sync._popen)  # type: ignore[attr-defined]
