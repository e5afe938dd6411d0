"""The prediction path of every die, driven through the units' twins (docs/rtl.md, flows 1-4):
the Global CP's predictor fills each die's PDU table at a layer launch, a die's ATU redirects
reads of a replicated expert, and after the layer the Local CPs report their copies."""

from __future__ import annotations

import numpy as np

from ..components.atu import AddressMap, ATUTwin
from ..components.global_cp import GlobalCPTwin
from ..components.global_cp.predictor import predictor_inputs, union_of_rows
from ..components.local_cp.twin import LocalCPStats, LocalCPTwin
from ..components.pdu.compiled import pack_registers
from ..components.pdu.params import PDULayout
from ..components.pdu.twin import EXPERTS_PER_WORD, PDUTwin, without_is_local

__all__ = ["PredictionUnits"]


class PredictionUnits:
    """The prediction path of every die, driven through its twins (docs/rtl.md, flows 1-4).

    Per die: a :class:`PDUTwin` (its register table), a :class:`LocalCPTwin` that writes and
    asks that PDU, and one :class:`ATUTwin` per MoE layer (entries are indexed by expert id
    within a layer); the Global CP twin's EDT holds presence. The units decide, and the event
    kernel reads their decisions for the layer (:attr:`redirect`, :attr:`copy`):

    * at a layer launch the Global CP's predictor (``cp_en``) and EDT (``is_local``) configure
      the PDU of each die with tasks; the die's Local CP dispatches its tasks (the kernel runs
      them in its order) and its PDU decides which remote experts are copied;
    * every remote read asks the die's ATU: it is redirected to the local replica exactly when
      the ATU hits (the page it returns must be the address map's replica page);
    * after the layer the Local CP's report drives the ATU inserts and the EDT's presence.

    Efficiency without changing results: the predictor's ``cp_en`` of all dies comes from one
    matrix product; the PDU words of all dies are packed with numpy, and a die's PDU is written
    only where a 16-bit register changes (register state is the same as a full ``configure``),
    through the twins' bulk transactions (``PDUTwin.write_words``,
    ``LocalCPTwin.dispatch_layer``, ``ATUTwin.lookup_many``: arguments validated once per call
    as arrays, same state as the per-register / per-task calls the RTL is compared with).

    Bounded replica region (``replica_capacity_bytes``): each die's Local CP owns its replica
    replacement (:meth:`LocalCPTwin.keep_copies`): it keeps the die's replicas in LRU order
    (use = an ATU hit at a layer launch, or the copy itself) and names the least recently used
    replica a copy overflows the region with. This path keeps no order of its own; it applies
    the eviction: the ATU entry is invalidated, the EDT presence bit cleared (so the next
    launch configures ``is_local`` = 0) and, if it belongs to the layer just run, the PDU's
    ``is_local`` register bit is cleared.
    """

    def __init__(self, replay, gcp: GlobalCPTwin, record: bool = False):
        N, E = replay.N, replay.E
        self.N, self.E = N, E
        self.gcp = gcp
        self.home = replay.home
        self.moe_layers = [int(x) for x in replay.store.moe_layers]
        dies = replay.wafer.dies
        # each unit sized by its own node of the graph (check_unit_sizes made sure E fits)
        num_words = max(PDULayout(experts=die.pdu.experts).num_words for die in dies)
        # each die's PDU keeps its registers in its row of this array: the PDU's own state
        self.registers = np.zeros((N, num_words), np.int64)
        self.pdus = [PDUTwin(num_experts=die.pdu.experts, registers=self.registers[d])
                     for d, die in enumerate(dies)]
        self.atu_entries = [die.atu.entries for die in dies]
        self.local_cps = [LocalCPTwin(die=d, num_dies=N, pdu=self.pdus[d]) for d in range(N)]
        self.atus: dict[tuple[int, int], ATUTwin] = {}
        self.amap = AddressMap(num_dies=N, num_experts=E, num_layers=replay.model.num_layers,
                               slice_bytes=int(replay.slice_bytes),
                               live_dies=replay.live_dies.tolist())
        # the units' decisions for the layer being run, per (die, expert), which the event
        # kernel reads: the ATU redirects a remote read, the Local CP copies arriving data
        self.redirect = np.zeros((N, E), np.bool_)
        self.copy = np.zeros((N, E), np.bool_)
        # each die's Local CP report of the layer being run
        self.reports: dict[int, LocalCPStats] = {}
        # registers that hold this model's experts (the rest of a larger PDU stays 0)
        self.model_words = -(-E // EXPERTS_PER_WORD)
        self.tie_rule = replay.params.tie_rule
        cap = replay.params.replica_capacity_bytes
        # replicas each die may hold (None: unbounded), kept by each die's Local CP; per die,
        # so that the HBM budget (physical mode) can give each die what its HBM has left
        # (``set_capacity``)
        if cap is not None:
            for cp in self.local_cps:
                cp.bound_replicas(int(cap // replay.model.expert_bytes))
        self.layer = -1
        # tasks whose experts the predictor read at the last launch (``predictor_inputs``)
        self.predictor_keep = np.zeros(0, np.bool_)
        # with ``record``: every transaction each unit's twin took, and its answer, in the
        # transaction format of the unit's RTL harness (``run_pdu_twin``, ``run_atu_twin``),
        # keyed ("pdu", die) and ("atu", die, layer); ("local_cp", die) holds each layer's
        # (tasks, cp_en, is_local, report) as the Local CP RTL takes and answers them
        self.streams: dict[tuple, list] | None = {} if record else None

    # ---------------------------------------------------------------- layer launch (flow 1)
    def launch(self, layer, task_e, task_d, task_t, copy_ok, quirks) -> np.ndarray:
        """Global CP -> PDU tables of the dies with tasks; the Local CPs dispatch their tasks
        (and decide the copies); the ATUs decide the redirects.

        Returns
        -------
        numpy.ndarray of int64
            The plan's task indices in the order the kernel runs them: each die's tasks
            take the plan's positions of that die's tasks, in its Local CP's dispatch order.
        """
        N = self.N
        self.layer = layer
        is_local = self.gcp.presence_matrix(layer).T
        if copy_ok:
            top = (self.gcp.top_n_matrix(layer) if self.tie_rule == "stable"
                   else _numpy_top_n(self.gcp, layer))
            # the artefact's per-die expert list (plan order = expert id ascending) stops
            # growing, with its quirk, once it holds the expert whose id equals the die id
            self.predictor_keep = predictor_inputs(task_e, task_d, N, quirks)
            cp_en = np.zeros((N, self.E), np.bool_)
            union_of_rows(task_e, task_d, self.predictor_keep, top, cp_en)
        else:
            self.predictor_keep = np.zeros(len(task_e), np.bool_)
            cp_en = np.zeros((N, self.E), np.bool_)
        words = pack_registers(cp_en, is_local, np.empty((N, self.model_words), np.int64))
        # the Local CPs of the dies with tasks write only the registers that change
        with_tasks = np.bincount(task_d, minlength=N) > 0
        changed = (words != self.registers[:, :self.model_words]) & with_tasks[:, None]
        for d in np.flatnonzero(changed.any(axis=1)).tolist():
            index = np.flatnonzero(changed[d])
            self.pdus[d].write_words(index, words[d, index])
            if self.streams is not None:
                self._record(("pdu", d), [("write_word", i, w) for i, w in
                                          zip(index.tolist(), words[d, index].tolist())])
        if self.streams is not None:
            self._record_queries(task_e, task_d)
        order = self._dispatch(task_e, task_d, task_t, cp_en, is_local)
        self._redirect(layer, task_e, task_d)
        return order

    def _dispatch(self, task_e, task_d, task_t, cp_en, is_local) -> np.ndarray:
        """Each die's Local CP dispatches its tasks on its PDU: the copies it decides become
        :attr:`copy`; returns the kernel's task order (see :meth:`launch`)."""
        self.copy[:] = False
        self.reports = {}
        order = np.arange(len(task_e), dtype=np.int64)
        for d in np.unique(task_d).tolist():
            mine = np.flatnonzero(task_d == d)
            experts = task_e[mine]
            stats, dispatched = self.local_cps[d].dispatch_layer(
                experts, task_t[mine], self.home[experts])
            order[mine] = mine[dispatched]
            self.reports[d] = stats
            copied = list(stats.duplicated_experts)
            self.copy[d, copied] = True
            if self.streams is not None:
                self._record(("pdu", d), [("set_local", e) for e in copied])
                tasks = list(zip(experts.tolist(), task_t[mine].tolist(),
                                 self.home[experts].tolist()))
                self._record(("local_cp", d), [(tasks, cp_en[d].copy(), is_local[d].copy(),
                                                stats)])
        return order

    def _record(self, key, transactions) -> None:
        if self.streams is not None:
            self.streams.setdefault(key, []).extend(transactions)

    def _record_queries(self, task_e, task_d) -> None:
        """What the data path asks each die's PDU about its tasks' experts, with the answers
        (the register read-out as the Local CP finds it)."""
        for e, d in zip(task_e.tolist(), task_d.tolist()):
            self._record(("pdu", d), [("query", e, self.pdus[d].query(e))])

    def _atu(self, die, layer) -> ATUTwin:
        """Die ``die``'s ATU table of ``layer`` (empty until the first copy)."""
        atu = self.atus.get((die, layer))
        if atu is None:
            atu = self.atus[(die, layer)] = ATUTwin(
                num_entries=self.atu_entries[die], num_dies=self.N,
                page_bits=self.amap.layout.page_bits)
        return atu

    def _redirect(self, layer, task_e, task_d):
        """Every remote read goes through its die's ATU: a hit redirects it to the local
        replica (:attr:`redirect`). The page the ATU returns must be the address map's
        replica page of the expert, else the data read would not be the expert's."""
        self.redirect[:] = False
        remote = self.home[task_e] != task_d
        experts, dies = task_e[remote], task_d[remote]
        home_addr, replica_page = self.amap.layer_addresses(self.moe_layers[layer])
        for d in np.unique(dies).tolist():
            mine = experts[dies == d]       # this die's remote reads, in task order
            hits, pages = self._atu(d, layer).lookup_many(mine, home_addr[mine])
            if self.streams is not None:
                self._record(("atu", d, layer), [
                    ("lookup", e, a, (bool(h), p)) for e, a, h, p in
                    zip(mine.tolist(), home_addr[mine].tolist(), hits.tolist(), pages.tolist())])
            wrong = hits & (pages != replica_page[mine])
            if wrong.any():
                i = int(np.argmax(wrong))
                raise AssertionError(
                    f"ATU of die {d} redirects expert {int(mine[i])} (layer "
                    f"{self.moe_layers[layer]}) to page {int(pages[i]):#x}; its replica is at "
                    f"page {int(replica_page[mine[i]]):#x}")
            self.redirect[d, mine[hits]] = True
            self.local_cps[d].replicas_used(layer, mine[hits].tolist())

    # -------------------------------------------------------------- after the layer (flow 4)
    def report(self, layer):
        """The Local CPs report the layer's copies: the ATU and the EDT follow, and each Local
        CP's replica replacement names what a bounded region evicts."""
        home_addr, replica_page = self.amap.layer_addresses(self.moe_layers[layer])
        for d, stats in sorted(self.reports.items()):
            if not stats.duplicated_experts:
                continue
            copied = np.array(stats.duplicated_experts, np.int64)
            self._atu(d, layer).insert_many(copied, home_addr[copied], replica_page[copied])
            self.gcp.edt_set_present_many(layer, copied, d)
            if self.streams is not None:
                self._record(("atu", d, layer), [
                    ("insert", e, a, p) for e, a, p in zip(
                        copied.tolist(), home_addr[copied].tolist(),
                        replica_page[copied].tolist())])
            for held_layer, e in self.local_cps[d].keep_copies(layer, copied.tolist()):
                self._evict(d, held_layer, e)

    def set_capacity(self, slots) -> None:
        """Bound each die's replica region to ``slots[d]`` whole experts (physical mode's HBM
        budget, which shrinks as the KV cache grows); the replicas each die's Local CP drops
        to fit are evicted, least recently used first."""
        for d, count in enumerate(np.asarray(slots, np.int64).tolist()):
            for held_layer, e in self.local_cps[d].bound_replicas(count):
                self._evict(d, held_layer, e)

    @property
    def evictions(self) -> int:
        """Replicas evicted so far, over all dies (their Local CPs' counts)."""
        return sum(cp.evictions for cp in self.local_cps)

    def replicas_held(self) -> list[int]:
        """Replicated experts each die holds now (EDT presence bits off the home die)."""
        return self.gcp.replicas_per_die()

    def _evict(self, d, layer, e):
        """Drop die ``d``'s replica of expert ``e`` of ``layer``, as its Local CP decided."""
        self.atus[(d, layer)].invalidate(e)
        if self.streams is not None:
            self._record(("atu", d, layer), [("invalidate", e)])
        self.gcp.edt_clear_present(layer, e, d)
        if layer == self.layer:     # the PDU table holds the current layer's bits
            w = e // EXPERTS_PER_WORD
            word = without_is_local(int(self.pdus[d].read_words([w])[0]), e)
            self.pdus[d].write_word(w, word)
            if self.streams is not None:
                self._record(("pdu", d), [("write_word", w, word)])


def _numpy_top_n(gcp, layer):
    """The artefact's top-n (``np.argsort`` quicksort of float rows; ties machine dependent)."""
    n = gcp.top_n_count
    E = gcp.num_experts
    out = np.zeros((E, E), bool)
    for i in range(E):
        row = gcp.heatmap_row(layer, i).astype(np.float64)
        out[i, np.argsort(row)[-n:]] = True
    return out
