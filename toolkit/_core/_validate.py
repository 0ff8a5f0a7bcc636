"""Checks of arguments, shared by every module: bad input fails at the call, clearly."""

from __future__ import annotations

__all__ = ["check_callable", "check_positive_int", "check_timeout"]


def check_callable(fn: object) -> None:
    if not callable(fn):
        raise TypeError(f"expected a callable, got {type(fn).__name__} {fn!r}")


def check_timeout(
    timeout: object,
    *,
    allow_zero: bool = True,
    negative_is_zero: bool = False,
    name: str = "timeout",
) -> float | None:
    """Validate a timeout in seconds (None: no limit).

    Args:
        allow_zero: 0 means "poll" (queue gets, waits); else it must be > 0.
        negative_is_zero: a negative timeout means 0, as for the stdlib's
            semaphore ``acquire``, ``Connection.poll`` and ``Process.join``;
            otherwise it is a ValueError (as ``queue.get``). NaN is a
            ValueError either way.
        name: the argument's name, for the message.

    Returns:
        The timeout as a float, or None.

    Raises:
        TypeError: not an int, a float or None (a bool is refused too).
        ValueError: NaN, or below the bound ("timeout must be a number >= 0, not nan").
    """
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(f"{name} must be a number of seconds or None, not {timeout!r}")
    if negative_is_zero and timeout < 0:
        return 0.0
    if not (timeout >= 0 if allow_zero else timeout > 0):  # NaN fails both comparisons too
        # "a number": the message must read right for NaN ("..., not nan"),
        # which the stdlib reports as "cannot convert float NaN to integer".
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a number {bound}, not {timeout!r}")
    return float(timeout)


def check_positive_int(value: object, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a positive int or None, not {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, not {value!r}")
    return value
