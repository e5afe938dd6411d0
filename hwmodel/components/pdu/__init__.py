"""Prediction unit (PDU): its one layout (:mod:`.params`), graph node (:mod:`.node`), Python
twin (:mod:`.twin`) and Amaranth RTL (:mod:`.rtl`)."""

from .node import PDUUnit
from .params import PDULayout
from .rtl import PDU, PDUCommand, PDUOp, PDUResponse
from .twin import EXPERTS_PER_WORD, WORD_BITS, PDUTwin, pack_words

__all__ = [
           "EXPERTS_PER_WORD",
           "PDU",
           "WORD_BITS",
           "PDUCommand",
           "PDULayout",
           "PDUOp",
           "PDUResponse",
           "PDUTwin",
           "PDUUnit",
           "pack_words",
]
