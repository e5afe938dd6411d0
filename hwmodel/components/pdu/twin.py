"""Python twin of the prediction unit (PDU) of a die's D2D controller.

Per expert of the current MoE layer the PDU keeps two bits (docs/rtl.md, paper Table II):

* ``cp_en``: the Global CP's predictor says this die should copy the expert when its weights
  pass through the D2D controller;
* ``is_local``: a local copy exists, so the ATU redirects reads and no copy is needed.

Storage is 16-bit registers, 128 B for 512 experts (sizes: :mod:`.params`). Register layout
(interleaved so that one register write configures both bits of eight experts, the way the
Local CP writes the table)::

    register w = expert // 8,   bit 2 * (expert % 8)     : cp_en
                                bit 2 * (expert % 8) + 1 : is_local
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ...checks import check_int, check_int_array
from .compiled import (
    CP_EN,
    IS_LOCAL,
    copy_arrivals_rows,
    expert_bits,
    load_rows,
    pack_registers,
    set_is_local,
)
from .params import BITS_PER_EXPERT, EXPERTS_PER_WORD, PAPER, WORD_BITS, PDULayout

__all__ = ["EXPERTS_PER_WORD", "WORD_BITS", "PDUTwin", "pack_words", "without_is_local"]


def _as_bits(name: str, value, num_experts: int) -> np.ndarray:
    """Accept a bool sequence of length ``num_experts`` (a list of ``bool`` or a numpy bool
    array) or an iterable of expert ids; return one bool per expert."""
    if value is None:
        return np.zeros(num_experts, np.bool_)
    if isinstance(value, np.ndarray) and value.dtype == np.bool_:
        if value.ndim != 1 or len(value) != num_experts:
            raise ValueError(f"{name} as a bool sequence must have {num_experts} entries "
                             f"(one per expert), not shape {value.shape}")
        return value
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise TypeError(f"{name} must be a sequence of {num_experts} bools or an iterable of "
                        f"expert ids, not {value!r}")
    items = list(value)
    if items and all(type(v) is bool for v in items):
        if len(items) != num_experts:
            raise ValueError(f"{name} as a bool sequence must have {num_experts} entries "
                             f"(one per expert), not {len(items)}")
        return np.array(items, np.bool_)
    bits = np.zeros(num_experts, np.bool_)
    for i, expert in enumerate(items):
        bits[check_int(f"{name}[{i}] (expert id)", expert, 0, num_experts)] = True
    return bits


def pack_words(cp_en, is_local, num_experts: int = PAPER.experts) -> list[int]:
    """The 16-bit register words that configure ``cp_en`` and ``is_local`` (see module doc).

    Parameters
    ----------
    cp_en, is_local : sequence of bool (one per expert; a numpy bool array is accepted) or
        iterable of expert ids, or None
    num_experts : int
    """
    num_experts = check_int("num_experts", num_experts, 1)
    words = np.empty((1, -(-num_experts // EXPERTS_PER_WORD)), np.int64)
    return pack_registers(_as_bits("cp_en", cp_en, num_experts)[None, :],
                          _as_bits("is_local", is_local, num_experts)[None, :],
                          words)[0].tolist()


def without_is_local(word: int, expert: int) -> int:
    """``word``, the register that holds ``expert``, with that expert's ``is_local`` bit
    cleared (``cp_en`` and the other experts' bits kept): what a replica's eviction writes
    back. ``word`` and ``expert`` may be int64 arrays (one register each)."""
    return word & ~(IS_LOCAL << (BITS_PER_EXPERT * (expert % EXPERTS_PER_WORD)))


class PDUTwin:
    """Transaction-level twin of :class:`hwmodel.components.pdu.PDU`.

    Parameters
    ----------
    num_experts : int
        Experts per layer (paper: 512, i.e. 64 registers of 16 bits = 128 B).
    registers : numpy.ndarray, optional
        Storage for the registers: a 1-D int64 array of at least ``num_words`` entries that
        the twin keeps its registers in (the replay hands each die's PDU a row of the array
        its event kernel reads). Default: the twin's own, all zero.
    """

    def __init__(self, num_experts: int = PAPER.experts, *, registers: np.ndarray | None = None):
        self.layout = PDULayout(experts=check_int("num_experts", num_experts, 1))
        self._num_experts = self.layout.experts
        if registers is None:
            registers = np.zeros(self.num_words, np.int64)
        if (not isinstance(registers, np.ndarray) or registers.dtype != np.int64
                or registers.ndim != 1 or len(registers) < self.num_words):
            raise TypeError(f"registers must be a 1-D int64 array of at least "
                            f"{self.num_words} entries, not {registers!r}")
        self._words = registers[:self.num_words]
        # the same registers as the one row of a table of dies (the wafer-level calls' form)
        self._row = self._words.reshape(1, -1)

    @property
    def num_experts(self) -> int:
        return self._num_experts

    @property
    def num_words(self) -> int:
        """16-bit registers in the table."""
        return self.layout.num_words

    @property
    def storage_bytes(self) -> int:
        """Register bytes (128 for 512 experts)."""
        return self.layout.size_bytes

    @property
    def table_row(self) -> np.ndarray:
        """The registers as the one row of a table of dies (a view): the form the wafer-level
        calls (:meth:`load_tables`, :meth:`arrivals`) take, with die index 0."""
        return self._row

    @property
    def words(self) -> tuple[int, ...]:
        """Current register contents."""
        return tuple(self._words.tolist())

    def read_words(self, indices) -> np.ndarray:
        """Registers ``indices`` (int64 array), as a bus read of several registers."""
        return self._words[check_int_array("indices", indices, 0, self.num_words)]

    def write_word(self, index: int, word: int) -> None:
        """Write register ``index`` (one bulk-configuration transaction)."""
        index = check_int("index", index, 0, self.num_words)
        self._words[index] = check_int("word", word, 0, 1 << WORD_BITS)

    def write_words(self, indices, words) -> None:
        """Write registers ``indices[i]`` with ``words[i]``, in order: the same state as one
        :meth:`write_word` per pair, with the arguments validated once as arrays (the bulk
        path of a system model that rewrites only the registers that change).
        """
        indices = check_int_array("indices", indices, 0, self.num_words)
        words = check_int_array("words", words, 0, 1 << WORD_BITS, length=len(indices))
        if len(indices) < 2 or (indices[1:] > indices[:-1]).all():    # distinct (ascending)
            self._words[indices] = words
        else:                       # a register written twice keeps the later word
            for index, word in zip(indices.tolist(), words.tolist()):
                self._words[index] = word

    def load_words(self, words) -> None:
        """Write every register (``num_words`` words in register order) at once: the same
        state as :meth:`write_word` for each index, validated once."""
        words = check_int_array("words", words, 0, 1 << WORD_BITS, length=self.num_words)
        self.load_tables(self._row, np.zeros(1, np.int64), words.reshape(1, -1))

    def configure(self, cp_en=None, is_local=None) -> list[int]:
        """Bulk-write the whole table; returns the words written, in register order.

        ``cp_en`` and ``is_local`` are each a sequence of one bool per expert (a list of bools
        or a numpy bool array), an iterable of expert ids, or None (all clear). Equivalent to
        one :meth:`write_word` per register (the RTL's ``CONFIG`` commands); the packed words
        are in range by construction, so they are stored without a check per register.
        """
        words = pack_words(cp_en, is_local, self._num_experts)
        self._words[:] = words
        return words

    def query(self, expert: int) -> tuple[bool, bool]:
        """``(cp_en, is_local)`` of ``expert``: asked when its remote data arrives."""
        expert = check_int("expert", expert, 0, self._num_experts)
        # the read-out the replay's kernel uses (one definition of the register layout)
        bits = expert_bits(self._words[None, :], 0, expert)
        return bool(bits & CP_EN), bool(bits & IS_LOCAL)

    def should_copy(self, expert: int) -> bool:
        """Whether arriving remote data of ``expert`` is copied: ``cp_en and not is_local``."""
        cp_en, is_local = self.query(expert)
        return cp_en and not is_local

    def copy_arrivals(self, experts) -> list[int]:
        """Remote data of ``experts`` arrives, in order: each is copied when
        :meth:`should_copy`, and a copy sets ``is_local`` (:meth:`set_local`), so a later
        arrival of the same expert is not copied again. Returns the copied experts in order.

        The same answers and final state as ``should_copy`` + ``set_local`` per arrival (the
        RTL's ``QUERY`` / ``SET_LOCAL`` commands), compiled (:func:`.compiled.copy_arrivals_rows`)
        after one check of the array.
        """
        experts = check_int_array("experts", experts, 0, self._num_experts)
        copied = self.arrivals(self._row, np.zeros(len(experts), np.int64), experts)
        return experts[copied].tolist()

    # ------------------------------------------------- every die's PDU at once (the replay)
    @staticmethod
    def load_tables(registers, dies, words) -> None:
        """Write the tables of the dies ``dies`` (int64) of a wafer whose PDUs keep their
        registers in the rows of ``registers`` (int64, dies x words): die ``d``'s registers
        ``w < words.shape[1]`` := ``words[d, w]``. The same state as :meth:`load_words` on
        each of those dies' twins (the compiled :func:`.compiled.load_rows`, which that
        method calls on its one row); arguments are not checked (the caller builds them)."""
        load_rows(registers, dies, words)

    @staticmethod
    def clear_is_local_rows(registers, dies, experts) -> None:
        """Clear the ``is_local`` bit of ``experts[i]`` in die ``dies[i]``'s table (int64
        arrays) of a wafer whose PDUs keep their registers in the rows of ``registers``:
        the state that :func:`without_is_local` written back to each register in turn leaves
        (replicas evicted; the bits cleared commute, so the order does not matter).
        Arguments are not checked."""
        keep = without_is_local(-1, experts)          # every bit but the expert's is_local
        np.bitwise_and.at(registers, (dies, experts // EXPERTS_PER_WORD), keep)

    @staticmethod
    def arrivals(registers, dies, experts) -> np.ndarray:
        """Remote data arrives in order, ``experts[i]`` on die ``dies[i]`` (int64 arrays), at
        the PDUs whose registers are the rows of ``registers``: whether each arrival is
        copied (bool array). The same answers and state as :meth:`copy_arrivals` on each
        die's twin (the compiled :func:`.compiled.copy_arrivals_rows`, which that method
        calls on its one row); arguments are not checked."""
        copied = np.empty(len(experts), np.bool_)
        copy_arrivals_rows(registers, dies, experts, copied)
        return copied

    def set_local(self, expert: int) -> None:
        """Note that a local copy of ``expert`` now exists."""
        self.set_local_many([check_int("expert", expert, 0, self._num_experts)])

    def set_local_many(self, experts) -> None:
        """:meth:`set_local` of each of ``experts``, checked once as an array."""
        experts = check_int_array("experts", experts, 0, self._num_experts)
        set_is_local(self._words.reshape(1, -1), 0, experts)

    def clear(self) -> None:
        """Clear every bit (a new layer)."""
        self._words[:] = 0

