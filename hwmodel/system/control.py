"""The control path's latency: what a MoE layer's launch waits for (issue 9 items 3-4).

In paper mode (``ReplayParams.control = "free"``) the Global CP's allocation and prediction
cost nothing: a layer's tasks start when the previous layer ends. The other two modes add a
launch delay to every MoE layer of the strategies that use the Global CP (Algorithm 1 or the
prediction path; ``base`` and ``ep`` never pay):

``global-cp``
    Everything on the Global CP, in cycles of its clock (``wafer.global_cp.clock_MHz``, null:
    the wafer's ``clock_MHz``), one step after the other:

    * the Local CPs' copy reports of the previous layer (``SET_PRESENT``: a read-modify-write of
      the EDT, 2 cycles per copied expert, :class:`~hwmodel.components.global_cp.rtl.EDT`);
    * Algorithm 1 (strategies that allocate): the EDT entries of the active experts are read
      one per cycle straight into the allocator's ``LOAD`` stage (one cycle of read latency),
      then :func:`allocator_cycles`, the closed form of
      :func:`~hwmodel.components.global_cp.allocator_rtl.allocator_cycle_model` (proven equal
      to pysim);
    * prediction (strategies that predict): the EDT scan for the PDUs' ``is_local`` bits
      (``E + 1`` cycles) and, in decode, the top-n predictor over every (expert, die) of the
      plan, :func:`predictor_cycles` (``rows x (E + 1) + dies``, as
      :class:`~hwmodel.components.global_cp.rtl.TopNPredictor`), run side by side;
    * the commands to the Local CPs: ``command_cycles_per_task`` per task when the CP
      allocated, and per die with tasks its ``2 x E`` PDU bits in ``command_word_bits`` words
      when it predicts.

``host-cpu``
    Algorithm 1 on the host (the study's Fig. 15): at every MoE layer the EDT (``E`` entries
    of :class:`~hwmodel.components.global_cp.params.EDTLayout`, each with its token count)
    goes up and the plan comes down over PCIe, ``2 x pcie_latency + bytes up / bandwidth +
    bytes down / bandwidth``, and the host spends ``allocator_ns_per_layer +
    allocator_ns_per_expert x active experts`` (figures measured by
    ``benchmarks/bench_host_allocator.py``); the reports, the prediction and the commands
    stay on the Global CP as above.

Not modelled: the ATU lookup (1 cycle) and PDU query (1 cycle) of a remote read lie on the
data path inside the D2D controller while the LLC miss (110 ns) and HBM read (300 ns) are under
way, ~0.7 ns each at 1.5 GHz; they are hidden there and the event kernel is left unchanged.
The EDT's switch to the next layer's entries (``E`` writes) is taken to happen while the
previous layer runs (a second 2-4.5 KB bank), and the heatmap cache's fill from CP DRAM too.
"""

from __future__ import annotations

import math
from fractions import Fraction

import attrs
import numpy as np

from ..components.global_cp.params import (
    PAPER_BLOCK_SIZE,
    PAPER_CANDIDATE_DISTANCE,
    PAPER_MIN_CANDIDATES,
    EDTLayout,
)

__all__ = ["CONTROL_MODES", "ControlPath", "allocator_cycles", "control_path",
           "cycles_to_ns", "host_allocation_ns", "predictor_cycles"]

#: The replay's control-path modes (``ReplayParams.control``).
CONTROL_MODES = ("free", "global-cp", "host-cpu")


def cycles_to_ns(cycles: int, clock_MHz: float) -> int:
    """``cycles`` at ``clock_MHz``, rounded up to a whole ns (exact rational arithmetic)."""
    return math.ceil(Fraction(int(cycles) * 1000) / Fraction(clock_MHz))


def predictor_cycles(rows: int, groups: int, num_experts: int) -> int:
    """Cycles of :class:`~hwmodel.components.global_cp.rtl.TopNPredictor` for ``rows`` heatmap
    rows in ``groups`` per-die groups: ``num_experts + 1`` per row (one count per cycle, one
    merge), one per group (its bitmap goes out)."""
    return rows * (num_experts + 1) + groups


def allocator_cycles(counts, rows: int, *, home, presence, mesh_y: int, block_size: int,
                     candidate_distance: int, min_candidates: int) -> int:
    """:func:`~hwmodel.components.global_cp.allocator_rtl.allocator_cycle_model`, vectorised.

    Parameters
    ----------
    counts : array of int, shape (E,)
        Token count per expert (zeros are inactive).
    rows : int
        Tasks in the layer's plan.
    home : array of int, shape (E,)
        Home die per expert.
    presence : array of bool, shape (E, N)
        The EDT's presence bitmaps.
    mesh_y, block_size, candidate_distance, min_candidates : int
        As the allocator's.

    Returns
    -------
    int
        ``A + passes x (A + 1) + 1 + rows + sum_e [2 + max(n_e, split_e) + blocks_e x (keep_e
        + 1) + keep_e]`` (the model's docstring).
    """
    counts = np.asarray(counts, np.int64)
    num_experts, num_dies = presence.shape
    active = np.flatnonzero(counts)
    a = len(active)
    passes = 0 if a <= 1 else math.ceil(math.log2(a))
    total = int(counts.sum())
    dies = np.arange(num_dies)
    h = np.asarray(home)[active][:, None]
    hops = (np.abs(dies // mesh_y - h // mesh_y) + np.abs(dies % mesh_y - h % mesh_y))
    near = (hops > 0) & (hops <= candidate_distance)
    n = (presence[active] | near).sum(axis=1)
    req = counts[active]
    split = (req * num_experts) // total if total > block_size * num_experts else (
        req // block_size)
    split = np.minimum(split, num_dies)
    keep = np.minimum(np.maximum(min_candidates, split), n)
    # blocks of block_size, the last absorbing a remainder below a block: floor(req / size)
    blocks = np.maximum(1, req // block_size)
    per_expert = 2 + np.maximum(n, split) + blocks * (keep + 1) + keep
    return int(a + passes * (a + 1) + 1 + rows + per_expert.sum())


def host_allocation_ns(host, *, num_experts: int, num_dies: int, active: int,
                       rows: int) -> float:
    """The host's share of a layer (``wafer.host``, :class:`~hwmodel.params.HostParams`): the
    EDT and the counts up, the plan down, each way its own latency, and the host's time."""
    entry_bytes = EDTLayout(entries=num_experts, num_dies=num_dies).entry_bits // 8
    up = num_experts * (entry_bytes + host.count_bytes)
    down = rows * host.task_bytes
    return (2 * host.pcie_latency_ns + (up + down) / host.pcie_bandwidth_GBps
            + host.allocator_ns_per_layer + host.allocator_ns_per_expert * active)


@attrs.define
class ControlPath:
    """Launch delay of each MoE layer for one replay run (``global-cp`` or ``host-cpu``).

    Parameters
    ----------
    mode : str
        ``"global-cp"`` or ``"host-cpu"``.
    cp : hwmodel.params.GlobalCPParams
        The Global CP's parameters (the graph node's).
    host : hwmodel.params.HostParams
        The host and its PCIe link (``wafer.host``).
    clock_MHz : float
        The Global CP's clock (resolved: its own, else the wafer's).
    mesh_y : int
        Dies along y (die id ``y + x * mesh_y``).
    home : array of int
        Home die per expert.
    allocates, predicts : bool
        Whether the strategy runs Algorithm 1 / the prediction path.
    block_size, candidate_distance, min_candidates : int
        Algorithm 1's parameters (the replay's).
    """

    mode: str
    cp: object
    host: object
    clock_MHz: float
    mesh_y: int
    home: np.ndarray
    allocates: bool
    predicts: bool
    block_size: int = PAPER_BLOCK_SIZE
    candidate_distance: int = PAPER_CANDIDATE_DISTANCE
    min_candidates: int = PAPER_MIN_CANDIDATES
    pending_reports: int = 0
    totals: dict = attrs.field(factory=dict)

    def launch_ns(self, counts, task_e, task_d, presence, *, decode: bool) -> int:
        """ns the layer's launch waits for the control path (``presence``: the EDT's bitmaps
        of the layer, (E, N) bool, as the allocator read them)."""
        cp, num_experts = self.cp, len(counts)
        rows, groups = len(task_e), len(np.unique(task_d))
        parts = {"report": 2 * self.pending_reports, "allocator": 0, "predictor": 0,
                 "command": cp.command_cycles_per_task * rows if self.allocates else 0}
        host_ns = 0.0
        if self.allocates and self.mode == "host-cpu":
            host_ns = host_allocation_ns(self.host, num_experts=num_experts,
                                         num_dies=presence.shape[1],
                                         active=int(np.count_nonzero(counts)), rows=rows)
        elif self.allocates:
            parts["allocator"] = 1 + allocator_cycles(
                counts, rows, home=self.home, presence=presence, mesh_y=self.mesh_y,
                block_size=self.block_size, candidate_distance=self.candidate_distance,
                min_candidates=self.min_candidates)
        if self.predicts:
            predict = predictor_cycles(rows, groups, num_experts) if decode else 0
            parts["predictor"] = max(num_experts + 1, predict)
            parts["command"] += groups * -(-2 * num_experts // cp.command_word_bits)
        self.pending_reports = 0
        delay = cycles_to_ns(sum(parts.values()), self.clock_MHz) + math.ceil(host_ns)
        stage = "decode" if decode else "prefill"
        for key, value in [*parts.items(), ("host_ns", host_ns), ("delay_ns", delay)]:
            name = (f"cp_{stage}_{key}_cycles" if key in parts
                    else f"control_{stage}_{key}")
            self.totals[name] = self.totals.get(name, 0) + value
        return delay

    def counts(self) -> dict:
        """Totals over the run, for the result's ``counts``, per stage (prefill, decode):
        Global CP cycles per part (``cp_<stage>_<part>_cycles``, parts report, allocator,
        predictor, command), the host's ns (``control_<stage>_host_ns``) and the launch
        delay (``control_<stage>_delay_ns``)."""
        return dict(sorted(self.totals.items()))

    def reported(self, reports) -> None:
        """The Local CPs' reports of the layer (:class:`LocalCPStats`, one per die with
        tasks): one ``SET_PRESENT`` per expert a die reports copied, paid at the next
        launch."""
        self.pending_reports = sum(len(stats.duplicated_experts) for stats in reports)


def control_path(mode: str, wafer, home, *, allocates: bool, predicts: bool,
                 params) -> ControlPath | None:
    """The run's :class:`ControlPath` (None: ``free``, or a strategy without the Global CP).

    ``wafer`` is the built graph (:class:`hwmodel.topologies.wafer.Wafer`): the Global CP's
    parameters are its node's, the host's and the clock the wafer's.
    """
    if mode == "free" or not (allocates or predicts):
        return None
    cp = wafer.global_cp.params
    clock = wafer.params.clock_MHz if cp.clock_MHz is None else cp.clock_MHz
    return ControlPath(mode, cp, wafer.params.host, clock, wafer.mesh.y_dies, np.asarray(home),
                       allocates, predicts,
                       block_size=params.block_size,
                       candidate_distance=params.candidate_distance,
                       min_candidates=params.min_candidates)
