"""Address translation unit (ATU): its one layout (:mod:`.params`), graph node (:mod:`.node`),
Python twin (:mod:`.twin`) and Amaranth RTL (:mod:`.rtl`)."""

from .node import ATUUnit
from .params import ATULayout
from .twin import (
                   ENTRY_BITS,
                   LOCAL_ADDR_BITS,
                   PAGE_BYTES,
                   REMOTE_ADDR_BITS,
                   AddressMap,
                   ATUTwin,
                   hbm_address,
                   split_address,
)

__all__ = [
                   "ATU",
                   "ENTRY_BITS",
                   "LOCAL_ADDR_BITS",
                   "PAGE_BYTES",
                   "REMOTE_ADDR_BITS",
                   "ATUCommand",
                   "ATULayout",
                   "ATUOp",
                   "ATUResponse",
                   "ATUTwin",
                   "ATUUnit",
                   "AddressMap",
                   "hbm_address",
                   "split_address",
]


#: The RTL's names, imported on first use (PEP 562): the graph node, params and twin need no
#: Amaranth, so a replay does not load it.
_RTL = ("ATU", "ATUCommand", "ATUOp", "ATUResponse")


def __getattr__(name: str):
    if name in _RTL:
        from . import rtl
        return getattr(rtl, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
