"""Argument checks shared by the Python twins and the RTL components.

Both levels of a unit must reject the same bad inputs with the same messages, so the checks live
in one place. Every message names the argument, the bad value and what was expected.
"""

from __future__ import annotations

import numbers

__all__ = ["check_bool", "check_int"]


def check_int(name: str, value, lo: int | None = None, hi: int | None = None) -> int:
    """Return ``value`` as an ``int`` after checking its type and range ``lo <= value < hi``.

    Raises
    ------
    TypeError
        If ``value`` is not an integer (``bool`` is refused too: it is almost always a slip).
    ValueError
        If ``value`` is outside ``[lo, hi)``.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    value = int(value)
    if lo is not None and value < lo:
        if hi is None:
            raise ValueError(f"{name} must be {lo} or more, not {value!r}")
        raise ValueError(f"{name} must be in [{lo}, {hi}), not {value!r}")
    if hi is not None and value >= hi:
        raise ValueError(f"{name} must be in [{lo if lo is not None else '-inf'}, {hi}), "
                         f"not {value!r}")
    return value


def check_bool(name: str, value) -> bool:
    """Return ``value`` as a ``bool``; accept ``bool``, ``0`` and ``1`` only."""
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral) and int(value) in (0, 1):
        return bool(value)
    raise TypeError(f"{name} must be a bool (or 0/1), not {value!r}")
