"""Global command processor (Global CP): its one layout and :func:`check_fits`
(:mod:`.params`), graph node (:mod:`.node`), Python twin (:mod:`.twin`); RTL in :mod:`.rtl`
and :mod:`.allocator_rtl`."""

from .node import GlobalCPUnit
from .params import EDTLayout, check_fits
from .twin import (
    FRAC_BITS,
    CostROM,
    GlobalCPTwin,
    WaferCosts,
    build_cost_rom,
    home_dies,
    home_placement,
)

__all__ = ["FRAC_BITS", "CostROM", "EDTLayout", "GlobalCPTwin", "GlobalCPUnit", "WaferCosts",
           "build_cost_rom", "check_fits", "home_dies", "home_placement"]
