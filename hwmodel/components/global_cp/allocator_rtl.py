"""Amaranth RTL of the Global CP's allocation engine (Algorithm 1); behaviour defined by
:meth:`hwmodel.components.global_cp.twin.GlobalCPTwin.allocate`, bit for bit.

One MoE layer at a time, a sequential engine (one comparator per step, per-die accumulators in
flip-flops, tables in ``lib.memory.Memory``):

1. ``LOAD``: the layer's active experts arrive on ``experts`` in ascending expert id (the order in
   which the CP scans its EDT and counts), ``last`` set on the final one. Each is stored, its token
   count added to the layer total, and its weight read charged to its home die (``dl[home] +=
   hbm_read``). One item per cycle.
2. ``SORT``: a bottom-up merge sort of the item slots by token count, stable, so ties keep the
   ascending expert id: the twin's order ``(tokens, expert)``. ``A * ceil(log2 A)`` cycles plus
   one per merge pass (asynchronous-read index memories, one element per cycle).
3. Per expert, in that order:

   * ``SCAN``: the candidate mask (presence bitmap ``|`` dies within ``candidate_distance`` of
     home, a constant table) is walked lowest die first, one die per cycle; each candidate's
     estimate (``die_time``, plus the transfer when remote) is inserted into a sorted queue of
     ``num_dies`` slots (ties keep the lower die: the twin's ``(estimate, die)`` order). In
     parallel, a repeated-addition divider finds ``split`` (capped at ``num_dies``:
     ``keep = min(max(min_candidates, split), n)`` never needs more).
   * ``EVAL``/``APPLY``: per block (``block_size`` tokens; the last block absorbs a remainder
     below a block) the first ``keep`` candidates are scored one per cycle (argmin, ties to a
     local die), then the winner's accumulators, allocation and first-block flag are updated.
   * ``WRITE``: the candidates with tokens are written to the plan memory in candidate order
     (blocks of one (expert, die) are already merged in the slot's allocation counter).
4. ``EMIT``: the plan goes out on ``tasks`` in ascending expert id, candidate order within an
   expert, one task per cycle, ``last`` on the final task; then the accumulators clear.

Cycles of one layer with ``A`` active experts, ``passes = ceil(log2 A)`` and ``rows`` plan rows
(exact; :func:`allocator_cycle_model`)::

    A + passes * (A + 1) + 1 + rows
      + sum_e [2 + max(n_e, min(split_e, N)) + blocks_e * (keep_e + 1) + keep_e]

Costs are the twin's fixed-point ROM (:func:`~hwmodel.components.global_cp.twin.build_cost_rom`,
units of ``2**-FRAC_BITS`` ns): ``hbm_read``, the transfer by hop count and the compute cost of
every block size ``0 .. 2*block_size - 1`` (a ROM, ``Memory`` with its init). The accumulators are
``cost_bits`` wide; estimates are compared with two extra bits, so no sum can wrap.
"""

# No `from __future__ import annotations`: data layouts read annotations as shapes.

import math

import numpy as np
from amaranth.hdl import Array, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory, MemoryData
from amaranth.lib.wiring import In, Out

from ...checks import check_int, index_bits
from .allocator import CostROM
from .edt import home_dies
from .params import (
    PAPER_BLOCK_SIZE,
    PAPER_CANDIDATE_DISTANCE,
    PAPER_MIN_CANDIDATES,
    EDTLayout,
)
from .rtl import insert_sorted

__all__ = ["Allocator", "allocator_cycle_model"]

def _bits(n: int) -> int:
    return index_bits(n)


class Allocator(wiring.Component):
    """Algorithm 1 (task allocation of one MoE layer) in RTL, equal to ``GlobalCPTwin.allocate``.

    Parameters
    ----------
    mesh_x, mesh_y : int
        Mesh size; die ``(x, y)`` has id ``y + x * mesh_y`` (the twin's numbering).
    num_experts : int
        Routed experts per layer (items per layer at most).
    costs : CostROM
        The twin's fixed-point cost ROM (``frac_bits`` an integer).
    block_size, candidate_distance, min_candidates : int
        As :class:`~hwmodel.components.global_cp.twin.GlobalCPTwin`.
    count_bits : int
        Bits of a token count.
    cost_bits : int
        Bits of a per-die accumulator (units of ``2**-frac_bits`` ns).

    Members
    -------
    experts : In(stream.Signature(item_layout))
        ``expert``, ``tokens`` (> 0), ``home``, ``presence`` (EDT bitmap, home bit set),
        ``last``: the layer's active experts in ascending id.
    tasks : Out(stream.Signature(task_layout))
        ``expert``, ``die``, ``tokens``, ``last``: the plan, in the twin's order.
    """

    def __init__(self, mesh_x: int, mesh_y: int, num_experts: int, costs: CostROM, *,
                 block_size: int = PAPER_BLOCK_SIZE,
                 candidate_distance: int = PAPER_CANDIDATE_DISTANCE,
                 min_candidates: int = PAPER_MIN_CANDIDATES, count_bits: int = 24,
                 cost_bits: int = 48):
        self._mesh_x = check_int("mesh_x", mesh_x, 1)
        self._mesh_y = check_int("mesh_y", mesh_y, 1)
        self._num_dies = self._mesh_x * self._mesh_y
        self._num_experts = check_int("num_experts", num_experts, 1, 4097)
        if not isinstance(costs, CostROM):
            raise TypeError(f"costs must be a CostROM, not {costs!r}")
        if costs.frac_bits is None:
            raise ValueError("costs must be the fixed-point ROM (frac_bits an integer), not "
                             "the float64 one")
        self._block_size = check_int("block_size", block_size, 1)
        self._distance = check_int("candidate_distance", candidate_distance, 0)
        self._min_candidates = check_int("min_candidates", min_candidates, 1)
        self._count_bits = check_int("count_bits", count_bits, 1, 41)
        self._cost_bits = check_int("cost_bits", cost_bits, 8, 97)
        compute = [int(c) for c in np.asarray(costs.compute)[:2 * self._block_size]]
        if len(compute) < 2 * self._block_size:
            raise ValueError(f"costs.compute has {len(costs.compute)} entries; block_size "
                             f"{self._block_size} needs {2 * self._block_size}")
        dies = range(self._num_dies)
        self._x = [d // self._mesh_y for d in dies]
        self._y = [d % self._mesh_y for d in dies]
        max_hops = self._mesh_x + self._mesh_y - 2
        self._hbm_read = int(costs.hbm_read)
        self._xfer = [int(costs.transfer_per_hop) * h + int(costs.transfer_base)
                      for h in range(max_hops + 1)]
        for name, value in [("hbm_read", self._hbm_read), ("transfer", max(self._xfer)),
                            ("compute", max(compute))]:
            if not 0 <= value < 1 << self._cost_bits:
                raise ValueError(f"cost ROM {name} = {value} does not fit cost_bits "
                                 f"{self._cost_bits}")
        self._neighbours = []
        for h in dies:
            mask = 0
            for d in dies:
                hops = abs(self._x[d] - self._x[h]) + abs(self._y[d] - self._y[h])
                if 0 < hops <= self._distance:
                    mask |= 1 << d
            self._neighbours.append(mask)
        self._compute = MemoryData(shape=unsigned(self._cost_bits),
                                   depth=2 * self._block_size, init=compute)
        ebits = _bits(self._num_experts)
        # the EDT's home-die field, from the one definition (:class:`.params.EDTLayout`)
        self._die_bits = die_bits = EDTLayout(entries=self._num_experts,
                                              num_dies=self._num_dies).home_bits
        self.item_layout = data.StructLayout({
            "expert": ebits, "tokens": self._count_bits, "home": die_bits,
            "presence": self._num_dies, "last": 1})
        self.task_layout = data.StructLayout({
            "expert": ebits, "die": die_bits, "tokens": self._count_bits, "last": 1})
        super().__init__({"experts": In(stream.Signature(self.item_layout)),
                          "tasks": Out(stream.Signature(self.task_layout))})

    @property
    def num_dies(self) -> int:
        return self._num_dies

    def elaborate(self, platform):
        m = Module()
        E, N, B = self._num_experts, self._num_dies, self._block_size
        W = self._cost_bits
        K = W + 2                       # estimates: a sum of up to four W-bit terms
        tbits = self._count_bits
        slot_shape = unsigned(_bits(E))
        rows_depth = E * N

        # ---- memories ------------------------------------------------------------------
        item_mem_layout = data.StructLayout({"expert": slot_shape, "tokens": tbits,
                                             "home": self._die_bits, "presence": N})
        m.submodules.items = items = Memory(shape=item_mem_layout, depth=E, init=[])
        m.submodules.order0 = order0 = Memory(shape=slot_shape, depth=E, init=[])
        m.submodules.order1 = order1 = Memory(shape=slot_shape, depth=E, init=[])
        meta_layout = data.StructLayout({"start": range(rows_depth), "count": range(N + 1)})
        m.submodules.meta = meta = Memory(shape=meta_layout, depth=E, init=[])
        plan_layout = data.StructLayout({"die": self._die_bits, "tokens": tbits})
        m.submodules.plan = plan = Memory(shape=plan_layout, depth=rows_depth, init=[])
        m.submodules.compute_rom = compute_rom = Memory(self._compute)
        # Asynchronous reads: one element per cycle through the merge and the plan walk.
        items_w, items_a, items_b = (items.write_port(), items.read_port(domain="comb"),
                                     items.read_port(domain="comb"))
        o0_w, o0_a, o0_b = (order0.write_port(), order0.read_port(domain="comb"),
                            order0.read_port(domain="comb"))
        o1_w, o1_a, o1_b = (order1.write_port(), order1.read_port(domain="comb"),
                            order1.read_port(domain="comb"))
        meta_w, meta_r = meta.write_port(), meta.read_port(domain="comb")
        plan_w, plan_r = plan.write_port(), plan.read_port(domain="comb")
        comp_r = compute_rom.read_port(domain="comb")

        # ---- constants -----------------------------------------------------------------
        xbits, ybits = _bits(self._mesh_x + 1), _bits(self._mesh_y + 1)
        coord_x = Array(Const(v, xbits) for v in self._x)
        coord_y = Array(Const(v, ybits) for v in self._y)
        xfer_by_hops = Array(Const(v, W) for v in self._xfer)
        neighbours = Array(Const(v, N) for v in self._neighbours)

        # ---- per-die accumulators (the twin's cl, cr, dl, dr, din) -----------------------
        def regs(name):
            return Array(Signal(W, name=f"{name}_{d}") for d in range(N))
        cl, cr, dl, dr, din = (regs(n) for n in ("cl", "cr", "dl", "dr", "din"))

        def max2(name, a, b):
            out = Signal(K, name=name)
            m.d.comb += out.eq(Mux(a >= b, a, b))
            return out

        def die_time(name, d, comp_extra=0, din_extra=0, dr_extra=0):
            # max(max(cl + c, dl + dr), din + x) + cr : the twin's overlap model.
            a = max2(f"{name}_a", cl[d] + comp_extra, dl[d] + dr[d] + dr_extra)
            a = max2(f"{name}_b", a, din[d] + din_extra)
            return a, cr[d]

        # ---- layer registers -------------------------------------------------------------
        count = Signal(range(E + 1))          # items loaded
        total = Signal(tbits + _bits(E) + 1)  # tokens of the layer
        big = Signal()                        # mean above a block: split by the mean
        m.d.comb += big.eq(total > B * E)
        # merge sort
        width = Signal(range(2 * E + 1))
        parity = Signal()
        pa, pb, mid, hi, k = (Signal(range(4 * E + 1), name=n)
                              for n in ("pa", "pb", "mid", "hi", "k"))
        # per expert
        oi = Signal(range(E + 1))
        slot = Signal(slot_shape)
        req = Signal(tbits)
        remaining = Signal(tbits)
        home = Signal(range(N))
        presence = Signal(N)
        mask = Signal(N)
        ncand = Signal(range(N + 1))
        quotient = Signal(range(N + 1))
        numer = Signal(tbits + _bits(E) + 1)
        acc = Signal(tbits + _bits(E) + _bits(N + 1) + 2)
        keep = Signal(range(N + 1))
        idx = Signal(range(N + 1))
        best = Signal(range(N))
        best_cost = Signal(K)
        best_local = Signal()
        wp = Signal(range(rows_depth + 1))
        row_start = Signal(range(rows_depth + 1))
        rows = Signal(range(N + 1))
        # candidate queue: sorted by (estimate, die), valid slots first
        q_valid = Array(Signal(name=f"q_valid_{i}") for i in range(N))
        q_key = Array(Signal(K, name=f"q_key_{i}") for i in range(N))
        q_die = Array(Signal(range(N), name=f"q_die_{i}") for i in range(N))
        q_local = Array(Signal(name=f"q_local_{i}") for i in range(N))
        q_xfer = Array(Signal(W, name=f"q_xfer_{i}") for i in range(N))
        q_alloc = Array(Signal(tbits, name=f"q_alloc_{i}") for i in range(N))
        q_first = Array(Signal(name=f"q_first_{i}") for i in range(N))
        # emission
        s_emit = Signal(range(E + 1))
        j_emit = Signal(range(N + 1))

        # ---- shared read paths -----------------------------------------------------------
        src_a = Signal(slot_shape)
        src_b = Signal(slot_shape)
        in_merge = Signal()
        in_emit = Signal()
        pb_addr = Signal(slot_shape)
        m.d.comb += [
            pb_addr.eq(Mux(pb < count, pb, 0)),
            o0_a.addr.eq(Mux(in_merge, pa, oi)), o1_a.addr.eq(Mux(in_merge, pa, oi)),
            o0_b.addr.eq(pb_addr), o1_b.addr.eq(pb_addr),
            src_a.eq(Mux(parity, o1_a.data, o0_a.data)),
            src_b.eq(Mux(parity, o1_b.data, o0_b.data)),
            items_a.addr.eq(Mux(in_emit, s_emit, src_a)),
            items_b.addr.eq(src_b),
            meta_r.addr.eq(s_emit),
            plan_r.addr.eq(meta_r.data.start + j_emit),
        ]

        # block size: the last block absorbs a remainder below a block
        blk = Signal(tbits)
        m.d.comb += [blk.eq(Mux(remaining >= 2 * B, B, remaining)), comp_r.addr.eq(blk)]
        c_block = comp_r.data

        # ---- scan step: lowest die of the mask, its estimate ------------------------------
        scan_die = Signal(range(N))
        for d in reversed(range(N)):      # the last assignment wins: the lowest set bit
            with m.If(mask[d]):
                m.d.comb += scan_die.eq(d)
        dx = Signal(xbits)
        dy = Signal(ybits)
        m.d.comb += [
            dx.eq(Mux(coord_x[scan_die] >= coord_x[home], coord_x[scan_die] - coord_x[home],
                      coord_x[home] - coord_x[scan_die])),
            dy.eq(Mux(coord_y[scan_die] >= coord_y[home], coord_y[scan_die] - coord_y[home],
                      coord_y[home] - coord_y[scan_die])),
        ]
        scan_xfer = Signal(W)
        scan_local = Signal()
        scan_key = Signal(K)
        m.d.comb += [scan_xfer.eq(xfer_by_hops[dx + dy]),
                     scan_local.eq(presence.bit_select(scan_die, 1))]
        sa, sc = die_time("scan", scan_die)
        m.d.comb += scan_key.eq(sa + sc + Mux(scan_local, 0, scan_xfer))
        stays = [Signal(name=f"stays_{i}") for i in range(N)]
        for i in range(N):
            m.d.comb += stays[i].eq(q_valid[i] & (q_key[i] <= scan_key))
        div_done = Signal()
        m.d.comb += div_done.eq(~((acc <= numer) & (quotient < N)))

        # ---- block evaluation: candidate idx against the running best --------------------
        e_die = Signal(range(N))
        e_local = Signal()
        e_xfer = Signal(W)
        e_first = Signal()
        m.d.comb += [e_die.eq(q_die[idx]), e_local.eq(q_local[idx]), e_xfer.eq(q_xfer[idx]),
                     e_first.eq(q_first[idx])]
        la, lc = die_time("local", e_die, comp_extra=c_block)
        cost_local = Signal(K)
        m.d.comb += cost_local.eq(la + lc)
        ra, rc = die_time("exec", e_die, din_extra=e_xfer)
        t_exec = Signal(K)
        m.d.comb += t_exec.eq(ra + rc + c_block)
        ha, hc = die_time("data", home, dr_extra=Mux(e_first, 0, self._hbm_read))
        t_data = Signal(K)
        m.d.comb += t_data.eq(ha + hc)
        cost = Signal(K)
        m.d.comb += cost.eq(Mux(e_local, cost_local, Mux(t_data >= t_exec, t_data, t_exec)))

        # ---- control ---------------------------------------------------------------------
        item = self.experts.payload
        b_die = Signal(range(N))
        m.d.comb += b_die.eq(q_die[best])

        with m.FSM(name="allocator"):
            with m.State("LOAD"):
                m.d.comb += self.experts.ready.eq(1)
                with m.If(self.experts.valid):
                    m.d.comb += [
                        items_w.addr.eq(count), items_w.en.eq(1),
                        items_w.data.expert.eq(item.expert),
                        items_w.data.tokens.eq(item.tokens),
                        items_w.data.home.eq(item.home),
                        items_w.data.presence.eq(item.presence),
                        o0_w.addr.eq(count), o0_w.data.eq(count), o0_w.en.eq(1),
                    ]
                    m.d.sync += [count.eq(count + 1), total.eq(total + item.tokens),
                                 dl[item.home[:_bits(N)]].eq(dl[item.home[:_bits(N)]]
                                                             + self._hbm_read)]
                    with m.If(item.last):
                        m.d.sync += [width.eq(1), parity.eq(0)]
                        m.next = "SORT"
            with m.State("SORT"):
                # set up the first pair of runs of this pass, or finish
                with m.If(width >= count):
                    m.d.sync += oi.eq(0)
                    m.next = "NEXT"
                with m.Else():
                    m.d.sync += [pa.eq(0), mid.eq(width), pb.eq(width), k.eq(0),
                                 hi.eq(Mux(2 * width < count, 2 * width, count))]
                    m.next = "MERGE"
            with m.State("MERGE"):
                m.d.comb += in_merge.eq(1)
                take_a = Signal()
                m.d.comb += take_a.eq((pa < mid) & ((pb >= hi) | (items_a.data.tokens
                                                                   <= items_b.data.tokens)))
                chosen = Mux(take_a, src_a, src_b)
                m.d.comb += [o0_w.addr.eq(k), o0_w.data.eq(chosen), o0_w.en.eq(parity),
                             o1_w.addr.eq(k), o1_w.data.eq(chosen), o1_w.en.eq(~parity)]
                m.d.sync += k.eq(k + 1)
                with m.If(take_a):
                    m.d.sync += pa.eq(pa + 1)
                with m.Else():
                    m.d.sync += pb.eq(pb + 1)
                with m.If(k + 1 == hi):
                    with m.If(hi == count):
                        m.d.sync += [width.eq(width << 1), parity.eq(~parity)]
                        m.next = "SORT"
                    with m.Else():
                        nmid = Mux(hi + width < count, hi + width, count)
                        m.d.sync += [pa.eq(hi), mid.eq(nmid), pb.eq(nmid),
                                     hi.eq(Mux(hi + 2 * width < count, hi + 2 * width, count))]
            with m.State("NEXT"):
                it = items_a.data
                m.d.sync += [slot.eq(src_a), req.eq(it.tokens), remaining.eq(it.tokens),
                             home.eq(it.home), presence.eq(it.presence),
                             mask.eq(it.presence | neighbours[it.home[:_bits(N)]]),
                             ncand.eq(0), quotient.eq(0),
                             numer.eq(Mux(big, it.tokens * E, it.tokens)),
                             acc.eq(Mux(big, total, B)), row_start.eq(wp), rows.eq(0)]
                for i in range(N):
                    m.d.sync += [q_valid[i].eq(0), q_alloc[i].eq(0), q_first[i].eq(0)]
                m.next = "SCAN"
            with m.State("SCAN"):
                with m.If(mask != 0):
                    m.d.sync += [mask.eq(mask & (mask - 1)), ncand.eq(ncand + 1)]
                    insert_sorted(m, stays, list(zip(q_valid, q_key, q_die, q_local, q_xfer)),
                                  (1, scan_key, scan_die, scan_local, scan_xfer))
                with m.If(~div_done):
                    m.d.sync += [quotient.eq(quotient + 1), acc.eq(acc + Mux(big, total, B))]
                with m.If((mask == 0) & div_done):
                    kept = Mux(quotient > self._min_candidates, quotient, self._min_candidates)
                    m.d.sync += [keep.eq(Mux(kept < ncand, kept, ncand)), idx.eq(0)]
                    m.next = "EVAL"
            with m.State("EVAL"):
                with m.If((idx == 0) | (cost < best_cost)
                          | ((cost == best_cost) & e_local & ~best_local)):
                    m.d.sync += [best.eq(idx), best_cost.eq(cost), best_local.eq(e_local)]
                m.d.sync += idx.eq(idx + 1)
                with m.If(idx + 1 == keep):
                    m.next = "APPLY"
            with m.State("APPLY"):
                with m.If(best_local):
                    m.d.sync += cl[b_die].eq(cl[b_die] + c_block)
                with m.Else():
                    m.d.sync += [cr[b_die].eq(cr[b_die] + c_block),
                                 din[b_die].eq(din[b_die] + q_xfer[best])]
                    with m.If(~q_first[best]):
                        m.d.sync += dr[home].eq(dr[home] + self._hbm_read)
                m.d.sync += [q_first[best].eq(1), q_alloc[best].eq(q_alloc[best] + blk),
                             remaining.eq(remaining - blk), idx.eq(0)]
                with m.If(remaining == blk):
                    m.next = "WRITE"
                with m.Else():
                    m.next = "EVAL"
            with m.State("WRITE"):
                has = q_alloc[idx] != 0
                m.d.comb += [plan_w.addr.eq(wp), plan_w.data.die.eq(q_die[idx]),
                             plan_w.data.tokens.eq(q_alloc[idx]), plan_w.en.eq(has)]
                with m.If(has):
                    m.d.sync += [wp.eq(wp + 1), rows.eq(rows + 1)]
                m.d.sync += idx.eq(idx + 1)
                with m.If(idx + 1 == keep):
                    m.d.comb += [meta_w.addr.eq(slot), meta_w.en.eq(1),
                                 meta_w.data.start.eq(row_start),
                                 meta_w.data.count.eq(rows + has)]
                    m.d.sync += oi.eq(oi + 1)
                    with m.If(oi + 1 == count):
                        m.d.sync += [s_emit.eq(0), j_emit.eq(0)]
                        m.next = "EMIT"
                    with m.Else():
                        m.next = "NEXT"
            with m.State("EMIT"):
                m.d.comb += in_emit.eq(1)
                last_row = j_emit + 1 == meta_r.data.count
                last = last_row & (s_emit + 1 == count)
                m.d.comb += [self.tasks.valid.eq(1),
                             self.tasks.payload.expert.eq(items_a.data.expert),
                             self.tasks.payload.die.eq(plan_r.data.die),
                             self.tasks.payload.tokens.eq(plan_r.data.tokens),
                             self.tasks.payload.last.eq(last)]
                with m.If(self.tasks.ready):
                    with m.If(last_row):
                        m.d.sync += [s_emit.eq(s_emit + 1), j_emit.eq(0)]
                    with m.Else():
                        m.d.sync += j_emit.eq(j_emit + 1)
                    with m.If(last):
                        m.d.sync += [count.eq(0), total.eq(0), wp.eq(0)]
                        for d in range(N):
                            m.d.sync += [cl[d].eq(0), cr[d].eq(0), dl[d].eq(0), dr[d].eq(0),
                                         din[d].eq(0)]
                        m.next = "LOAD"
        return m


def allocator_cycle_model(counts, plan, *, mesh_x: int, mesh_y: int, presence=None,
                          block_size: int = PAPER_BLOCK_SIZE,
                          candidate_distance: int = PAPER_CANDIDATE_DISTANCE,
                          min_candidates: int = PAPER_MIN_CANDIDATES) -> int:
    """Cycles one layer takes in :class:`Allocator`, from its counts and resulting plan.

    Parameters
    ----------
    counts : sequence of int
        Token count per expert (zeros are inactive).
    plan : list of (expert, die, tokens)
        The layer's plan (from the twin or the RTL): only its length is used.
    mesh_x, mesh_y : int
    presence : sequence of int, optional
        EDT presence bitmap per expert (default: home die only).
    block_size, candidate_distance, min_candidates : int
        As the allocator's.

    Returns
    -------
    int
        Cycles from the edge that accepts the layer's first item to the edge of its last task,
        with a producer and a consumer that never stall (checked against pysim in
        tests/test_rtl_allocator.py)::

            A + passes * (A + 1) + 1 + rows
              + sum_e [2 + max(n_e, min(split_e, N)) + blocks_e * (keep_e + 1) + keep_e]

        ``passes = ceil(log2 A)`` merge passes; ``n_e`` candidates (presence plus dies within
        ``candidate_distance`` of home).
    """
    counts = np.asarray(counts, dtype=np.int64)
    num_experts = len(counts)
    num_dies = mesh_x * mesh_y
    home = home_dies(num_experts, num_dies)
    active = np.flatnonzero(counts)
    total = int(counts.sum())
    passes = 0 if len(active) <= 1 else math.ceil(math.log2(len(active)))
    cycles = len(active) + passes * (len(active) + 1) + 1 + len(plan)
    for e in active.tolist():
        h = int(home[e])
        bits = (1 << h) if presence is None else int(presence[e])
        n = 0
        for d in range(num_dies):
            hops = abs(d // mesh_y - h // mesh_y) + abs(d % mesh_y - h % mesh_y)
            n += bool(bits >> d & 1 or 0 < hops <= candidate_distance)
        req = int(counts[e])
        if total > block_size * num_experts:
            split = (req * num_experts) // total
        else:
            split = req // block_size
        split = min(split, num_dies)
        keep = min(max(min_candidates, split), n)
        blocks = 0
        remaining = req
        while remaining > 0:
            remaining -= remaining if remaining < 2 * block_size else block_size
            blocks += 1
        cycles += 2 + max(n, split) + blocks * (keep + 1) + keep
    return cycles
