"""Argument checks shared by the Python twins and the RTL components.

Both levels of a unit must reject the same bad inputs with the same messages, so the checks live
in one place. Every message names the argument, the bad value and what was expected.
"""

from __future__ import annotations

import numbers

import numpy as np

from .jit import njit

__all__ = ["check_bool", "check_int", "check_int_array", "check_transaction", "index_bits",
           "positive_int"]


def check_int(name: str, value, lo: int | None = None, hi: int | None = None) -> int:
    """Return ``value`` as an ``int`` after checking its type and range ``lo <= value < hi``.

    Raises
    ------
    TypeError
        If ``value`` is not an integer (``bool`` is refused too: it is almost always a slip).
    ValueError
        If ``value`` is outside ``[lo, hi)``.
    """
    # ``type(...) is int`` first: the abstract ``numbers.Integral`` check costs ~1 us and the
    # twins call this once per transaction (bool is a subclass of int, so it is not ``int``).
    if type(value) is not int:
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


def index_bits(count: int) -> int:
    """Bits of a field that numbers ``count`` items ``0 .. count - 1``: ``ceil(log2(count))``,
    at least 1 (a die-id field of a 25-die wafer has 5 bits, of a 1024-die wafer 10).

    Raises
    ------
    TypeError, ValueError
        If ``count`` is not a positive integer.
    """
    count = check_int("count", count, 1)
    return max(1, (count - 1).bit_length())


def positive_int(owner: str):
    """An attrs validator: the field is an integer of 1 or more; messages name
    ``<owner>.<field>`` (the unit layouts' sizes)."""
    def validate(instance, attribute, value):
        check_int(f"{owner}.{attribute.name}", value, 1)
    return validate


def check_bool(name: str, value) -> bool:
    """Return ``value`` as a ``bool``; accept ``bool``, ``0`` and ``1`` only."""
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral) and int(value) in (0, 1):
        return bool(value)
    raise TypeError(f"{name} must be a bool (or 0/1), not {value!r}")


def _item(name: str, i: int) -> str:
    return name.replace("{i}", str(i)) if "{i}" in name else f"{name}[{i}]"


#: Integer dtypes whose values compare exactly with int64 bounds in compiled code.
_EXACT_IN_INT64 = frozenset(np.dtype(t) for t in (np.int8, np.int16, np.int32, np.int64,
                                                   np.uint8, np.uint16, np.uint32))
_LOWEST, _HIGHEST = np.iinfo(np.int64).min, np.iinfo(np.int64).max


@njit(cache=True)
def _all_in_range(values, lo, hi):
    """Whether every element is in ``[lo, hi)`` (at ``hi`` = int64's largest, that largest
    value reads as out of range: the checked path then decides)."""
    for value in values:
        if value < lo or value >= hi:
            return False
    return True


def check_int_array(name: str, values, lo: int | None = None, hi: int | None = None,
                    *, length: int | None = None) -> np.ndarray:
    """The bulk :func:`check_int`: ``values`` (1-D, integers) as an int64 array, checked once.

    The twins' bulk transactions validate a whole array with this instead of one
    :func:`check_int` per element; a bad element is named by its index
    (``name[i] must be in [lo, hi), not v``; a ``name`` holding ``{i}`` is formatted with the
    index instead, e.g. ``"tasks[{i}].expert"``).

    Raises
    ------
    TypeError
        If ``values`` is not a 1-D sequence of integers (bools refused).
    ValueError
        If its length is not ``length`` or an element is outside ``[lo, hi)``.
    """
    # the bulk paths' usual case, an integer array in range: one compiled pass, no temporaries
    if (type(values) is np.ndarray and values.ndim == 1 and values.dtype in _EXACT_IN_INT64
            and (length is None or len(values) == length)
            and _all_in_range(values, _LOWEST if lo is None else lo,
                              _HIGHEST if hi is None else hi)):
        return values.astype(np.int64, copy=False)
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise TypeError(f"{name} must be a 1-D sequence of integers, not {values!r}")
    # numpy turns [True, 1] into integers: look for bools in a Python sequence first
    mixed = not isinstance(values, np.ndarray) and any(type(v) is bool for v in values)
    if mixed or arr.dtype.kind not in "iu":
        if arr.size:   # an empty list has dtype float64: accept it
            for i, v in enumerate(values if mixed or arr.dtype == object else arr.tolist()):
                check_int(_item(name, i), v)
            raise TypeError(f"{name} must hold integers, not {arr.dtype}")
        arr = arr.astype(np.int64)
    if length is not None and len(arr) != length:
        raise ValueError(f"{name} must have {length} entries, not {len(arr)}")
    bad = np.zeros(len(arr), np.bool_)
    if lo is not None:
        bad |= arr < lo
    if hi is not None:
        bad |= arr >= hi
    if bad.any():
        i = int(np.argmax(bad))
        check_int(_item(name, i), int(arr[i]), lo, hi)   # raises, with check_int's message
    return arr.astype(np.int64, copy=False)



def check_transaction(unit: str, transaction, arity: dict[str, int]) -> tuple[str, list]:
    """Split ``(op, *args)`` after checking it names a known operation with its arity.

    Raises
    ------
    ValueError
        Naming ``unit``, the operations it knows and the bad transaction.
    """
    if not isinstance(transaction, tuple) or not transaction or transaction[0] not in arity:
        raise ValueError(f"{unit} transaction must be a tuple starting with one of "
                         f"{sorted(arity)}, not {transaction!r}")
    op, *args = transaction
    if len(args) != arity[op]:
        raise ValueError(f"{unit} transaction {op!r} takes {arity[op]} arguments, "
                         f"got {transaction!r}")
    return op, args
