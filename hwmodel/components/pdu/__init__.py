"""Prediction unit (PDU): its one layout (:mod:`.params`), graph node (:mod:`.node`), Python
twin (:mod:`.twin`) and Amaranth RTL (:mod:`.rtl`)."""

from .node import PDUUnit
from .params import PDULayout
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


#: The RTL's names, imported on first use (PEP 562): the graph node, params and twin need no
#: Amaranth, so a replay does not load it.
_RTL = ("PDU", "PDUCommand", "PDUOp", "PDUResponse")


def __getattr__(name: str):
    if name in _RTL:
        from . import rtl
        return getattr(rtl, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
