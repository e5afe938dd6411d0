"""Address translation unit (ATU): Python twin and Amaranth RTL (see :mod:`.twin`)."""

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
                   "ENTRY_BITS",
                   "LOCAL_ADDR_BITS",
                   "PAGE_BYTES",
                   "REMOTE_ADDR_BITS",
                   "ATUTwin",
                   "AddressMap",
                   "hbm_address",
                   "split_address",
]
