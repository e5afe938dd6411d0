"""Prediction unit (PDU): Python twin and Amaranth RTL (see :mod:`.twin`)."""

from .twin import EXPERTS_PER_WORD, WORD_BITS, PDUTwin, pack_words

__all__ = ["EXPERTS_PER_WORD", "WORD_BITS", "PDUTwin", "pack_words"]
