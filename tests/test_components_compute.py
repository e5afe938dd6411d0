"""Compute model (SPEC section 6): one GEMM per utilisation bucket of every model preset, at the
bucket boundaries, against ceil(2 x hidden x ffn x tokens / (peak x u))."""

from fractions import Fraction
from math import ceil

import pytest

from hwmodel.components.compute import Compute
from hwmodel.models import MODEL_PRESETS, load_model
from hwmodel.params import ComputeParams

# The artefact's utilisation tables as SPEC section 6 lists them: (max tokens, u); None = rest.
DEEPSEEK = ((128, "0.50"), (256, "0.53"), (512, "0.68"), (1024, "0.70"), (None, "0.69"))
SPEC_TABLES = {
    "deepseek-v3": DEEPSEEK,
    "kimi-k2": DEEPSEEK,
    "qwen3-235b": ((128, "0.70"), (256, "0.60"), (512, "0.70"), (1024, "0.70"),
                   (2048, "0.69"), (4096, "0.71"), (None, "0.70")),
    "llama4-maverick": ((256, "0.65"), (512, "0.72"), (1024, "0.70"), (None, "0.65")),
    # no artefact table: the presets use deepseek's buckets as a stand-in (their notes say so)
    "deepseek-v2-lite": DEEPSEEK,
    "qwen1.5-moe-a2.7b": DEEPSEEK,
    "gpt-oss-20b": DEEPSEEK,
}
SHAPES = {  # hidden, expert ffn (SPEC section 4; qwen1.5 from its HF config)
    "deepseek-v3": (7168, 2048), "kimi-k2": (7168, 2048), "qwen3-235b": (4096, 1536),
    "llama4-maverick": (5120, 8192), "deepseek-v2-lite": (2048, 1408),
    "qwen1.5-moe-a2.7b": (2048, 1408), "gpt-oss-20b": (2880, 2880),
}


def _cases():
    for model in MODEL_PRESETS:
        previous = 0
        for max_tokens, u in SPEC_TABLES[model]:
            first = previous + 1
            last = max_tokens if max_tokens is not None else previous + 5000
            for tokens in sorted({first, (first + last) // 2, last}):
                yield model, tokens, u
            previous = max_tokens if max_tokens is not None else previous


def test_every_preset_has_a_spec_table():
    assert set(MODEL_PRESETS) == set(SPEC_TABLES)


@pytest.mark.parametrize(("model", "tokens", "u"), list(_cases()))
def test_slice_gemm_time_per_bucket(model, tokens, u):
    m = load_model(model)
    hidden, ffn = SHAPES[model]
    assert (m.hidden_dim, m.expert_ffn_dim) == (hidden, ffn)
    assert m.utilisation(tokens) == float(u)
    exact = Fraction(2 * hidden * ffn * tokens) / (Fraction(10**6) * Fraction(u))
    assert Compute(params=ComputeParams()).slice_latency_ns(tokens, m) == ceil(exact)


def test_hand_worked_gemms():
    compute = Compute(params=ComputeParams())
    llama = load_model("llama4-maverick")
    # one token: 2 x 5120 x 8192 = 83,886,080 flop at 650,000 flop/ns -> 129.06 -> 130 ns
    assert compute.slice_latency_ns(1, llama) == 130
    # 257 tokens fall in the 0.72 bucket: 21,558,722,560 / 720,000 = 29,942.67 -> 29,943 ns
    assert compute.slice_latency_ns(257, llama) == 29_943
    # 256 tokens still use 0.65: 21,474,836,480 / 650,000 = 33,038.21 -> 33,039 ns
    assert compute.slice_latency_ns(256, llama) == 33_039
    assert compute.slice_latency_ns(0, llama) == 0
    fast = Compute(params=ComputeParams(peak_TFLOPS=4500))   # dojo-enhanced
    assert fast.slice_latency_ns(1, llama) == ceil(Fraction(83_886_080, 4_500_000 * 65 // 100))
    with pytest.raises(ValueError, match="tokens"):
        compute.slice_latency_ns(-1, llama)
