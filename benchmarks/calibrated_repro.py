"""Issue 19 point 4 at reduced size: the DeepSeek-V3 / Qwen3 / Kimi-K2 reproduction on the paper
grid's built-in synthesis against synthesis calibrated on a real top-k trace (gpt-oss-20b).

For each model, two batches of ``--batch`` requests (seed 0):

* ``builtin``: ``synthesize(None, model)``, what the paper grid (``traces: [synth]``) replays;
* ``gpt-oss``: the leader fit of the gpt-oss store (``fit_leader``; prefill tables are the
  decode ones, since gpt-oss records no prefill), reshaped to the model by popularity rank,
  with the built-in model's prompt and decode lengths, so that only the routing differs.

Each is replayed on both meshes under the five strategies (``--jobs`` processes); prints one
JSON line per run and a table of the headline ratios. Usage::

    python benchmarks/calibrated_repro.py OSS_STORE [--batch 4096] [--jobs 2] [--out DIR]
        [--models deepseek-v3 ...]
"""

import argparse
import json
import math
from pathlib import Path

import attrs

from hwmodel.cli.replay import replay_strategies
from hwmodel.traces import open_batch
from hwmodel.traces.analysis import headline
from hwmodel.traces.synth import builtin_model, fit_leader, reshape, sample, synthesize

MODELS = ("deepseek-v3", "qwen3-235b", "kimi-k2")
WAFERS = ("dojo", "tsmc-sow")
STRATEGIES = ("base", "ep", "allo", "pred", "allo+pred")


def batches(oss, model, requests, out):
    """Paths of the two stores of ``model`` (written once into ``out``)."""
    paths = {}
    for name in ("builtin", "gpt-oss"):
        path = out / f"{model}-{name}-{requests}.hwt"
        if not path.exists():
            if name == "builtin":
                store = synthesize(None, model=model, requests=requests, seed=0)
            else:
                lengths = builtin_model(model, seed=0)
                synth = attrs.evolve(reshape(fit_leader(oss), model, seed=0),
                                     prompt_lengths=lengths.prompt_lengths,
                                     decode_lengths=lengths.decode_lengths)
                store = sample(synth, requests, seed=0, source="like:gpt-oss-20b")
            store.save(path)
        paths[name] = path
    return paths


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("oss")
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", default="calibrated")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    oss = open_batch(args.oss)
    results = out / "runs.jsonl"
    done = {tuple(r["key"]) for r in map(json.loads, results.read_text().splitlines())} \
        if results.exists() else set()
    for model in args.models:
        for name, path in batches(oss, model, args.batch, out).items():
            if (model, name) in done:
                continue
            runs = replay_strategies(str(path), list(WAFERS), list(STRATEGIES), model=model,
                                     jobs=args.jobs)
            with open(results, "a") as file:
                file.write(json.dumps({"key": [model, name], "batch": args.batch, "runs": [
                    {"wafer": w, "strategy": s, "throughput": r.throughput, "hops": r.hops}
                    for (w, s), r in zip([(w, s) for w in WAFERS for s in STRATEGIES], runs,
                                         strict=True)]}) + "\n")
            print(model, name, "done", flush=True)
    table(results)


def table(results):
    """The docs/sweep.md table of ``runs.jsonl`` (ratios are means over the meshes)."""
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    print("| model | synthesis | hottest / mean | allo+pred / base | pred / base | ep / base | "
          "allo+pred / ep | pred hops, dojo |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        model, name = row["key"]
        runs = row["runs"]
        store = results.parent / f"{model}-{name}-{row.get('batch', 256)}.hwt"
        hottest = headline(open_batch(store))["hottest_over_mean"] if store.exists() else math.nan
        hops = next(r["hops"] for r in runs if r["wafer"] == "dojo" and r["strategy"] == "pred")
        print(f"| {model} | {name} | {hottest:.1f} | {_mean_ratio(runs, 'allo+pred', 'base'):.2f}"
              f" | {_mean_ratio(runs, 'pred', 'base'):.2f} | {_mean_ratio(runs, 'ep', 'base'):.2f}"
              f" | {_mean_ratio(runs, 'allo+pred', 'ep'):.2f} | {hops / 1e6:.2f} M |")


def _mean_ratio(runs, a, b):
    """Throughput of ``a`` over ``b``, averaged over the meshes."""
    values = []
    for wafer in WAFERS:
        get = {r["strategy"]: r["throughput"] for r in runs if r["wafer"] == wafer}
        values.append(get[a] / get[b] if get[b] else float("inf"))
    return sum(values) / len(values)


if __name__ == "__main__":
    main()
