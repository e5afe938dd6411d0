"""Python twin of the prediction unit (PDU) of a die's D2D controller.

Per expert of the current MoE layer the PDU keeps two bits (SPEC section 3, paper Table II):

* ``cp_en``: the Global CP's predictor says this die should copy the expert when its weights
  pass through the D2D controller;
* ``is_local``: a local copy exists, so the ATU redirects reads and no copy is needed.

Storage is 16-bit registers, 128 B for 512 experts. Register layout (interleaved so that one
register write configures both bits of eight experts, the way the Local CP writes the table)::

    register w = expert // 8,   bit 2 * (expert % 8)     : cp_en
                                bit 2 * (expert % 8) + 1 : is_local
"""

from __future__ import annotations

from collections.abc import Iterable

from ...tb.checks import check_int

__all__ = ["EXPERTS_PER_WORD", "WORD_BITS", "PDUTwin", "pack_words"]

WORD_BITS = 16
EXPERTS_PER_WORD = WORD_BITS // 2


def _as_bits(name: str, value, num_experts: int) -> list[bool]:
    """Accept a bool sequence of length ``num_experts`` or an iterable of expert ids."""
    if value is None:
        return [False] * num_experts
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise TypeError(f"{name} must be a sequence of {num_experts} bools or an iterable of "
                        f"expert ids, not {value!r}")
    items = list(value)
    if items and all(isinstance(v, bool) for v in items):
        if len(items) != num_experts:
            raise ValueError(f"{name} as a bool sequence must have {num_experts} entries "
                             f"(one per expert), not {len(items)}")
        return items
    bits = [False] * num_experts
    for i, expert in enumerate(items):
        bits[check_int(f"{name}[{i}] (expert id)", expert, 0, num_experts)] = True
    return bits


def pack_words(cp_en, is_local, num_experts: int = 512) -> list[int]:
    """The 16-bit register words that configure ``cp_en`` and ``is_local`` (see module doc).

    Parameters
    ----------
    cp_en, is_local : sequence of bool (one per expert) or iterable of expert ids, or None
    num_experts : int
    """
    num_experts = check_int("num_experts", num_experts, 1, 4097)
    cp = _as_bits("cp_en", cp_en, num_experts)
    loc = _as_bits("is_local", is_local, num_experts)
    words = [0] * -(-num_experts // EXPERTS_PER_WORD)
    for e in range(num_experts):
        words[e // EXPERTS_PER_WORD] |= ((cp[e] << (2 * (e % EXPERTS_PER_WORD)))
                                         | (loc[e] << (2 * (e % EXPERTS_PER_WORD) + 1)))
    return words


class PDUTwin:
    """Transaction-level twin of :class:`hwmodel.components.pdu.PDU`.

    Parameters
    ----------
    num_experts : int
        Experts per layer (paper: 512, i.e. 64 registers of 16 bits = 128 B).
    """

    def __init__(self, num_experts: int = 512):
        self._num_experts = check_int("num_experts", num_experts, 1, 4097)
        self._words = [0] * self.num_words

    @property
    def num_experts(self) -> int:
        return self._num_experts

    @property
    def num_words(self) -> int:
        """16-bit registers in the table."""
        return -(-self._num_experts // EXPERTS_PER_WORD)

    @property
    def storage_bytes(self) -> int:
        """Register bytes (128 for 512 experts)."""
        return self.num_words * WORD_BITS // 8

    @property
    def words(self) -> tuple[int, ...]:
        """Current register contents."""
        return tuple(self._words)

    def write_word(self, index: int, word: int) -> None:
        """Write register ``index`` (one bulk-configuration transaction)."""
        index = check_int("index", index, 0, self.num_words)
        self._words[index] = check_int("word", word, 0, 1 << WORD_BITS)

    def configure(self, cp_en=None, is_local=None) -> list[int]:
        """Bulk-write the whole table; returns the words written, in register order.

        ``cp_en`` and ``is_local`` are each a sequence of one bool per expert, an iterable of
        expert ids, or None (all clear).
        """
        words = pack_words(cp_en, is_local, self._num_experts)
        for index, word in enumerate(words):
            self.write_word(index, word)
        return words

    def query(self, expert: int) -> tuple[bool, bool]:
        """``(cp_en, is_local)`` of ``expert``: asked when its remote data arrives."""
        expert = check_int("expert", expert, 0, self._num_experts)
        word = self._words[expert // EXPERTS_PER_WORD] >> (2 * (expert % EXPERTS_PER_WORD))
        return bool(word & 1), bool(word & 2)

    def should_copy(self, expert: int) -> bool:
        """Whether arriving remote data of ``expert`` is copied: ``cp_en and not is_local``."""
        cp_en, is_local = self.query(expert)
        return cp_en and not is_local

    def set_local(self, expert: int) -> None:
        """Record that a local copy of ``expert`` now exists."""
        expert = check_int("expert", expert, 0, self._num_experts)
        self._words[expert // EXPERTS_PER_WORD] |= 2 << (2 * (expert % EXPERTS_PER_WORD))

    def clear(self) -> None:
        """Clear every bit (a new layer)."""
        self._words = [0] * self.num_words

