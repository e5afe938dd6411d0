"""Python twin of the wafer's Global command processor (Global CP).

The Global CP (SPEC section 3, paper Fig. 10) holds

* the **Expert Distribution Table (EDT)**: per (MoE layer, expert) its home die and a presence
  bitmap, one bit per die (home plus every die holding a replica);
* the **cross-token heatmap**: per MoE layer an ``E x E`` table of saturating counters,
  ``H[l, i, j]`` = how often a token chose expert ``i`` and the next token chose ``j``;
* the **task allocator** (Algorithm 1, as the study's artefact implements it) and the
  **predictor** (which remote experts each die should copy when they pass by).

Transaction-level API (the Amaranth RTL of the Global CP matches it call for call)
----------------------------------------------------------------------------------
``GlobalCPTwin(mesh_x, mesh_y, num_layers, num_experts, costs, ...)``
    ``num_layers`` counts MoE layers (layer index = position in the model's MoE layer list).
``edt_home(expert) -> int``, ``edt_presence(layer, expert) -> int`` (bitmap, bit d = die d,
any number of dies), ``presence_matrix(layer)`` (bool, experts x dies), ``replicas_per_die()``,
``edt_set_present(layer, expert, die)``, ``edt_clear_present(layer, expert, die)``,
``edt_clear_replicas()``
    The EDT. Homes follow SPEC section 6: ``floor(e / p)`` with ``p = floor(E / N)``, experts past
    ``p*N - 1`` on die ``e mod N``.
``heatmap_add(layer, prev_expert, next_expert, count=1)``, ``heatmap_row(layer, expert)``
    Counters saturate at ``2**count_bits - 1`` (16 bits in the paper).
``top_n(layer, expert) -> tuple[int, ...]``
    The ``n = ceil(top_n_share * E)`` most frequent successors of ``expert``: counts descending,
    ties broken by expert id ascending (stable and documented; the artefact's numpy quicksort
    breaks ties arbitrarily).
``predict(layer, die_experts) -> int``
    ``cp_en`` bitmap (bit e = expert e) for one die: the union of ``top_n`` over the experts the
    die runs in this layer.
``allocate(layer, counts) -> list[(expert, die, tokens)]``
    Algorithm 1 on the token counts of one (iteration, layer); the plan is sorted by expert id,
    and within an expert by the candidate order of the allocator.

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
from numba import njit

from ...tb.checks import check_int_array

__all__ = ["FRAC_BITS", "CostROM", "GlobalCPTwin", "WaferCosts", "build_cost_rom", "home_dies",
           "home_placement", "predictor_inputs", "presence_bitmaps", "union_of_rows"]

#: Fractional bits of the allocator's fixed-point costs (units of 2**-FRAC_BITS ns).
FRAC_BITS = 8


def home_dies(num_experts: int, num_dies: int) -> np.ndarray:
    """Home die of every expert (SPEC section 6 placement), as an int64 array."""
    if num_experts < 1 or num_dies < 1:
        raise ValueError(f"num_experts ({num_experts}) and num_dies ({num_dies}) must be >= 1")
    per_die = num_experts // num_dies
    experts = np.arange(num_experts, dtype=np.int64)
    if per_die == 0:
        return experts % num_dies
    home = experts // per_die
    over = experts > per_die * num_dies - 1
    home[over] = experts[over] % num_dies
    return home


def home_placement(num_experts: int, live_dies) -> np.ndarray:
    """Home die of every expert over the live dies (ascending ids): :func:`home_dies` of the
    live count, mapped to their ids, so a wafer without faults gets ``floor(e / p)``."""
    live = np.asarray(live_dies, np.int64)
    return live[home_dies(num_experts, len(live))]


@njit(cache=True)
def _first_bad_id(prev_rows, prev_index, cur_rows, cur_index, num_experts):
    """An expert id outside ``0..num_experts - 1`` in the rows the pairs use, else -1."""
    for j in range(prev_index.shape[0]):
        for rows, r in ((prev_rows, prev_index[j]), (cur_rows, cur_index[j])):
            for layer in range(rows.shape[1]):
                for a in range(rows.shape[2]):
                    e = rows[r, layer, a]
                    if e < 0 or e >= num_experts:
                        return e
    return -1


@njit(cache=True)
def _add_pairs(heatmap, prev_rows, prev_index, cur_rows, cur_index):
    """For each ``j``, every expert of row ``prev_index[j]`` of ``prev_rows`` followed by
    every expert of row ``cur_index[j]`` of ``cur_rows`` adds one to ``heatmap[l, i, j]`` of
    each MoE layer ``l`` (ids checked beforehand by :func:`_first_bad_id`; the caller
    saturates at the counter's maximum afterwards: all increments are positive, so that equals
    saturating each). Layer by layer, so that one layer's table stays in cache."""
    k = prev_rows.shape[2]
    for layer in range(prev_rows.shape[1]):
        table = heatmap[layer]
        for j in range(prev_index.shape[0]):
            p = prev_index[j]
            c = cur_index[j]
            for a in range(k):
                row = table[prev_rows[p, layer, a]]
                for b in range(k):
                    row[cur_rows[c, layer, b]] += 1


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
                   peak_TFLOPS: float, block_size: int = 512,
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


def presence_bitmaps(presence) -> list[int]:
    """Presence rows (experts x dies, bool) as EDT bitmaps, bit ``d`` = die ``d`` (any width)."""
    rows = np.packbits(np.asarray(presence, np.bool_), axis=1, bitorder="little")
    return [int.from_bytes(row.tobytes(), "little") for row in rows]


@njit(cache=True)
def predictor_inputs(task_expert, task_die, num_dies, stop_at_die_id):
    """Which tasks' experts the predictor reads for their die, in plan order (a bool mask).

    Die ``d``'s group is the experts of its tasks in plan order (expert id ascending). With
    ``stop_at_die_id`` (the study's artefact's quirk) a die's group stops growing once it holds
    the expert whose id equals the die id. The RTL predictor is fed exactly these rows.
    """
    keep = np.zeros(task_expert.shape[0], np.bool_)
    stopped = np.zeros(num_dies, np.bool_)
    for k in range(task_expert.shape[0]):
        d = task_die[k]
        if stopped[d]:
            continue
        keep[k] = True
        if stop_at_die_id and task_expert[k] == d:
            stopped[d] = True
    return keep


@njit(cache=True)
def union_of_rows(task_expert, task_die, keep, top, out):
    """Predictor ``cp_en`` of every die: ``out[d]`` = OR of ``top[e]`` over the kept tasks
    (:func:`predictor_inputs`) of die ``d``; ``top`` is the top-n matrix (experts x experts)."""
    out[:, :] = False
    for k in range(task_expert.shape[0]):
        if not keep[k]:
            continue
        d = task_die[k]
        e = task_expert[k]
        for j in range(top.shape[1]):
            if top[e, j]:
                out[d, j] = True


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


class GlobalCPTwin:
    """Transaction-level twin of the Global CP (see the module docstring for the API).

    Parameters
    ----------
    mesh_x, mesh_y : int
        Mesh size; die ``(x, y)`` has id ``y + x * mesh_y``.
    num_layers : int
        MoE layers (EDT and heatmap rows).
    num_experts : int
        Routed experts per layer.
    costs : CostROM
        The allocator's cost ROM (:func:`build_cost_rom`).
    block_size : int
        Tokens per allocation block (paper artefact: 512).
    candidate_distance : int
        Remote candidates lie within this Manhattan distance of the home die.
    min_candidates : int
        At least this many candidates are kept (artefact: 5).
    top_n_share : float
        Predictor keeps ``ceil(top_n_share * E)`` successors per expert.
    count_bits : int
        Bits of one heatmap counter (saturating).
    live_dies : sequence of int, optional
        Dies that work (wafer faults): homes spread over them and Algorithm 1 never picks
        another (default: every die).
    wafer_costs : WaferCosts, optional
        Algorithm 1's costs die by die and route by route (default: ``costs`` on every die,
        transfers by Manhattan hops); ``costs`` stays the RTL's ROM.

    Raises
    ------
    TypeError, ValueError
        On a bad parameter, naming it.
    """

    def __init__(self, mesh_x: int, mesh_y: int, num_layers: int, num_experts: int,
                 costs: CostROM, *, block_size: int = 512, candidate_distance: int = 1,
                 min_candidates: int = 5, top_n_share: float = 0.2, count_bits: int = 16,
                 live_dies=None, wafer_costs: WaferCosts | None = None):
        for name, value in (("mesh_x", mesh_x), ("mesh_y", mesh_y), ("num_layers", num_layers),
                            ("num_experts", num_experts), ("block_size", block_size),
                            ("min_candidates", min_candidates), ("count_bits", count_bits)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"{name} must be an integer, not {value!r}")
            if value < 1:
                raise ValueError(f"{name} must be at least 1, not {value!r}")
        if not isinstance(costs, CostROM):
            raise TypeError(f"costs must be a CostROM, not {costs!r}")
        if len(costs.compute) < 2 * block_size:
            raise ValueError(f"costs.compute has {len(costs.compute)} entries; block_size "
                             f"{block_size} needs {2 * block_size}")
        if not 0 < top_n_share <= 1:
            raise ValueError(f"top_n_share must be in (0, 1], not {top_n_share!r}")
        if candidate_distance < 0:
            raise ValueError(f"candidate_distance must be >= 0, not {candidate_distance!r}")
        self.mesh_x, self.mesh_y = int(mesh_x), int(mesh_y)
        self.num_dies = self.mesh_x * self.mesh_y
        self.num_layers = int(num_layers)
        self.num_experts = int(num_experts)
        self.block_size = int(block_size)
        self.candidate_distance = int(candidate_distance)
        self.min_candidates = int(min_candidates)
        self.top_n_share = float(top_n_share)
        self.top_n_count = math.ceil(self.top_n_share * self.num_experts)
        self.count_bits = int(count_bits)
        self._count_max = (1 << self.count_bits) - 1
        dies = np.arange(self.num_dies, dtype=np.int64)
        self._coord_x = dies // self.mesh_y
        self._coord_y = dies % self.mesh_y
        live = dies if live_dies is None else np.asarray(live_dies, np.int64)
        if len(live) == 0 or not np.isin(live, dies).all():
            raise ValueError(f"live_dies must be die ids in 0..{self.num_dies - 1}, not "
                             f"{live_dies!r}")
        self._alive = np.isin(dies, live)
        self._home = home_placement(self.num_experts, live)
        # one bool per (layer, expert, die): any number of dies (the RTL's bitmap is this row)
        self._presence = np.zeros((self.num_layers, self.num_experts, self.num_dies),
                                  dtype=np.bool_)
        self.edt_clear_replicas()
        # int32 counters while they fit (half the memory traffic of the pair counting): a
        # cell gains at most top-k squared per pair, and heatmap_add_pairs saturates often
        # enough that the sum never overflows
        self._heatmap = np.zeros((self.num_layers, self.num_experts, self.num_experts),
                                 dtype=np.int32 if self.count_bits <= 30 else np.int64)
        self._set_costs(costs, wafer_costs)
        size = self.num_experts * self.num_dies
        self._out = (np.empty(size, np.int64), np.empty(size, np.int64),
                     np.empty(size, np.int64))

    def _set_costs(self, costs: CostROM, wafer_costs: WaferCosts | None) -> None:
        """``costs``: the one ROM the RTL allocator loads (the wafer's nominal die and link);
        ``wafer_costs``: the tables the allocator reads, die by die (default: ``costs`` on every
        die). ``one_rom``: whether the RTL's single ROM gives the same tables."""
        uniform = WaferCosts.uniform(costs, self.mesh_x, self.mesh_y)
        if wafer_costs is None:
            wafer_costs = uniform
        elif not isinstance(wafer_costs, WaferCosts):
            raise TypeError(f"wafer_costs must be a WaferCosts, not {wafer_costs!r}")
        elif (wafer_costs.hbm_read.shape != (self.num_dies,)
              or wafer_costs.transfer.shape != (self.num_dies, self.num_dies)
              or wafer_costs.compute.shape[0] != self.num_dies
              or wafer_costs.frac_bits != costs.frac_bits):
            raise ValueError(f"wafer_costs must have one row per die ({self.num_dies}) and "
                             f"the frac_bits of costs ({costs.frac_bits})")
        self.costs = costs
        self.wafer_costs = wafer_costs
        self.one_rom = wafer_costs.same_as(uniform)
        self._is_float = costs.frac_bits is None
        self._zero = (np.float64 if self._is_float else np.int64)(0)

    # ---- EDT ----------------------------------------------------------------------------
    def _check_layer_expert(self, layer, expert):
        if not 0 <= layer < self.num_layers:
            raise ValueError(f"layer must be in 0..{self.num_layers - 1}, not {layer!r}")
        if not 0 <= expert < self.num_experts:
            raise ValueError(f"expert must be in 0..{self.num_experts - 1}, not {expert!r}")

    def edt_home(self, expert: int) -> int:
        """Home die of ``expert``."""
        self._check_layer_expert(0, expert)
        return int(self._home[expert])

    def edt_presence(self, layer: int, expert: int) -> int:
        """Presence bitmap of ``expert`` in ``layer`` (bit d set: die d holds its weights)."""
        self._check_layer_expert(layer, expert)
        return presence_bitmaps(self._presence[layer, expert:expert + 1])[0]

    def edt_set_present(self, layer: int, expert: int, die: int) -> None:
        """Note that ``die`` now holds a copy of ``expert`` of ``layer`` (Local CP report)."""
        self._check_layer_expert(layer, expert)
        self.edt_set_present_many(layer, np.array([expert]), die)

    def edt_set_present_many(self, layer: int, experts, die: int) -> None:
        """:meth:`edt_set_present` of each of ``experts`` (one die's report), checked once."""
        self._check_layer_expert(layer, 0)
        experts = check_int_array("experts", experts, 0, self.num_experts)
        if not 0 <= die < self.num_dies:
            raise ValueError(f"die must be in 0..{self.num_dies - 1}, not {die!r}")
        self._presence[layer, experts, die] = True

    def edt_clear_present(self, layer: int, expert: int, die: int) -> None:
        """Note that ``die`` dropped its copy of ``expert`` of ``layer`` (a replica evicted
        from a bounded replica region). The home die's bit cannot be cleared."""
        self._check_layer_expert(layer, expert)
        if not 0 <= die < self.num_dies:
            raise ValueError(f"die must be in 0..{self.num_dies - 1}, not {die!r}")
        if die == self._home[expert]:
            raise ValueError(f"die {die} is the home of expert {expert}: its copy is not a "
                             f"replica and cannot be cleared")
        self._presence[layer, expert, die] = False

    def edt_clear_replicas(self) -> None:
        """Forget every replica: each expert is present on its home die only."""
        self._presence[:] = False
        self._presence[:, np.arange(self.num_experts), self._home] = True

    def presence_matrix(self, layer: int) -> np.ndarray:
        """Read-only view of ``layer``'s EDT presence: bool, shape (experts, dies); row ``e``
        is :meth:`edt_presence` ``(layer, e)`` as one bool per die."""
        self._check_layer_expert(layer, 0)
        view = self._presence[layer].view()
        view.flags.writeable = False
        return view

    def replicas_per_die(self) -> list[int]:
        """Replicas each die holds now, over all layers (EDT presence off the home die)."""
        held = self._presence.sum(axis=(0, 1))
        homes = np.bincount(self._home, minlength=self.num_dies) * self.num_layers
        return (held - homes).tolist()

    # ---- heatmap and predictor ----------------------------------------------------------
    def heatmap_add(self, layer: int, prev_expert: int, next_expert: int,
                    count: int = 1) -> None:
        """Add ``count`` to ``H[layer, prev, next]`` (saturating)."""
        self._check_layer_expert(layer, prev_expert)
        self._check_layer_expert(layer, next_expert)
        value = self._heatmap[layer, prev_expert, next_expert] + count
        self._heatmap[layer, prev_expert, next_expert] = min(value, self._count_max)

    def heatmap_add_matrix(self, layer: int, counts: np.ndarray) -> None:
        """Add a whole ``E x E`` matrix of pair counts to a layer (bulk :meth:`heatmap_add`)."""
        self._check_layer_expert(layer, 0)
        np.minimum(self._heatmap[layer] + counts, self._count_max, out=self._heatmap[layer])

    def heatmap_add_pairs(self, prev_rows, prev_index, cur_rows, cur_index) -> None:
        """Add the cross-token pairs of token rows (tokens, MoE layers, top-k) to every
        layer's heatmap: for each ``j``, token ``prev_index[j]`` of ``prev_rows`` followed by
        token ``cur_index[j]`` of ``cur_rows`` (bulk :meth:`heatmap_add`, compiled)."""
        prev_rows, cur_rows = np.asarray(prev_rows), np.asarray(cur_rows)
        for name, rows in (("prev_rows", prev_rows), ("cur_rows", cur_rows)):
            if rows.ndim != 3 or rows.shape[1] != self.num_layers:
                raise ValueError(f"{name} must have shape (tokens, {self.num_layers}, top-k), "
                                 f"not {rows.shape}")
        prev_index = check_int_array("prev_index", prev_index, 0, max(1, len(prev_rows)))
        cur_index = check_int_array("cur_index", cur_index, 0, max(1, len(cur_rows)),
                                    length=len(prev_index))
        bad = _first_bad_id(prev_rows, prev_index, cur_rows, cur_index, self.num_experts)
        if bad != -1:
            raise ValueError(f"token rows hold expert id {bad}, outside 0..{self.num_experts - 1}")
        top_k = max(1, prev_rows.shape[2] * cur_rows.shape[2])
        chunk = (int(np.iinfo(self._heatmap.dtype).max) - self._count_max) // top_k
        for lo in range(0, len(prev_index), chunk):
            hi = lo + chunk
            _add_pairs(self._heatmap, prev_rows, prev_index[lo:hi], cur_rows, cur_index[lo:hi])
            np.minimum(self._heatmap, self._count_max, out=self._heatmap)   # saturating

    def heatmap_row(self, layer: int, expert: int) -> np.ndarray:
        """Copy of row ``H[layer, expert, :]``."""
        self._check_layer_expert(layer, expert)
        return self._heatmap[layer, expert].copy()

    def top_n(self, layer: int, expert: int) -> tuple[int, ...]:
        """Most frequent successors of ``expert``: count descending, expert id ascending."""
        self._check_layer_expert(layer, expert)
        row = self._heatmap[layer, expert]
        order = np.argsort(-row, kind="stable")
        return tuple(int(e) for e in order[:self.top_n_count])

    def top_n_matrix(self, layer: int) -> np.ndarray:
        """Boolean ``E x E``: ``M[i, j]`` when ``j`` is in ``top_n(layer, i)`` (all rows)."""
        self._check_layer_expert(layer, 0)
        num, n = self.num_experts, self.top_n_count
        heat = self._heatmap[layer]
        out = np.zeros((num, num), dtype=bool)
        if (self._count_max + 1) * num < 1 << 62:
            # one unique key per entry, ascending = (count descending, id ascending): the n
            # smallest keys are the top-n, found by a partition (no full sort needed)
            key = (self._count_max - heat) * num + np.arange(num, dtype=np.int64)
            order = np.argpartition(key, n - 1, axis=1)[:, :n]
        else:
            order = np.argsort(-heat, axis=1, kind="stable")[:, :n]
        np.put_along_axis(out, order, True, axis=1)
        return out

    def predict(self, layer: int, die_experts) -> int:
        """``cp_en`` bitmap of one die: union of :meth:`top_n` of the experts it runs."""
        bits = 0
        for expert in die_experts:
            for successor in self.top_n(layer, int(expert)):
                bits |= 1 << successor
        return bits

    # ---- allocator ----------------------------------------------------------------------
    def allocate(self, layer: int, counts) -> list[tuple[int, int, int]]:
        """Algorithm 1: ``[(expert, die, tokens), ...]`` sorted by expert id.

        ``counts`` is a length-E sequence of token counts of this (iteration, layer).
        """
        experts, dies, tokens = self.allocate_arrays(layer, counts)
        return [(int(e), int(d), int(t)) for e, d, t in zip(experts, dies, tokens)]

    def allocate_arrays(self, layer: int, counts):
        """:meth:`allocate` as three int64 arrays (expert, die, tokens)."""
        self._check_layer_expert(layer, 0)
        counts = np.asarray(counts, dtype=np.int64)
        if counts.shape != (self.num_experts,):
            raise ValueError(f"counts must have shape ({self.num_experts},), not "
                             f"{counts.shape}")
        if (counts < 0).any():
            raise ValueError("counts must be zero or more")
        c = self.wafer_costs
        out_e, out_d, out_t = self._out
        rows = _allocate_kernel(counts, self._presence[layer], self._home, self._alive,
                                self._coord_x, self._coord_y, self.candidate_distance,
                                self.block_size, self.min_candidates, c.hbm_read, c.transfer,
                                c.compute, self._zero, out_e, out_d, out_t)
        return out_e[:rows].copy(), out_d[:rows].copy(), out_t[:rows].copy()
