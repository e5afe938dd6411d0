"""Global command processor (Global CP): Python twin (see :mod:`.twin`); RTL in :mod:`.rtl`."""

from .twin import FRAC_BITS, CostROM, GlobalCPTwin, build_cost_rom, home_dies, home_placement

__all__ = ["FRAC_BITS", "CostROM", "GlobalCPTwin", "build_cost_rom", "home_dies",
           "home_placement"]
