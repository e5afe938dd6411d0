"""Python twin of the Global CP's task allocator (Algorithm 1, as the study's artefact
implements it), the RTL's :class:`~hwmodel.components.global_cp.allocator_rtl.Allocator`.

``allocate(layer, counts) -> list[(expert, die, tokens)]`` runs Algorithm 1 on the token counts
of one (iteration, layer), reading the EDT's homes and presence (:class:`~.edt.EDTTwin`); the
plan is sorted by expert id, and within an expert by the candidate order of the allocator.

Number format of the allocator (the RTL loads the same ROM)
------------------------------------------------------------
Costs are unsigned integers in units of ``2**-FRAC_BITS`` ns. :func:`build_cost_rom` computes,
once per (model, wafer), the per-expert HBM read, the per-expert transfer (bandwidth part) and the
per-hop transfer cost, and the compute cost of every token count ``0 .. 2*block_size - 1`` (a
last block absorbs a remainder smaller than a block, so blocks reach ``2*block_size - 1``), each
rounded to nearest. The allocator only adds, takes maxima, compares and merges. Each constant is
within ``2**-(FRAC_BITS+1)`` ns of its real value, so a die's estimate after ``k`` charges is
within ``k * 2**-(FRAC_BITS+1)`` ns of the floating-point estimate; two candidates whose
floating-point costs differ by less than that may be ordered differently (see docs/replay.md
for the measured count of differing plans). ``arith="float"`` evaluates the same rules in
float64 with the artefact's expression order (used to count differences).
"""

from __future__ import annotations

import math

import attrs
import numpy as np

from ...jit import njit
from .edt import EDTTwin
from .params import (
    PAPER_BLOCK_SIZE,
    PAPER_CANDIDATE_DISTANCE,
    PAPER_MIN_CANDIDATES,
    check_positive_ints,
)

__all__ = ["FRAC_BITS", "AllocatorTwin", "CostROM", "WaferCosts", "build_cost_rom"]

#: Fractional bits of the allocator's fixed-point costs (units of 2**-FRAC_BITS ns).
FRAC_BITS = 8


@attrs.frozen
class CostROM:
    """The allocator's cost constants (the RTL's ROM), in units of ``2**-frac_bits`` ns
    (``frac_bits = None``: float64 ns, the artefact's arithmetic).

    Attributes
    ----------
    hbm_read : int or float
        Reading one whole expert from HBM.
    transfer_base : int or float
        Bandwidth part of moving one whole expert over D2D.
    transfer_per_hop : int or float
        Per-hop part of a transfer (request plus data latency).
    compute : numpy.ndarray
        Compute cost of a block of ``t`` tokens on one whole expert, ``t = 0 .. len - 1``.
    frac_bits : int or None
    """

    hbm_read: float
    transfer_base: float
    transfer_per_hop: float
    compute: np.ndarray = attrs.field(eq=False)
    frac_bits: int | None = FRAC_BITS

    def transfer(self, hops: int):
        """Cost of moving one expert over ``hops`` links."""
        return self.transfer_per_hop * hops + self.transfer_base


@attrs.frozen
class WaferCosts:
    """Algorithm 1's cost tables die by die (each die's own HBM and compute, each route's own
    links), in the units of :class:`CostROM`.

    Members
    -------
    hbm_read : numpy.ndarray
        (dies,) reading one whole expert from that die's HBM.
    compute : numpy.ndarray
        (dies, 2 x block_size) compute cost of a block of ``t`` tokens on that die.
    transfer : numpy.ndarray
        (dies, dies) moving one whole expert from die ``h`` to die ``d``.
    frac_bits : int or None
    """

    hbm_read: np.ndarray = attrs.field(eq=False)
    compute: np.ndarray = attrs.field(eq=False)
    transfer: np.ndarray = attrs.field(eq=False)
    frac_bits: int | None = FRAC_BITS

    @classmethod
    def uniform(cls, rom: CostROM, mesh_x: int, mesh_y: int) -> WaferCosts:
        """Every die with ``rom``; a transfer costs ``rom.transfer(Manhattan hops)`` (0 from a
        die to itself)."""
        dies = np.arange(mesh_x * mesh_y)
        x, y = dies // mesh_y, dies % mesh_y
        hops = np.abs(x[:, None] - x[None, :]) + np.abs(y[:, None] - y[None, :])
        dtype = np.float64 if rom.frac_bits is None else np.int64
        return cls(hbm_read=np.full(len(dies), rom.hbm_read, dtype),
                   compute=np.tile(np.asarray(rom.compute, dtype), (len(dies), 1)),
                   transfer=np.asarray(np.where(hops > 0, rom.transfer(hops), 0), dtype),
                   frac_bits=rom.frac_bits)

    def same_as(self, other: WaferCosts) -> bool:
        """Whether both tables hold the same costs."""
        return (self.frac_bits == other.frac_bits
                and all(np.array_equal(a, b) for a, b in
                        ((self.hbm_read, other.hbm_read), (self.compute, other.compute),
                         (self.transfer, other.transfer))))


def build_cost_rom(*, expert_bytes: int, hidden_dim: int, expert_ffn_dim: int,
                   matrices_per_expert: int, hbm_bandwidth_GBps: float,
                   hbm_latency_ns: float, link_bandwidth_GBps: float, hop_latency_ns: float,
                   peak_TFLOPS: float, block_size: int = PAPER_BLOCK_SIZE,
                   planner_hbm_efficiency: float = 0.9, planner_link_efficiency: float = 0.9,
                   planner_utilisation: float = 0.7,
                   frac_bits: int | None = FRAC_BITS) -> CostROM:
    """Cost constants of Algorithm 1 (the artefact's planner model), once per (model, wafer).

    ``hbm_read = latency + expert_bytes / (bw * eff)``; ``transfer(h) = 2 * h * hop_latency +
    expert_bytes / (link_bw * eff)`` (request and data legs); ``compute(t) = ceil(2 * hidden *
    ffn * t * matrices / (peak * 1e3 * utilisation))`` ns. With ``frac_bits`` an integer, each
    is scaled by ``2**frac_bits`` and rounded to nearest; with ``None`` they stay float64.
    """
    if block_size < 1:
        raise ValueError(f"block_size must be at least 1, not {block_size!r}")
    hbm = hbm_latency_ns + expert_bytes / (hbm_bandwidth_GBps * planner_hbm_efficiency)
    base = expert_bytes / (link_bandwidth_GBps * planner_link_efficiency)
    per_hop = 2 * hop_latency_ns
    flops_per_ns = peak_TFLOPS * 1000 * planner_utilisation
    compute = [math.ceil(2 * hidden_dim * expert_ffn_dim * t * matrices_per_expert
                         / flops_per_ns) for t in range(2 * block_size)]
    if frac_bits is None:
        return CostROM(hbm_read=float(hbm), transfer_base=float(base),
                       transfer_per_hop=float(per_hop),
                       compute=np.asarray(compute, dtype=np.float64), frac_bits=None)
    scale = 1 << frac_bits
    return CostROM(hbm_read=round(hbm * scale), transfer_base=round(base * scale),
                   transfer_per_hop=round(per_hop * scale),
                   compute=np.asarray([c * scale for c in compute], dtype=np.int64),
                   frac_bits=frac_bits)



@njit(cache=True)
def _die_time(cl, cr, dl, dr, din, d):
    # Artefact's overlap model: local compute overlaps local+remote HBM reads; remote compute
    # waits for its weights (d2d_in) and for the compute unit.
    a = cl[d]
    b = dl[d] + dr[d]
    a = max(a, b)
    a = max(a, din[d])
    return a + cr[d]


@njit(cache=True)
def _allocate_kernel(counts, presence, home, alive, coord_x, coord_y, distance, block_size,
                     min_candidates, hbm_read, transfer, compute,
                     zero, out_expert, out_die, out_tokens):
    """Algorithm 1 over one (iteration, layer). ``zero`` fixes the cost dtype (0 or 0.0);
    ``hbm_read[d]``, ``compute[d, t]`` and ``transfer[h, d]`` are :class:`WaferCosts`.

    Returns the number of plan rows written to ``out_*`` (plan order: by expert id, then by
    candidate order).
    """
    num_experts = counts.shape[0]
    num_dies = coord_x.shape[0]
    cl = np.zeros(num_dies, dtype=compute.dtype)
    cr = np.zeros(num_dies, dtype=compute.dtype)
    dl = np.zeros(num_dies, dtype=compute.dtype)
    dr = np.zeros(num_dies, dtype=compute.dtype)
    din = np.zeros(num_dies, dtype=compute.dtype)
    total = 0
    active = 0
    for e in range(num_experts):
        if counts[e] > 0:
            dl[home[e]] += hbm_read[home[e]]
            total += counts[e]
            active += 1
    # experts by (token count, expert id) ascending
    order = np.empty(active, dtype=np.int64)
    k = 0
    for e in range(num_experts):
        if counts[e] > 0:
            order[k] = e
            k += 1
    keys = np.empty(active, dtype=np.int64)
    for i in range(active):
        keys[i] = counts[order[i]] * num_experts + order[i]
    order = order[np.argsort(keys)]

    # per expert: temporary plan rows (candidate order), then scattered by expert id
    row_start = np.full(num_experts, -1, dtype=np.int64)
    row_count = np.zeros(num_experts, dtype=np.int64)
    tmp_die = np.empty(active * num_dies, dtype=np.int64)
    tmp_tok = np.empty(active * num_dies, dtype=np.int64)
    n_tmp = 0
    cand = np.empty(num_dies, dtype=np.int64)
    cand_local = np.empty(num_dies, dtype=np.bool_)
    cand_key = np.empty(num_dies, dtype=compute.dtype)
    alloc = np.zeros(num_dies, dtype=np.int64)
    first = np.zeros(num_dies, dtype=np.bool_)
    for oi in range(active):
        e = order[oi]
        req = counts[e]
        h = home[e]
        n = 0
        for d in range(num_dies):
            if presence[e, d]:
                cand[n] = d
                cand_local[n] = True
                cand_key[n] = _die_time(cl, cr, dl, dr, din, d)
                n += 1
        for d in range(num_dies):
            if presence[e, d]:
                continue
            hops = abs(coord_x[d] - coord_x[h]) + abs(coord_y[d] - coord_y[h])
            if hops == 0 or hops > distance or not alive[d]:
                continue
            cand[n] = d
            cand_local[n] = False
            cand_key[n] = _die_time(cl, cr, dl, dr, din, d) + transfer[h, d]
            n += 1
        # sort candidates by (estimated time, die id): insertion sort, stable on die id
        for i in range(1, n):
            kd = cand[i]
            kl = cand_local[i]
            kk = cand_key[i]
            j = i - 1
            while j >= 0 and (cand_key[j] > kk or (cand_key[j] == kk and cand[j] > kd)):
                cand[j + 1] = cand[j]
                cand_local[j + 1] = cand_local[j]
                cand_key[j + 1] = cand_key[j]
                j -= 1
            cand[j + 1] = kd
            cand_local[j + 1] = kl
            cand_key[j + 1] = kk
        # number of candidates kept: max(min_candidates, req // max(mean, block))
        if total > block_size * num_experts:   # mean count above a block
            split = (req * num_experts) // total
        else:
            split = req // block_size
        keep = max(min_candidates, split)
        keep = min(keep, n)
        for i in range(keep):
            alloc[i] = 0
            first[i] = False
        remaining = req
        while remaining > 0:
            block = min(remaining, block_size)
            if remaining - block < block_size:
                block = remaining
            best = 0
            best_cost = zero
            have = False
            for i in range(keep):
                d = cand[i]
                c_block = compute[d, block]
                if cand_local[i]:
                    # local: compute_local += c
                    a = cl[d] + c_block
                    b = dl[d] + dr[d]
                    a = max(a, b)
                    a = max(a, din[d])
                    cost = a + cr[d]
                else:
                    xfer = transfer[h, d]
                    # executing die: compute_remote += c, d2d_in += xfer
                    a = cl[d]
                    b = dl[d] + dr[d]
                    a = max(a, b)
                    a = max(a, din[d] + xfer)
                    t_exec = a + (cr[d] + c_block)
                    # data die (home): dram_remote += hbm_read on the first block only
                    extra = zero if first[i] else hbm_read[h]
                    a = cl[h]
                    b = dl[h] + (dr[h] + extra)
                    a = max(a, b)
                    a = max(a, din[h])
                    t_data = a + cr[h]
                    cost = max(t_data, t_exec)
                if not have or cost < best_cost or (cost == best_cost and cand_local[i]
                                                    and not cand_local[best]):
                    best = i
                    best_cost = cost
                    have = True
            d = cand[best]
            c_block = compute[d, block]
            if cand_local[best]:
                cl[d] += c_block
            else:
                cr[d] += c_block
                din[d] += transfer[h, d]
                if not first[best]:
                    dr[h] += hbm_read[h]
            first[best] = True
            alloc[best] += block
            remaining -= block
        row_start[e] = n_tmp
        for i in range(keep):
            if alloc[i] > 0:
                tmp_die[n_tmp] = cand[i]
                tmp_tok[n_tmp] = alloc[i]
                n_tmp += 1
                row_count[e] += 1
    rows = 0
    for e in range(num_experts):
        if row_start[e] < 0:
            continue
        for i in range(row_count[e]):
            out_expert[rows] = e
            out_die[rows] = tmp_die[row_start[e] + i]
            out_tokens[rows] = tmp_tok[row_start[e] + i]
            rows += 1
    return rows



class AllocatorTwin:
    """Transaction-level twin of the allocator (Algorithm 1) over a wafer's EDT.

    Parameters
    ----------
    mesh_x, mesh_y : int
        Mesh size; die ``(x, y)`` has id ``y + x * mesh_y``.
    edt : EDTTwin
        The EDT whose homes, presence and live dies the allocator reads.
    costs : CostROM
        The allocator's cost ROM (:func:`build_cost_rom`).
    block_size : int
        Tokens per allocation block (paper artefact: 512).
    candidate_distance : int
        Remote candidates lie within this Manhattan distance of the home die.
    min_candidates : int
        At least this many candidates are kept (artefact: 5).
    wafer_costs : WaferCosts, optional
        Algorithm 1's costs die by die and route by route (default: ``costs`` on every die,
        transfers by Manhattan hops); ``costs`` stays the RTL's ROM.

    Raises
    ------
    TypeError, ValueError
        On a bad parameter, naming it.
    """

    def __init__(self, mesh_x: int, mesh_y: int, edt: EDTTwin, costs: CostROM, *,
                 block_size: int = PAPER_BLOCK_SIZE,
                 candidate_distance: int = PAPER_CANDIDATE_DISTANCE,
                 min_candidates: int = PAPER_MIN_CANDIDATES,
                 wafer_costs: WaferCosts | None = None):
        check_positive_ints(mesh_x=mesh_x, mesh_y=mesh_y, block_size=block_size,
                        min_candidates=min_candidates)
        if not isinstance(edt, EDTTwin):
            raise TypeError(f"edt must be an EDTTwin, not {edt!r}")
        if edt.num_dies != mesh_x * mesh_y:
            raise ValueError(f"edt has {edt.num_dies} dies, the mesh {mesh_x} x {mesh_y}")
        if not isinstance(costs, CostROM):
            raise TypeError(f"costs must be a CostROM, not {costs!r}")
        if len(costs.compute) < 2 * block_size:
            raise ValueError(f"costs.compute has {len(costs.compute)} entries; block_size "
                             f"{block_size} needs {2 * block_size}")
        if candidate_distance < 0:
            raise ValueError(f"candidate_distance must be >= 0, not {candidate_distance!r}")
        self.mesh_x, self.mesh_y = int(mesh_x), int(mesh_y)
        self.edt = edt
        self.block_size = int(block_size)
        self.candidate_distance = int(candidate_distance)
        self.min_candidates = int(min_candidates)
        dies = np.arange(edt.num_dies, dtype=np.int64)
        self._coord_x = dies // self.mesh_y
        self._coord_y = dies % self.mesh_y
        self._set_costs(costs, wafer_costs)
        size = edt.num_experts * edt.num_dies
        self._out = (np.empty(size, np.int64), np.empty(size, np.int64),
                     np.empty(size, np.int64))

    def _set_costs(self, costs: CostROM, wafer_costs: WaferCosts | None) -> None:
        """``costs``: the one ROM the RTL allocator loads (the wafer's nominal die and link);
        ``wafer_costs``: the tables the allocator reads, die by die (default: ``costs`` on every
        die). ``one_rom``: whether the RTL's single ROM gives the same tables."""
        uniform = WaferCosts.uniform(costs, self.mesh_x, self.mesh_y)
        num_dies = self.edt.num_dies
        if wafer_costs is None:
            wafer_costs = uniform
        elif not isinstance(wafer_costs, WaferCosts):
            raise TypeError(f"wafer_costs must be a WaferCosts, not {wafer_costs!r}")
        elif (wafer_costs.hbm_read.shape != (num_dies,)
              or wafer_costs.transfer.shape != (num_dies, num_dies)
              or wafer_costs.compute.shape[0] != num_dies
              or wafer_costs.frac_bits != costs.frac_bits):
            raise ValueError(f"wafer_costs must have one row per die ({num_dies}) and "
                             f"the frac_bits of costs ({costs.frac_bits})")
        self.costs = costs
        self.wafer_costs = wafer_costs
        self.one_rom = wafer_costs.same_as(uniform)
        self._is_float = costs.frac_bits is None
        self._zero = (np.float64 if self._is_float else np.int64)(0)

    def allocate(self, layer: int, counts) -> list[tuple[int, int, int]]:
        """Algorithm 1: ``[(expert, die, tokens), ...]`` sorted by expert id.

        ``counts`` is a length-E sequence of token counts of this (iteration, layer).
        """
        experts, dies, tokens = self.allocate_arrays(layer, counts)
        return [(int(e), int(d), int(t)) for e, d, t in zip(experts, dies, tokens)]

    def allocate_arrays(self, layer: int, counts):
        """:meth:`allocate` as three int64 arrays (expert, die, tokens)."""
        edt = self.edt
        edt.check_layer_expert(layer, 0)
        counts = np.asarray(counts, dtype=np.int64)
        if counts.shape != (edt.num_experts,):
            raise ValueError(f"counts must have shape ({edt.num_experts},), not "
                             f"{counts.shape}")
        if (counts < 0).any():
            raise ValueError("counts must be zero or more")
        c = self.wafer_costs
        out_e, out_d, out_t = self._out
        rows = _allocate_kernel(counts, edt.presence_matrix(layer), edt.homes, edt.alive,
                                self._coord_x, self._coord_y, self.candidate_distance,
                                self.block_size, self.min_candidates, c.hbm_read, c.transfer,
                                c.compute, self._zero, out_e, out_d, out_t)
        return out_e[:rows].copy(), out_d[:rows].copy(), out_t[:rows].copy()
