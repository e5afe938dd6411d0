"""The prediction path of every die, driven through the units' twins (docs/rtl.md, flows 1-4):
the Global CP's predictor fills each die's PDU table at a layer launch, a die's ATU redirects
reads of a replicated expert, and after the layer the Local CPs report their copies."""

from __future__ import annotations

import functools

import numpy as np

from ..checks import check_int_array
from ..components.atu import AddressMap, ATUTwin
from ..components.atu.twin import new_tables
from ..components.global_cp import GlobalCPTwin
from ..components.global_cp.predictor import predictor_inputs, union_of_rows
from ..components.local_cp.replicas import ReplicaRegions
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

    Every die at once: the twins keep their state in arrays with one row per die (the PDUs'
    registers in :attr:`registers`; the ATUs' entries in arrays of one row per (layer, die)
    table), and each step of a layer is one wafer-level call of the unit's own compiled code on
    all rows (``PDUTwin.load_tables``, ``LocalCPTwin.dispatch_tasks``, ``ATUTwin.look_up``,
    ``ATUTwin.store``, ``EDTTwin.set_present_pairs``), the code that the per-die twins' methods
    (which the RTL is compared with) run on their one row. The predictor's ``cp_en`` of all
    dies comes from one matrix product and the PDU words of all dies are packed at once.

    With ``lazy_cp_en`` (the replay's runs, unless the units are recorded or co-simulated)
    the predictor is asked only at the launches where a copy decision reads its ``cp_en``:
    some remote task's expert has no replica on its die yet. Elsewhere every die's PDU gets
    ``cp_en`` = 0, which decides the same copies (none), and the heatmap's pairs wait until it
    is read (:meth:`feed_heatmap`).

    Bounded replica region (``replica_capacity_bytes``): each die's Local CP owns its replica
    replacement (:meth:`LocalCPTwin.keep_copies`): it keeps the die's replicas in LRU order
    (use = an ATU hit at a layer launch, or the copy itself) and names the least recently used
    replica a copy overflows the region with. The Local CPs keep that order in the rows of
    :attr:`replica_regions` (one per die), and each step (a layer's ATU hits, its copies, a
    new bound) is one call for every die (``ReplicaRegions.use``, ``keep_copies``,
    ``bound``), the code each die's twin runs on its row. This path keeps no order of its
    own; it applies the eviction: the ATU entry is invalidated, the EDT presence bit cleared
    (so the next launch configures ``is_local`` = 0) and, if it belongs to the layer just
    run, the PDU's ``is_local`` register bit is cleared.
    """

    def __init__(self, replay, gcp: GlobalCPTwin, record: bool = False,
                 lazy_cp_en: bool = False):
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
        # each die's Local CP keeps its replica region (bounded: in LRU order) in its row of
        # these regions: the Local CPs' own state
        self.replica_regions = ReplicaRegions(N, E, len(self.moe_layers))
        self.local_cps = [LocalCPTwin(die=d, num_dies=N, pdu=self.pdus[d],
                                      replicas=self.replica_regions) for d in range(N)]
        # the ATU table of each (MoE layer, die) keeps its entries in row layer * N + die of
        # these arrays; its twin (a view of that row) is made when first asked for (:meth:`_atu`)
        self.atu_tables = new_tables(len(self.moe_layers) * N, max(self.atu_entries))
        self._atu_twins: dict[tuple[int, int], ATUTwin] = {}
        # the tables a lookup or an insert has used, (layer, die): the ones :attr:`atus` lists
        self._atu_used = np.zeros((len(self.moe_layers), N), np.bool_)
        self.amap = AddressMap(num_dies=N, num_experts=E, num_layers=replay.model.num_layers,
                               slice_bytes=int(replay.slice_bytes),
                               live_dies=replay.live_dies.tolist())
        self._addresses: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        # the units' decisions for the layer being run, per (die, expert), which the event
        # kernel reads: the ATU redirects a remote read, the Local CP copies arriving data
        self.redirect = np.zeros((N, E), np.bool_)
        self.copy = np.zeros((N, E), np.bool_)
        # the layer being run, as its Local CPs dispatched it: task arrays and what was copied
        self._tasks = (np.zeros(0, np.int64),) * 4
        self._copied = np.zeros(0, np.bool_)
        self._reports: dict[int, LocalCPStats] | None = {}
        # registers that hold this model's experts (the rest of a larger PDU stays 0)
        self.model_words = -(-E // EXPERTS_PER_WORD)
        self.tie_rule = replay.params.tie_rule
        cap = replay.params.replica_capacity_bytes
        # replicas each die may hold (None: unbounded), kept by each die's Local CP; per die,
        # so that the HBM budget (physical mode) can give each die what its HBM has left
        # (``set_capacity``)
        if cap is not None:
            self.replica_regions.bound(np.arange(N),
                                       np.full(N, int(cap // replay.model.expert_bytes)))
        self._check_bounded()
        self.layer = -1
        # tasks whose experts the predictor read at the last launch (``predictor_inputs``)
        self.predictor_keep = np.zeros(0, np.bool_)
        # with ``record``: every transaction each unit's twin took, and its answer, in the
        # transaction format of the unit's RTL harness (``run_pdu_twin``, ``run_atu_twin``),
        # keyed ("pdu", die) and ("atu", die, layer); ("local_cp", die) holds each layer's
        # (tasks, cp_en, is_local, report) as the Local CP RTL takes and answers them
        self.streams: dict[tuple, list] | None = {} if record else None
        # with ``lazy_cp_en`` the predictor's cp_en is worked out only at the launches whose
        # copy decisions read it (:meth:`_copies_read_cp_en`); the others load cp_en = 0,
        # which decides the same copies (none). Never when the units are recorded: their
        # register writes are then the RTL's inputs
        self.lazy_cp_en = lazy_cp_en and not record
        self.workload = replay.workload          # the heatmap's input (feed_heatmap)

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
        task_e, task_d, task_t = (np.asarray(a, np.int64) for a in (task_e, task_d, task_t))
        is_local = self.gcp.presence_matrix(layer).T
        if copy_ok:
            # the artefact's per-die expert list (plan order = expert id ascending) stops
            # growing, with its quirk, once it holds the expert whose id equals the die id
            self.predictor_keep = predictor_inputs(task_e, task_d, N, quirks)
            cp_en = np.zeros((N, self.E), np.bool_)
            if not self.lazy_cp_en or self._copies_read_cp_en(task_e, task_d, is_local):
                top = (self.gcp.top_n_matrix(layer) if self.tie_rule == "stable"
                       else _numpy_top_n(self.gcp, layer))
                union_of_rows(task_e, task_d, self.predictor_keep, top, cp_en)
        else:
            self.predictor_keep = np.zeros(len(task_e), np.bool_)
            cp_en = np.zeros((N, self.E), np.bool_)
        words = pack_registers(cp_en, is_local, np.empty((N, self.model_words), np.int64))
        # the Local CPs of the dies with tasks write their PDU tables
        with_tasks = np.flatnonzero(np.bincount(task_d, minlength=N))
        if self.streams is not None:
            self._record_writes(words, with_tasks)
        PDUTwin.load_tables(self.registers, with_tasks, words)
        if self.streams is not None:
            self._record_queries(task_e, task_d)
        order = self._dispatch(task_e, task_d, task_t, cp_en, is_local)
        self._redirect(layer, task_e, task_d)
        return order

    # ------------------------------------------------------ the heatmap's input (flow 1)
    def feed_heatmap(self, it) -> None:
        """Iteration ``it``'s cross-token pairs go to the Global CP's heatmap before its
        layers launch: the prompts' at 0, decode steps ``it - 1 -> it`` from 2
        (``Workload.pairs``). With :attr:`lazy_cp_en` a decode step's pairs are counted when
        the heatmap is next read (``PredictorTwin.defer_pairs``; their rows are read again
        from the trace store then, unless they are the last two iterations'): a run whose
        copy decisions stop reading the predictor never counts the pairs after its last
        read."""
        if it == 1:
            return
        if self.lazy_cp_en and it > 0:      # the prompts' pairs are counted at once, as the
            # prompts' rows are read (their gather's scratch adds no peak memory then)
            self.gcp.heatmap_defer_pairs(functools.partial(self.workload.pairs, it))
        else:
            self.gcp.heatmap_add_pairs(*self.workload.pairs(it))

    def _copies_read_cp_en(self, task_e, task_d, is_local) -> bool:
        """Whether a PDU's copy decision at this launch reads ``cp_en``: only a remote task
        (weights from another die) whose expert has no copy on its die asks for one, as the
        PDU copies when ``cp_en and not is_local`` (:meth:`LocalCPTwin.dispatch_tasks`).
        Otherwise every cp_en decides the same copies, none, and the predictor (and the
        heatmap counting behind it) is not asked."""
        remote = self.home[task_e] != task_d
        return bool(not is_local[task_d[remote], task_e[remote]].all())

    def _record_writes(self, words, with_tasks) -> None:
        """The register writes of the table loads, as the RTL takes them: a die's Local CP
        writes only the registers that change (ascending)."""
        old = self.registers[with_tasks, :self.model_words]
        for d, new, was in zip(with_tasks.tolist(), words[with_tasks], old):
            index = np.flatnonzero(new != was)
            if len(index):
                self._record(("pdu", d), [("write_word", i, w) for i, w in
                                          zip(index.tolist(), new[index].tolist())])

    def _dispatch(self, task_e, task_d, task_t, cp_en, is_local) -> np.ndarray:
        """Each die's Local CP dispatches its tasks on its PDU: the copies it decides become
        :attr:`copy`; returns the kernel's task order (see :meth:`launch`)."""
        sources = self.home[task_e]
        copied, order = LocalCPTwin.dispatch_tasks(self.registers, task_d, task_d, task_e,
                                                   sources)
        self._tasks, self._copied = (task_e, task_d, task_t, sources), copied
        self._reports = None
        self.copy[:] = False
        self.copy[task_d[copied], task_e[copied]] = True
        if self.streams is not None:
            for d, stats in self.reports.items():
                mine = np.flatnonzero(task_d == d)
                self._record(("pdu", d), [("set_local", e) for e in stats.duplicated_experts])
                tasks = list(zip(task_e[mine].tolist(), task_t[mine].tolist(),
                                 sources[mine].tolist()))
                self._record(("local_cp", d), [(tasks, cp_en[d].copy(), is_local[d].copy(),
                                                stats)])
        return order

    @property
    def reports(self) -> dict[int, LocalCPStats]:
        """Each die's Local CP report of the layer being run (dies with tasks, ascending)."""
        if self._reports is None:
            self._reports = LocalCPTwin.layer_reports(self._tasks[1], self._tasks[0],
                                                      self._tasks[2], self._tasks[3],
                                                      self._copied)
        return self._reports

    def _record(self, key, transactions) -> None:
        if self.streams is not None:
            self.streams.setdefault(key, []).extend(transactions)

    def _record_queries(self, task_e, task_d) -> None:
        """What the data path asks each die's PDU about its tasks' experts, with the answers
        (the register read-out as the Local CP finds it)."""
        for e, d in zip(task_e.tolist(), task_d.tolist()):
            self._record(("pdu", d), [("query", e, self.pdus[d].query(e))])

    def _layer_addresses(self, layer) -> tuple[np.ndarray, np.ndarray]:
        """Every expert's home address and replica page in MoE layer ``layer`` (address map)."""
        addresses = self._addresses.get(layer)
        if addresses is None:
            addresses = self._addresses[layer] = self.amap.layer_addresses(
                self.moe_layers[layer])
        return addresses

    def _atu(self, die, layer) -> ATUTwin:
        """Die ``die``'s ATU table of ``layer`` (its row of :attr:`atu_tables`)."""
        atu = self._atu_twins.get((die, layer))
        if atu is None:
            row = layer * self.N + die
            atu = self._atu_twins[(die, layer)] = ATUTwin(
                num_entries=self.atu_entries[die], num_dies=self.N,
                page_bits=self.amap.layout.page_bits,
                table=tuple(a[row] for a in self.atu_tables))
        return atu

    @property
    def atus(self) -> dict[tuple[int, int], ATUTwin]:
        """The ATU table of each (die, layer) a lookup or an insert has used, keyed so."""
        layers, dies = np.nonzero(self._atu_used)
        return {(d, layer): self._atu(d, layer) for layer, d in zip(layers.tolist(),
                                                                     dies.tolist())}

    def _redirect(self, layer, task_e, task_d):
        """Every remote read goes through its die's ATU: a hit redirects it to the local
        replica (:attr:`redirect`). The page the ATU returns must be the address map's
        replica page of the expert, else the data read would not be the expert's."""
        self.redirect[:] = False
        remote = self.home[task_e] != task_d
        experts, dies = task_e[remote], task_d[remote]
        home_addr, replica_page = self._layer_addresses(layer)
        hits, pages = ATUTwin.look_up(*self.atu_tables, layer * self.N + dies, experts,
                                      home_addr[experts])
        self._atu_used[layer, dies] = True
        if self.streams is not None:
            for d in np.unique(dies).tolist():
                mine = dies == d
                self._record(("atu", d, layer), [
                    ("lookup", e, a, (bool(h), p)) for e, a, h, p in
                    zip(experts[mine].tolist(), home_addr[experts[mine]].tolist(),
                        hits[mine].tolist(), pages[mine].tolist())])
        wrong = hits & (pages != replica_page[experts])
        if wrong.any():     # the first wrong answer of the lowest die with one
            i = int(np.flatnonzero(wrong & (dies == dies[wrong].min()))[0])
            raise AssertionError(
                f"ATU of die {int(dies[i])} redirects expert {int(experts[i])} (layer "
                f"{self.moe_layers[layer]}) to page {int(pages[i]):#x}; its replica is at "
                f"page {int(replica_page[experts[i]]):#x}")
        self.redirect[dies[hits], experts[hits]] = True
        if self.bounded:    # each die's hits in task order, dies ascending
            by_die = np.argsort(dies[hits], kind="stable")
            self.replica_regions.use(dies[hits][by_die], layer, experts[hits][by_die])

    # -------------------------------------------------------------- after the layer (flow 4)
    def report(self, layer):
        """The Local CPs report the layer's copies: the ATU and the EDT follow, and each Local
        CP's replica replacement names what a bounded region evicts."""
        task_e, task_d = self._tasks[0], self._tasks[1]
        # the copies, die by die (ascending), each die's in the order they were made
        by_die = np.argsort(task_d[self._copied], kind="stable")
        copied = task_e[self._copied][by_die]
        dies = task_d[self._copied][by_die]
        if not len(copied):
            return
        home_addr, replica_page = self._layer_addresses(layer)
        ATUTwin.store(*self.atu_tables, layer * self.N + dies, copied, home_addr[copied],
                      replica_page[copied])
        self._atu_used[layer, dies] = True
        self.gcp.edt_set_present_pairs(layer, copied, dies)
        if self.streams is not None:
            for d in np.unique(dies).tolist():
                mine = copied[dies == d]
                self._record(("atu", d, layer), [
                    ("insert", e, a, p) for e, a, p in zip(
                        mine.tolist(), home_addr[mine].tolist(), replica_page[mine].tolist())])
        if self.bounded:
            self._evict_pairs(*self.replica_regions.keep_copies(dies, layer, copied))

    def set_capacity(self, slots) -> None:
        """Bound each die's replica region to ``slots[d]`` whole experts (physical mode's HBM
        budget, which shrinks as the KV cache grows); the replicas each die's Local CP drops
        to fit are evicted, least recently used first."""
        counts = np.array(slots, np.int64)
        check_int_array("slots", counts, 0, length=self.N)
        self._evict_pairs(*self.replica_regions.bound(np.arange(self.N), counts))
        self._check_bounded()

    def _check_bounded(self) -> None:
        """Whether a die's replica region is bounded (its Local CP then keeps an LRU order of
        its replicas, which the ATU hits and the copies update): :attr:`bounded`."""
        self.bounded = self.replica_regions.bounded

    @property
    def evictions(self) -> int:
        """Replicas evicted so far, over all dies (their Local CPs' counts)."""
        return int(self.replica_regions.evictions.sum())

    def replicas_held(self) -> list[int]:
        """Replicated experts each die holds now (EDT presence bits off the home die)."""
        return self.gcp.replicas_per_die()

    def _evict_pairs(self, dies, layers, experts) -> None:
        """Apply the evictions the Local CPs decided: replica ``(layers[i], experts[i])`` of
        die ``dies[i]``, dies ascending, each die's in its Local CP's order. Every die at once,
        through the wafer-level calls (``ATUTwin.invalidate_entries``,
        ``EDTTwin.clear_present_pairs``);
        an eviction of the layer just launched also clears its PDU bit. The twins' state ends
        as after :meth:`_evict` on each eviction in turn (each clears its own bits); with
        ``record`` the evictions go one by one, so that each unit's stream lists them in
        order."""
        if not len(dies):
            return
        if self.streams is not None:
            for d, layer, e in zip(dies.tolist(), layers.tolist(), experts.tolist()):
                self._evict(d, layer, e)
            return
        ATUTwin.invalidate_entries(self.atu_tables[0], layers * self.N + dies, experts)
        self.gcp.edt_clear_present_pairs(layers, experts, dies)
        now = layers == self.layer
        PDUTwin.clear_is_local_rows(self.registers, dies[now], experts[now])

    def _evict(self, d, layer, e):
        """Drop die ``d``'s replica of expert ``e`` of ``layer``, as its Local CP decided."""
        self._atu(d, layer).invalidate(e)
        if self.streams is not None:
            self._record(("atu", d, layer), [("invalidate", e)])
        self.gcp.edt_clear_present(layer, e, d)
        if layer == self.layer:     # the PDU table holds the current layer's bits
            self._clear_is_local(d, e)

    def _clear_is_local(self, d, e) -> None:
        """Clear expert ``e``'s ``is_local`` bit in die ``d``'s PDU table (read, write)."""
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
