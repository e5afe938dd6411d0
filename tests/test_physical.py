"""Physical mode (issue 17): the switch framework, the models' attention shapes and the HBM
budget, worked by hand on a one-request Llama-4 trace (the one of tests/test_system_replica.py).

The hand-worked die: under ``pred`` (base allocation) that request's expert 0 runs on die 7
(``die_0_7``) of tsmc-sow, which copies expert 0 of each of the 24 MoE layers at the first
decode step. Die 7's budget, layer-sharded (layer l on live die l mod 24, so die 7 hosts layers
7 and 31, both MoE):

* resident experts: homes are floor(e / 5) for the first 120 experts and e mod 24 for the
  other 8 (SPEC section 6), so experts 35-39 and 127: 6 x 24 layers x 251,658,240 B;
* hosted weights, per layer: attention 2 x 5120 x 40 x 128 + 2 x 5120 x 8 x 128 = 62,914,560
  weights, BF16 125,829,120 B, plus one shared expert 3 x 5120 x 8192 x 2 = 251,658,240 B:
  2 x 377,487,360 = 754,974,720 B;
* KV cache: 2 layers x (2 x 8 KV heads x 128 x 2 B = 4,096 B) x context, the context being
  2 + s tokens at step s (s = 0 the prefill): 16,384 B, then 24,576, 32,768, 40,960 B.
"""

import json

import attrs
import numpy as np
import pytest
from test_system_replay import _tiny_store

from hwmodel.cli import main
from hwmodel.config import ConfigError, from_dict
from hwmodel.models import AttentionShape, load_model
from hwmodel.params import load_wafer
from hwmodel.system import Replay, ReplayParams
from hwmodel.system.memory_budget import context_tokens, hbm_budget
from hwmodel.system.physical import PHYSICAL_SWITCHES, all_switches_on, switches_on
from hwmodel.system.results import CSV_HEADER, csv_lines
from hwmodel.topologies.wafer import build_wafer

EXPERT = 251_658_240                                  # one Llama-4 expert, bytes
DIE7_FIXED = 6 * 24 * EXPERT + 2 * (2 * 62_914_560 + EXPERT)
KV_STEP = 2 * 4096                                    # die 7's KV growth per token of context


def kv7(step):
    return KV_STEP * (2 + step)


def wafer_with_die7(tmp_path, capacity):
    """tsmc-sow whose die 7 has ``capacity`` bytes of HBM, none of it reserved."""
    path = tmp_path / "w.yaml"
    path.write_text("wafer:\n  name: sow7\n  mesh_x: 3\n  mesh_y: 8\n  die:\n"
                    "    hbm: {bandwidth_GBps: 3350.0, capacity_bytes: 80000000000}\n"
                    "    compute: {peak_TFLOPS: 1000.0}\n    d2d: {bandwidth_GBps: 1741.0}\n"
                    f"  dies:\n    die_0_7: {{hbm: {{capacity_bytes: {capacity}, "
                    "reserved_fraction: 0.0}}\n")
    return path


@pytest.fixture(scope="module")
def store():
    """One request: a 2-token prompt and 3 decode steps, all on expert 0."""
    return _tiny_store([([0, 0], [0, 0, 0])])


def run(store, wafer="tsmc-sow", strategy="pred", **params):
    return Replay(wafer=build_wafer(load_wafer(wafer)), model=load_model("llama4-maverick"),
                  store=store, params=ReplayParams(**params)).run(strategy)


def comparable(result):
    out = result.to_json()
    out.pop("wall_s")
    out.pop("physical", None)
    return out


# ------------------------------------------------------------------ the switch framework
def test_switches_are_off_by_default_and_physical_mode_turns_all_on():
    assert switches_on(ReplayParams()) == ()
    assert switches_on(all_switches_on(ReplayParams())) == tuple(PHYSICAL_SWITCHES)
    assert all_switches_on(ReplayParams()).hbm_budget is True
    assert all_switches_on(ReplayParams()).token_dispatch is True


def test_a_switch_is_a_sweep_axis_and_a_bad_placement_is_refused():
    assert from_dict(ReplayParams, {"hbm_budget": True}).hbm_budget is True
    with pytest.raises(ConfigError, match="attention_placement"):
        ReplayParams(attention_placement="everywhere")


def test_outputs_record_the_switches(store):
    paper, physical = run(store, strategy="base"), run(store, strategy="base", hbm_budget=True)
    assert "physical" not in paper.to_json()             # paper JSON: unchanged keys
    assert physical.to_json()["physical"] == ["hbm_budget"]
    assert csv_lines([paper]) == [CSV_HEADER, paper.row()]
    lines = csv_lines([paper, physical])
    assert lines[0] == CSV_HEADER + ",physical"
    assert lines[1] == paper.row() + "," and lines[2] == physical.row() + ",hbm_budget"


# ------------------------------------------------------------------ model shapes (SPEC 10)
@pytest.mark.parametrize("name, kv", [("deepseek-v3", 1152), ("kimi-k2", 1152),
                                      ("qwen3-235b", 2048), ("llama4-maverick", 4096),
                                      ("gpt-oss-20b", 2048)])
def test_kv_bytes_per_token_and_layer_are_the_spec_table(name, kv):
    assert load_model(name).kv_bytes_per_token_layer == kv


def test_deepseek_8k_context_is_about_058_GB():
    m = load_model("deepseek-v3")
    assert 8192 * m.num_layers * m.kv_bytes_per_token_layer == pytest.approx(0.58e9, rel=0.01)


@pytest.mark.parametrize("name, vocab, published", [
    ("deepseek-v3", 129_280, 671e9), ("qwen3-235b", 151_936, 235e9),
    ("llama4-maverick", 202_048, 400e9)])
def test_weights_add_up_to_the_published_parameter_count(name, vocab, published):
    """Routed experts + attention, dense and shared weights + embeddings and output head
    (2 x vocab x hidden, from config.json) give the model's published size within 0.5 %."""
    m = load_model(name)
    routed = m.num_experts * m.num_moe_layers * m.expert_bytes
    total = (routed + sum(m.layer_weight_bytes())) / m.dtype_bytes + 2 * vocab * m.hidden_dim
    assert total == pytest.approx(published, rel=0.005)


def test_mla_weights_by_hand():
    """DeepSeek-V3: q_a 7168x1536, q_b 1536x128x192, kv_a 7168x576, kv_b 512x128x256,
    o 128x128x7168."""
    m = load_model("deepseek-v3")
    hand = (7168 * 1536 + 1536 * 128 * 192 + 7168 * 576 + 512 * 128 * 256 + 128 * 128 * 7168)
    assert m.attention.weight_count(m.hidden_dim) == hand == 187_105_280


def test_attention_shape_needs_its_kind_fields():
    with pytest.raises(ValueError, match="num_kv_heads"):
        AttentionShape(kind="gqa", num_heads=8, head_dim=64)
    with pytest.raises(ValueError, match="kind"):
        AttentionShape(kind="mha", num_heads=8)


# ------------------------------------------------------------------ the budget by hand
def test_context_grows_by_a_token_a_step_and_is_freed_when_a_request_ends():
    class S:
        prefill_len = np.array([3, 5])
        decode_len = np.array([2, 0])
    assert context_tokens(S, 4).tolist() == [[3, 5], [4, 0], [5, 0], [0, 0]]


def test_layer_sharded_budget_of_die_7_by_hand(store):
    replay = Replay(wafer=build_wafer(load_wafer("tsmc-sow")),
                    model=load_model("llama4-maverick"), store=store)
    b = hbm_budget(replay.wafer, replay.model, store, replay.home, replay.live_dies, 4)
    assert b.experts[7] + b.weights[7] == DIE7_FIXED
    assert b.kv[:, 7].tolist() == [kv7(s) for s in range(4)]
    assert b.usable[7] == 72_000_000_000
    # die 0 hosts layers 0 and 24, both dense: attention + 3 x 5120 x 16384 x 2 each
    assert b.weights[0] == 2 * (2 * 62_914_560 + 3 * 5120 * 16384 * 2)


def test_data_parallel_puts_all_weights_and_a_request_on_its_die(store):
    two = _tiny_store([([0, 0], [0]), ([1], [1, 1])])
    replay = Replay(wafer=build_wafer(load_wafer("tsmc-sow")),
                    model=load_model("llama4-maverick"), store=two)
    b = hbm_budget(replay.wafer, replay.model, two, replay.home, replay.live_dies, 3,
                   "data-parallel")
    all_layers = 48 * 2 * 62_914_560 + 24 * EXPERT + 24 * 3 * 5120 * 16384 * 2
    assert set(b.weights.tolist()) == {all_layers}
    per_token = 48 * 4096
    assert b.kv[:, 0].tolist() == [2 * per_token, 3 * per_token, 0]     # request 0: die 0
    assert b.kv[:, 1].tolist() == [1 * per_token, 2 * per_token, 3 * per_token]
    assert not b.kv[:, 2:].any()


# ------------------------------------------------------------------ the switch acts
def test_a_growing_kv_cache_fills_the_last_replica_slot(store, tmp_path):
    """Die 7 has room for one replica at steps 1 and 2; at step 3 the KV cache has grown
    by 8,192 B and the slot is gone. Step 1: 24 copies, each evicting the previous (23);
    step 2: 24 copies, 24 evictions; step 3: the held replica is evicted (1), each of the
    24 copies is evicted at once (24). Nothing is held at the end."""
    capacity = DIE7_FIXED + kv7(1) + EXPERT + KV_STEP
    r = run(store, wafer_with_die7(tmp_path, capacity), hbm_budget=True)
    assert r.counts["replicas"] == 3 * 24 * 3
    assert r.counts["replica_evictions"] == 23 + 24 + 1 + 24
    assert r.per_die["replicas_held"][7] == 0
    one_slot = run(store, replica_capacity_bytes=EXPERT)      # the same region, never shrunk
    assert one_slot.counts["replica_evictions"] == 23 + 24 + 24
    assert one_slot.per_die["replicas_held"][7] == 1


def test_a_kv_cache_that_fills_the_hbm_leaves_no_room_for_replicas(store, tmp_path):
    capacity = DIE7_FIXED + kv7(3) + EXPERT - 1           # never room for a whole expert
    r = run(store, wafer_with_die7(tmp_path, capacity), hbm_budget=True)
    assert r.counts["replica_evictions"] == 3 * 24
    assert sum(r.per_die["replicas_held"]) == 0
    assert r.counts["replica_reads"] == 0
    assert r.throughput < run(store, wafer_with_die7(tmp_path, capacity)).throughput


def test_a_budget_with_room_for_every_replica_changes_nothing(store):
    """Invariance: tsmc-sow's 72 GB leave die 7 room for far more than 24 replicas, and base
    makes none: the switch cannot act, the results are the paper's."""
    for strategy in ("pred", "base"):
        paper, physical = run(store, strategy=strategy), run(store, strategy=strategy,
                                                             hbm_budget=True)
        assert comparable(paper) == comparable(physical)
        assert physical.physical == ("hbm_budget",) and paper.physical == ()


def test_a_batch_that_does_not_fit_is_refused_with_the_numbers(store, tmp_path):
    capacity = DIE7_FIXED + kv7(3) - 1                    # one byte short at step 3
    with pytest.raises(ValueError, match=r"die 7 .* at iteration 3\), more than its "
                                         r"36\.99 GB"):
        run(store, wafer_with_die7(tmp_path, capacity), hbm_budget=True)


def test_cli_refuses_it_in_one_line_and_writes_nothing(store, tmp_path, capsys):
    from test_cli_errors import error_line
    trace = store.save(tmp_path / "one.store")
    wafer = wafer_with_die7(tmp_path, DIE7_FIXED + kv7(3) - 1)
    code = main(["replay", "--trace", str(trace), "--wafer", str(wafer), "--strategy", "pred",
                 "--mode", "physical", "--quiet", "-o", str(tmp_path / "out")])
    error_line(capsys, code, ["hbm_budget", "die 7", "36.99 GB"])
    assert not (tmp_path / "out").exists()


def test_cli_refuses_an_unknown_mode(capsys):
    from test_cli_errors import error_line
    code = main(["replay", "--strategy", "base", "--mode", "fast", "--quiet"])
    error_line(capsys, code, ["--mode 'fast'", "expected 'paper' or 'physical'"])


# ------------------------------------------------------------------ the paper-mode warning
def test_paper_mode_says_when_its_replicas_exceed_the_hbm(store, tmp_path):
    """Die 7 keeps 24 replicas (6.04 GB) where 10 experts' worth (2.52 GB) is left."""
    capacity = DIE7_FIXED + kv7(3) + 10 * EXPERT
    r = run(store, wafer_with_die7(tmp_path, capacity))
    assert len(r.notes) == 1
    assert ("die 7 of wafer sow7 holds 6.04 GB of replicas (24 experts) but only 2.52 GB of "
            "its 39.51 GB usable HBM") in r.notes[0]
    assert "hbm_budget" in r.notes[0]
    assert "notes" not in r.to_json()
    assert run(store, wafer_with_die7(tmp_path, capacity + 14 * EXPERT)).notes == []


def test_cli_prints_the_warning_on_stderr_and_keeps_stdout(store, tmp_path, capsys):
    trace = store.save(tmp_path / "one.store")
    wafer = wafer_with_die7(tmp_path, DIE7_FIXED + kv7(3) + 10 * EXPERT)
    assert main(["replay", "--trace", str(trace), "--wafer", str(wafer), "--strategy", "pred",
                 "--quiet"]) == 0
    out = capsys.readouterr()
    assert "warning: " in out.err and "6.04 GB of replicas" in out.err
    assert "warning:" not in out.out and "hbm_budget" not in out.out


def test_physical_cli_csv_and_json_name_the_switch(store, tmp_path, capsys):
    trace = store.save(tmp_path / "one.store")
    out_dir = tmp_path / "out"
    assert main(["replay", "--trace", str(trace), "--strategy", "base", "--mode", "physical",
                 "--quiet", "--no-plots", "-o", str(out_dir)]) == 0
    csv = (out_dir / "replay.csv").read_text().splitlines()
    assert csv[0].endswith(",physical") and csv[1].endswith(
        ",hbm_budget+token_dispatch+shared_links+dispatch_time+attention_time+micro_batches+prefetch")
    assert json.loads((out_dir / "replay.json").read_text())[0]["physical"] == [
        "hbm_budget", "token_dispatch", "shared_links", "dispatch_time", "attention_time",
        "micro_batches", "prefetch"]
    assert attrs.fields_dict(ReplayParams)["hbm_budget"].default is False


# ------------------------------------------------------------------ the sweep report
def test_report_keeps_physical_runs_out_of_the_paper_comparison(tmp_path):
    """A store with paper runs (allo+pred 7x base) and physical ones (2x): the published
    comparison is the paper runs' 7x; the runs table names the physical runs' switch."""
    from hwmodel.sweep import ResultsStore
    from hwmodel.sweep.report import write_report

    def put(store, strategy, throughput, physical):
        summary = {"mesh_x": 5, "mesh_y": 5, "throughput": throughput, "hops": 10,
                   "local_dram_read_GiB": 1.0, "remote_dram_read_GiB": 1.0,
                   "local_dram_write_GiB": 0.0}
        params = {"hbm_budget": True} if physical else {}
        if physical:
            summary["physical"] = ["hbm_budget"]
        row = ",".join(["deepseek", strategy, "5", "5", "4096"] + ["0"] * 14
                       + [f"{throughput:.0f}"])
        store.put({"key": f"{strategy}-{physical}", "status": "ok", "model": "deepseek-v3",
                   "trace": "t", "trace_sha256": "h", "batch": 4096, "wafer": "dojo",
                   "strategy": strategy, "params": json.dumps(params), "inputs": "{}",
                   "hwmodel_version": "0", "row": row, "summary": json.dumps(summary),
                   "per_link": json.dumps([{"dies": [0, 1], "bytes": 10.0}])},
                  {"wall_s": 1.0})

    path = tmp_path / "r.sqlite"
    with ResultsStore(path) as store:
        put(store, "base", 100.0, False)
        put(store, "allo+pred", 700.0, False)
        put(store, "base", 100.0, True)
        put(store, "allo+pred", 200.0, True)
    page = next(f for f in write_report(path, tmp_path / "rep") if f.name == "report.html")
    html = page.read_text()
    assert "2 physical-mode runs</b> (switches hbm_budget" in html
    assert "<td>throughput allo+pred / base, average</td><td>6.63</td><td>7.00</td>" in html
    assert "<th>physical</th>" in html and "<td>200</td><td>hbm_budget</td>" in html


# ------------------------------------------------------------------ token dispatch (counted)
def mesh_distance(a, b, mesh_y=8):
    """Hops between dies a and b of a healthy mesh (id = y + x * mesh_y): Manhattan."""
    return abs(a // mesh_y - b // mesh_y) + abs(a % mesh_y - b % mesh_y)


def test_layer_sharded_dispatch_by_hand():
    """ep, one 2-token prompt on experts 0 and 10 (homes 0 and 2), prefill only. MoE layer
    l (1, 3, ..., 47) starts on die l mod 24; each token goes there -> home and back."""
    r = run(_tiny_store([([0, 10], [])]), strategy="ep", max_iterations=1, token_dispatch=True)
    hosts = [layer % 24 for layer in range(1, 48, 2)]
    hops = sum(2 * (mesh_distance(h, 0) + mesh_distance(h, 2)) for h in hosts)
    remote = sum(2 * ((h != 0) + (h != 2)) for h in hosts)
    assert r.counts["dispatch_messages"] == 24 * 2 * 2
    assert r.counts["dispatch_hops"] == hops
    assert r.counts["dispatch_remote_messages"] == remote
    assert r.counts["dispatch_bytes"] == remote * 5120 * 2
    assert r.counts["dispatch_byte_hops"] == hops * 5120 * 2


def test_data_parallel_dispatch_by_hand():
    """Request 0 (2 prompt tokens on expert 10, home die 2) starts on die 0, request 1 (one
    token on expert 0, home die 0) on die 1: per layer 2 x 2 x 2 + 1 x 2 x 1 = 10 hops."""
    store = _tiny_store([([10, 10], []), ([0], [])])
    r = run(store, strategy="ep", max_iterations=1, token_dispatch=True,
            attention_placement="data-parallel")
    assert r.counts["dispatch_hops"] == 24 * 10
    assert r.counts["dispatch_remote_messages"] == 24 * 6


def test_dispatch_is_counted_only_and_moves_no_other_output(store):
    """Invariance: the switch adds its counters and changes nothing else (it is not timed)."""
    paper = comparable(run(store))
    counted = comparable(run(store, token_dispatch=True))
    added = {k: counted["counts"].pop(k) for k in list(counted["counts"])
             if k.startswith("dispatch_")}
    assert set(added) == {"dispatch_messages", "dispatch_remote_messages", "dispatch_hops",
                          "dispatch_bytes", "dispatch_byte_hops"}
    assert counted == paper


def test_a_switch_is_a_sweep_axis_recorded_in_the_store(tmp_path):
    """A grid whose params axis is the switch gives one paper and one physical run; the store
    row of the physical run names it (params and summary), the paper one does not."""
    from hwmodel.sweep import ResultsStore, load_grid, run_sweep
    (tmp_path / "grid.yaml").write_text(
        "sweep:\n  models: [llama4-maverick]\n  batches: [4]\n  wafers: [dojo]\n"
        "  strategies: [base]\n  params: {max_iterations: 2, hbm_budget: [false, true]}\n")
    outcome = run_sweep(load_grid(tmp_path / "grid.yaml"), tmp_path / "r.sqlite",
                        tmp_path / "cache", jobs=1, log=None)
    assert (outcome.executed, outcome.failures) == (2, [])
    with ResultsStore(tmp_path / "r.sqlite") as store:
        runs = store.runs("ok")
    physical = [json.loads(r["summary"]).get("physical") for r in runs]
    params = [json.loads(r["params"]).get("hbm_budget") for r in runs]
    assert sorted(map(str, physical)) == ["None", "['hbm_budget']"]
    assert {str(p): s for p, s in zip(params, physical)} == {"False": None,
                                                             "True": ["hbm_budget"]}
    assert len({r["row"] for r in runs}) == 1           # the switch cannot act on base


def test_the_python_examples_of_docs_physical_run(capsys):
    """docs/physical.md's Python blocks run as written; the dispatch one prints its figures."""
    import re

    from conftest import REPO
    text = (REPO / "docs" / "physical.md").read_text()
    found = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    assert len(found) == 2
    for code in found:
        exec(compile(code, "docs/physical.md", "exec"), {})  # noqa: S102 (the docs are the test)
    out = capsys.readouterr().out
    assert ("('hbm_budget', 'token_dispatch', 'shared_links', 'dispatch_time', "
            "'attention_time', 'micro_batches', 'prefetch')") in out
    assert "'dispatch_remote_messages': 73236, 'dispatch_hops': 268594" in out
    assert "'dispatch_remote_messages': 72994, 'dispatch_hops': 266462" in out
