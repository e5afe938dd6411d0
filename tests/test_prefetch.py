"""Physical switch ``prefetch`` (hwmodel.system.prefetch, docs/physical.md), worked by hand.

The hand-worked cases use Llama-4's shape on tsmc-sow: one slice is S = 5120 x 8192 x 2 B; an
HBM read of it takes H = 300 + ceil(S / (3350 x 0.85)) ns (Llama-4's HBM efficiency), and a
local read of it with one token's activations (13312 x 2 B) takes H + a, with
a = ceil((S + 26624) / 2847.5) - ceil(S / 2847.5). Experts 0 and 10 live on dies 0 and 2.
"""

from __future__ import annotations

import math

import attrs
import numpy as np
import pytest
from test_physical import comparable

from hwmodel.config import ConfigError, from_dict
from hwmodel.models import load_model
from hwmodel.params import ComputeParams, LLCParams, load_wafer
from hwmodel.system import Replay, ReplayParams
from hwmodel.system.physical import PHYSICAL_SWITCHES, all_switches_on
from hwmodel.system.prefetch import Prefetcher
from hwmodel.system.results import csv_lines
from hwmodel.topologies.wafer import build_wafer
from hwmodel.traces import TraceStore
from hwmodel.traces.analysis import add_layer_transitions

S = 5120 * 8192 * 2
BW = 3350 * 0.85
H = 300 + math.ceil(S / BW)
A = math.ceil((S + 13312 * 2) / BW) - math.ceil(S / BW)
L = 24
PREFETCH_KEYS = ("prefetches", "prefetches_used", "prefetches_wasted", "prefetch_bytes",
                 "prefetch_reads", "prefetch_saved_ns", "prefetch_buffer_peak_bytes")


def store_of(requests, top_k=1):
    """A Llama-4-shaped store: ``requests`` = list of (prompt rows, decode rows); a row holds
    each MoE layer's expert ids (one list of ``top_k`` ids, or one id, per layer)."""
    model = load_model("llama4-maverick")
    rows, pre, dec = [], [], []
    for prompt, decode in requests:
        rows += list(prompt) + list(decode)
        pre.append(len(prompt))
        dec.append(len(decode))
    ids = np.array(rows, np.uint8).reshape(len(rows), L, top_k)
    offsets = np.concatenate([[0], np.cumsum(np.array(pre) + np.array(dec))])
    return TraceStore(model="llama4-maverick", num_layers=model.num_layers,
                      moe_layers=model.moe_layers, top_k=top_k, num_experts=128,
                      request_ids=[f"r{i}" for i in range(len(requests))],
                      source_paths=[""] * len(requests), prefill_len=pre, decode_len=dec,
                      token_offset=offsets, ids=ids)


def alternate(even, odd):
    """One token's row: expert ``even`` at the even MoE layers, ``odd`` at the odd ones."""
    return [even if layer % 2 == 0 else odd for layer in range(L)]


def bare_wafer():
    """tsmc-sow whose LLC takes no time and whose compute takes 1 ns per slice and token:
    a layer on one die is then its three HBM reads back to back, plus 1 ns."""
    wafer = load_wafer("tsmc-sow")
    die = attrs.evolve(wafer.die, compute=ComputeParams(peak_TFLOPS=1e9),
                       llc=LLCParams(hit_latency_ns=0, miss_penalty_ns=0, write_latency_ns=0))
    return attrs.evolve(wafer, die=die)


def run(store, wafer=None, strategy="ep", **params):
    wafer = load_wafer("tsmc-sow") if wafer is None else wafer
    return Replay(wafer=build_wafer(wafer), model=load_model("llama4-maverick"), store=store,
                  params=ReplayParams(**params)).run(strategy)


def without_prefetch(result) -> dict:
    """The result's JSON less what the switch adds (its counters and per-layer count)."""
    out = comparable(result)
    for key in PREFETCH_KEYS:
        out["counts"].pop(key, None)
    for entry in out["per_layer"]:
        entry.pop("prefetches", None)
    return out


# ------------------------------------------------------------------ the hand-worked cases
def test_a_used_prefetch_saves_exactly_its_hbm_read_latency():
    """ep, one request whose tokens all take expert 0 at even layers and 10 at odd ones.
    The prompt teaches the heatmap 0 -> 10 and 10 -> 0. At the decode step, while die 0 runs
    an even layer (3 x (H + a) + 1 ns), die 2's HBM is idle: it reads expert 10's three slices
    ahead, and the odd layer takes 3 x a + 1 ns instead: each slice saves exactly H. Under that
    short layer die 0's HBM has 3 a + 1 < H ns idle: no room, so the next even layer is not
    prefetched. Layer 0 follows no layer of its step. So 12 odd layers x 3 slices are saved."""
    store = store_of([([alternate(0, 10)] * 2, [alternate(0, 10)])])
    paper = run(store, bare_wafer(), max_iterations=2)
    fetched = run(store, bare_wafer(), max_iterations=2, prefetch=True,
                  prefetch_buffer_bytes="unbounded")
    step = [entry for entry in fetched.per_layer if entry["iteration"] == 1]
    took = [entry["end_ns"] - entry["start_ns"] for entry in step]
    assert took == [3 * (H + A) + 1 if layer % 2 == 0 else 3 * A + 1 for layer in range(L)]
    assert [entry["prefetches"] for entry in step] == [3 if layer % 2 == 0 else 0
                                                       for layer in range(L - 1)] + [0]
    assert paper.time_ns - fetched.time_ns == 36 * H
    counts = fetched.counts
    assert counts["prefetch_saved_ns"] == 36 * H
    assert (counts["prefetches"], counts["prefetches_used"], counts["prefetches_wasted"],
            counts["prefetch_reads"]) == (36, 36, 0, 36)
    assert counts["prefetch_bytes"] == 36 * S
    assert counts["prefetch_buffer_peak_bytes"] == 3 * S
    # the prompt (nothing learned yet) runs as in paper mode
    assert fetched.per_layer[:L] == [{**e, "prefetches": 0} for e in paper.per_layer[:L]]


def test_a_buffer_of_one_slice_holds_one_slice_per_layer():
    """The same run with a buffer of 1.5 S (whole slices: one): each layer after the first gets one
    slice read ahead (a layer with one prefetched slice, 2 (H + a) + a + 1 ns, leaves the
    other die room for more than one), so 23 slices save 23 H."""
    store = store_of([([alternate(0, 10)] * 2, [alternate(0, 10)])])
    paper = run(store, bare_wafer(), max_iterations=2)
    fetched = run(store, bare_wafer(), max_iterations=2, prefetch=True,
                  prefetch_buffer_bytes=S + S // 2)
    step = [entry for entry in fetched.per_layer if entry["iteration"] == 1]
    took = [entry["end_ns"] - entry["start_ns"] for entry in step]
    assert took == [3 * (H + A) + 1] + [2 * (H + A) + A + 1] * (L - 1)
    assert fetched.counts["prefetches"] == fetched.counts["prefetches_used"] == L - 1
    assert paper.time_ns - fetched.time_ns == fetched.counts["prefetch_saved_ns"] == 23 * H
    assert fetched.counts["prefetch_buffer_peak_bytes"] == S
    with pytest.raises(ConfigError, match="prefetch_buffer_bytes"):
        ReplayParams(prefetch_buffer_bytes=-1)


def llc_wafer(capacity_bytes, die=None):
    """:func:`bare_wafer` whose LLC holds ``capacity_bytes``: on every die, or on die id
    ``die`` only (a per-die override of the wafer YAML; the others keep 64 MiB)."""
    wafer = bare_wafer()
    if die is None:
        llc = attrs.evolve(wafer.die.llc, capacity_bytes=capacity_bytes)
        return attrs.evolve(wafer, die=attrs.evolve(wafer.die, llc=llc))
    name = f"die_{die // wafer.mesh_y}_{die % wafer.mesh_y}"
    return attrs.evolve(wafer, dies={name: {"llc": {"capacity_bytes": capacity_bytes}}})


def test_the_default_buffer_is_each_dies_llc_in_whole_slices():
    """Null ``prefetch_buffer_bytes``: each die's buffer is its own LLC's capacity in whole
    slices. The run of the first case (expert 0 on die 0 at even layers, 10 on die 2 at odd):

    * the preset's 64 MiB LLC holds no slice (S = 80 MiB): nothing is read ahead, the run is
      paper mode's;
    * die 2's LLC alone at 2.5 S (2 slices): under each even layer die 2 reads two of expert
      10's three slices; an odd layer takes (H + a) + 2 a + 1 ns; die 0 (64 MiB) reads none:
      12 odd layers x 2 = 24 slices save 24 H;
    * every die's LLC at 2.5 S: die 0 too holds two slices. Under an odd layer (H + 3 a + 1
      ns, die 0's HBM idle throughout, 3 a + 1 < H) die 0 has room for one slice, so the even
      layers 2-22 get one slice each (11), the odd ones two (24): 35 slices save 35 H."""
    store = store_of([([alternate(0, 10)] * 2, [alternate(0, 10)])])
    paper = run(store, bare_wafer(), max_iterations=2)

    default = run(store, bare_wafer(), max_iterations=2, prefetch=True)
    assert default.counts["prefetches"] == 0
    assert without_prefetch(default) == comparable(paper)

    one_die = run(store, llc_wafer(2 * S + S // 2, die=2), max_iterations=2, prefetch=True)
    step = [entry for entry in one_die.per_layer if entry["iteration"] == 1]
    took = [entry["end_ns"] - entry["start_ns"] for entry in step]
    assert took == [3 * (H + A) + 1 if layer % 2 == 0 else H + 3 * A + 1 for layer in range(L)]
    assert [entry["prefetches"] for entry in step] == [2 if layer % 2 == 0 else 0
                                                       for layer in range(L - 1)] + [0]
    assert one_die.counts["prefetches"] == one_die.counts["prefetches_used"] == 24
    assert paper.time_ns - one_die.time_ns == one_die.counts["prefetch_saved_ns"] == 24 * H
    assert one_die.counts["prefetch_buffer_peak_bytes"] == 2 * S

    every_die = run(store, llc_wafer(2 * S + S // 2), max_iterations=2, prefetch=True)
    step = [entry for entry in every_die.per_layer if entry["iteration"] == 1]
    assert [entry["prefetches"] for entry in step] == [2 if layer % 2 == 0 else 1
                                                       for layer in range(L - 2)] + [2, 0]
    assert every_die.counts["prefetches"] == every_die.counts["prefetches_used"] == 35
    assert paper.time_ns - every_die.time_ns == every_die.counts["prefetch_saved_ns"] == 35 * H

    # an explicit byte count overrides the LLC; 'unbounded' lifts the bound (the first case)
    explicit = run(store, llc_wafer(2 * S + S // 2), max_iterations=2, prefetch=True,
                   prefetch_buffer_bytes=S)
    assert explicit.counts["prefetches"] == L - 1
    unbounded = run(store, bare_wafer(), max_iterations=2, prefetch=True,
                    prefetch_buffer_bytes="unbounded")
    assert unbounded.counts["prefetches"] == 36


@pytest.mark.parametrize("bad", ["lots", "Unbounded", -1, float("nan"), float("inf"), True])
def test_a_bad_buffer_is_refused(bad):
    with pytest.raises(ConfigError, match="prefetch_buffer_bytes.*'unbounded'"):
        ReplayParams(prefetch_buffer_bytes=bad)


def test_the_buffer_words_load_from_yaml_and_physical_mode_keeps_the_llc():
    """'unbounded' and null come through a params file's plain data (a union with str takes a
    word; a plain int field still refuses one), and --mode physical leaves the LLC default."""
    assert from_dict(ReplayParams, {"prefetch_buffer_bytes": "unbounded"}) == ReplayParams(
        prefetch_buffer_bytes="unbounded")
    assert from_dict(ReplayParams, {"prefetch_buffer_bytes": None}).prefetch_buffer_bytes is None
    with pytest.raises(ConfigError, match="max_iterations: expected an integer"):
        from_dict(ReplayParams, {"max_iterations": "unbounded"})
    assert all_switches_on(ReplayParams()).prefetch_buffer_bytes is None


def test_a_bad_buffer_in_a_params_file_exits_2_with_one_line(tmp_path, capsys):
    from hwmodel.cli import main
    params = tmp_path / "p.yaml"
    params.write_text("replay: {prefetch: true, prefetch_buffer_bytes: lots}\n")
    code = main(["replay", "--quiet", "--params", str(params), "--out", str(tmp_path / "o")])
    captured = capsys.readouterr()
    assert code == 2 and "Traceback" not in captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "prefetch_buffer_bytes" in lines[0] and "'lots'" in lines[0]
    assert str(params) in lines[0]
    assert not (tmp_path / "o").exists()


def test_an_unused_prefetch_costs_only_its_bytes():
    """The prompt teaches 0 -> 10, but the decode step takes expert 20 at the odd layers:
    die 2 reads expert 10 ahead under each even layer (12 x 3 slices) and nobody reads them.
    Every output but the prefetch counters equals paper mode's; the cost is their bytes."""
    store = store_of([([alternate(0, 10)] * 2, [alternate(0, 20)])])
    paper = run(store, max_iterations=2)
    fetched = run(store, max_iterations=2, prefetch=True,
                  prefetch_buffer_bytes="unbounded")
    counts = fetched.counts
    assert (counts["prefetches"], counts["prefetches_used"], counts["prefetches_wasted"],
            counts["prefetch_reads"], counts["prefetch_saved_ns"]) == (36, 0, 36, 0, 0)
    assert counts["prefetch_bytes"] == 36 * S
    assert without_prefetch(fetched) == comparable(paper)


def test_a_remote_read_of_a_prefetched_slice_skips_the_home_hbm_read():
    """base runs the first expert met on die 7: expert 10 (home 2) is read remotely. Its
    home die reads it ahead under the previous layer, so each remote read saves H."""
    store = store_of([([alternate(0, 10)] * 2, [alternate(0, 10)])])
    paper = run(store, bare_wafer(), strategy="base", max_iterations=2)
    fetched = run(store, bare_wafer(), strategy="base", max_iterations=2, prefetch=True,
                  prefetch_buffer_bytes="unbounded")
    counts = fetched.counts
    assert counts["prefetch_reads"] == counts["prefetches_used"] > 0
    assert counts["prefetch_saved_ns"] == counts["prefetch_reads"] * H
    assert fetched.remote_dram_read_GiB == paper.remote_dram_read_GiB
    assert fetched.time_ns < paper.time_ns


# ------------------------------------------------------------------------------ causality
def random_store(seed, requests=6, prompt=3, decode=5):
    rng = np.random.default_rng(seed)
    # a few popular experts per layer, so that the layer-to-layer heatmap predicts something
    pool = rng.integers(0, 128, size=(L, 6))
    def row():
        return [int(rng.choice(pool[layer])) for layer in range(L)]
    return store_of([([row() for _ in range(prompt)], [row() for _ in range(decode)])
                     for _ in range(requests)])


def prefetch_sets(store, monkeypatch, strategy="base", iterations=4):
    """Every (iteration, layer)'s read-ahead slices (die, slice index), in run order."""
    seen = []
    original = Prefetcher.after_layer

    def spy(self, layer, rows, launch, end, busy):
        count = original(self, layer, rows, launch, end, busy)
        seen.append(tuple(map(tuple, np.argwhere(self.ready).tolist())))
        return count
    monkeypatch.setattr(Prefetcher, "after_layer", spy)
    result = run(store, strategy=strategy, max_iterations=iterations, prefetch=True,
                 prefetch_buffer_bytes="unbounded")
    monkeypatch.undo()
    return seen, result


def test_a_prediction_reads_only_the_past(monkeypatch):
    """Relabelling the experts of MoE layer 12 from decode step 2 on (the trace's future at
    that point) leaves every earlier read-ahead unchanged, up to and including the one made
    under layer 11 of step 2 (it reads layer 11's choices and steps 0-1's heatmap only)."""
    store = random_store(0)
    ids = np.array(store.ids)
    later = np.zeros(len(ids), bool)
    for r in range(len(store)):
        first = int(store.token_offset[r]) + int(store.prefill_len[r]) + 1   # decode step 2
        later[first:int(store.token_offset[r + 1])] = True
    changed = ids.copy()
    changed[later, 12] = (ids[later, 12] + 64) % 128
    other = TraceStore(model=store.model, num_layers=store.num_layers,
                       moe_layers=store.moe_layers, top_k=store.top_k,
                       num_experts=store.num_experts, request_ids=store.request_ids,
                       source_paths=store.source_paths, prefill_len=store.prefill_len,
                       decode_len=store.decode_len, token_offset=store.token_offset,
                       ids=changed)
    before, _ = prefetch_sets(store, monkeypatch)
    after, _ = prefetch_sets(other, monkeypatch)
    cut = 2 * L + 12                # entries of steps 0 and 1, then step 2's layers 0-11
    assert any(before[:cut]) and before[:cut] == after[:cut]
    assert before != after          # the relabelled layer does change later read-aheads


def test_the_heatmap_counts_are_trace_analyzes_statistic():
    """:func:`add_layer_transitions` counts every (slot, slot) pair of consecutive layers of
    a token: worked out here with an explicit loop over tokens and slots."""
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 5, size=(7, 4, 2)).astype(np.uint8)
    got = np.zeros((3, 5, 5), np.int64)
    add_layer_transitions(ids, got)
    want = np.zeros((3, 5, 5), np.int64)
    for token in ids:
        for j in range(3):
            for a in token[j]:
                for b in token[j + 1]:
                    want[j, a, b] += 1
    assert (got == want).all() and got.sum() == 7 * 3 * 4


# ------------------------------------------------------------------------------ invariance
def test_nothing_learned_or_nothing_to_follow_leaves_the_run_unchanged():
    """The prompt alone (nothing learned yet) and a decode whose choices were never seen at
    their layer (nothing predictable) run exactly as in paper mode."""
    store = random_store(2)
    for strategy in ("base", "allo+pred"):
        paper = run(store, strategy=strategy, max_iterations=1)
        fetched = run(store, strategy=strategy, max_iterations=1, prefetch=True,
                      prefetch_buffer_bytes="unbounded")
        assert fetched.counts["prefetches"] == 0
        assert without_prefetch(fetched) == comparable(paper)
    unseen = store_of([([alternate(0, 10)] * 2, [alternate(30, 40)])])
    paper = run(unseen, max_iterations=2)
    fetched = run(unseen, max_iterations=2, prefetch=True,
                  prefetch_buffer_bytes="unbounded")
    assert fetched.counts["prefetches"] == 0
    assert without_prefetch(fetched) == comparable(paper)


def test_switch_off_is_paper_mode_and_adds_nothing():
    store = random_store(3)
    paper = Replay(wafer=build_wafer(load_wafer("tsmc-sow")),
                   model=load_model("llama4-maverick"), store=store,
                   params=ReplayParams(max_iterations=3)).run("pred")
    off = run(store, strategy="pred", max_iterations=3, prefetch=False)
    assert comparable(off) == comparable(paper)
    assert not any(key in off.counts for key in PREFETCH_KEYS)
    assert "prefetches" not in off.per_layer[0]


# ------------------------------------------------------------------------------- outputs
def test_outputs_record_the_switch():
    store = random_store(4)
    fetched = run(store, strategy="base", max_iterations=3, prefetch=True,
                  prefetch_buffer_bytes="unbounded")
    paper = run(store, strategy="base", max_iterations=3)
    assert "prefetch" in PHYSICAL_SWITCHES and all_switches_on(ReplayParams()).prefetch
    assert fetched.physical == ("prefetch",)
    assert fetched.to_json()["physical"] == ["prefetch"]
    assert "physical" not in paper.to_json()
    header, line = csv_lines([fetched])
    assert header.endswith(",physical") and line.endswith(",prefetch")
    assert set(PREFETCH_KEYS) <= set(fetched.counts)
    assert fetched.counts["prefetches"] > 0


# ------------------------------------------------------------ shortcuts against the full path
def read_aheads(store, monkeypatch, full, **params):
    """The run, every layer's read-ahead slices (die, slice index) in run order, and how
    many predictions were made; with ``full``, every Prefetcher learns and predicts at every
    layer, as before its two shortcuts (no die's buffer holds a slice; no die has room)."""
    seen, predictions = [], []
    after, predict, init = Prefetcher.after_layer, Prefetcher.predict, Prefetcher.__init__

    def spy(self, *args):
        count = after(self, *args)
        seen.append(tuple(map(tuple, np.argwhere(self.ready).tolist())))
        return count

    def counted(self, *args):
        predictions.append(1)
        return predict(self, *args)

    def always(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.reads_ahead = True
    with monkeypatch.context() as patch:
        patch.setattr(Prefetcher, "after_layer", spy)
        patch.setattr(Prefetcher, "predict", counted)
        if full:
            patch.setattr(Prefetcher, "__init__", always)
            patch.setattr(Prefetcher, "_no_room", lambda self, idle: False)
        result = run(store, prefetch=True, **params)
    return result, seen, len(predictions)


@pytest.mark.parametrize("buffer_bytes", [0, S // 2, None, S + S // 2, "unbounded"])
def test_the_shortcuts_change_nothing(monkeypatch, buffer_bytes):
    """Random batches, buffers that hold no slice (0, half a slice, the default 64 MiB LLC
    against Llama-4's 84 MB slices), one slice and no bound: the shortcuts read ahead the same
    slices at every layer and give the same result as learning and predicting everywhere; with
    no slice held they make no prediction at all."""
    for seed in (4, 5):
        store = random_store(seed)
        for strategy in ("base", "pred"):
            params = {"strategy": strategy, "max_iterations": 4,
                      "prefetch_buffer_bytes": buffer_bytes}
            fast, fast_seen, fast_predictions = read_aheads(store, monkeypatch, False, **params)
            full, full_seen, full_predictions = read_aheads(store, monkeypatch, True, **params)
            assert fast_seen == full_seen and full_predictions > 0
            assert comparable(fast) == comparable(full)
            if buffer_bytes in (0, S // 2, None):
                assert fast_predictions == 0 and fast.counts["prefetches"] == 0
            else:
                assert any(full_seen)
