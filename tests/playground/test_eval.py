"""Statements on a loop, without a terminal: results, errors, cancellation, one context."""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

import pytest

from playground._eval import Engine, Outcome, compile_statement


def _running(engine: Engine) -> bool:
    return engine.running is not None


async def _run(engine: Engine, source: str) -> Outcome:
    return await engine.run(compile_statement(source))


async def test_eval_results_and_underscore() -> None:
    engine = Engine(asyncio.get_running_loop(), {"asyncio": asyncio})
    assert await _run(engine, "x = 20\nawait asyncio.sleep(0, result=x + 22)") == Outcome("42")
    assert engine.namespace["_"] == 42
    assert await _run(engine, "None") == Outcome()
    assert await _run(engine, "y = [i async for i in asyncio.as_completed([])] if 0 else 1") == (
        Outcome()
    )
    assert engine.namespace["y"] == 1


async def test_eval_errors_start_at_the_users_code() -> None:
    engine = Engine(asyncio.get_running_loop(), {})
    outcome = await _run(engine, "def f():\n    return 1 / 0\nf()")
    assert outcome.error is not None
    assert "ZeroDivisionError" in outcome.error
    assert "_eval.py" not in outcome.error
    assert "return 1 / 0" in outcome.error  # the typed source, through linecache
    assert await _run(engine, "raise SystemExit(4)") == Outcome(exit_status=4)
    engine.namespace["asyncio"] = asyncio
    source = "c = asyncio.sleep(0)\ntry:\n    asyncio.run(c)\nfinally:\n    c.close()"
    outcome = await _run(engine, source)
    assert outcome.error is not None
    assert "`await coro` instead" in outcome.error
    with pytest.raises(SyntaxError):
        compile_statement("def f(:")


def test_eval_submit_runs_in_one_context_and_cancels() -> None:
    loop = asyncio.new_event_loop()
    var: contextvars.ContextVar[int] = contextvars.ContextVar("var")
    namespace: dict[str, Any] = {"asyncio": asyncio, "var": var}
    engine = Engine(loop, namespace)

    def run(source: str) -> Outcome:
        future = engine.submit(compile_statement(source))
        loop.call_soon(lambda: None)
        while not future.done():
            loop.run_until_complete(asyncio.sleep(0.01))
        return future.result()

    try:
        run("token = var.set(5)")
        assert run("var.get()") == Outcome("5")
        future = engine.submit(compile_statement("await asyncio.sleep(60)"))
        loop.run_until_complete(asyncio.sleep(0.05))
        assert _running(engine)
        engine.on_sigint(2, None)  # the first Ctrl-C cancels the statement
        loop.run_until_complete(asyncio.sleep(0.05))
        assert future.result(timeout=0) == Outcome(interrupted=True)
        assert not _running(engine)
        engine.on_sigint(2, None)  # nothing running: ignored, background work untouched
    finally:
        loop.close()
