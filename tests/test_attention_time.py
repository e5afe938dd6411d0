"""Attention time (``attention_time``, issue 17): hand-worked cases on Llama-4 requests.

Llama-4 Maverick (config.json): 48 layers, GQA with 40 query heads, 8 KV heads of 128.

* attention weights per layer: q and o 2 x 5120 x 40 x 128, k and v 2 x 5120 x 8 x 128:
  62,914,560 weights, ``W`` = 125,829,120 B in BF16;
* KV cache per token and layer: 2 x 8 x 128 x 2 B = 4,096 B;
* operations: 2 per weight per token processed, plus per (query, cached token) pair the score
  and the value product, 2 x (2 x 40 x 128) = 20,480;
* tsmc-sow's die: HBM 3,350 B/ns at Llama-4's efficiency 0.85, 300 ns latency; 1,000 TFLOPS at
  the model's utilisation 0.65 for up to 256 tokens.

A decode step of one request with context c reads ``W + 4,096 c`` bytes per layer: 300 +
ceil(bytes / 2,847.5) ns = 44,493 ns for c = 2, against ceil((2 W / 2 + 20,480 c) / 650,000)
= 194 ns of compute, so HBM-bound; the 48 layers run in turn (layer-sharded) before and between
the MoE layers, and the experts' own work is unchanged, so the run is longer by exactly the sum.
"""

import json
import math

import numpy as np
import pytest
from test_physical import comparable, run
from test_system_replay import _tiny_store

from hwmodel.cli import main
from hwmodel.models import load_model
from hwmodel.params import load_wafer
from hwmodel.system import Replay, ReplayParams
from hwmodel.system.attention import AttentionTime
from hwmodel.system.engine import LayerKernel
from hwmodel.system.physical import PHYSICAL_SWITCHES, all_switches_on
from hwmodel.topologies.wafer import build_wafer
from hwmodel.traces.synth import default_batch

WEIGHTS = 2 * 5120 * 40 * 128 + 2 * 5120 * 8 * 128     # attention weights of one layer
W = 2 * WEIGHTS                                          # their bytes
KV = 2 * 8 * 128 * 2                                     # KV bytes per token and layer
PAIR = 2 * (2 * 40 * 128)                                # operations per (query, key) pair
LAYERS = 48
COUNTS = ("attention_ns", "attention_bytes", "attention_flops")


def hbm_ns(nbytes, bandwidth=3350.0, latency=300):
    return latency + math.ceil(nbytes / (bandwidth * 0.85))


def compute_ns(flops, peak_TFLOPS=1000.0):
    return math.ceil(flops / (peak_TFLOPS * 1000 * 0.65))


def layer(tokens, context, pairs, **rates):
    """(ns, bytes, operations) of one layer's attention on one tsmc-sow-like die."""
    nbytes, flops = W + KV * context, 2 * WEIGHTS * tokens + PAIR * pairs
    peak = rates.pop("peak_TFLOPS", 1000.0)
    return max(hbm_ns(nbytes, **rates), compute_ns(flops, peak)), nbytes, flops


@pytest.fixture(scope="module")
def one():
    """One request: a 2-token prompt and 3 decode steps, all on expert 0."""
    return _tiny_store([([0, 0], [0, 0, 0])])


def one_request_steps(**rates):
    """The prefill (2 tokens, 3 causal pairs) and decode steps s = 1..3 (context 2 + s)."""
    return [layer(2, 2, 3, **rates)] + [layer(1, 2 + s, 2 + s, **rates) for s in (1, 2, 3)]


def test_one_request_by_hand(one):
    paper = run(one, strategy="ep")
    timed = run(one, strategy="ep", attention_time=True)
    steps = one_request_steps()
    assert [s[0] for s in steps] == [44493, 44494, 44496, 44497]
    assert timed.counts["attention_ns"] == LAYERS * sum(s[0] for s in steps)
    assert timed.counts["attention_bytes"] == LAYERS * sum(s[1] for s in steps)
    assert timed.counts["attention_flops"] == LAYERS * sum(s[2] for s in steps)
    assert timed.time_ns - paper.time_ns == timed.counts["attention_ns"]
    # the decode steps' attention is decode time: throughput drops accordingly
    assert timed.decode_ns - paper.decode_ns == LAYERS * sum(s[0] for s in steps[1:])


def test_the_kv_part_grows_by_one_token_per_decode_step(one):
    """Bytes of each iteration, from runs of 1..4 iterations: each decode step reads the
    layer's weights again plus one more token of KV cache per layer than the step before."""
    totals = [run(one, strategy="ep", max_iterations=m, attention_time=True)
              .counts["attention_bytes"] for m in (1, 2, 3, 4)]
    per_step = np.diff([0, *totals])
    assert per_step[0] == LAYERS * (W + 2 * KV)                      # the 2-token prompt
    assert list(np.diff(per_step[1:])) == [LAYERS * KV, LAYERS * KV]


def wafer_yaml(tmp_path, peak_TFLOPS=1000.0):
    path = tmp_path / f"w{peak_TFLOPS}.yaml"
    path.write_text("wafer:\n  name: slow\n  mesh_x: 3\n  mesh_y: 8\n  die:\n"
                    "    hbm: {bandwidth_GBps: 3350.0}\n"
                    f"    compute: {{peak_TFLOPS: {peak_TFLOPS}}}\n"
                    "    d2d: {bandwidth_GBps: 1741.0}\n")
    return path


def test_a_slow_die_is_compute_bound(one, tmp_path):
    """At 1 TFLOPS a decode step of context 3 takes (125,829,120 + 3 x 20,480) / 650 =
    193,678 ns a layer (rounded up), more than the 44,493 ns of HBM:
    the roofline takes the compute time."""
    wafer = wafer_yaml(tmp_path, 1.0)
    paper = run(one, wafer=wafer, strategy="ep")
    timed = run(one, wafer=wafer, strategy="ep", attention_time=True)
    steps = one_request_steps(peak_TFLOPS=1.0)
    assert steps[1][0] == compute_ns(2 * WEIGHTS + 3 * PAIR, 1.0) == 193_678
    assert timed.time_ns - paper.time_ns == LAYERS * sum(s[0] for s in steps)


def test_data_parallel_waits_for_the_slowest_die():
    """Requests 0 (prompt 2, 1 decode step) and 1 (prompt 4, 3 steps) on dies 0 and 1, each
    running every layer for its own request: the phase lasts as long as die 1's."""
    two = _tiny_store([([0, 0], [0]), ([0, 0, 0, 0], [0, 0, 0])])
    paper = run(two, strategy="ep", attention_placement="data-parallel")
    timed = run(two, strategy="ep", attention_placement="data-parallel", attention_time=True)
    die1 = [layer(4, 4, 4 * 4 - 6)] + [layer(1, 4 + s, 4 + s) for s in (1, 2, 3)]
    die0 = [layer(2, 2, 3), layer(1, 3, 3)]
    assert all(a[0] > b[0] for a, b in zip(die1, die0))
    assert timed.time_ns - paper.time_ns == LAYERS * sum(s[0] for s in die1)
    assert timed.counts["attention_bytes"] == LAYERS * (sum(s[1] for s in die1)
                                                         + sum(s[1] for s in die0))
    # layer-sharded: one die per layer serves both requests' contexts together
    sharded = run(two, strategy="ep", attention_time=True)
    both = ([layer(6, 6, 3 + 10)] + [layer(2, 3 + 5, 3 + 5)]
            + [layer(1, 4 + s, 4 + s) for s in (2, 3)])
    assert sharded.counts["attention_ns"] == LAYERS * sum(s[0] for s in both)


def test_attention_shifts_the_layers_and_changes_nothing_else():
    """On a 16-request synthetic batch under allo+pred (replicas, LLC, Algorithm 1), the
    switch adds its phases before the layers: every layer takes as long as in paper mode,
    and every count, byte and hop is paper mode's."""
    store = default_batch("llama4-maverick", requests=16)
    paper = run(store, strategy="allo+pred", max_iterations=4)
    timed = run(store, strategy="allo+pred", max_iterations=4, attention_time=True)
    durations = lambda r: [x["end_ns"] - x["start_ns"] for x in r.per_layer]
    assert durations(timed) == durations(paper)
    assert timed.time_ns - paper.time_ns == timed.counts["attention_ns"] > 0
    timing = {"time_ns", "prefill_ns", "decode_ns", "throughput", "time_cycles",
              "prefill_cycles", "decode_cycles", "per_layer", "counts"}
    untimed = lambda r: {k: v for k, v in comparable(r).items() if k not in timing}
    assert untimed(timed) == untimed(paper)
    assert set(comparable(timed)) == set(comparable(paper))
    counts = {k: v for k, v in timed.counts.items() if k not in COUNTS}
    assert counts == paper.counts


def test_switch_off_is_paper_mode(one):
    paper = run(one, strategy="pred")
    off = run(one, strategy="pred", attention_time=False)
    assert comparable(off) == comparable(paper)
    assert not set(COUNTS) & set(paper.counts) and "physical" not in paper.to_json()


def test_attention_holds_its_dies_hbm_and_compute():
    """Layer-sharded, MoE layer 0 of Llama-4 (model layer 1) is preceded by model layers 0
    and 1, on dies 0 and 1 in turn: die 0's HBM and compute are held until T, die 1's
    until 2 T (T one layer's time), and the other dies are free."""
    wafer = build_wafer(load_wafer("tsmc-sow"))
    replay = Replay(wafer=wafer, model=load_model("llama4-maverick"),
                    store=_tiny_store([([0, 0], [0])]),
                    params=ReplayParams(attention_time=True))
    kernel = LayerKernel(replay.tables, len(wafer.mesh.links))
    attention = AttentionTime(replay, kernel)
    t = layer(2, 2, 3)[0]
    assert list(attention.layer_die_ns(0, 0)[:3]) == [t, t, 0]
    assert attention.phase_end(1000, 0, 0) == 1000 + 2 * t
    n = wafer.num_dies
    for base in (n, 2 * n):                                  # HBM, then compute
        assert list(kernel.release_ns[base:base + 3]) == [1000 + t, 1000 + 2 * t, 0]
    assert kernel.release_ns[:n].max() == 0                  # LLC ports untouched


def test_outputs_record_the_switch(one, tmp_path, capsys):
    assert "attention_time" in PHYSICAL_SWITCHES
    assert all_switches_on(ReplayParams()).attention_time is True
    params = tmp_path / "p.yaml"
    params.write_text("replay: {attention_time: true}\n")
    trace = one.save(tmp_path / "one.store")
    out = tmp_path / "out"
    assert main(["replay", "--trace", str(trace), "--strategy", "ep", "--params", str(params),
                 "--quiet", "--no-plots", "-o", str(out)]) == 0
    csv = (out / "replay.csv").read_text().splitlines()
    assert csv[0].endswith(",physical") and csv[1].endswith(",attention_time")
    row = json.loads((out / "replay.json").read_text())[0]
    assert row["physical"] == ["attention_time"]
    assert row["counts"]["attention_ns"] == LAYERS * sum(s[0] for s in one_request_steps())
    assert "physical mode: switches on: attention_time" in capsys.readouterr().out


def test_a_model_without_attention_is_refused(one, tmp_path, capsys):
    from conftest import REPO
    from test_cli_errors import error_line
    preset = (REPO / "hwmodel" / "presets" / "models" / "llama4-maverick.yaml").read_text()
    kept = preset.split("  # physical mode")[0].replace("name: llama4-maverick", "name: bare")
    model = tmp_path / "bare.yaml"
    model.write_text(kept)
    with pytest.raises(ValueError, match="attention_time: model bare has no attention"):
        Replay(wafer=build_wafer(load_wafer("tsmc-sow")), model=load_model(model), store=one,
               params=ReplayParams(attention_time=True)).run("ep")
    params = tmp_path / "p.yaml"
    params.write_text("replay: {attention_time: true}\n")
    code = main(["replay", "--trace", str(one.save(tmp_path / "one.store")), "--model",
                 str(model), "--strategy", "ep", "--params", str(params), "--quiet",
                 "-o", str(tmp_path / "out")])
    error_line(capsys, code, ["attention_time", "model bare has no attention"])
    assert not (tmp_path / "out").exists()


def test_mla_pairs_and_the_layer_groups():
    """DeepSeek-V3 (MLA, 128 heads, latent 512, rope 64): the score runs over latent + rope,
    the value over the latent. Its first MoE layer (3) is preceded by the dense layers 0-2; a
    model whose last layers are dense puts them in the last phase."""
    from hwmodel.system.attention import _layer_groups
    deepseek = load_model("deepseek-v3")
    assert deepseek.attention.score_flops_per_pair() == 2 * 128 * (512 + 64) + 2 * 128 * 512
    groups = _layer_groups(np.asarray(deepseek.moe_layers), deepseek.num_layers)
    assert [list(g) for g in groups[:2]] == [[0, 1, 2, 3], [4]]
    assert sum(len(g) for g in groups) == deepseek.num_layers == 61
    assert [list(g) for g in _layer_groups(np.array([1, 3]), 6)] == [[0, 1], [2, 3, 4, 5]]


@pytest.mark.parametrize("placement", ["layer-sharded", "data-parallel"])
def test_a_micro_batchs_attention_and_the_whole_batchs(placement):
    """The phase of a subset of requests (a micro-batch), against the whole batch's phase.
    Requests 0 (prompt 2, 1 decode step) and 1 (prompt 4, 3 steps) at decode step 1: contexts
    3 and 5, one token each; MoE layer 0 is preceded by two model layers. Given every request
    the subset's phase is the whole batch's (time, bytes, operations). Split: layer-sharded,
    each micro-batch's phase is its own request's roofline on the layers' dies, and together
    they read the two layers' weights once more than the whole batch; data-parallel, request
    r runs on die r, so the whole phase is the slower micro-batch's and the bytes add up."""
    two = _tiny_store([([0, 0], [0]), ([0, 0, 0, 0], [0, 0, 0])])
    replay = Replay(wafer=build_wafer(load_wafer("tsmc-sow")),
                    model=load_model("llama4-maverick"), store=two,
                    params=ReplayParams(attention_time=True, attention_placement=placement))

    def phase(requests):
        attention = AttentionTime(replay)
        ns = (attention.phase_end(0, 1, 0) if requests is None
              else attention.micro_batch_ns(1, 0, np.array(requests)))
        assert ns == attention.totals["attention_ns"]
        return ns, attention.totals["attention_bytes"], attention.totals["attention_flops"]

    whole = phase(None)
    assert phase([0, 1]) == whole
    a, b = phase([0]), phase([1])
    assert a == tuple(2 * v for v in layer(1, 3, 3)) and b == tuple(2 * v for v in layer(1, 5, 5))
    if placement == "layer-sharded":
        assert whole == tuple(2 * v for v in layer(2, 8, 8))
        assert a[1] + b[1] == whole[1] + 2 * W
    else:
        assert whole[0] == max(a[0], b[0]) and a[1] + b[1] == whole[1]
    assert a[2] + b[2] == whole[2]
