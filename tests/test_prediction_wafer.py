"""The prediction path's wafer-level calls against the slow paths they replace, on random
inputs at the edges: each unit's call over all dies against its per-die / per-transaction
twin methods, and the whole path (:class:`PredictionUnits`) against the die-by-die driver it
replaced (kept here as the reference), layer by layer, streams included."""

import numpy as np
import pytest
from test_system_replay import _tiny_store

from hwmodel.components.atu.twin import ATUTwin, new_tables
from hwmodel.components.global_cp.edt import EDTTwin
from hwmodel.components.global_cp.predictor import predictor_inputs, union_of_rows
from hwmodel.components.local_cp.twin import LocalCPTwin, TaskDescriptor
from hwmodel.components.pdu.compiled import pack_registers
from hwmodel.components.pdu.twin import EXPERTS_PER_WORD, PDUTwin, without_is_local
from hwmodel.models import load_model
from hwmodel.params import load_wafer
from hwmodel.system import Replay, ReplayParams
from hwmodel.system.prediction import PredictionUnits, _numpy_top_n
from hwmodel.topologies.wafer import build_wafer

SEEDS = range(6)


def _random_words(rng, dies, words):
    return rng.integers(0, 1 << 16, (dies, words)).astype(np.int64)


# ------------------------------------------------------------------------------ PDU
@pytest.mark.parametrize("seed", SEEDS)
def test_pdu_tables_and_arrivals_equal_each_dies_transactions(seed):
    """Loads of some dies' tables (none, one, all), then arrivals with repeats and dies that
    get none: the same answers and registers as each die's own PDU taking ``write_word`` per
    register and ``should_copy`` + ``set_local`` per arrival (the RTL's commands)."""
    rng = np.random.default_rng(seed)
    dies, experts = 5, int(rng.choice([8, 13, 64]))
    words = -(-experts // EXPERTS_PER_WORD)
    registers = _random_words(rng, dies, words) & ((1 << (2 * experts)) - 1 if experts < 8
                                                    else 0xFFFF)
    registers[:, -1] &= (1 << (2 * (experts - (words - 1) * 8))) - 1
    reference = [PDUTwin(experts) for _ in range(dies)]
    for d, pdu in enumerate(reference):
        pdu.load_words(registers[d])
    new = _random_words(rng, dies, words) & registers.max()
    new[:, -1] &= (1 << (2 * (experts - (words - 1) * 8))) - 1
    rows = np.flatnonzero(rng.random(dies) < [0.0, 0.5, 1.0][seed % 3]).astype(np.int64)
    PDUTwin.load_tables(registers, rows, new)
    for d in rows.tolist():
        for w in range(words):
            reference[d].write_word(w, int(new[d, w]))
    n = int(rng.integers(0, 40))
    arrival_dies = rng.choice(dies - 1, n).astype(np.int64)          # the last die gets none
    arrival_experts = rng.integers(0, experts, n).astype(np.int64)
    copied = PDUTwin.arrivals(registers, arrival_dies, arrival_experts)
    expected = []
    for d, e in zip(arrival_dies.tolist(), arrival_experts.tolist()):
        copy = reference[d].should_copy(e)
        if copy:
            reference[d].set_local(e)
        expected.append(copy)
    assert copied.tolist() == expected
    assert registers.tolist() == [list(pdu.words) for pdu in reference]


# ------------------------------------------------------------------------------ Local CP
@pytest.mark.parametrize("seed", SEEDS)
def test_local_cps_dispatch_equals_each_dies_transactions(seed):
    """A layer over 6 dies (an empty layer, dies without tasks, local and remote tasks, an
    expert twice on a die) dispatched at once: the copies, the order and every die's report
    equal each die's Local CP taking ``configure_pdu``, ``dispatch`` and ``complete`` per
    task and ``finish``."""
    rng = np.random.default_rng(seed)
    dies, experts = 6, 16
    cp_en = rng.random((dies, experts)) < 0.5
    is_local = rng.random((dies, experts)) < 0.3
    registers = pack_registers(cp_en, is_local, np.empty((dies, 2), np.int64))
    n = 0 if seed == 0 else int(rng.integers(1, 30))
    task_d = np.sort(rng.choice(dies - 1, n)).astype(np.int64)      # the last die: no tasks
    task_e = rng.integers(0, experts, n).astype(np.int64)
    tokens = rng.integers(0, 1 << 10, n).astype(np.int64)
    sources = np.where(rng.random(n) < 0.3, task_d, rng.integers(0, dies, n)).astype(np.int64)
    copied, order = LocalCPTwin.dispatch_tasks(registers, task_d, task_d, task_e, sources)
    reports = LocalCPTwin.layer_reports(task_d, task_e, tokens, sources, copied)
    assert order.tolist() == list(range(n))
    assert sorted(reports) == sorted(set(task_d.tolist()))
    for d in range(dies):
        cp = LocalCPTwin(die=d, num_sm_slots=3, num_experts=experts, num_dies=dies)
        cp.configure_pdu(cp_en[d], is_local[d])
        mine = np.flatnonzero(task_d == d)
        for i in mine.tolist():
            sm = cp.dispatch(TaskDescriptor(int(task_e[i]), int(tokens[i]), int(sources[i])))
            assert sm.copy == copied[i]
            cp.complete(sm.slot)
        if len(mine):
            assert reports[d] == cp.finish()
        assert list(cp.pdu.words) == registers[d].tolist()


# ------------------------------------------------------------------------------ ATU
@pytest.mark.parametrize("seed", SEEDS)
def test_atu_tables_equal_each_tables_transactions(seed):
    """Inserts into 4 tables of 8 entries (a table filled to every entry, an index inserted
    twice, a table left empty), invalidations, then lookups that hit, miss on a wrong
    address and miss on an invalid entry: the same answers and entries as each table's twin
    taking ``insert``, ``invalidate`` and ``lookup`` one at a time."""
    rng = np.random.default_rng(seed)
    tables, entries = 4, 8
    valid, remote, local = new_tables(tables, entries)
    reference = [ATUTwin(entries, num_dies=4, page_bits=8) for _ in range(tables)]
    twins = [ATUTwin(entries, num_dies=4, page_bits=8,
                     table=(valid[t], remote[t], local[t])) for t in range(tables)]
    n = 40
    rows = np.concatenate([np.zeros(entries, np.int64),               # table 0: full
                           rng.choice([1, 2], n - entries)]).astype(np.int64)   # 3: empty
    index = np.concatenate([np.arange(entries), rng.integers(0, entries, n - entries)])
    addr = rng.integers(0, 1 << 10, n).astype(np.int64)
    page = rng.integers(0, 1 << 8, n).astype(np.int64)
    ATUTwin.store(valid, remote, local, rows, index, addr, page)
    for t, i, a, p in zip(rows.tolist(), index.tolist(), addr.tolist(), page.tolist()):
        reference[t].insert(i, a, p)
    for t, i in zip(rng.integers(0, tables, 3).tolist(), rng.integers(0, entries, 3).tolist()):
        twins[t].invalidate(i)
        reference[t].invalidate(i)
    ask = rng.integers(0, n, 30)
    wrong = rng.random(30) < 0.3
    q_rows = np.where(rng.random(30) < 0.1, 3, rows[ask]).astype(np.int64)
    q_index, q_addr = index[ask], np.where(wrong, addr[ask] ^ 1, addr[ask])
    hits, pages = ATUTwin.look_up(valid, remote, local, q_rows, q_index, q_addr)
    expected = [reference[t].lookup(i, a) for t, i, a in
                zip(q_rows.tolist(), q_index.tolist(), q_addr.tolist())]
    assert list(zip(hits.tolist(), pages.tolist())) == expected
    assert any(expected) or seed == 0
    for twin, ref in zip(twins, reference):
        assert twin.valid_entries() == ref.valid_entries()
        assert [twin.entry(i) for i in range(entries)] == [ref.entry(i) for i in range(entries)]


def test_edt_pairs_equal_one_set_present_each():
    rng = np.random.default_rng(1)
    fast, slow = EDTTwin(3, 10, 4), EDTTwin(3, 10, 4)
    experts, dies = rng.integers(0, 10, 12), rng.integers(0, 4, 12)
    fast.set_present_pairs(2, experts, dies)
    for e, d in zip(experts.tolist(), dies.tolist()):
        slow.set_present(2, e, d)
    assert [fast.presence(2, e) for e in range(10)] == [slow.presence(2, e) for e in range(10)]
    assert all(fast.presence(layer, e) == slow.presence(layer, e)
               for layer in (0, 1) for e in range(10))


# ------------------------------------------------------------------------------ whole path
class _DieByDie:
    """The prediction path as it ran before the wafer-level calls: die by die through the
    twins' per-die methods (the reference the new path must equal, streams included)."""

    def __init__(self, replay, gcp, record):
        N, E = replay.N, replay.E
        self.N, self.E, self.gcp, self.home = N, E, gcp, replay.home
        self.moe_layers = [int(x) for x in replay.store.moe_layers]
        dies = replay.wafer.dies
        self.registers = np.zeros((N, max(die.pdu.experts for die in dies) // 8), np.int64)
        self.pdus = [PDUTwin(die.pdu.experts, registers=self.registers[d])
                     for d, die in enumerate(dies)]
        self.local_cps = [LocalCPTwin(die=d, num_dies=N, pdu=self.pdus[d]) for d in range(N)]
        self.atu_entries = [die.atu.entries for die in dies]
        self.atus = {}
        self.amap = PredictionUnits(replay, replay.global_cp()).amap
        self.redirect = np.zeros((N, E), bool)
        self.copy = np.zeros((N, E), bool)
        self.reports = {}
        self.model_words = -(-E // EXPERTS_PER_WORD)
        self.tie_rule = replay.params.tie_rule
        cap = replay.params.replica_capacity_bytes
        if cap is not None:
            for cp in self.local_cps:
                cp.bound_replicas(int(cap // replay.model.expert_bytes))
        self.layer = -1
        self.streams = {} if record else None

    def _record(self, key, transactions):
        if self.streams is not None:
            self.streams.setdefault(key, []).extend(transactions)

    def launch(self, layer, task_e, task_d, task_t, copy_ok, quirks):
        N = self.N
        self.layer = layer
        is_local = self.gcp.presence_matrix(layer).T
        cp_en = np.zeros((N, self.E), bool)
        if copy_ok:
            top = (self.gcp.top_n_matrix(layer) if self.tie_rule == "stable"
                   else _numpy_top_n(self.gcp, layer))
            union_of_rows(task_e, task_d, predictor_inputs(task_e, task_d, N, quirks), top,
                          cp_en)
        words = pack_registers(cp_en, is_local, np.empty((N, self.model_words), np.int64))
        with_tasks = np.bincount(task_d, minlength=N) > 0
        changed = (words != self.registers[:, :self.model_words]) & with_tasks[:, None]
        for d in np.flatnonzero(changed.any(axis=1)).tolist():
            index = np.flatnonzero(changed[d])
            self.pdus[d].write_words(index, words[d, index])
            self._record(("pdu", d), [("write_word", i, w) for i, w in
                                      zip(index.tolist(), words[d, index].tolist())])
        if self.streams is not None:
            for e, d in zip(task_e.tolist(), task_d.tolist()):
                self._record(("pdu", d), [("query", e, self.pdus[d].query(e))])
        self.copy[:] = False
        self.reports = {}
        order = np.arange(len(task_e))
        for d in np.unique(task_d).tolist():
            mine = np.flatnonzero(task_d == d)
            experts = task_e[mine]
            stats, dispatched = self.local_cps[d].dispatch_layer(
                experts, task_t[mine], self.home[experts])
            order[mine] = mine[dispatched]
            self.reports[d] = stats
            self.copy[d, list(stats.duplicated_experts)] = True
            self._record(("pdu", d), [("set_local", e) for e in stats.duplicated_experts])
            tasks = list(zip(experts.tolist(), task_t[mine].tolist(),
                             self.home[experts].tolist()))
            self._record(("local_cp", d), [(tasks, cp_en[d].copy(), is_local[d].copy(),
                                            stats)])
        self.redirect[:] = False
        remote = self.home[task_e] != task_d
        experts, dies = task_e[remote], task_d[remote]
        home_addr, replica_page = self.amap.layer_addresses(self.moe_layers[layer])
        for d in np.unique(dies).tolist():
            mine = experts[dies == d]
            hits, pages = self._atu(d, layer).lookup_many(mine, home_addr[mine])
            self._record(("atu", d, layer), [
                ("lookup", e, a, (bool(h), p)) for e, a, h, p in
                zip(mine.tolist(), home_addr[mine].tolist(), hits.tolist(), pages.tolist())])
            assert (pages[hits] == replica_page[mine[hits]]).all()
            self.redirect[d, mine[hits]] = True
            self.local_cps[d].replicas_used(layer, mine[hits].tolist())
        return order

    def _atu(self, die, layer):
        if (die, layer) not in self.atus:
            self.atus[(die, layer)] = ATUTwin(self.atu_entries[die], num_dies=self.N,
                                              page_bits=self.amap.layout.page_bits)
        return self.atus[(die, layer)]

    def report(self, layer):
        home_addr, replica_page = self.amap.layer_addresses(self.moe_layers[layer])
        for d, stats in sorted(self.reports.items()):
            if not stats.duplicated_experts:
                continue
            copied = np.array(stats.duplicated_experts, np.int64)
            self._atu(d, layer).insert_many(copied, home_addr[copied], replica_page[copied])
            self.gcp.edt_set_present_many(layer, copied, d)
            self._record(("atu", d, layer), [
                ("insert", e, a, p) for e, a, p in zip(
                    copied.tolist(), home_addr[copied].tolist(), replica_page[copied].tolist())])
            for held_layer, e in self.local_cps[d].keep_copies(layer, copied.tolist()):
                self._evict(d, held_layer, e)

    def set_capacity(self, slots):
        for d, count in enumerate(np.asarray(slots, np.int64).tolist()):
            for held_layer, e in self.local_cps[d].bound_replicas(count):
                self._evict(d, held_layer, e)

    def _evict(self, d, layer, e):
        self.atus[(d, layer)].invalidate(e)
        self._record(("atu", d, layer), [("invalidate", e)])
        self.gcp.edt_clear_present(layer, e, d)
        if layer == self.layer:
            w = e // EXPERTS_PER_WORD
            word = without_is_local(int(self.pdus[d].read_words([w])[0]), e)
            self.pdus[d].write_word(w, word)
            self._record(("pdu", d), [("write_word", w, word)])


def _random_plan(rng, N, E, empty):
    """A plan in the allocator's form: tasks in expert id order, an expert on one or two dies
    (its home and/or others), some dies without tasks; ``empty``: no task at all."""
    if empty:
        return (np.zeros(0, np.int64),) * 3
    experts = np.sort(rng.choice(E, int(rng.integers(1, 40)), replace=False))
    task_e, task_d = [], []
    for e in experts.tolist():
        for d in sorted(set(rng.choice(N // 2, int(rng.integers(1, 3))).tolist())):
            task_e.append(e)
            task_d.append(d)        # dies N // 2 .. N - 1 never get a task
    task_t = rng.integers(1, 200, len(task_e))
    return (np.array(task_e, np.int64), np.array(task_d, np.int64),
            np.array(task_t, np.int64))


@pytest.mark.parametrize("seed, capacity, tie_rule, budget", [
    (0, None, "stable", False), (1, 2, "stable", False), (2, 0, "numpy", False),
    (3, None, "numpy", True), (4, 1, "stable", True)])
def test_wafer_path_equals_the_die_by_die_path(seed, capacity, tie_rule, budget):
    """40 random layer launches and reports on tsmc-sow (24 dies, 128 experts): empty layers,
    dies without tasks, a heat map of few counts (ties in the top-n), a bounded region of 0-2
    experts (evictions, also of the layer just run) and shrinking budgets: at every layer
    the same task order, copies, redirects, reports and PDU registers; at the end the same
    ATU entries, EDT presence, evictions and recorded streams."""
    rng = np.random.default_rng(seed)
    model = load_model("llama4-maverick")
    cap = None if capacity is None else capacity * model.expert_bytes
    replay = Replay(wafer=build_wafer(load_wafer("tsmc-sow")), model=model,
                    store=_tiny_store([([0], [])]),
                    params=ReplayParams(replica_capacity_bytes=cap, tie_rule=tie_rule))
    N, E, L = replay.N, replay.E, 4
    gcps = [replay.global_cp(), replay.global_cp()]
    heat = rng.integers(0, 3, (L, E, E))
    for gcp in gcps:
        for layer in range(L):
            gcp.heatmap_add_matrix(layer, heat[layer])
    fast = PredictionUnits(replay, gcps[0], record=True)
    slow = _DieByDie(replay, gcps[1], record=True)
    copies = redirects = 0
    for step in range(40):
        if budget and step % 10 == 0:      # as physical mode: before any copy
            slots = rng.integers(0, 4, N)
            fast.set_capacity(slots)
            slow.set_capacity(slots)
        layer = int(rng.integers(0, L))
        plan = _random_plan(rng, N, E, empty=step % 13 == 3)
        copy_ok, quirks = bool(rng.random() < 0.8), bool(rng.random() < 0.5)
        order = fast.launch(layer, *plan, copy_ok, quirks)
        assert order.tolist() == slow.launch(layer, *plan, copy_ok, quirks).tolist()
        assert (fast.copy == slow.copy).all() and (fast.redirect == slow.redirect).all()
        assert fast.reports == slow.reports
        copies, redirects = copies + fast.copy.sum(), redirects + fast.redirect.sum()
        fast.report(layer)
        slow.report(layer)
        assert (fast.registers == slow.registers).all()
    assert copies > 0                   # the comparison saw copies, and (but where a region
    assert redirects > 0 or budget or capacity == 0     # of 0 or 1 keeps none long) redirects
    assert {k: a.valid_entries() for k, a in fast.atus.items()} == {
        k: a.valid_entries() for k, a in slow.atus.items()}
    assert all((gcps[0].presence_matrix(x) == gcps[1].presence_matrix(x)).all()
               for x in range(L))
    assert fast.evictions == sum(cp.evictions for cp in slow.local_cps)
    assert (fast.evictions > 0) == (capacity is not None or budget)
    assert _same_streams(fast.streams, slow.streams)


def _same_streams(a, b):
    """Streams equal key by key, transaction by transaction (numpy bool rows compared by
    value)."""
    if a.keys() != b.keys():
        return False
    for key in a:
        if len(a[key]) != len(b[key]):
            return False
        for x, y in zip(a[key], b[key]):
            if key[0] == "local_cp":
                if not (x[0] == y[0] and (x[1] == y[1]).all() and (x[2] == y[2]).all()
                        and x[3] == y[3]):
                    return False
            elif x != y or [type(v) for v in x] != [type(v) for v in y]:
                return False
    return True


# ------------------------------------------------------------------------------ predictor
@pytest.mark.parametrize("seed", SEEDS)
def test_top_n_equals_a_stable_sort_of_the_counts(seed):
    """The compiled top-n (a quickselect of the n-th count, then ids) against a stable sort
    by count descending (the documented rule, the numpy path it replaced), on rows with many
    ties, all-equal rows, saturated counters, n = 1 and n = E."""
    from hwmodel.components.global_cp.predictor import PredictorTwin
    rng = np.random.default_rng(seed)
    E = int(rng.choice([1, 7, 64, 256]))
    share = float(rng.choice([1 / E, 0.2, 0.5, 1.0]))
    twin = PredictorTwin(2, E, top_n_share=share, count_bits=4)
    high = [1, 3, 40][seed % 3]
    for layer in range(2):
        counts = rng.integers(0, high, (E, E))
        counts[0] = 0                               # a row of ties only
        twin.add_matrix(layer, counts)              # saturates at 15 where high = 40
        heat = np.minimum(counts, 15)
        matrix = twin.top_n_matrix(layer)
        n = twin.top_n_count
        for i in range(E):
            expected = np.argsort(-heat[i], kind="stable")[:n]
            assert np.flatnonzero(matrix[i]).tolist() == sorted(expected.tolist())
            assert twin.top_n(layer, i) == tuple(expected.tolist())
