"""Synthesis for top-k > 1 checked on real gpt-oss-20b requests (issue 19 point 3).

Fits on the even-numbered requests of the gpt-oss store (batch order), synthesises as many
requests with each of :data:`SEEDS` (one draw of 50 requests is noisy: the leader fit's slot-0
skew spans 6.5-7.1 over seeds 0-5), and prints the mean over the seeds of the headline statistics (:data:`hwmodel.traces.analysis.HEADLINE`) of the
odd-numbered half (held out) next to: the leader fit (``fit_leader``, what ``trace synth --like``
a top-k > 1 store uses), today's per-slot fit (``fit``) on the same half, and the Llama-4 fit
(the shared Maverick excerpt) reshaped to gpt-oss-20b. Usage::

    python benchmarks/topk_synth_check.py [GPT_OSS_SOURCE_OR_STORE] [LLAMA4_SOURCE]
"""

import sys

import numpy as np

from hwmodel.traces import open_batch
from hwmodel.traces.analysis import HEADLINE, headline
from hwmodel.traces.synth import fit, fit_leader, reshape, sample

SHARED = "../shared/traces"
GPT_OSS = f"{SHARED}/gpt-oss-20b/mmlu_validation"
LLAMA4 = f"{SHARED}/profiling_result/meta-llama/Llama-4-Maverick-17B-128E-Instruct/mmlu"

#: Largest distance from the held-out half the leader fit is claimed to keep, per statistic:
#: absolute for shares, relative (a fraction of the real value) for the ratios.
TOLERANCE = {"layer_coverage": ("abs", 0.16), "token_coverage": ("abs", 0.10),
             "token_diagonal": ("abs", 0.04), "hottest_over_mean": ("rel", 0.15),
             "slot0_hottest_over_mean": ("rel", 0.15), "pairs_top10_share": ("abs", 0.08),
             "pairs_brightest": ("rel", 0.30)}


def halves(store):
    """(fitted half, held-out half): even and odd requests in batch order."""
    return store.select(np.arange(0, len(store), 2)), store.select(np.arange(1, len(store), 2))


def within(name, value, real) -> bool:
    kind, bound = TOLERANCE[name]
    return abs(value - real) <= (bound if kind == "abs" else bound * abs(real))


SEEDS = (0, 1, 2, 3, 4)
"""Seeds of the synthetic batches; each statistic is their mean."""


def mean_headline(synth, count, seeds=SEEDS):
    """The headline statistics of ``count`` requests drawn from ``synth``, mean over seeds."""
    each = [headline(sample(synth, count, seed=seed)) for seed in seeds]
    return {name: float(np.mean([h[name] for h in each])) for name in each[0]}


def rows(gpt_oss, llama4=None, seeds=SEEDS):
    """``{label: headline}`` of the held-out half and of each synthetic fit (mean over
    ``seeds``; the Llama-4 fit is reshaped with the first seed)."""
    fitted_on, held_out = halves(gpt_oss)
    count = len(held_out)
    table = {"real (held-out half)": headline(held_out),
             "leader fit (new)": mean_headline(fit_leader(fitted_on), count, seeds),
             "per-slot fit (today's)": mean_headline(fit(fitted_on), count, seeds)}
    if llama4 is not None:
        synth = reshape(fit(llama4), gpt_oss.model, seed=seeds[0])
        table["Llama-4 fit -> gpt-oss-20b"] = mean_headline(synth, count, seeds)
    return table


def main(argv):
    gpt_oss = open_batch(argv[0] if argv else GPT_OSS)
    llama4 = open_batch(argv[1] if len(argv) > 1 else LLAMA4)
    table = rows(gpt_oss, llama4)
    labels = list(table)
    print("| statistic | " + " | ".join(labels) + " |")
    print("|---|" + "---|" * len(labels))
    real = table[labels[0]]
    for name in HEADLINE:
        kind, bound = TOLERANCE[name]
        cells = [f"{table[label][name]:.3f}" + ("" if label == labels[0] else
                                                 (" ok" if within(name, table[label][name],
                                                                  real[name]) else " **out**"))
                 for label in labels]
        tol = f"±{bound}" if kind == "abs" else f"±{bound:.0%}"
        print(f"| {name} ({tol}) | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
