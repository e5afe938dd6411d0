"""Prediction unit (PDU): Python twin (:mod:`.twin`) and Amaranth RTL (:mod:`.rtl`)."""

from .rtl import PDU, PDUCommand, PDUOp, PDUResponse
from .twin import EXPERTS_PER_WORD, WORD_BITS, PDUTwin, pack_words

__all__ = ["EXPERTS_PER_WORD", "PDU", "WORD_BITS", "PDUCommand", "PDUOp", "PDUResponse",
           "PDUTwin", "pack_words"]
