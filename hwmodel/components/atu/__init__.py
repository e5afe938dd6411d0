"""Address translation unit (ATU): Python twin (:mod:`.twin`) and Amaranth RTL (:mod:`.rtl`)."""

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

__all__ = ["ATU", "ENTRY_BITS", "LOCAL_ADDR_BITS", "PAGE_BYTES", "REMOTE_ADDR_BITS", "ATUCommand",
           "ATUOp", "ATUResponse", "ATUTwin", "AddressMap", "hbm_address", "split_address"]
