"""Best and Worst oracles: built from the batch's own decode counts.

Both evaluate, per layer, the MoE time (slowest GPU) under the decode counts of a candidate set:
every non-oracle registered policy as placed from the prefill (so the oracles bound each of
them), plus Remap, Dup and EPLB placed from the decode counts themselves (what a clairvoyant
placer would do). Best takes per layer the fastest candidate, so ``Best <= policy`` for every
non-oracle policy by construction and is usually well below it; Worst takes per layer the
slowest of the candidates and of an adversarial layout (experts by decreasing decode cost
packed contiguously, the hottest E/G on one GPU), so ``Worst >= policy``.
"""

from __future__ import annotations

import attrs
import numpy as np

from ..moe_layer import gpu_times_ns
from .base import POLICIES, Placement, PlacementPolicy, register_policy, shares_from_hosts
from .simple import hosts_from_gpu_of_expert

__all__ = ["BestPolicy", "WorstPolicy", "candidate_placements"]

_CLAIRVOYANT = ("remap", "dup", "eplb")


def candidate_placements(context) -> list[Placement]:
    """The oracles' candidates (reusing ``context.extra['candidates']`` when given)."""
    given = context.extra.get("candidates")
    if given is None:
        given = {name: cls().place(context) for name, cls in POLICIES.items()
                 if not cls.oracle}
    decode_context = attrs.evolve(context, prefill_counts=context.decode_counts)
    clairvoyant = [POLICIES[name]().place(decode_context) for name in _CLAIRVOYANT]
    return [*given.values(), *clairvoyant]


def _adversarial(context) -> Placement:
    cost = context.cost(context.decode_counts)
    rank = np.argsort(np.argsort(-cost, axis=1, kind="stable"), axis=1)
    layout = rank // context.experts_per_gpu
    return Placement(shares_from_hosts(hosts_from_gpu_of_expert(layout, context.num_gpus)))


def _pick(context, candidates, choose) -> Placement:
    gpu = context.cluster.params.gpu
    layer_times = np.stack([gpu_times_ns(context.decode_counts, c.shares, context.model,
                                         gpu).max(axis=1) for c in candidates])
    chosen = choose(layer_times, axis=0)
    shares = np.stack([candidates[c].shares[layer] for layer, c in enumerate(chosen)])
    return Placement(shares)


@register_policy
class BestPolicy(PlacementPolicy):
    """Oracle: per layer the fastest candidate placement under the decode's own counts."""
    name = "best"
    oracle = True
    doc = "oracle lower bound (per layer fastest candidate, decode-informed)"

    def place(self, context):
        return _pick(context, candidate_placements(context), np.argmin)


@register_policy
class WorstPolicy(PlacementPolicy):
    """Oracle: per layer the slowest of the candidates and the adversarial hot-packed layout."""
    name = "worst"
    oracle = True
    doc = "oracle upper bound (per layer slowest candidate or hottest experts packed)"

    def place(self, context):
        return _pick(context, [*candidate_placements(context), _adversarial(context)],
                     np.argmax)
