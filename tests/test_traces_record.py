"""``hwmodel trace record``: the recorded ids are the routers' own top-k, and read back.

Tiny models with random weights are built from each architecture's config class (no download).
The expected ids are computed here, in float64 numpy, from the hidden states each router
received (captured with this test's own pre-hooks) and the router's weights: softmax or sigmoid
scores, DeepSeek's group-limited top-k and its score-correction bias, gpt-oss's top-k on biased
logits. Tests that need torch and transformers skip without the extra; the others run always.
"""

import json
import os
import re
import shlex
import subprocess
import sys
import types

import numpy as np
import pytest
from conftest import REPO, subprocess_env

from hwmodel.traces.record import read_prompts

NEEDS_EXTRA = "needs the record extra (pip install 'hwmodel[record]': torch and transformers)"


def _backend():
    if os.environ.get("HWMODEL_REQUIRE_RECORD"):
        # CI installs the extra (.ci/run): there the tests must run, not skip.
        import torch
        import transformers
        return torch, transformers
    torch = pytest.importorskip("torch", reason=NEEDS_EXTRA)
    transformers = pytest.importorskip("transformers", reason=NEEDS_EXTRA)
    return torch, transformers


# ------------------------------------------------------------------ the hand-written routers
def _softmax(logits):
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _top(scores, k):
    """Indices of the k largest scores per row, largest first."""
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def _keep_groups(group_scores, topk_group, experts_per_group):
    """Mask (tokens, experts): True for experts of each token's ``topk_group`` best groups."""
    best = _top(group_scores, topk_group)
    keep = np.zeros(group_scores.shape, bool)
    np.put_along_axis(keep, best, True, axis=1)
    return np.repeat(keep, experts_per_group, axis=1)


def softmax_topk(x, router, k, config):
    """Mixtral, Qwen2-MoE, Qwen3-MoE, OLMoE: top-k of softmax(x W^T)."""
    return _top(_softmax(x @ _weight(router).T), k)


def gpt_oss_topk(x, router, k, config):
    """gpt-oss: top-k of the biased logits (softmax comes after the choice)."""
    return _top(x @ _weight(router).T + router.bias.detach().double().numpy(), k)


def deepseek_v2_topk(x, router, k, config, group_limited=True):
    """DeepSeek-V2 group_limited_greedy: a group's score is its best expert's softmax score;
    only experts of the ``topk_group`` best groups compete."""
    scores = _softmax(x @ _weight(router).T)
    if not group_limited:
        return _top(scores, k)
    per_group = scores.shape[1] // config.n_group
    groups = scores.reshape(len(scores), config.n_group, per_group).max(axis=2)
    return _top(np.where(_keep_groups(groups, config.topk_group, per_group), scores, -1.0), k)


def deepseek_v3_topk(x, router, k, config, bias=True, group_limited=True):
    """DeepSeek-V3: sigmoid scores plus the correction bias choose; a group's score is the sum
    of its two best biased scores; only the ``topk_group`` best groups compete."""
    scores = 1.0 / (1.0 + np.exp(-(x @ _weight(router).T)))
    if bias:
        scores = scores + router.e_score_correction_bias.detach().double().numpy()
    if not group_limited:
        return _top(scores, k)
    per_group = scores.shape[1] // config.n_group
    grouped = np.sort(scores.reshape(len(scores), config.n_group, per_group), axis=2)
    groups = grouped[:, :, -2:].sum(axis=2)
    return _top(np.where(_keep_groups(groups, config.topk_group, per_group), scores, -np.inf),
                k)


def _weight(router):
    return router.weight.detach().double().numpy()


# ------------------------------------------------------------------------- tiny models
SMALL = {"vocab_size": 64, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 3,
         "num_attention_heads": 2, "num_key_value_heads": 1, "max_position_embeddings": 64}
DEEPSEEK = {"moe_intermediate_size": 8, "n_routed_experts": 8, "num_experts_per_tok": 2,
            "n_shared_experts": 1, "first_k_dense_replace": 1, "n_group": 4, "topk_group": 2,
            "kv_lora_rank": 8, "qk_rope_head_dim": 4, "qk_nope_head_dim": 4, "v_head_dim": 8}

#: name: (config class, config arguments, router path in a layer's mlp, hand router,
#: sorted: whether the router returns its top-k largest first, dense layers)
ARCHITECTURES = {
    "mixtral": ("MixtralConfig", dict(SMALL, head_dim=8, num_local_experts=6,
                                      num_experts_per_tok=2), "gate", softmax_topk, True, ()),
    "qwen2_moe": ("Qwen2MoeConfig", dict(SMALL, head_dim=8, moe_intermediate_size=8,
                                         shared_expert_intermediate_size=16, num_experts=6,
                                         num_experts_per_tok=2, mlp_only_layers=[1]),
                  "gate", softmax_topk, True, (1,)),
    "qwen3_moe": ("Qwen3MoeConfig", dict(SMALL, head_dim=8, moe_intermediate_size=8,
                                         num_experts=8, num_experts_per_tok=3,
                                         norm_topk_prob=True), "gate", softmax_topk, True, ()),
    "olmoe": ("OlmoeConfig", dict(SMALL, head_dim=8, num_experts=8, num_experts_per_tok=2),
              "gate", softmax_topk, True, ()),
    "gpt_oss": ("GptOssConfig", dict(SMALL, head_dim=8, num_local_experts=8,
                                     num_experts_per_tok=4, sliding_window=4,
                                     layer_types=["sliding_attention", "full_attention",
                                                  "sliding_attention"]),
                "router", gpt_oss_topk, True, ()),
    # One group of four: with a group scored by its best expert, the limit changes the choice
    # only when k exceeds the groups kept.
    "deepseek_v2": ("DeepseekV2Config", dict(SMALL, **(DEEPSEEK | {"topk_group": 1}),
                                             q_lora_rank=None,
                                             topk_method="group_limited_greedy"),
                    "gate", deepseek_v2_topk, False, (0,)),
    "deepseek_v3": ("DeepseekV3Config", dict(SMALL, **DEEPSEEK, q_lora_rank=8),
                    "gate", deepseek_v3_topk, False, (0,)),
}
PROMPT = (3, 14, 15, 9, 26, 5)
NEW_TOKENS = 4


def tiny_model(name):
    """A 3-layer model of architecture ``name`` with seeded random weights; router weights
    (and DeepSeek-V3's correction bias) are drawn wide so that no two scores are near a tie."""
    torch, transformers = _backend()
    config_class, arguments, _, _, _, _ = ARCHITECTURES[name]
    config = getattr(transformers, config_class)(**arguments)
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config).eval()
    with torch.no_grad():
        for router in routers(model, name).values():
            router.weight.normal_(0.0, 1.0)
            if hasattr(router, "bias") and router.bias is not None:
                router.bias.normal_(0.0, 1.0)
            if hasattr(router, "e_score_correction_bias"):
                router.e_score_correction_bias.normal_(0.0, 0.5)
    return model, config


def routers(model, name):
    """``{layer: router}`` of the MoE layers, found by this test's own knowledge of each
    architecture (not by the recorder's search)."""
    attribute, dense = ARCHITECTURES[name][2], ARCHITECTURES[name][5]
    return {index: getattr(layer.mlp, attribute) for index, layer in enumerate(model.model.layers)
            if index not in dense}


def capture_inputs(model, name):
    """``{layer: [router input of each forward pass]}``, filled by pre-hooks of this test."""
    captured = {}

    def hook_for(layer):
        def hook(module, args):
            hidden = args[0].detach().double().numpy()
            captured.setdefault(layer, []).append(hidden.reshape(-1, hidden.shape[-1]))
        return hook

    handles = [router.register_forward_pre_hook(hook_for(layer))
               for layer, router in routers(model, name).items()]
    return captured, handles


def expected_ids(model, config, name, captured, **options):
    """(tokens, moe, k) of the hand-written router over every captured forward pass."""
    hand, k = ARCHITECTURES[name][3], config.num_experts_per_tok
    columns = [hand(np.concatenate(captured[layer]), router, k, config, **options)
               for layer, router in sorted(routers(model, name).items())]
    return np.stack(columns, axis=1)


def record(name, prompt=PROMPT, new_tokens=NEW_TOKENS, stop_ids=()):
    from hwmodel.traces.record import Recorder
    model, config = tiny_model(name)
    captured, handles = capture_inputs(model, name)
    with Recorder(model) as recorder:
        request = recorder.record(prompt, new_tokens, stop_ids, where=name)
    for handle in handles:
        handle.remove()
    return model, config, captured, recorder, request


# ------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_recorded_ids_are_the_routers_top_k(name):
    model, config, captured, recorder, request = record(name)
    dense = ARCHITECTURES[name][5]
    assert recorder.num_layers == 3
    assert recorder.moe_layers == tuple(i for i in range(3) if i not in dense)
    assert request.prefill.shape == (len(PROMPT), 3 - len(dense), config.num_experts_per_tok)
    assert request.decode.shape == (NEW_TOKENS, 3 - len(dense), config.num_experts_per_tok)
    recorded = np.concatenate([request.prefill, request.decode])
    expected = expected_ids(model, config, name, captured)
    if ARCHITECTURES[name][4]:
        # Sorted routers: the recorded order is the router's, largest score first.
        np.testing.assert_array_equal(recorded, expected)
    else:
        # DeepSeek's routers take top-k with sorted=False: the same set per token and layer.
        np.testing.assert_array_equal(np.sort(recorded, axis=2), np.sort(expected, axis=2))


@pytest.mark.parametrize("name", ["deepseek_v2", "deepseek_v3"])
def test_deepseek_group_limit_and_bias_change_the_choice(name):
    """The hand routers' group limit and bias matter on these tokens, so a recorder that
    recomputed plain top-k (or dropped the bias) would fail the test above."""
    model, config, captured, _, request = record(name)
    recorded = np.sort(np.concatenate([request.prefill, request.decode]), axis=2)
    plain = np.sort(expected_ids(model, config, name, captured, group_limited=False), axis=2)
    assert np.any(plain != recorded)
    if name == "deepseek_v3":
        unbiased = np.sort(expected_ids(model, config, name, captured, bias=False), axis=2)
        assert np.any(unbiased != recorded)


def test_requests_round_trip_through_the_reader(tmp_path):
    from hwmodel.traces import open_batch
    from hwmodel.traces.record import check_batch, write_request
    requests = []
    for index, name in enumerate(["deepseek_v3", "deepseek_v3"]):
        prompt = PROMPT[index:]
        _, _, _, recorder, request = record(name, prompt=prompt, new_tokens=2 + index)
        write_request(request, tmp_path / f"{index}.json", recorder.num_layers,
                      recorder.moe_layers)
        requests.append(request)
    check_batch(tmp_path, 2, recorder.num_experts)
    first = json.loads((tmp_path / "0.json").read_text())
    assert len(first) == 1 + 2                       # the prefill, then two decode steps
    assert first[0]["0"] is None and first[1]["0"] is None      # dense layer 0
    assert len(first[0]["1"]) == len(PROMPT) and len(first[1]["1"]) == 1
    store = open_batch(tmp_path)
    assert len(store) == 2 and store.top_k == 2
    assert store.moe_layers.tolist() == [1, 2]
    for index, request in enumerate(requests):
        np.testing.assert_array_equal(store.prefill_ids(index), request.prefill)
        np.testing.assert_array_equal(store.decode_ids(index), request.decode)


def test_an_end_token_stops_the_request_before_it_is_fed_back():
    _, _, _, _, free = record("mixtral", new_tokens=5)
    stop = free.generated_ids[2]
    assert stop not in free.generated_ids[:2]
    _, _, _, _, stopped = record("mixtral", new_tokens=5, stop_ids=(stop,))
    # Tokens 0 and 1 are fed back (decode steps 1 and 2); token 2 ends the request.
    assert len(stopped.decode) == 2 and stopped.generated_ids == free.generated_ids[:3]
    np.testing.assert_array_equal(stopped.decode, free.decode[:2])


# ------------------------------------------------------------------ the command line
@pytest.fixture
def saved_model(tmp_path):
    """A tiny DeepSeek-V3 saved with a word-level tokenizer, as a local model folder."""
    _, transformers = _backend()
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace
    model, _ = tiny_model("deepseek_v3")
    folder = tmp_path / "tiny-deepseek-v3"
    model.save_pretrained(folder)
    vocab = {"[UNK]": 0, **{f"w{i}": i for i in range(1, 64)}}
    words = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    words.pre_tokenizer = Whitespace()
    transformers.PreTrainedTokenizerFast(tokenizer_object=words,
                                         unk_token="[UNK]").save_pretrained(folder)
    return folder


def _main(*argv):
    from hwmodel.cli import main
    return main([str(a) for a in argv])


@pytest.mark.slow
def test_cli_records_text_and_token_id_prompts_alike(saved_model, tmp_path, capsys):
    from hwmodel.traces import open_batch
    text = tmp_path / "prompts.txt"
    text.write_text(" ".join(f"w{i}" for i in PROMPT) + "\n\nw7 w8\n")
    ids = tmp_path / "prompts.jsonl"
    ids.write_text(json.dumps({"input_ids": list(PROMPT)}) + "\n" + '{"input_ids": [7, 8]}\n')
    for prompts, out in ((text, "a"), (ids, "b")):
        assert _main("trace", "record", saved_model, tmp_path / out, "--prompts", prompts,
                     "--max-new-tokens", 3, "--ignore-eos", "--quiet") == 0
    assert "2 requests, 3 layers (2 MoE), top-2, 6 decode steps" in capsys.readouterr().out
    for index in range(2):
        assert ((tmp_path / "a" / f"{index}.json").read_bytes()
                == (tmp_path / "b" / f"{index}.json").read_bytes())
    # The saved model records what the in-memory one does (same weights, same ids).
    _, _, _, _, request = record("deepseek_v3", new_tokens=3)
    store = open_batch(tmp_path / "a")
    np.testing.assert_array_equal(store.prefill_ids(0), request.prefill)
    np.testing.assert_array_equal(store.decode_ids(0), request.decode)
    assert not list(tmp_path.glob(".*.partial"))


def _error(capsys, *argv):
    assert _main(*argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    return err


def test_cli_bad_input_is_one_line(saved_model, tmp_path, capsys):
    ids = tmp_path / "p.jsonl"
    ids.write_text('{"input_ids": [1, 2]}\n')
    text = tmp_path / "p.txt"
    text.write_text("w1 w2\n")
    base = ("trace", "record", saved_model)
    err = _error(capsys, *base, tmp_path / "o1", "--prompts", ids, "--router", "*.nothing",
                 "--quiet")
    assert "'*.nothing' matches no module under model.layers.N" in err
    err = _error(capsys, *base, tmp_path / "o1", "--prompts", ids, "--router",
                 "model.layers.*.mlp.*", "--quiet")
    # Layer 0 is the dense one: its MLP's projections all match the glob.
    assert "layer 0 has two routers, model.layers.0.mlp.gate_proj and " \
        "model.layers.0.mlp.up_proj; expected one" in err
    select = tmp_path / "shift.py"
    select.write_text("def ids(module, args, output):\n    return output[2] + 100\n")
    err = _error(capsys, *base, tmp_path / "o2", "--prompts", ids, "--select",
                 f"{select}:ids", "--quiet")
    assert "iteration 0, layer 1, token 0: expert id 10" in err and "expected 0..7" in err
    # No output folder, not even a partial one, after an error.
    assert not (tmp_path / "o2").exists() and not list(tmp_path.glob(".o2*"))
    (tmp_path / "model-only").mkdir()
    for item in saved_model.iterdir():
        if "token" not in item.name:
            (tmp_path / "model-only" / item.name).write_bytes(item.read_bytes())
    err = _error(capsys, "trace", "record", tmp_path / "model-only", tmp_path / "o3",
                 "--prompts", text, "--quiet")
    assert f"{text}:1: a text prompt, but the model folder has no tokenizer" in err


def test_bad_prompt_lines_name_file_and_line(tmp_path):
    bad = tmp_path / "p.jsonl"
    bad.write_text('"fine"\n\n{"input_ids": [1, -2]}\n')
    with pytest.raises(ValueError, match=rf"^{bad}:3: .*'input_ids' \(a non-empty list"):
        read_prompts(bad)
    bad.write_text('{"prompt": "a"\n')
    with pytest.raises(ValueError, match=rf"^{bad}:1: invalid JSON"):
        read_prompts(bad)
    empty = tmp_path / "p.txt"
    empty.write_text("\n  \n")
    with pytest.raises(ValueError, match="holds no prompts"):
        read_prompts(empty)
    empty.write_text("one\ntwo\nthree\n")
    assert [p.text for p in read_prompts(empty, limit=2)] == ["one", "two"]


def test_other_commands_do_not_import_torch():
    code = ("import sys, hwmodel, hwmodel.cli, hwmodel.traces, hwmodel.traces.record\n"
            "hwmodel.cli.build_parser()\n"
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True, env=subprocess_env())


def test_missing_extra_is_one_line_with_the_install_command(tmp_path):
    prompts = tmp_path / "p.txt"
    prompts.write_text("hello\n")
    # torch made unimportable, as on an install without the extra.
    code = ("import sys; sys.modules['torch'] = None\n"
            "from hwmodel.cli import main\n"
            f"sys.exit(main(['trace', 'record', 'some/model', {str(tmp_path / 'o')!r}, "
            f"'--prompts', {str(prompts)!r}]))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=subprocess_env(), check=False)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "hwmodel: error: hwmodel trace record needs torch and transformers (torch is not "
        "installed); install them with: pip install 'hwmodel[record]'")
    assert not (tmp_path / "o").exists()


def test_chat_template_wraps_text_prompts(saved_model, tmp_path):
    from transformers import AutoTokenizer

    from hwmodel.cli.trace_record import token_ids
    from hwmodel.traces.record import Prompt
    tokenizer = AutoTokenizer.from_pretrained(saved_model)
    tokenizer.chat_template = "w9 {% for m in messages %}{{ m['content'] }}{% endfor %} w10"
    prompt = Prompt(where="x", text="w1 w2")
    assert token_ids(prompt, tokenizer, chat=False) == [1, 2]
    assert token_ids(prompt, tokenizer, chat=True) == [9, 1, 2, 10]


def test_dataset_prompts_read_the_column(monkeypatch):
    from hwmodel.traces.record import dataset_prompts

    class Split(list):
        """A datasets split: rows by index, and the column names."""
        column_names = ("question", "answer")

    calls = []

    def load_dataset(name, config, split):
        calls.append((name, config, split))
        return Split({"question": f"q{i}", "answer": i} for i in range(3))

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    prompts = dataset_prompts("org/mmlu", "test", "question", "all", limit=2)
    assert calls == [("org/mmlu", "all", "test")]
    assert [(p.where, p.text) for p in prompts] == [("org/mmlu[test][0]", "q0"),
                                                    ("org/mmlu[test][1]", "q1")]
    with pytest.raises(ValueError, match="no column 'prompt'; expected one of question, answer"):
        dataset_prompts("org/mmlu", "test", "prompt")
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(ValueError, match="--dataset needs the datasets package"):
        dataset_prompts("org/mmlu", "test", "question")


@pytest.mark.slow
def test_docs_example_runs(tmp_path, monkeypatch, capsys):
    """docs/traces.md "Record your own traces": the Python block, then the first shell block's
    commands, print what the docs say."""
    _backend()
    docs = (REPO / "docs" / "traces.md").read_text()
    section = docs[docs.index("## Record your own traces"):]
    section = section[:section.index("\n## ", 1)]
    python = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)[0]
    shell = re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)[1]
    monkeypatch.chdir(tmp_path)
    exec(compile(python, "docs/traces.md", "exec"), {})  # noqa: S102 (running the docs is the test)
    for line in shell.strip().splitlines():
        argv = shlex.split(line)
        assert argv[0] == "hwmodel"
        assert _main(*argv[1:], *(["--quiet"] if argv[2] == "record" else [])) == 0
    out = capsys.readouterr().out
    assert "tiny-ds3-trace: 2 requests, 3 layers (2 MoE), top-2, 16 decode steps" in out
    assert json.loads((tmp_path / "tiny-ds3-trace" / "1.json").read_text())[0]["0"] is None
