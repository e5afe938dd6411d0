"""The PDU's register read-out and updates, compiled: the decision a die's PDU gives when a
remote slice arrives (docs/rtl.md, flow 2), on register words in the layout of
:mod:`.params` (one row per die).

:class:`hwmodel.components.pdu.twin.PDUTwin` keeps its registers in such a row and answers
through these functions (``query``, ``copy_arrivals``, ``set_local_many``); the replay's
all-dies table writes pack their words with :func:`pack_registers`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .params import BITS_PER_EXPERT, EXPERTS_PER_WORD

__all__ = ["CP_EN", "IS_LOCAL", "copies_on_arrival", "copy_arrivals", "expert_bits",
           "pack_registers", "set_is_local"]

#: Bit of ``cp_en`` within an expert's field (copy this expert when it passes by).
CP_EN = 1
#: Bit of ``is_local`` within an expert's field (a local copy exists).
IS_LOCAL = 2


@njit(cache=True, inline="always")
def expert_bits(registers, die, expert):
    """The two bits (``cp_en``, ``is_local`` << 1) of ``expert`` in die ``die``'s PDU."""
    word = registers[die, expert // EXPERTS_PER_WORD]
    return (word >> (BITS_PER_EXPERT * (expert % EXPERTS_PER_WORD))) & (CP_EN | IS_LOCAL)


@njit(cache=True, inline="always")
def copies_on_arrival(registers, die, expert):
    """``cp_en and not is_local``: an arriving slice of ``expert`` is copied on die ``die``."""
    return expert_bits(registers, die, expert) == CP_EN


@njit(cache=True)
def pack_registers(cp_en, is_local, out):
    """Write the register words of each row's ``cp_en`` / ``is_local`` bits (bool arrays of
    shape (rows, experts)) into ``out`` (int64, shape (rows, words)); words past the experts
    are 0. The layout all configuration paths use (one register per eight experts)."""
    out[:] = 0
    for row in range(cp_en.shape[0]):
        for e in range(cp_en.shape[1]):
            bits = CP_EN * cp_en[row, e] + IS_LOCAL * is_local[row, e]
            out[row, e // EXPERTS_PER_WORD] |= bits << (BITS_PER_EXPERT * (e % EXPERTS_PER_WORD))
    return out


@njit(cache=True, inline="always")
def _set_is_local(registers, die, expert):
    registers[die, expert // EXPERTS_PER_WORD] |= IS_LOCAL << (
        BITS_PER_EXPERT * (expert % EXPERTS_PER_WORD))


@njit(cache=True)
def set_is_local(registers, die, experts):
    """Set the ``is_local`` bit of each of ``experts`` in die ``die``'s PDU (copies made)."""
    for i in range(experts.shape[0]):
        _set_is_local(registers, die, experts[i])


@njit(cache=True)
def copy_arrivals(registers, die, experts):
    """Remote slices of ``experts`` arrive on die ``die`` in order: each that
    :func:`copies_on_arrival` is copied and sets its ``is_local`` bit (so a later arrival of the
    same expert is not copied again). Updates ``registers`` in place; returns the copied
    experts in order."""
    copied = np.empty(experts.shape[0], np.int64)
    n = 0
    for i in range(experts.shape[0]):
        e = experts[i]
        if copies_on_arrival(registers, die, e):
            _set_is_local(registers, die, e)
            copied[n] = e
            n += 1
    return copied[:n]
