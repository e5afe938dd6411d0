"""The PDU's register read-out and updates, compiled: the decision a die's PDU gives when a
remote slice arrives (docs/rtl.md, flow 2), on register words in the layout of
:mod:`.params` (one row per die).

:class:`hwmodel.components.pdu.twin.PDUTwin` keeps its registers in such a row and answers
through these functions (``query``, ``copy_arrivals``, ``load_words``, ``set_local_many``);
the replay calls the same functions on every die's row at once (``PDUTwin.load_tables``,
``PDUTwin.arrivals``) and packs the words of all dies with :func:`pack_registers`.
"""

from __future__ import annotations

from ...jit import njit
from .params import BITS_PER_EXPERT, EXPERTS_PER_WORD

__all__ = ["CP_EN", "IS_LOCAL", "copies_on_arrival", "copy_arrivals_rows", "expert_bits",
           "load_rows", "pack_registers", "set_is_local"]

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
def copy_arrivals_rows(registers, dies, experts, copied):
    """Remote slices arrive in order, slice ``i`` of ``experts[i]`` on die ``dies[i]``: each
    that :func:`copies_on_arrival` is copied and sets its ``is_local`` bit in that die's row
    (so a later arrival of the same expert on that die is not copied again). Updates
    ``registers`` in place; ``copied[i]`` := whether slice ``i`` was copied. The PDU's
    decision for every die of the wafer at once, and (one row) for one PDU."""
    for i in range(experts.shape[0]):
        d = dies[i]
        e = experts[i]
        copied[i] = copies_on_arrival(registers, d, e)
        if copied[i]:
            _set_is_local(registers, d, e)


@njit(cache=True)
def load_rows(registers, rows, words):
    """Write the registers of each die in ``rows`` with its row of ``words`` (register ``w``
    := ``words[d, w]`` for ``w`` below ``words.shape[1]``; the registers past them are kept):
    the Local CPs' table writes of every die at once, and (one row) a PDU's bulk write."""
    for i in range(rows.shape[0]):
        d = rows[i]
        for w in range(words.shape[1]):
            registers[d, w] = words[d, w]
