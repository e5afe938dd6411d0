"""Adapters for the other public formats: real files (hand-checked rows) and named errors."""

import csv
import json

import numpy as np
import pytest
from conftest import need_shared

from hwmodel.traces import TraceError, TraceStore, open_batch
from hwmodel.traces.adapters import detect_format, read_vllm_jsonl

DS_HEADER = "Layer ID,Batch Number,Token,Activated Expert IDs\n"


# ------------------------------------------------------------------------------ real files
def test_deepseek_real_prompts():
    folder = need_shared("traces", "deepseek-v2-lite-prefill")
    store = open_batch(folder)
    files = list(folder.glob("prompt_*_data.csv"))
    data_rows = sum(len(list(csv.reader(f.read_text(encoding="utf-8").splitlines()))) - 1
                    for f in files)
    assert len(store) == len(files) == 160
    assert store.model == "deepseek-v2-lite" and store.moe_layers.tolist() == list(range(1, 27))
    assert store.num_rows * 26 == data_rows and store.decode_len.max() == 0
    # Natural order; prompt_1: 33 tokens, first row of layer 1 and last row of layer 26 by hand.
    assert store.request_ids[:3] == ["prompt_1_data.csv", "prompt_2_data.csv",
                                     "prompt_3_data.csv"]
    first = store.prefill_ids(0)
    assert len(first) == 33
    assert first[0, 0].tolist() == [8, 26, 56, 57, 60, 43]
    assert first[-1, -1].tolist() == [24, 36, 52, 54, 56, 17]
    assert "prefill only" in store.notes
    one = open_batch(folder, limit=1)   # a preset is named even if not every id occurs
    assert one.model == "deepseek-v2-lite" and one.num_experts == 64 and len(one) == 1


def test_vllm_real_log_skips_and_counts_warmup(tmp_path):
    path = need_shared("traces", "qwen1.5-moe-vllm", "vllm_moe_log_layer0.jsonl")
    lines = path.read_text().splitlines()
    store = open_batch(path)
    assert store.model == "qwen1.5-moe-a2.7b" and store.moe_layers.tolist() == [0]
    # Warm-up passes of 8192 and 256 dummy tokens; the first kept route is line 8450.
    assert "skipped 2 warm-up passes (8448 routes)" in store.notes
    assert store.num_rows == len(lines) - 1 - 8448
    first = json.loads(lines[8449])
    assert first["token_idx"] == 0 and store.ids[0, 0].tolist() == first["topk_ids"]
    assert store.prefill_len[:3].tolist() == [65, 1406, 25] and len(store) == 129
    loaded = TraceStore.load(store.save(tmp_path / "q.hwt"))
    assert loaded.notes == store.notes and np.array_equal(loaded.ids, store.ids)
    with pytest.raises(TraceError, match="cannot be merged"):
        open_batch(path.parent)


def test_flame_real_scores_in_score_order():
    folder = need_shared("traces", "flame-moe-290m")
    store = open_batch(folder)
    assert store.model == "" and store.moe_layers.tolist() == list(range(2, 10))
    assert (store.num_experts, store.top_k, len(store)) == (64, 6, 32)
    assert store.prefill_len.tolist() == [64] * 32
    # Layer 2, token 0 by hand: non-zero scores 3: .0326, 12: .0296, 21: .0417, 28: .0523,
    # 34: .0998, 47: .0384.
    assert store.ids[0, 0].tolist() == [34, 28, 21, 47, 3, 12]


def test_switch_real_decode_steps():
    folder = need_shared("traces", "switch-base-32")
    store = open_batch(folder)
    assert len(store) == 2 and store.prefill_len.tolist() == [0, 0]
    # Fields per record: 172 = 1 + 3 x 57 and 235 = 1 + 3 x 78.
    assert store.decode_len.tolist() == [57, 78]
    assert store.moe_layers.tolist() == [1, 3, 5, 7, 9, 11] and store.num_experts == 32
    assert store.decode_ids(0)[0, :, 0].tolist() == [11, 13, 16, 21, 8, 7]
    assert store.decode_ids(0)[56, :, 0].tolist() == [12, 18, 22, 18, 31, 5]


# --------------------------------------------------------------------------- made fixtures
def ds_file(path, rows):
    path.write_text(DS_HEADER + "".join(rows), encoding="utf-8")
    return path


def test_deepseek_fixture_commas_batches_and_model(tmp_path):
    rows = ['1,0,",","[1, 2]"\n', '1,0,a,"[3, 0]"\n', '1,1,b,"[2, 3]"\n',
            '3,0,",","[0, 1]"\n', '3,0,a,"[1, 3]"\n', '3,1,b,"[3, 2]"\n']
    ds_file(tmp_path / "prompt_10_data.csv", rows)
    ds_file(tmp_path / "prompt_9_data.csv", rows[:2] + rows[3:5])
    assert detect_format(tmp_path) == "deepseek-csv"
    store = open_batch(tmp_path)
    assert store.request_ids == ["prompt_9_data.csv", "prompt_10_data.csv#batch0",
                                 "prompt_10_data.csv#batch1"]
    assert store.model == "" and store.moe_layers.tolist() == [1, 3] and store.num_experts == 4
    assert store.prefill_ids(1).tolist() == [[[1, 2], [0, 1]], [[3, 0], [1, 3]]]
    assert store.prefill_ids(2).tolist() == [[[2, 3], [3, 2]]]
    with pytest.raises(TraceError, match="contradicts model deepseek-v2-lite: top-k 2"):
        open_batch(tmp_path, model="deepseek-v2-lite")


@pytest.mark.parametrize("rows, message", [
    (['1,0,a,"[1, 2]"\n', '1,0,b,"[1, 2, 3]"\n'],
     r"x.csv:3: 3 expert ids \[1, 2, 3\], expected top-k 2"),
    (['1,0,a,"[1, 2]"\n', '1,0,b,"[1, -2]"\n'], r"x.csv:3: expert ids \[1, -2\] are not"),
    (['1,0,a,"[1, 2"\n'], r"x.csv:2: Activated Expert IDs '\[1, 2' is not a JSON list"),
    (['one,0,a,"[1, 2]"\n'], r"x.csv:2: Layer ID 'one' is not an integer"),
    (['1,0,a,"[1, 2]"\n', '2,0,a,"[1, 2]"\n', '1,0,a,"[1, 2]"\n'],
     r"x.csv:4: layer 1 starts again after layer 2"),
    (['1,0,a,"[1, 2]"\n', '2,0,a,"[1, 2]"\n', '2,0,b,"[1, 2]"\n'],
     r"x.csv:3: layer 2 batch 0 has 2 tokens, layer 1 has 1"),
    (['1,0,a,"[1, 2]"\n', '2,0,b,"[1, 2]"\n'],
     r"x.csv:3: layer 2 batch 0 token 0 is 'b', layer 1 has 'a'"),
    (['1,0,a\n'], r"x.csv:2: 3 fields"),
])
def test_deepseek_errors_name_file_and_line(tmp_path, rows, message):
    with pytest.raises(TraceError, match=message):
        open_batch(ds_file(tmp_path / "x.csv", rows), format="deepseek-csv")


def test_deepseek_bad_header(tmp_path):
    (tmp_path / "x.csv").write_text("Layer,Batch,Token,Ids\n1,0,a,\"[1]\"\n")
    with pytest.raises(TraceError, match=r"x.csv:1: header"):
        open_batch(tmp_path / "x.csv", format="deepseek-csv")


def vllm_lines(passes, layer=3, extra=()):
    lines = [{"type": "meta", "model_id": "Some-MoE", "layers_logged": [layer]}]
    for tokens in passes:
        lines += [{"type": "route", "req_id": "offline", "token_idx": t, "layer": layer,
                   "topk_ids": [t % 5, (t + 1) % 5], "topk_weights": [0.6, 0.4]}
                  for t in range(tokens)]
    return [json.dumps(line) for line in lines] + list(extra)


def test_vllm_fixture_passes(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text("\n".join(vllm_lines([4, 3, 2, 3, 1])) + "\n")
    assert detect_format(path) == "vllm-jsonl"
    store = open_batch(path)
    assert store.notes.startswith("vllm-jsonl: skipped 2 warm-up passes (7 routes); 3 forward")
    assert store.request_ids == ["log.jsonl#pass2", "log.jsonl#pass3", "log.jsonl#pass4"]
    assert store.prefill_len.tolist() == [2, 3, 1] and store.moe_layers.tolist() == [3]
    assert store.ids[:, 0].tolist() == [[0, 1], [1, 2], [0, 1], [1, 2], [2, 3], [0, 1]]
    assert store.model == "" and store.num_layers == 4 and store.num_experts == 4
    assert len(read_vllm_jsonl(path, warmup_passes=0)) == 5


@pytest.mark.parametrize("edit, message", [
    (lambda ls: ls[:3] + ["{oops"] + ls[3:], r"log.jsonl:4: not valid JSON"),
    (lambda ls: ls[:2] + [ls[2].replace('"token_idx": 1', '"token_idx": 2')] + ls[3:],
     r"log.jsonl:3: token_idx 2, expected 1"),
    (lambda ls: ls[:2] + [ls[2].replace('"layer": 3', '"layer": 4')] + ls[3:],
     r"log.jsonl:3: layer 4, but this log holds layer 3"),
    (lambda ls: ls[:2] + [ls[2].replace('"route"', '"note"')] + ls[3:],
     r"log.jsonl:3: record type 'note', expected 'route'"),
    (lambda ls: ls[:2] + [ls[2].replace('"topk_ids": [1, 2]', '"topk_ids": [1]')] + ls[3:],
     r"log.jsonl:3: 1 expert ids \[1\], expected top-k 2"),
    (lambda ls: ls[:-3], r"log.jsonl: 2 forward passes, expected more than the 2 warm-up"),
    (lambda ls: [ls[0].replace("[3]", "[5]")] + ls[1:],
     r"log.jsonl:1: meta layers_logged \[5\], but the routes are layer 3"),
])
def test_vllm_errors_name_file_and_line(tmp_path, edit, message):
    path = tmp_path / "log.jsonl"
    path.write_text("\n".join(edit(vllm_lines([2, 2, 3]))) + "\n")
    with pytest.raises(TraceError, match=message):
        open_batch(path, format="vllm-jsonl")


def flame_file(folder, layer, scores, seqs=2):
    experts = len(scores[0])
    header = "layer_id,token_id," + ",".join(f"expert_{e}" for e in range(experts))
    body = [f"0,{t}," + ",".join(f"{s:.6f}" for s in row) for t, row in enumerate(scores)]
    path = folder / f"m_layer{layer}_x_{seqs}seqs_{len(scores)}tokens.csv"
    path.write_text("\n".join([header, *body]) + "\n")
    return path


SCORES = [[0.1, 0.0, 0.3, 0.0], [0.0, 0.2, 0.2, 0.0], [0.5, 0.0, 0.0, 0.4],
          [0.0, 0.0, 0.1, 0.9]]


def test_flame_fixture_order_ties_and_sequences(tmp_path):
    flame_file(tmp_path, 5, SCORES)
    flame_file(tmp_path, 3, SCORES[::-1])
    store = open_batch(tmp_path)
    assert store.moe_layers.tolist() == [3, 5] and store.num_layers == 6 and len(store) == 2
    # Score descending, the tie 0.2/0.2 by id: row 1 of layer 5 is [1, 2].
    assert store.ids[:, 1].tolist() == [[2, 0], [1, 2], [0, 3], [3, 2]]
    assert store.ids[:, 0].tolist() == [[3, 2], [0, 3], [1, 2], [2, 0]]
    assert store.prefill_len.tolist() == [2, 2]


@pytest.mark.parametrize("scores, message", [
    ([[0.1, 0.0, 0.3, 0.0], [0.0, 0.2, 0.0, 0.0]],
     r":3: 1 non-zero router scores, expected top-k 2"),
    ([[0.1, 0.0, 0.3, 0.0], [0.0, -0.2, 0.3, 0.0]], r":3: router scores must be finite"),
])
def test_flame_errors(tmp_path, scores, message):
    flame_file(tmp_path, 2, scores)
    with pytest.raises(TraceError, match=message):
        open_batch(tmp_path, format="flame-csv")


def test_flame_bad_token_ids_and_names(tmp_path):
    path = flame_file(tmp_path, 2, SCORES[:2])
    path.write_text(path.read_text().replace("\n0,1,", "\n0,7,"))
    with pytest.raises(TraceError, match=r"layer2_.*csv:3: token_id 7, expected 1"):
        open_batch(tmp_path, format="flame-csv")
    path.rename(tmp_path / "scores.csv")
    with pytest.raises(TraceError, match=r"scores.csv: no _layer<L>_ in the file name"):
        open_batch(tmp_path, format="flame-csv")


def switch_record(article, steps):
    fields = [article]
    for step, choices in enumerate(steps):
        pairs = ", ".join(f"tensor([ 0.5, -1.0,\n  2.0]), tensor([{c}])" for c in choices)
        fields += [str(step), f"[{pairs}]", f"tensor({100 + step})"]
    out = []
    csv.writer(_Lines(out)).writerow(fields)
    return "".join(out)


class _Lines:
    def __init__(self, out):
        self.write = out.append


def test_switch_fixture(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text(switch_record("a1", [[0, 2], [1, 1], [2, 0]])
                    + switch_record("b2", [[2, 2]]))
    assert detect_format(path) == "switch-csv"
    store = open_batch(path)
    assert store.request_ids == ["s.csv#a1", "s.csv#b2"] and store.decode_len.tolist() == [3, 1]
    assert store.moe_layers.tolist() == [1, 3] and store.num_experts == 3
    assert store.decode_ids(0)[:, :, 0].tolist() == [[0, 2], [1, 1], [2, 0]]


@pytest.mark.parametrize("text, message", [
    (switch_record("a", [[0, 3]]), r"s.csv:1: step 0, MoE layer 1: 3 logits and choice 3"),
    (switch_record("a", [[0, 1], [1, 0]]).replace(',1,"[', ',4,"[', 1),
     r"s.csv:1: field 5: step '4', expected 1"),
    (switch_record("a", [[0, 1]]).replace("tensor([1])", "eval([1])"),
     r"s.csv:1: step 0: router list .* is not a list of"),
    (switch_record("a", [[0, 1]]) + switch_record("b", [[0, 1, 2]]),
     r"s.csv:4: 3 MoE layers of 3 experts, the first record has 2"),
])
def test_switch_errors_name_file_and_line(tmp_path, text, message):
    path = tmp_path / "s.csv"
    path.write_text(text)
    with pytest.raises(TraceError, match=message):
        open_batch(path, format="switch-csv")


def test_unknown_format_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="unknown trace format 'parquet'"):
        open_batch(tmp_path, format="parquet")
