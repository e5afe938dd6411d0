"""Physical mode: each idealisation of the paper's wafer becomes a switch (issue 17).

A switch is a boolean field of :class:`~hwmodel.system.replay.ReplayParams`, off by default (the
paper), so it also works as a sweep axis (``params: {hbm_budget: [false, true]}``). ``hwmodel
replay --mode physical`` turns on every switch of :data:`PHYSICAL_SWITCHES`. Each result records
the switches that were on (``ReplayResult.physical``; the CSV's ``physical`` column, the JSON's
``physical`` key), so that no physical result can be mistaken for a paper-mode one.

In paper mode the run still checks what a physical wafer could hold and, when it could not,
adds one line to the result's ``notes`` naming the numbers and the switch that models it.
"""

from __future__ import annotations

import attrs

from .memory_budget import GB, HBMBudget, hbm_budget

__all__ = ["PHYSICAL_SWITCHES", "all_switches_on", "paper_mode_note", "run_budget",
           "switches_on"]

#: The physical switches (ReplayParams fields), each with what it models (docs/physical.md).
PHYSICAL_SWITCHES = {
    "hbm_budget": "each die's HBM holds its experts, hosted attention, dense and shared weights "
                  "and its requests' KV cache; replicas get what is left",
    "token_dispatch": "each token's activations travel from its attention die to its experts' "
                      "dies and back: counted in messages, hops and bytes",
    "shared_links": "transfers crossing a link share its bandwidth max-min fairly (rates "
                    "recomputed at each start and end) instead of holding it whole",
    "dispatch_time": "token dispatch and combine take time on the links, as all-to-all "
                     "phases before and after each MoE layer's experts",
    "attention_time": "each layer's attention reads its weights and the KV cache from HBM and "
                      "computes on its dies (roofline), before each MoE layer's routing",
    "micro_batches": "two micro-batches (alternate requests) pipelined: one's dispatch and "
                     "combine run under the other's compute",
    "prefetch": "each MoE layer's predicted successors (the layer-to-layer heatmap) are read "
                "ahead from their home dies' HBM while the layer runs, in its idle time",
}


def switches_on(params) -> tuple[str, ...]:
    """The physical switches on in ``params`` (empty: paper mode)."""
    return tuple(name for name in PHYSICAL_SWITCHES if getattr(params, name))


def all_switches_on(params):
    """``params`` with every physical switch on (``--mode physical``)."""
    return attrs.evolve(params, **dict.fromkeys(PHYSICAL_SWITCHES, True))


def _budget(replay, shape: bool) -> HBMBudget:
    return hbm_budget(replay.wafer, replay.model, replay.store, replay.home, replay.live_dies,
                      replay.workload.num_iterations, replay.params.attention_placement,
                      shape=shape)


def run_budget(replay) -> HBMBudget | None:
    """The HBM budget a run obeys (``hbm_budget`` on), else None.

    Raises
    ------
    ValueError
        The model lacks its attention shape, or a die's weights and KV cache do not fit its HBM
        (one line with the numbers).
    """
    if not replay.params.hbm_budget:
        return None
    missing = replay.model.physical_shape_missing()
    if missing:
        raise ValueError(f"hbm_budget: model {replay.model.name} has no {', '.join(missing)}; "
                         f"expected them in its YAML (see docs/physical.md)")
    budget = _budget(replay, shape=True)
    overflow = budget.overflow()
    if overflow:
        raise ValueError(f"hbm_budget: the batch ({len(replay.store)} requests) does not fit: "
                         f"{overflow}; expected fewer requests, another attention_placement "
                         f"or more HBM")
    return budget


def paper_mode_note(replay, replicas_held) -> str | None:
    """One line when a paper-mode run holds more than a physical wafer could, else None.

    Counts each die's experts, replicas (``replicas_held``, whole experts, at the run's end:
    paper-mode replicas are never dropped unless bounded) and, if the model carries its
    attention shape, its hosted weights and peak KV cache.
    """
    if replay.params.hbm_budget:
        return None
    shape = not replay.model.physical_shape_missing()
    budget = _budget(replay, shape)
    overflow = budget.overflow()
    if overflow:
        return (f"paper mode ignores the HBM: {overflow}; the hbm_budget switch (--mode "
                f"physical) refuses this batch")
    kv, _ = budget.peak()
    replicas = [int(r) * budget.expert_bytes for r in replicas_held]
    left = budget.usable - budget.fixed - kv
    over = [r - int(f) for r, f in zip(replicas, left)]
    d = max(range(len(over)), key=over.__getitem__) if over else 0
    if not over or over[d] <= 0:
        return None
    counted = ("experts, attention, dense and shared weights and KV cache" if shape
               else "experts (model has no attention shape: weights and KV cache not counted)")
    return (f"paper mode ignores the HBM: die {d} of wafer {budget.wafer} holds "
            f"{replicas[d] / GB:.2f} GB of replicas ({int(replicas_held[d])} experts) but only "
            f"{max(int(left[d]), 0) / GB:.2f} GB of its {budget.usable[d] / GB:.2f} GB usable "
            f"HBM is left after its {counted}; wafer total {sum(replicas) / GB:.2f} GB of "
            f"replicas; the hbm_budget switch (--mode physical) bounds them")
