"""The prediction path of every die, driven through the units' twins (SPEC section 3, flows 1-4):
the Global CP's predictor fills each die's PDU table at a layer launch, a die's ATU redirects
reads of a replicated expert, and after the layer the Local CPs report their copies."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from ..components.atu import AddressMap, ATUTwin
from ..components.global_cp import GlobalCPTwin
from ..components.global_cp.twin import predictor_inputs, union_of_rows
from ..components.local_cp.twin import LocalCPTwin
from ..components.pdu.compiled import holds_local_copies, pack_registers
from ..components.pdu.params import PDULayout
from ..components.pdu.twin import EXPERTS_PER_WORD, PDUTwin

__all__ = ["PredictionUnits", "copies_by_die"]


class PredictionUnits:
    """The prediction path of every die, driven through its twins (SPEC section 3, flows 1-4).

    Per die: a :class:`PDUTwin` (its register table), a :class:`LocalCPTwin` and one
    :class:`ATUTwin` per MoE layer (entries are indexed by expert id within a layer); the
    Global CP twin's EDT holds presence. The kernel reads ``cp_en`` / ``is_local`` as arrays
    equal to the PDU tables; every copy it makes is checked against the Local CP's decision.

    Efficiency without changing results: the predictor's ``cp_en`` of all dies comes from one
    matrix product; the PDU words of all dies are packed with numpy, and a die's PDU is written
    only where a 16-bit register changes (register state is the same as a full ``configure``),
    through the twins' bulk transactions (``PDUTwin.write_words``,
    ``LocalCPTwin.run_layer_arrays``: arguments validated once per call as arrays, same state
    as the per-register / per-task calls the RTL is compared with).

    Bounded replica region (``replica_capacity_bytes``): each die keeps its replicated experts
    in LRU order (use = an ATU hit at a layer launch, or the copy itself). A copy that
    overflows the region evicts the least recently used replica: its ATU entry is
    invalidated, its EDT presence bit cleared (so the next launch configures ``is_local`` = 0)
    and, if it belongs to the layer just run, the PDU's ``is_local`` register bit is cleared.
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
        # each die's PDU keeps its registers in its row of this array, which the event
        # kernel reads for its copy and redirect decisions: the PDU's own state, no copy
        self.registers = np.zeros((N, num_words), np.int64)
        self.pdus = [PDUTwin(num_experts=die.pdu.experts, registers=self.registers[d])
                     for d, die in enumerate(dies)]
        self.atu_entries = [die.atu.entries for die in dies]
        self.local_cps = [LocalCPTwin(die=d, num_experts=E, num_dies=N) for d in range(N)]
        self.atus: dict[tuple[int, int], ATUTwin] = {}
        self.amap = AddressMap(num_dies=N, num_experts=E, num_layers=replay.model.num_layers,
                               slice_bytes=int(replay.slice_bytes),
                               live_dies=replay.live_dies.tolist())
        self.cp_en = np.zeros((N, E), np.bool_)
        self.is_local = np.zeros((N, E), np.bool_)
        # registers that hold this model's experts (the rest of a larger PDU stays 0)
        self.model_words = -(-E // EXPERTS_PER_WORD)
        # the replicas each die's HBM holds (written by a copy, dropped by an eviction), at
        # the ATU map's replica page of (layer, expert)
        self.replica_held = np.zeros((N, len(self.moe_layers), E), np.bool_)
        self._addr: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.tie_rule = replay.params.tie_rule
        cap = replay.params.replica_capacity_bytes
        # replicas each die may hold (None: unbounded); per die, so that the HBM budget
        # (physical mode) can give each die what its HBM has left (``set_capacity``)
        self.capacity = (None if cap is None
                         else np.full(N, int(cap // replay.model.expert_bytes), np.int64))
        self.lru = [OrderedDict() for _ in range(N)]   # (layer, expert), least recent first
        self.evictions = 0
        self.layer = -1
        # tasks whose experts the predictor read at the last launch (``predictor_inputs``)
        self.predictor_keep = np.zeros(0, np.bool_)
        # with ``record``: every transaction each unit's twin took, and its answer, in the
        # transaction format of the unit's RTL harness (``run_pdu_twin``, ``run_atu_twin``),
        # keyed ("pdu", die) and ("atu", die, layer)
        self.streams: dict[tuple, list] | None = {} if record else None

    # ---------------------------------------------------------------- layer launch (flow 1)
    def launch(self, layer, task_e, task_d, copy_ok, quirks):
        """Global CP predictor -> PDU tables of the dies with tasks; ATU redirects."""
        N = self.N
        self.layer = layer
        self.is_local[:] = self.gcp.presence_matrix(layer).T
        if copy_ok:
            top = (self.gcp.top_n_matrix(layer) if self.tie_rule == "stable"
                   else _numpy_top_n(self.gcp, layer))
            # the artefact's per-die expert list (plan order = expert id ascending) stops
            # growing, with its quirk, once it holds the expert whose id equals the die id
            self.predictor_keep = predictor_inputs(task_e, task_d, N, quirks)
            union_of_rows(task_e, task_d, self.predictor_keep, top, self.cp_en)
        else:
            self.predictor_keep = np.zeros(len(task_e), np.bool_)
            self.cp_en[:] = False
        words = self._pack(self.cp_en, self.is_local)
        # the Local CPs of the dies with tasks write only the registers that change
        changed = words != self.registers[:, :self.model_words]
        changed &= (np.bincount(task_d, minlength=N) > 0)[:, None]
        for d in np.flatnonzero(changed.any(axis=1)).tolist():
            index = np.flatnonzero(changed[d])
            self.pdus[d].write_words(index, words[d, index])
            if self.streams is not None:
                self._record(("pdu", d), [("write_word", i, w) for i, w in
                                          zip(index.tolist(), words[d, index].tolist())])
        if self.streams is not None:
            self._record_queries(task_e, task_d)
        self._redirect(layer, task_e, task_d)

    def _record(self, key, transactions) -> None:
        if self.streams is not None:
            self.streams.setdefault(key, []).extend(transactions)

    def _record_queries(self, task_e, task_d) -> None:
        """What the data path asks each die's PDU about its tasks' experts, with the answers
        (the register read-out the kernel uses)."""
        for e, d in zip(task_e.tolist(), task_d.tolist()):
            self._record(("pdu", d), [("query", e, self.pdus[d].query(e))])

    def _redirect(self, layer, task_e, task_d):
        """Reads of a remote expert whose PDU ``is_local`` bit is set go through the die's
        ATU: the page it returns must hold that expert's replica (else the data is wrong)."""
        local = holds_local_copies(self.registers, task_d, task_e)
        redirect = (self.home[task_e] != task_d) & local
        experts, dies = task_e[redirect], task_d[redirect]
        home_addr, replica_page = self._addresses(layer)
        for d in np.unique(dies).tolist():
            mine = experts[dies == d]       # this die's redirected reads, in task order
            hits, pages = self.atus[(d, layer)].lookup_many(mine, home_addr[mine])
            if self.streams is not None:
                self._record(("atu", d, layer), [
                    ("lookup", e, a, (bool(h), p)) for e, a, h, p in
                    zip(mine.tolist(), home_addr[mine].tolist(), hits.tolist(), pages.tolist())])
            wrong = ~hits | (pages != replica_page[mine]) | ~self.replica_held[d, layer, mine]
            if wrong.any():
                i = int(np.argmax(wrong))
                self._wrong_redirect(d, layer, int(mine[i]), bool(hits[i]), int(pages[i]))
            if self.capacity is not None:
                for e in mine.tolist():
                    self.lru[d].move_to_end((layer, e))

    def _wrong_redirect(self, die, layer, expert, hit, page):
        where = f"expert {expert} (layer {self.moe_layers[layer]})"
        if not hit:
            raise AssertionError(f"ATU of die {die} misses the replica of {where}")
        held = ("its replica" if self.replica_held[die, layer, expert]
                else "no replica of it")
        raise AssertionError(f"ATU of die {die} redirects {where} to page {page:#x}; die "
                             f"{die} holds {held} at page "
                             f"{self._addresses(layer)[1][expert]:#x}")

    def _pack(self, cp_en, is_local):
        """PDU register words of every die (the PDU's layout), shape (dies, words)."""
        return pack_registers(cp_en, is_local, np.empty((self.N, self.model_words), np.int64))

    def _addresses(self, layer):
        """Per expert of ``layer``: its home address (what an ATU entry translates) and the
        local page of a replica (the ATU map's, made once per layer)."""
        if layer not in self._addr:
            moe = self.moe_layers[layer]
            self._addr[layer] = (
                np.array([self.amap.home_address(moe, e) for e in range(self.E)], np.int64),
                np.array([self.amap.replica_address(moe, e) for e in range(self.E)], np.int64))
        return self._addr[layer]

    # -------------------------------------------------------------- after the layer (flow 4)
    def report(self, layer, dups, task_e, task_d, task_t):
        """Local CPs report their copies; PDU, ATU, EDT (and the replica LRU) follow."""
        for d, experts in sorted(copies_by_die(dups).items()):
            mask = task_d == d
            mine = task_e[mask]
            stats = self.local_cps[d].run_layer_arrays(mine, task_t[mask], self.home[mine],
                                                       self.cp_en[d], self.is_local[d])
            if set(stats.duplicated_experts) != experts:
                raise AssertionError(f"die {d}: Local CP copies {stats.duplicated_experts} "
                                     f"differ from the data path's {sorted(experts)}")
            atu = self.atus.get((d, layer))
            if atu is None:
                atu = self.atus[(d, layer)] = ATUTwin(
                    num_entries=self.atu_entries[d], num_dies=self.N,
                    page_bits=self.amap.layout.page_bits)
            copied = np.array(stats.duplicated_experts, np.int64)
            home_addr, replica_page = self._addresses(layer)
            self.pdus[d].set_local_many(copied)
            self.replica_held[d, layer, copied] = True       # each copy lands at its page
            atu.insert_many(copied, home_addr[copied], replica_page[copied])
            self.gcp.edt_set_present_many(layer, copied, d)
            if self.streams is not None:
                self._record(("pdu", d), [("set_local", e) for e in copied.tolist()])
                self._record(("atu", d, layer), [
                    ("insert", e, a, p) for e, a, p in zip(
                        copied.tolist(), home_addr[copied].tolist(),
                        replica_page[copied].tolist())])
            if self.capacity is not None:
                for e in copied.tolist():
                    self.lru[d][(layer, e)] = None
                    while len(self.lru[d]) > self.capacity[d]:
                        self._evict(d)

    def set_capacity(self, slots) -> None:
        """Bound each die's replica region to ``slots[d]`` whole experts (physical mode's HBM
        budget, which shrinks as the KV cache grows); replicas beyond it are evicted, least
        recently used first."""
        self.capacity = np.asarray(slots, np.int64)
        for d in range(self.N):
            while len(self.lru[d]) > self.capacity[d]:
                self._evict(d)

    def replicas_held(self) -> list[int]:
        """Replicated experts each die holds now (EDT presence bits off the home die)."""
        return self.gcp.replicas_per_die()

    def _evict(self, d):
        """Drop die ``d``'s least recently used replica (bounded replica region)."""
        (layer, e), _ = self.lru[d].popitem(last=False)
        self.evictions += 1
        self.atus[(d, layer)].invalidate(e)
        if self.streams is not None:
            self._record(("atu", d, layer), [("invalidate", e)])
        self.replica_held[d, layer, e] = False
        self.gcp.edt_clear_present(layer, e, d)
        if layer == self.layer:     # the PDU table holds the current layer's bits
            w = e // EXPERTS_PER_WORD
            word = int(self.pdus[d].read_words([w])[0]) & ~(2 << (2 * (e % EXPERTS_PER_WORD)))
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


def copies_by_die(dups) -> dict[int, set]:
    """The data path's copies of a layer (rows ``(die, expert, ...)``) as die -> experts."""
    copied: dict[int, set] = {}
    for d, e in (np.asarray(dups)[:, :2].tolist() if len(dups) else []):
        copied.setdefault(d, set()).add(e)
    return copied
