"""Global command processor (Global CP): its one layout and :func:`check_fits`
(:mod:`.params`), graph node (:mod:`.node`), Python twins of its three parts (:mod:`.edt`,
:mod:`.predictor`, :mod:`.allocator`) and their composition (:mod:`.twin`); RTL in :mod:`.rtl`
and :mod:`.allocator_rtl`; simulation harness in :mod:`.sim`."""

from .allocator import FRAC_BITS, AllocatorTwin, CostROM, WaferCosts, build_cost_rom
from .edt import EDTTwin, home_dies, home_placement
from .node import GlobalCPUnit
from .params import EDTLayout, check_fits
from .predictor import PredictorTwin
from .twin import GlobalCPTwin

__all__ = ["FRAC_BITS", "AllocatorTwin", "CostROM", "EDTLayout", "EDTTwin", "GlobalCPTwin",
           "GlobalCPUnit", "PredictorTwin", "WaferCosts", "build_cost_rom", "check_fits",
           "home_dies", "home_placement"]
