"""Model presets (SPEC section 4): shapes, sizes, utilisation table, inference from trace paths."""

import pytest

from hwmodel.config import ConfigError
from hwmodel.models import MODEL_PRESETS, MoEModel, load_model, model_from_path

# SPEC section 4, copied by hand: layers, MoE layers, experts, top-k, bytes per expert.
SPEC_TABLE = {
    "deepseek-v3": (61, 58, 256, 8, 88_080_384),
    "qwen3-235b": (94, 94, 128, 8, 37_748_736),
    "kimi-k2": (61, 60, 384, 8, 88_080_384),
    "llama4-maverick": (48, 24, 128, 1, 251_658_240),
    "deepseek-v2-lite": (27, 26, 64, 6, 17_301_504),
    # Not in SPEC: the traces README (24/24/60/4) and the HF config (2048 x 1408, 3 matrices).
    "qwen1.5-moe-a2.7b": (24, 24, 60, 4, 3 * 2048 * 1408 * 2),
    # Not in SPEC section 4: openai/gpt-oss-20b config.json (24 layers all MoE, 32 experts,
    # top-4, hidden 2880, intermediate 2880), BF16 x 3 matrices by the presets' convention.
    "gpt-oss-20b": (24, 24, 32, 4, 49_766_400),
}


@pytest.mark.parametrize("name", MODEL_PRESETS)
def test_preset_matches_spec_table(name):
    model = load_model(name)
    layers, moe, experts, top_k, expert_bytes = SPEC_TABLE[name]
    assert (model.num_layers, len(model.moe_layers), model.num_experts, model.top_k) == \
        (layers, moe, experts, top_k)
    assert model.expert_bytes == expert_bytes
    assert model.slice_bytes * 3 == expert_bytes
    assert model.name == name


def test_moe_layer_sets_follow_spec():
    assert load_model("deepseek-v3").moe_layers == tuple(range(3, 61))
    assert load_model("llama4-maverick").moe_layers == tuple(range(1, 48, 2))
    assert load_model("kimi-k2").moe_layers[0] == 1
    assert load_model("qwen3-235b").moe_layers == tuple(range(94))


def test_utilisation_buckets_are_inclusive_upper_bounds():
    ds = load_model("deepseek-v3")
    assert [ds.utilisation(t) for t in (1, 128, 129, 256, 257, 512, 1024, 1025)] == \
        [0.50, 0.50, 0.53, 0.53, 0.68, 0.68, 0.70, 0.69]
    llama = load_model("llama4-maverick")
    assert [llama.utilisation(t) for t in (256, 300, 1000, 5000)] == [0.65, 0.72, 0.70, 0.65]
    qwen = load_model("qwen3-235b")
    assert [qwen.utilisation(t) for t in (100, 200, 3000, 9999)] == [0.70, 0.60, 0.71, 0.70]
    assert load_model("kimi-k2").compute_utilisation == ds.compute_utilisation
    bounds = [max_tokens for max_tokens, _ in ds.compute_utilisation]
    assert bounds == [128, 256, 512, 1024, None]


def test_model_inferred_from_trace_path():
    path = ("x/profiling_result/meta-llama/Llama-4-Maverick-17B-128E-Instruct/mmlu/"
            "anatomy/100.json")
    assert model_from_path(path) == "llama4-maverick"
    assert model_from_path("a/deepseek-ai/DeepSeek-R1/gsm8k/main/0.json") == "deepseek-v3"
    assert model_from_path("a/qwen/qwen3-235b-a22b/x.json") == "qwen3-235b"
    assert model_from_path("a/someone/unknown/x.json") is None


def test_user_yaml_and_bad_values_are_reported(tmp_path):
    good = tmp_path / "tiny.yaml"
    good.write_text("model:\n  name: tiny\n  num_layers: 4\n  moe_layers: [1, 3]\n"
                    "  num_experts: 8\n  top_k: 2\n  hidden_dim: 16\n  expert_ffn_dim: 32\n")
    model = load_model(good)
    assert isinstance(model, MoEModel) and model.expert_bytes == 3 * 16 * 32 * 2
    bad = tmp_path / "bad.yaml"
    bad.write_text(good.read_text().replace("[1, 3]", "[1, 4]"))
    with pytest.raises(ConfigError, match=r"bad.yaml.*moe_layers must lie in 0..3"):
        load_model(bad)
    bad.write_text(good.read_text().replace("top_k: 2", "top_k: 9"))
    with pytest.raises(ConfigError, match=r"top_k \(9\) must not exceed num_experts \(8\)"):
        load_model(bad)
    bad.write_text(good.read_text() + "  experts: 3\n")
    with pytest.raises(ConfigError, match=r"model.experts: unknown key"):
        load_model(bad)
    with pytest.raises(ConfigError, match="unknown model preset 'gpt'"):
        load_model("gpt")
