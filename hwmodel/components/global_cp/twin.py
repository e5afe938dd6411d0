"""Python twin of the wafer's Global command processor (Global CP): a thin composition of
its three parts, each the twin of one RTL design (docs/rtl.md, paper Fig. 10):

* :class:`~.edt.EDTTwin`, the **Expert Distribution Table** (RTL ``rtl.EDT``): per (MoE layer,
  expert) its home die and a presence bitmap, one bit per die;
* :class:`~.predictor.PredictorTwin`, the **cross-token heatmap** and **top-n predictor** (RTL
  ``rtl.TopNPredictor``): which remote experts each die should copy when they pass by;
* :class:`~.allocator.AllocatorTwin`, the **task allocator** (Algorithm 1, RTL
  ``allocator_rtl.Allocator``), which reads the EDT.

Transaction-level API (each call goes to its part; the RTL matches it call for call)
-------------------------------------------------------------------------------------
``GlobalCPTwin(edt, predictor, allocator)``, or ``GlobalCPTwin.for_mesh(mesh_x, mesh_y,
num_layers, num_experts, costs, ...)`` to build the three parts of a mesh
    ``num_layers`` counts MoE layers (layer index = position in the model's MoE layer list).
``edt_home(expert) -> int``, ``edt_presence(layer, expert) -> int`` (bitmap, bit d = die d,
any number of dies), ``presence_matrix(layer)`` (bool, experts x dies), ``replicas_per_die()``,
``edt_set_present(layer, expert, die)``, ``edt_clear_present(layer, expert, die)``,
``edt_clear_replicas()``
    The EDT. Homes follow docs/replay.md: ``floor(e / p)`` with ``p = floor(E / N)``, experts past
    ``p*N - 1`` on die ``e mod N``.
``heatmap_add(layer, prev_expert, next_expert, count=1)``, ``heatmap_row(layer, expert)``
    Counters saturate at ``2**count_bits - 1`` (16 bits in the paper).
``top_n(layer, expert) -> tuple[int, ...]``
    The ``n = ceil(top_n_share * E)`` most frequent successors of ``expert``: counts descending,
    ties broken by expert id ascending.
``predict(layer, die_experts) -> int``
    ``cp_en`` bitmap (bit e = expert e) for one die: the union of ``top_n`` over the experts the
    die runs in this layer.
``allocate(layer, counts) -> list[(expert, die, tokens)]``
    Algorithm 1 on the token counts of one (iteration, layer); the plan is sorted by expert id,
    and within an expert by the candidate order of the allocator (number format:
    :mod:`.allocator`).
"""

from __future__ import annotations

import numpy as np

from .allocator import FRAC_BITS, AllocatorTwin, CostROM, WaferCosts, build_cost_rom
from .edt import EDTTwin, home_dies, home_placement, presence_bitmaps
from .params import (
    HEATMAP_COUNT_BITS,
    PAPER_BLOCK_SIZE,
    PAPER_CANDIDATE_DISTANCE,
    PAPER_MIN_CANDIDATES,
    PAPER_TOP_N_SHARE,
)
from .predictor import PredictorTwin, predictor_inputs, union_of_rows

__all__ = ["FRAC_BITS", "CostROM", "GlobalCPTwin", "WaferCosts", "build_cost_rom", "home_dies",
           "home_placement", "predictor_inputs", "presence_bitmaps", "union_of_rows"]


class GlobalCPTwin:
    """Transaction-level twin of the Global CP: its EDT, predictor and allocator twins.

    Parameters
    ----------
    edt : EDTTwin
    predictor : PredictorTwin
        Of the EDT's layers and experts.
    allocator : AllocatorTwin
        Reading ``edt``.

    Raises
    ------
    TypeError, ValueError
        If a part is of the wrong type or the parts do not fit together.
    """

    def __init__(self, edt: EDTTwin, predictor: PredictorTwin, allocator: AllocatorTwin):
        for name, part, kind in (("edt", edt, EDTTwin), ("predictor", predictor, PredictorTwin),
                                 ("allocator", allocator, AllocatorTwin)):
            if not isinstance(part, kind):
                raise TypeError(f"{name} must be a {kind.__name__}, not {part!r}")
        if (predictor.num_layers, predictor.num_experts) != (edt.num_layers, edt.num_experts):
            raise ValueError(f"predictor has {predictor.num_layers} layers of "
                             f"{predictor.num_experts} experts, the EDT {edt.num_layers} of "
                             f"{edt.num_experts}")
        if allocator.edt is not edt:
            raise ValueError("the allocator must read this EDT")
        self.edt, self.predictor, self.allocator = edt, predictor, allocator

    @classmethod
    def for_mesh(cls, mesh_x: int, mesh_y: int, num_layers: int, num_experts: int,
                 costs: CostROM, *, block_size: int = PAPER_BLOCK_SIZE,
                 candidate_distance: int = PAPER_CANDIDATE_DISTANCE,
                 min_candidates: int = PAPER_MIN_CANDIDATES,
                 top_n_share: float = PAPER_TOP_N_SHARE,
                 count_bits: int = HEATMAP_COUNT_BITS, live_dies=None,
                 wafer_costs: WaferCosts | None = None) -> GlobalCPTwin:
        """The three parts of a ``mesh_x x mesh_y`` wafer (parameters: the parts')."""
        edt = EDTTwin(num_layers, num_experts, mesh_x * mesh_y, live_dies=live_dies)
        predictor = PredictorTwin(num_layers, num_experts, top_n_share=top_n_share,
                                  count_bits=count_bits)
        allocator = AllocatorTwin(mesh_x, mesh_y, edt, costs, block_size=block_size,
                                  candidate_distance=candidate_distance,
                                  min_candidates=min_candidates, wafer_costs=wafer_costs)
        return cls(edt, predictor, allocator)

    # ---- sizes and parameters, each its part's ------------------------------------------
    num_layers = property(lambda self: self.edt.num_layers)
    num_experts = property(lambda self: self.edt.num_experts)
    num_dies = property(lambda self: self.edt.num_dies)
    mesh_x = property(lambda self: self.allocator.mesh_x)
    mesh_y = property(lambda self: self.allocator.mesh_y)
    block_size = property(lambda self: self.allocator.block_size)
    candidate_distance = property(lambda self: self.allocator.candidate_distance)
    min_candidates = property(lambda self: self.allocator.min_candidates)
    costs = property(lambda self: self.allocator.costs)
    wafer_costs = property(lambda self: self.allocator.wafer_costs)
    one_rom = property(lambda self: self.allocator.one_rom)
    top_n_share = property(lambda self: self.predictor.top_n_share)
    top_n_count = property(lambda self: self.predictor.top_n_count)
    count_bits = property(lambda self: self.predictor.count_bits)

    # ---- EDT ----------------------------------------------------------------------------
    def edt_home(self, expert: int) -> int:
        """:meth:`EDTTwin.home`."""
        return self.edt.home(expert)

    def edt_presence(self, layer: int, expert: int) -> int:
        """:meth:`EDTTwin.presence`."""
        return self.edt.presence(layer, expert)

    def edt_set_present(self, layer: int, expert: int, die: int) -> None:
        """:meth:`EDTTwin.set_present`."""
        self.edt.set_present(layer, expert, die)

    def edt_set_present_many(self, layer: int, experts, die: int) -> None:
        """:meth:`EDTTwin.set_present_many`."""
        self.edt.set_present_many(layer, experts, die)

    def edt_set_present_pairs(self, layer: int, experts, dies) -> None:
        """:meth:`EDTTwin.set_present_pairs`."""
        self.edt.set_present_pairs(layer, experts, dies)

    def edt_clear_present(self, layer: int, expert: int, die: int) -> None:
        """:meth:`EDTTwin.clear_present`."""
        self.edt.clear_present(layer, expert, die)

    def edt_clear_present_pairs(self, layers, experts, dies) -> None:
        """:meth:`EDTTwin.clear_present_pairs`."""
        self.edt.clear_present_pairs(layers, experts, dies)

    def edt_clear_replicas(self) -> None:
        """:meth:`EDTTwin.clear_replicas`."""
        self.edt.clear_replicas()

    def presence_matrix(self, layer: int) -> np.ndarray:
        """:meth:`EDTTwin.presence_matrix`."""
        return self.edt.presence_matrix(layer)

    def replicas_per_die(self) -> list[int]:
        """:meth:`EDTTwin.replicas_per_die`."""
        return self.edt.replicas_per_die()

    # ---- heatmap and predictor ----------------------------------------------------------
    def heatmap_add(self, layer: int, prev_expert: int, next_expert: int,
                    count: int = 1) -> None:
        """:meth:`PredictorTwin.add`."""
        self.predictor.add(layer, prev_expert, next_expert, count)

    def heatmap_add_matrix(self, layer: int, counts: np.ndarray) -> None:
        """:meth:`PredictorTwin.add_matrix`."""
        self.predictor.add_matrix(layer, counts)

    def heatmap_add_pairs(self, prev_rows, prev_index, cur_rows, cur_index) -> None:
        """:meth:`PredictorTwin.add_pairs`."""
        self.predictor.add_pairs(prev_rows, prev_index, cur_rows, cur_index)

    def heatmap_defer_pairs(self, pairs) -> None:
        """:meth:`PredictorTwin.defer_pairs`."""
        self.predictor.defer_pairs(pairs)

    def heatmap_row(self, layer: int, expert: int) -> np.ndarray:
        """:meth:`PredictorTwin.row`."""
        return self.predictor.row(layer, expert)

    def top_n(self, layer: int, expert: int) -> tuple[int, ...]:
        """:meth:`PredictorTwin.top_n`."""
        return self.predictor.top_n(layer, expert)

    def top_n_matrix(self, layer: int) -> np.ndarray:
        """:meth:`PredictorTwin.top_n_matrix`."""
        return self.predictor.top_n_matrix(layer)

    def predict(self, layer: int, die_experts) -> int:
        """:meth:`PredictorTwin.predict`."""
        return self.predictor.predict(layer, die_experts)

    # ---- allocator ----------------------------------------------------------------------
    def allocate(self, layer: int, counts) -> list[tuple[int, int, int]]:
        """:meth:`AllocatorTwin.allocate`."""
        return self.allocator.allocate(layer, counts)

    def allocate_arrays(self, layer: int, counts):
        """:meth:`AllocatorTwin.allocate_arrays`."""
        return self.allocator.allocate_arrays(layer, counts)
