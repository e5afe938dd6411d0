"""Two micro-batches pipelined (physical switch ``micro_batches``, issue 17): the pipeline's
closed forms worked by hand, and the switch in a replay (docs/physical.md)."""

from __future__ import annotations

import pytest
from test_physical import comparable, run
from test_system_replay import _tiny_store

from hwmodel.params import load_wafer
from hwmodel.system import ReplayParams
from hwmodel.system.microbatch import COMPUTE, LINKS, MICRO_BATCH_COUNTS, Pipeline, split_tasks
from hwmodel.system.physical import PHYSICAL_SWITCHES
from hwmodel.system.results import CSV_HEADER, csv_lines
from hwmodel.topologies.wafer import build_wafer

HOP = 200                  # ns per link crossed (both presets)
TOKEN_PAYLOAD = 7          # ns: one Llama-4 token, ceil(5120 x 2 B / 1566.9 B/ns)


def pipelined(layers, c, k, a=0):
    """Both micro-batches: per layer attention ``a``, dispatch ``c``, experts ``k``,
    combine ``c``; the time when both have ended."""
    pipe = Pipeline()
    for _ in range(layers):
        pipe.layer([[(None, 0), (COMPUTE, a), (LINKS, c), (COMPUTE, k), (LINKS, c)]] * 2)
    return pipe.barrier()


# ------------------------------------------------------------------ the pipeline, by hand
@pytest.mark.parametrize("layers, c, k", [(1, 10, 50), (3, 10, 50), (4, 7, 100), (3, 10, 20)])
def test_compute_bound_pipeline_hides_all_but_the_first_dispatch_and_last_combine(layers, c, k):
    """k >= 2c: while B's experts run, A's combine and next dispatch (2c) fit beneath, and
    the other way round, so the compute never idles after A's first dispatch: the run takes
    c + 2 L k + c. Serially (A then B, each dispatch, experts, combine) it takes 2 L (2c + k)."""
    assert pipelined(layers, c, k) == c + 2 * layers * k + c
    assert pipelined(layers, c, k) < 2 * layers * (2 * c + k)


@pytest.mark.parametrize("layers, c, k", [(1, 10, 5), (3, 10, 5), (5, 9, 1)])
def test_link_bound_pipeline_keeps_the_links_busy(layers, c, k):
    """k <= c: each micro-batch's experts fit beneath the other's dispatch or combine, and
    the links carry the 4 phases of every layer back to back: 4 L c."""
    assert pipelined(layers, c, k) == 4 * layers * c


def test_attention_hides_even_the_first_dispatch():
    """c <= min(a, k): A's dispatch runs under B's attention, B's under A's experts, A's
    combine under B's experts, B's combine under A's next attention; only the last combine
    is exposed: 2 L (a + k) + c."""
    for layers, c, k, a in [(3, 10, 50, 20), (2, 5, 5, 5), (4, 1, 30, 2)]:
        assert pipelined(layers, c, k, a) == 2 * layers * (a + k) + c


def test_without_communication_the_pipeline_is_the_serial_sum():
    """No link phase: the compute runs A's and B's phases one after the other."""
    assert pipelined(3, 0, 40, 7) == 3 * 2 * (40 + 7)


def test_a_layer_start_is_its_first_phase_and_pending_combines_are_not_its_own():
    pipe = Pipeline()
    assert pipe.layer([[(None, 0), (COMPUTE, 0), (LINKS, 10), (COMPUTE, 50), (LINKS, 10)]] * 2) == 0
    # the second layer's own phases start after A's combine (60..70): A's dispatch at 70
    start = pipe.layer([[(None, 0), (COMPUTE, 0), (LINKS, 10), (COMPUTE, 50),
                         (LINKS, 10)]] * 2)
    assert start == 70


# ------------------------------------------------------------------ the split
def test_requests_alternate_between_the_micro_batches():
    """Requests 0, 1, 2 on expert 4 and request 3 on expert 9 (top-1, one layer); expert 4 split over
    two tasks of 2 and 1 tokens: its first task takes requests 0 and 1, its second request 2
    (token order)."""
    import numpy as np
    rows = np.array([[[4]], [[4]], [[4]], [[9]]])
    requests = np.array([0, 1, 2, 3])
    task_e, task_t = np.array([4, 9, 4]), np.array([2, 1, 1])
    split = split_tasks(0, rows, requests, task_e, task_t)
    assert split.tolist() == [[1, 0, 1], [1, 1, 0]]


def _pair_tasks_by_sorting(layer, rows, task_e, task_t):
    """The rule of ``pair_tasks`` by sorting (the form it replaces): the pairs in expert
    order (stable: token order within an expert), the tasks in expert order (stable: plan
    order), task ``k`` repeated ``task_t[k]`` times, matched up; per pair in token order."""
    import numpy as np
    experts = np.asarray(rows[:, layer, :], np.int64).ravel()
    by_expert = np.argsort(experts, kind="stable")
    tasks = np.argsort(task_e, kind="stable")
    out = np.empty(len(experts), np.int64)
    out[by_expert] = np.repeat(tasks, task_t[tasks])
    return out


def _random_split_case(rng):
    """Rows (tokens x 3 layers x top-k) of random experts and a plan whose tasks hold each
    expert's tokens of a layer: an expert split over 1-3 tasks in random plan order, some
    tasks of 0 tokens, ids of several dtypes."""
    import numpy as np
    tokens, k, E = int(rng.integers(1, 60)), int(rng.integers(1, 4)), int(rng.integers(1, 9))
    dtype = rng.choice([np.uint8, np.int16, np.int64])
    rows = rng.integers(0, E, (tokens, 3, k)).astype(dtype)
    layer = int(rng.integers(0, 3))
    counts = np.bincount(rows[:, layer, :].ravel().astype(np.int64), minlength=E)
    task_e, task_t = [], []
    for e in range(E):
        if counts[e] == 0 and rng.random() < 0.7:
            continue
        parts = int(rng.integers(1, 4))
        cuts = np.sort(rng.integers(0, counts[e] + 1, parts - 1))
        sizes = np.diff(np.concatenate([[0], cuts, [counts[e]]]))
        task_e += [e] * parts
        task_t += sizes.tolist()
    order = rng.permutation(len(task_e))
    return (layer, rows, np.array(task_e, np.int64)[order],
            np.array(task_t, np.int64)[order])


@pytest.mark.parametrize("seed", range(4))
def test_pair_tasks_equals_the_rule_by_sorting(seed):
    """200 random layers (1-59 tokens, top-1 to 3, experts split over up to three tasks,
    empty tasks, tasks in any plan order): each pair's task, and the split per micro-batch,
    equal the sorting form's."""
    import numpy as np

    from hwmodel.system.dispatch import pair_tasks
    rng = np.random.default_rng(seed)
    for _ in range(200):
        layer, rows, task_e, task_t = _random_split_case(rng)
        want = _pair_tasks_by_sorting(layer, rows, task_e, task_t)
        assert pair_tasks(layer, rows, task_e, task_t).tolist() == want.tolist()
        requests = rng.integers(0, 9, len(rows))
        micro = np.repeat(requests % 2, rows.shape[2])
        split = split_tasks(layer, rows, requests, task_e, task_t)
        assert split.tolist() == [np.bincount(want[micro == m], minlength=len(task_e)).tolist()
                                  for m in (0, 1)]
        assert split.dtype == np.int64 and (split.sum(axis=0) == task_t).all()


def test_pair_tasks_refuses_a_plan_that_does_not_hold_the_tokens():
    """An expert's tasks with one token too many, or too few (the totals still equal), or a
    token of an expert without a task: refused, as the sorting form's length check would
    only catch when the totals differ."""
    import numpy as np

    from hwmodel.system.dispatch import pair_tasks
    rows = np.array([[[1]], [[1]], [[2]]])
    assert pair_tasks(0, rows, np.array([2, 1]), np.array([1, 2])).tolist() == [1, 1, 0]
    for task_e, task_t in (([1, 2], [3, 0]), ([1, 2], [1, 2]), ([1], [3]), ([1, 2], [2, 2])):
        with pytest.raises(AssertionError, match="layer 0: the plan's tasks hold"):
            pair_tasks(0, rows, np.array(task_e), np.array(task_t))


# ------------------------------------------------------------------ the switch in a replay
def test_the_switch_is_registered_off_by_default_and_recorded():
    assert "micro_batches" in PHYSICAL_SWITCHES and ReplayParams().micro_batches is False
    store = _tiny_store([([0], []), ([10], [])])
    paper = run(store, strategy="ep", max_iterations=1)
    micro = run(store, strategy="ep", max_iterations=1, micro_batches=True)
    assert not set(MICRO_BATCH_COUNTS) & set(paper.counts)
    assert micro.to_json()["physical"] == ["micro_batches"]
    assert csv_lines([paper]) == [CSV_HEADER, paper.row()]
    assert csv_lines([paper, micro])[2] == micro.row() + ",micro_batches"
    off = run(store, strategy="ep", max_iterations=1, micro_batches=False)
    assert comparable(off) == comparable(paper) and "physical" not in off.to_json()


def test_one_request_leaves_micro_batch_b_empty_and_the_run_unchanged():
    """Invariance: with one request, micro-batch B has no token; A is the whole batch and no
    phase can overlap, so every output equals paper mode's (plus the switch's counters)."""
    store = _tiny_store([([0, 10], [3, 3])])
    for strategy in ("ep", "pred"):
        paper = comparable(run(store, strategy=strategy, max_iterations=2))
        micro = comparable(run(store, strategy=strategy, max_iterations=2, micro_batches=True))
        counts = {name: micro["counts"].pop(name) for name in MICRO_BATCH_COUNTS}
        assert micro == paper
        assert counts["micro_hidden_ns"] == 0
        assert counts["micro_experts_ns"] == counts["micro_serial_ns"] == paper["time_ns"]


def test_without_communication_splitting_costs_the_second_expert_phase():
    """ep, requests 0 and 1 on experts 0 and 10 (homes: dies 0 and 2), no token traffic.
    In paper mode the two dies run at once; split, micro-batch B's experts wait for A's (the
    wafer's compute runs one expert phase at a time), so nothing overlaps and the run takes
    exactly the sum of the two requests' own paper-mode runs, prefill and decode."""
    both = _tiny_store([([0, 0], [0, 0]), ([10, 10], [10, 10])])
    alone = [run(_tiny_store([req]), strategy="ep", max_iterations=3)
             for req in (([0, 0], [0, 0]), ([10, 10], [10, 10]))]
    paper = run(both, strategy="ep", max_iterations=3)
    micro = run(both, strategy="ep", max_iterations=3, micro_batches=True)
    assert micro.time_ns == alone[0].time_ns + alone[1].time_ns
    assert micro.prefill_ns == alone[0].prefill_ns + alone[1].prefill_ns
    assert micro.time_ns - paper.time_ns == min(r.time_ns for r in alone)
    assert micro.counts["micro_hidden_ns"] == 0 and micro.hops == paper.hops == 0


def test_dispatch_and_combine_hidden_under_the_other_micro_batch_by_hand():
    """ep, layer-sharded, prefill only: requests 0 and 1, one token each, on experts 0 and 1,
    both homed on die 0. MoE layer l's tokens start on die h = l mod 24 (l = 1, 3, ..., 47).
    Each micro-batch's dispatch and combine is one 10,240 B transfer, 200 x hops + 7 ns (a
    few microseconds), its experts one token's three slices read from HBM (each request's own
    paper run: tens of microseconds a layer), so k >= 2c: compute-bound, only A's first
    dispatch (h = 1 -> 0) and B's last combine (0 -> h = 23) are exposed."""
    wafer = build_wafer(load_wafer("tsmc-sow"))
    phase = lambda s, d: HOP * len(wafer.mesh.route_links(s, d)) + TOKEN_PAYLOAD
    alone = [run(_tiny_store([([e], [])]), strategy="ep", max_iterations=1) for e in (0, 1)]
    store = _tiny_store([([0], []), ([1], [])])
    micro = run(store, strategy="ep", max_iterations=1, micro_batches=True, dispatch_time=True)
    spans = [[p["end_ns"] - p["start_ns"] for p in r.per_layer] for r in alone]
    hosts = [layer % 24 for layer in range(1, 48, 2)]
    assert all(2 * max(phase(h, 0), phase(0, h)) <= min(k) for h in hosts for k in spans)
    assert micro.time_ns == phase(1, 0) + alone[0].time_ns + alone[1].time_ns + phase(0, 23)
    serial = sum(2 * (phase(h, 0) + phase(0, h)) for h in hosts)
    assert micro.counts["micro_dispatch_ns"] + micro.counts["micro_combine_ns"] == serial
    assert micro.counts["micro_hidden_ns"] == serial - phase(1, 0) - phase(0, 23)


def test_token_dispatch_counts_do_not_depend_on_the_split():
    """Invariance: the tokens' messages and hops are the same whether the layer's tokens
    move as one batch or as two micro-batches, under both attention placements."""
    store = _tiny_store([([0, 10, 3], [3, 7]), ([5, 20], [9]), ([64], [64, 100, 2])])
    for placement in ("layer-sharded", "data-parallel"):
        whole = run(store, strategy="allo", max_iterations=3, token_dispatch=True,
                    attention_placement=placement)
        micro = run(store, strategy="allo", max_iterations=3, token_dispatch=True,
                    micro_batches=True, attention_placement=placement)
        names = [n for n in whole.counts if n.startswith("dispatch")]
        assert [whole.counts[n] for n in names] == [micro.counts[n] for n in names]
        assert whole.counts["dispatch_hops"] > 0


def test_each_resource_does_its_work_and_the_overlap_is_what_the_serial_sum_loses():
    """base with timed dispatch, three requests: the run is at least each resource's summed
    work, and the hidden time is the serial sum minus the run's time."""
    store = _tiny_store([([0, 10, 3], [3, 7]), ([5, 20], [9]), ([64], [64, 100, 2])])
    r = run(store, strategy="base", max_iterations=3, dispatch_time=True, micro_batches=True)
    c = r.counts
    links = c["micro_dispatch_ns"] + c["micro_combine_ns"]
    assert r.time_ns >= max(links, c["micro_experts_ns"])
    assert c["micro_serial_ns"] == links + c["micro_experts_ns"]
    assert c["micro_hidden_ns"] == c["micro_serial_ns"] - r.time_ns > 0
    assert c["dispatch_ns"] == c["micro_dispatch_ns"]


def test_a_copy_micro_batch_a_made_is_not_made_again_by_b():
    """A fetched expert 3 from afar on die 1 (copied there); die 2 read expert 4 from its
    replica (redirected: nothing fetched); die 0 ran its own expert 5. Only (1, 3) is no
    longer copied for B; the run's own copy decisions are left untouched."""
    import numpy as np

    from hwmodel.system.engine import Tasks
    from hwmodel.system.microbatch import _not_copied_again
    copy = np.ones((3, 8), np.bool_)
    redirect = np.zeros((3, 8), np.bool_)
    redirect[2, 4] = True
    tasks = Tasks(expert=np.array([3, 4, 5]), die=np.array([1, 2, 0]),
                  tokens=np.array([1, 1, 1]), remote=np.array([1, 1, 0]))
    out = _not_copied_again(copy, tasks, redirect)
    assert np.argwhere(~out).tolist() == [[1, 3]] and copy.all()


def test_each_micro_batchs_attention_is_a_compute_phase_by_hand():
    """attention_time + micro_batches + dispatch_time, the closed form 2 L (a + k) + c with
    the real attention time a. ep, layer-sharded, prefill only: requests 0 and 1, one-token
    prompts on experts 0 and 1 (both homed on die 0). Each micro-batch's attention before a
    MoE layer is its own request's, over two model layers on their dies in turn: a = 2 x the
    roofline of one token over a context of one (about 89 us, test_attention_time's hand
    values), above every dispatch and combine (a few us). k is each request's own paper-mode
    expert phase. A's first dispatch hides under B's attention; only B's last combine (die
    0 -> 23) is exposed. Each micro-batch reads the layers' attention weights again, so the
    bytes are the whole batch's plus 48 W; none of the attention is launch time."""
    from test_attention_time import KV, LAYERS, W
    from test_attention_time import layer as attention_layer
    wafer = build_wafer(load_wafer("tsmc-sow"))
    phase = lambda s, d: HOP * len(wafer.mesh.route_links(s, d)) + TOKEN_PAYLOAD
    a = 2 * attention_layer(1, 1, 1)[0]
    moe_layers = 24
    alone = [run(_tiny_store([([e], [])]), strategy="ep", max_iterations=1) for e in (0, 1)]
    store = _tiny_store([([0], []), ([1], [])])
    both = {"strategy": "ep", "max_iterations": 1, "dispatch_time": True,
            "attention_time": True}
    whole = run(store, **both)
    micro = run(store, micro_batches=True, **both)
    spans = [p["end_ns"] - p["start_ns"] for r in alone for p in r.per_layer]
    hosts = [layer % 24 for layer in range(1, 48, 2)]
    assert max(max(phase(h, 0), phase(0, h)) for h in hosts) <= min(a, *spans)
    assert micro.time_ns == (2 * moe_layers * a + alone[0].time_ns + alone[1].time_ns
                             + phase(0, 23))
    c = micro.counts
    assert c["micro_attention_ns"] == c["attention_ns"] == 2 * moe_layers * a
    assert c["micro_launch_ns"] == 0
    assert c["attention_bytes"] == 2 * LAYERS * (W + KV)
    assert c["attention_bytes"] - whole.counts["attention_bytes"] == LAYERS * W
    assert c["attention_flops"] == whole.counts["attention_flops"]
    links = c["micro_dispatch_ns"] + c["micro_combine_ns"]
    assert c["micro_hidden_ns"] == links - phase(0, 23)
