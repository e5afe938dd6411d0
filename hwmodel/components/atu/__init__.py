"""Address translation unit (ATU): its one layout (:mod:`.params`), graph node (:mod:`.node`),
Python twin (:mod:`.twin`) and Amaranth RTL (:mod:`.rtl`)."""

from .node import ATUUnit
from .params import ATULayout
from .rtl import ATU, ATUCommand, ATUOp, ATUResponse
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
