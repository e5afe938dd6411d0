"""Trace reader: request order, validation messages, fast/checked parse agreement, real traces."""

import gzip
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodel.traces import TraceError, open_batch, parse_request
from hwmodel.traces.reader import _checked_parse, _Expect, _fast_parse

# A tiny model: 4 layers, MoE layers 1 and 3, 8 experts, top-2.
TINY = ("model:\n  name: tiny\n  num_layers: 4\n  moe_layers: [1, 3]\n  num_experts: 8\n"
        "  top_k: 2\n  hidden_dim: 16\n  expert_ffn_dim: 32\n")


def request(prefill, decode, num_layers=4, moe=(1, 3)):
    """Dataset JSON of one request: prefill[layer_column][token] rows, decode[step][column]."""
    first = {str(layer): ([list(r) for r in prefill[moe.index(layer)]] if layer in moe else None)
             for layer in range(num_layers)}
    steps = [{str(layer): ([list(step[moe.index(layer)])] if layer in moe else None)
              for layer in range(num_layers)} for step in decode]
    return [first, *steps]


def write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=4))
    return path


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


GOOD = request(prefill=[[[0, 1], [2, 3], [4, 5]], [[6, 7], [0, 2], [1, 3]]],
               decode=[[[5, 6], [7, 0]], [[1, 2], [3, 4]]])


def test_parse_gives_token_major_rows(tiny):
    parsed = parse_request(json.dumps(GOOD, indent=4).encode(), "r.json", tiny)
    assert parsed.moe_layers == (1, 3) and parsed.num_layers == 4 and parsed.top_k == 2
    assert parsed.prefill.tolist() == [[[0, 1], [6, 7]], [[2, 3], [0, 2]], [[4, 5], [1, 3]]]
    assert parsed.decode.tolist() == [[[5, 6], [7, 0]], [[1, 2], [3, 4]]]


@pytest.mark.parametrize("mutate, message", [
    (lambda d: {"0": d}, r"r.json: top level must be a list of iterations, not a JSON object"),
    (lambda d: [{**d[0], "4": None}, *d[1:]],
     r"r.json: iteration 0: MoE layers \[1, 3\] differ|iteration 0 has 5 layers, tiny has 4"),
    (lambda d: [d[0], {k: v for k, v in d[1].items() if k != "2"}, d[2]],
     r"r.json: iteration 1: layer keys must be \"0\"..\"2\", found '3'"),
    (lambda d: [d[0], {**d[1], "3": [[1, 2], [3, 4]]}, d[2]],
     r"r.json: iteration 1, layer 3: a decode step must hold exactly one row, found 2"),
    (lambda d: [{**d[0], "1": [[0, 1], [2, 3, 4], [4, 5]]}, *d[1:]],
     (r"r.json: iteration 0, layer 1, token 1: row \[2, 3, 4\] has 3 expert ids, "
     r"expected top-k 2")),
    (lambda d: [d[0], d[1], {**d[2], "3": [[3, 9]]}],
     r"r.json: iteration 2, layer 3, token 0: expert id 9 out of range 0..7 for model tiny"),
    (lambda d: [{**d[0], "3": [[6, 7], [0, -2], [1, 3]]}, *d[1:]],
     r"r.json: iteration 0, layer 3, token 1: expert id -2 is not a non-negative integer"),
    (lambda d: [{**d[0], "3": [[6, 7], [0, 2], [1, 3.0]]}, *d[1:]],
     r"iteration 0, layer 3, token 2: expert id 3.0 is not a non-negative integer"),
    (lambda d: [{**d[0], "3": [[6, 7], [0, 2], [1, True]]}, *d[1:]],
     r"iteration 0, layer 3, token 2: expert id True is not a non-negative integer"),
    (lambda d: [d[0], {**d[1], "2": [[1, 2]]}, d[2]],
     r"r.json: iteration 1: the MoE/dense layer set changes between iterations.*layer 2"),
    (lambda d: [d[0], d[1], {**d[2], "1": None}],
     r"r.json: iteration 2: the MoE/dense layer set changes between iterations.*layer 1"),
    (lambda d: [{**d[0], "2": [[1, 2], [1, 2], [1, 2]]}, *d[1:]],
     r"r.json: iteration 0: MoE layers \[1, 2, 3\] differ from tiny's \[1, 3\] \(layer 2 is MoE"),
    (lambda d: [], r"r.json: no iterations"),
])
def test_bad_request_is_named(tiny, mutate, message):
    raw = json.dumps(mutate(GOOD), indent=4).encode()
    with pytest.raises(TraceError, match=message):
        parse_request(raw, "r.json", tiny)


def test_invalid_json_and_merged_numbers_are_errors():
    with pytest.raises(TraceError, match=r"r.json: not valid JSON"):
        parse_request(b'[{"0": [[1 2]]}]', "r.json")
    with pytest.raises(TraceError, match=r"r.json: not valid JSON"):
        parse_request(b'[{"0": [[01]]}]', "r.json")
    # Whitespace inside a key (either side of the digits) is not stripped into "0".
    for raw in (b'[{"0 ": [[1]]}]', b'[{" 0": [[1]]}]', b'[{"0": [[1]], " 1 ": [[2]]}]'):
        assert _fast_parse(raw) is None
        with pytest.raises(TraceError, match=r"r.json: iteration 0: layer keys must be"):
            parse_request(raw, "r.json")
    assert _fast_parse(b'[ {\n "0" : [ [ 1 , 2 ] ] } ]')[2].tolist() == [[[1, 2]]]


def test_layer_set_change_between_files_is_named(tmp_path):
    write(tmp_path / "s" / "0.json", GOOD)
    other = request(prefill=[[[0, 1]], [[1, 2]]], decode=[], moe=(1, 2))
    write(tmp_path / "s" / "1.json", other)
    with pytest.raises(TraceError, match=r"s/1.json: iteration 0: MoE layers \[1, 2\] differ "
                                         r"from the first request .*0.json.*'s \[1, 3\]"):
        open_batch(tmp_path / "s")


def test_folder_order_is_numeric_then_subfolders_by_name(tmp_path, tiny):
    for subject, names in (("b", ["10", "2", "1"]), ("a", ["3", "x"])):
        for name in names:
            write(tmp_path / "bench" / subject / f"{name}.json", GOOD)
    write(tmp_path / "bench" / "0.json", GOOD)
    store = open_batch(tmp_path / "bench", model=tiny)
    assert store.request_ids == ["0.json", "a/3.json", "a/x.json", "b/1.json", "b/2.json",
                                 "b/10.json"]


def test_gzip_archive_and_list_sources(tmp_path, tiny):
    steps = request(prefill=[[[1, 2]], [[3, 4]]], decode=[[[5, 6], [7, 1]]])
    write(tmp_path / "subj" / "5.json", steps)
    (tmp_path / "subj" / "12.json.gz").write_bytes(gzip.compress(json.dumps(GOOD).encode()))
    with tarfile.open(tmp_path / "subj.tar.gz", "w:gz") as archive:
        archive.add(tmp_path / "subj", arcname="subj")
    from_dir = open_batch(tmp_path / "subj", model=tiny)
    from_tar = open_batch(tmp_path / "subj.tar.gz", model=tiny)
    assert from_dir.request_ids == ["5.json", "12.json.gz"]
    assert from_tar.request_ids == ["subj/5.json", "subj/12.json.gz"]
    assert np.array_equal(from_dir.ids, from_tar.ids)
    listing = tmp_path / "batch.txt"
    listing.write_text("# my order\nsubj/12.json.gz\n\nsubj/5.json\n")
    listed = open_batch(listing, model=tiny)
    assert listed.request_ids == ["subj/12.json.gz", "subj/5.json"]
    assert listed.prefill_len.tolist() == [3, 1] and listed.decode_len.tolist() == [2, 1]
    # a request listed twice would become two requests with one id: refused, naming both lines
    listing.write_text("subj/12.json.gz\n\nsubj/5.json\nsubj/12.json.gz\n")
    with pytest.raises(TraceError, match=r"batch.txt:4: 'subj/12.json.gz' already listed on "
                                         r"line 1; expected each request once"):
        open_batch(listing, model=tiny)
    # entries may name files anywhere: relative with '..' or absolute (issue 21 point 15);
    # one file under two spellings is still one request listed twice
    (tmp_path / "lists").mkdir()
    elsewhere = tmp_path / "lists" / "batch.txt"
    elsewhere.write_text(f"../subj/5.json\n{tmp_path / 'subj' / '12.json.gz'}\n")
    across = open_batch(elsewhere, model=tiny)
    assert across.request_ids == ["../subj/5.json", str(tmp_path / "subj" / "12.json.gz")]
    assert across.prefill_len.tolist() == [1, 3] and across.decode_len.tolist() == [1, 2]
    assert np.array_equal(across.ids, from_dir.ids)   # the folder's order: 5, then 12
    elsewhere.write_text(f"../subj/5.json\n{tmp_path / 'subj' / '5.json'}\n")
    with pytest.raises(TraceError, match=r"batch.txt:2: .* already listed on line 1"):
        open_batch(elsewhere, model=tiny)
    listing.write_text("subj/7.json\n")
    with pytest.raises(FileNotFoundError, match=r"batch.txt:1: no such request file: subj/7"):
        open_batch(listing)


def test_no_model_infers_shape_and_expert_count(tmp_path):
    write(tmp_path / "0.json", GOOD)
    store = open_batch(tmp_path / "0.json")
    assert store.model == "" and store.num_experts == 8 and store.top_k == 2
    assert store.moe_layers.tolist() == [1, 3] and store.num_layers == 4


rows = st.lists(st.integers(0, 300), min_size=2, max_size=2)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(rows, min_size=0, max_size=4), min_size=2, max_size=2),
       st.lists(st.lists(rows, min_size=2, max_size=2), max_size=3),
       st.sampled_from([None, 1, 4]))
def test_fast_and_checked_parse_agree(prefill, decode, indent):
    tokens = min(len(p) for p in prefill)
    data = request([p[:tokens] for p in prefill], decode)
    raw = json.dumps(data, indent=indent).encode()
    checked = _checked_parse(raw, "r", _Expect())
    fast = _fast_parse(raw)
    if tokens or decode:
        assert fast is not None
    if fast is not None:
        assert fast[:2] == checked[:2]
        assert np.array_equal(fast[2], checked[2]) and np.array_equal(fast[3], checked[3])


def test_shared_llama4_order_matches_the_artefact(llama4_traces, reference_dir):
    expected = (reference_dir / "artefact-llama4-mmlu-235.order").read_text().split()
    store = open_batch(llama4_traces / "mmlu")
    assert store.request_ids == expected
    assert store.model == "llama4-maverick"
    assert store.moe_layers.tolist() == list(range(1, 48, 2)) and store.top_k == 1
    assert [Path(p).name for p in store.source_paths[:3]] == ["0.json", "1.json", "2.json"]
    # README: 1-59 prompt tokens; SPEC: decode kept to 127 steps, the 128th set aside.
    assert store.prefill_len.min() >= 1 and store.prefill_len.max() <= 59
    assert store.decode_len.max() == 127
    assert store.cut_steps == store.cut_requests == int(np.sum(store.decode_len == 127))


def _outcome(raw, parse_fast):
    """``parse_request``'s result (arrays as lists) or its error message, with the fast path
    on or switched off (the checked path alone)."""
    from hwmodel.traces import reader
    saved = reader._fast_parse
    if not parse_fast:
        reader._fast_parse = lambda raw: None
    try:
        parsed = parse_request(raw, "r.json")
    except TraceError as error:
        return str(error)
    finally:
        reader._fast_parse = saved
    return (parsed.num_layers, parsed.moe_layers, parsed.prefill.tolist(), parsed.decode.tolist())


@st.composite
def _requests(draw):
    """A random request of any shape: layers, MoE set, top-k, prompt and decode lengths, ids
    of one to six digits (past 65,535 too)."""
    num_layers = draw(st.integers(1, 6))
    moe = tuple(sorted(draw(st.sets(st.integers(0, num_layers - 1), min_size=1))))
    top_k = draw(st.integers(1, 4))
    ids = st.lists(st.integers(0, 70_000) | st.integers(0, 300), min_size=top_k,
                   max_size=top_k)
    tokens = draw(st.integers(0, 4))
    prefill = [[draw(ids) for _ in range(tokens)] for _ in moe]
    decode = draw(st.lists(st.lists(ids, min_size=len(moe), max_size=len(moe)), max_size=4))
    return request(prefill, decode, num_layers=num_layers, moe=moe), tokens


@settings(max_examples=150, deadline=None)
@given(_requests(), st.sampled_from([4, None, 0, 1, 2, "compact"]))
def test_layout_fast_path_equals_the_checked_path_on_random_shapes(case, indent):
    data, tokens = case
    raw = (json.dumps(data, separators=(",", ":")) if indent == "compact"
           else json.dumps(data, indent=indent)).encode()
    fast = _fast_parse(raw)
    if tokens or len(data) > 1:     # the dataset's layout, any whitespace: always taken
        assert fast is not None
    assert _outcome(raw, True) == _outcome(raw, False)


_MUTATIONS = st.sampled_from(list(b'0123456789 \n"[]{},:-.nulxe'))


@settings(max_examples=300, deadline=None)
@given(_requests(), st.sampled_from([4, None]), st.data())
def test_malformed_requests_give_the_checked_paths_result_or_message(case, indent, data):
    # One byte replaced, inserted or deleted anywhere: whatever the fast path accepts, the
    # checked path parses to the same arrays; everything else gets the checked path's message.
    raw = bytearray(json.dumps(case[0], indent=indent).encode())
    where = data.draw(st.integers(0, len(raw) - 1))
    change = data.draw(st.sampled_from(["replace", "insert", "delete"]))
    if change == "delete":
        del raw[where]
    else:
        raw[where:where + (change == "replace")] = bytes([data.draw(_MUTATIONS)])
    assert _outcome(bytes(raw), True) == _outcome(bytes(raw), False)


@settings(max_examples=100, deadline=None)
@given(_requests(), st.sampled_from([4, None]), st.data())
def test_wrong_layer_keys_give_the_checked_paths_message(case, indent, data):
    # One key of one iteration renamed (to a repeated, missing, padded or out-of-range
    # number): the fast path must not take it for the layer its place would say.
    raw = json.dumps(case[0], indent=indent).encode()
    keys = [i for i in range(len(raw) - 1) if raw[i] == ord('"')
            and raw[i + 1:i + 2].isdigit() and raw[i - 1:i] != b'"']
    at = data.draw(st.sampled_from(keys))
    end = raw.index(b'"', at + 1)
    name = data.draw(st.sampled_from(["0", "1", "7", "00", "01", "65536", "999999"]))
    mutated = raw[:at + 1] + name.encode() + raw[end:]
    assert _outcome(mutated, True) == _outcome(mutated, False)


def test_whitespace_inside_null_or_between_numbers_is_not_stripped_away():
    # Stripped, these would read as "null" and 12; as JSON they are errors.
    assert _fast_parse(b'[{"0": [[1]], "1": nu ll}]') is None
    assert _fast_parse(b'[{"0": [[1 2]]}]') is None
    assert _fast_parse(b'[{"0": [[12]], "1": null}]')[2].tolist() == [[[12]]]
    with pytest.raises(TraceError, match=r"r.json: not valid JSON"):
        parse_request(b'[{"0": [[1]], "1": nu ll}]', "r.json")


def test_shared_llama4_fast_path_takes_every_file_and_equals_the_checked_path(llama4_traces):
    for path in sorted((llama4_traces / "mmlu" / "anatomy").glob("*.json"))[:20]:
        raw = path.read_bytes()
        fast, checked = _fast_parse(raw), _checked_parse(raw, str(path), _Expect())
        assert fast is not None, path
        assert fast[:2] == checked[:2]
        assert np.array_equal(fast[2], checked[2]) and np.array_equal(fast[3], checked[3])


_WHITESPACE_RUNS = st.text(alphabet=" \t\r\n", min_size=1, max_size=3)


@settings(max_examples=200, deadline=None)
@given(_requests(), st.data())
def test_any_whitespace_between_tokens_takes_the_fast_path_with_the_checked_result(case, data):
    # Whitespace runs of every JSON kind at random places between tokens (next to a bracket,
    # brace, comma or colon): valid JSON of the same request, which the fast path must take.
    data_, tokens = case
    text = json.dumps(data_, separators=(",", ":")).encode()
    between = [i for i in range(len(text) + 1)
               if text[i - 1:i] in b"[]{},:" and i > 0 or text[i:i + 1] in b"[]{},:"]
    places = sorted(data.draw(st.lists(st.sampled_from(between), max_size=12)), reverse=True)
    raw = text
    for at in places:
        raw = raw[:at] + data.draw(_WHITESPACE_RUNS).encode() + raw[at:]
    if tokens or len(data_) > 1:
        assert _fast_parse(raw) is not None
    assert _outcome(raw, True) == _outcome(raw, False)


@settings(max_examples=200, deadline=None)
@given(_requests(), st.data())
def test_whitespace_anywhere_gives_the_checked_paths_result_or_message(case, data):
    # The same, but a run may also fall inside a key, an id or a null (``1 2``, ``" 1"``,
    # ``nu ll``): never read as the token it would be once stripped.
    text = json.dumps(case[0], separators=(",", ":")).encode()
    places = sorted(data.draw(st.lists(st.integers(0, len(text)), min_size=1, max_size=4)),
                    reverse=True)
    raw = text
    for at in places:
        raw = raw[:at] + data.draw(_WHITESPACE_RUNS).encode() + raw[at:]
    assert _outcome(raw, True) == _outcome(raw, False)


@pytest.mark.parametrize("raw", [
    b'[{"0":[[123456]]}]', b'[{"0":[[1234567]]}]', b'[{"0":[[99999999999999999999]]}]',
    b'[{"0":[[65535]]}]', b'[{"0":[[65536]]}]', b'[{"0":[[007]]}]', b'[{"0":[[0]]}]',
    b'[{"0":[[1e2]]}]', b'[{"0":[[-0]]}]', b'[{"0":[[1.0]]}]',
    b'[{"0":[]}]', b'[{"0":[[]]}]', b'[{"0":[]},{"0":[[1]]}]', b'[]', b'[{}]', b'{}',
    b'[{"0":[[1]]},{"0":[]}]', b'[{"0":null}]',
    '[{"\u0660":[[1]]}]'.encode(), '[{"0":[[1]],"\u00e9":null}]'.encode(),
    b'[{"\\u0030":[[1]]}]', b'[{"0":[["1"]]}]', '[{"0":[[1]]}]\u00a0'.encode(),
    b'\xef\xbb\xbf[{"0":[[1]]}]', b'[{"0":[[1]]}] ', b'[{"0":[[1]]}]5', b'5[{"0":[[1]]}]',
])
def test_edge_requests_give_the_checked_paths_result_or_message(raw):
    # Large and padded numbers, empty lists and objects, non-ASCII (an Arabic-Indic digit,
    # an accent, a no-break space, a byte-order mark) and an escaped key ("\u0030" is "0").
    assert _outcome(raw, True) == _outcome(raw, False)


def test_an_empty_row_is_named():
    with pytest.raises(TraceError, match=r"r.json: iteration 0, layer 0, token 0: an empty row "
                                         r"\[\]; expected at least one expert id"):
        parse_request(b'[{"0": [[]]}]', "r.json")


@settings(max_examples=100, deadline=None)
@given(_requests(), st.text(max_size=4), st.booleans(), st.data())
def test_any_text_as_a_layer_key_gives_the_checked_paths_result_or_message(case, name, ascii,
                                                                           data):
    # One key renamed to any text (non-ASCII as UTF-8 or as \u escapes, which may spell a
    # digit: "\u0031" is "1"): the fast path must not read it as the layer its place says.
    raw = json.dumps(case[0], separators=(",", ":")).encode()
    keys = [i for i in range(len(raw) - 1) if raw[i:i + 2] == b'{"' or raw[i:i + 2] == b',"']
    at = data.draw(st.sampled_from(keys)) + 1
    end = raw.index(b'"', at + 1) + 1
    mutated = raw[:at] + json.dumps(name, ensure_ascii=ascii).encode() + raw[end:]
    assert _outcome(mutated, True) == _outcome(mutated, False)
