"""Attention time: each decode step's attention reads HBM and computes on its dies
(physical switch ``attention_time``, docs/physical.md).

In the paper attention is free: each MoE layer's experts start as soon as the previous layer
ends. With this switch every layer of the model (the dense layers' too) runs its attention on
the dies that :mod:`~hwmodel.system.memory_budget` places it on (``attention_placement``), before
the next MoE layer's routing can start (the router needs attention's output). Per layer, on a
die serving a set of requests at one iteration:

* **bytes read** from the die's HBM: the layer's attention weights once, plus the KV cache of
  the served requests, ``context x KV bytes per token`` (the context of
  :func:`~hwmodel.system.memory_budget.context_tokens`: prompt at the prefill, prompt + s
  tokens at decode step s; :attr:`~hwmodel.models.MoEModel.kv_bytes_per_token_layer`);
* **operations**: the projections, ``2 x attention weights`` per token processed (the prompt at
  the prefill, one token per decode step), plus the score and value products of each (query,
  cached token) pair (:meth:`~hwmodel.models.AttentionShape.score_flops_per_pair`), causal at
  the prefill: ``q x c - q (q - 1) / 2`` pairs for q new tokens over a context of c;
* **time**, a roofline: ``max(HBM time, compute time)``, the HBM time from the die's HBM
  (:meth:`~hwmodel.components.hbm.HBM.access_latency_ns`: latency + bytes / (bandwidth x
  efficiency), the efficiency the replay's lowering uses) and the compute time from its compute
  unit at the model's GEMM utilisation for that many tokens
  (:meth:`~hwmodel.components.compute.Compute.operations_latency_ns`).

The layers between two MoE layers run one after the other: the attention of the model's
layers ``(previous MoE layer, this MoE layer]`` forms one phase before this MoE layer (layers
after the last MoE layer join the last phase). Under ``layer-sharded`` layer ``j`` runs on live
die ``j mod A`` and the phase lasts the sum of its layers' times; under ``data-parallel`` each
die runs every layer for its own requests and the phase lasts as long as the slowest die.

During its attention a die's HBM and compute unit are held: the event kernel's release time of
both resources is raised to the end of the die's attention, so that anything the kernel runs on
that die afterwards waits for it (:meth:`AttentionTime.hold`).

With ``micro_batches`` each micro-batch has its own attention phase
(:meth:`AttentionTime.micro_batch_ns`): the same roofline on the same dies for the micro-batch's
requests alone, each micro-batch reading the layer's weights again (a second pass), and the
pipeline of :mod:`~hwmodel.system.microbatch` places it as a compute phase.
"""

from __future__ import annotations

import numpy as np

from .lowering import hbm_efficiencies
from .memory_budget import context_tokens, layer_dies, request_dies

__all__ = ["ATTENTION_COUNTS", "AttentionTime", "require_attention_shape"]

#: The counters this switch adds to ``ReplayResult.counts``.
ATTENTION_COUNTS = ("attention_ns", "attention_bytes", "attention_flops")


def require_attention_shape(model) -> None:
    """Refuse a model without its attention shape (one line naming what is missing)."""
    if model.attention is None:
        raise ValueError(f"attention_time: model {model.name} has no attention; expected it "
                         f"in its YAML (see docs/physical.md)")


def new_tokens(store, iterations: int) -> np.ndarray:
    """Tokens each request's attention processes at each iteration, shape (iterations,
    requests): its prompt at the prefill, one per decode step while it decodes."""
    decoding = context_tokens(store, iterations) > 0
    tokens = np.where(decoding, 1, 0).astype(np.int64)
    tokens[0] = np.asarray(store.prefill_len, np.int64)
    return tokens


class AttentionTime:
    """The attention phases of a run, MoE layer by MoE layer.

    Parameters
    ----------
    replay : hwmodel.system.replay.Replay
    kernel : hwmodel.system.engine.LayerKernel, optional
        The run's kernel, whose dies' HBM and compute are held during attention.
    """

    def __init__(self, replay, kernel=None):
        model, store, wafer = replay.model, replay.store, replay.wafer
        require_attention_shape(model)
        self.model = model
        self.dies = wafer.dies
        self.efficiency = hbm_efficiencies(wafer, replay.hbm_efficiency)
        live = np.asarray(replay.live_dies, np.int64)
        self.live = live
        self.num_dies = wafer.num_dies
        self.sharded = replay.params.attention_placement == "layer-sharded"
        self.weight_bytes = model.attention.weight_count(model.hidden_dim) * model.dtype_bytes
        self.weight_flops = 2 * model.attention.weight_count(model.hidden_dim)
        self.pair_flops = model.attention.score_flops_per_pair()
        self.kv_bytes = model.kv_bytes_per_token_layer
        iterations = replay.workload.num_iterations
        self.context = context_tokens(store, iterations)
        self.tokens = new_tokens(store, iterations)
        self.groups = _layer_groups(np.asarray(store.moe_layers, np.int64), model.num_layers)
        # where the attention runs: the HBM budget's placement rule
        self.hosts = [layer_dies(live, group).tolist() for group in self.groups]
        self.request_die = request_dies(live, np.arange(len(store)))
        self.alike = first_alike(self.dies, self.efficiency, live)
        self.kernel = kernel
        self.totals = dict.fromkeys(ATTENTION_COUNTS, 0)
        self._iteration, self._cache = -1, {}
        self._per_die = self._busy = None

    # ---- one layer on one die -----------------------------------------------------------
    def _die_layer(self, die: int, tokens: int, context: int, pairs: int):
        """``(ns, bytes, operations)`` of one layer's attention on ``die`` serving requests of
        ``tokens`` new tokens, ``context`` cached tokens and ``pairs`` (query, key) pairs."""
        if tokens == 0:
            return 0, 0, 0
        nbytes = self.weight_bytes + context * self.kv_bytes
        flops = self.weight_flops * tokens + self.pair_flops * pairs
        unit = self.dies[die]
        hbm_ns = unit.hbm.access_latency_ns(nbytes, self.efficiency[die])
        compute_ns = unit.compute.operations_latency_ns(flops, self.model.utilisation(tokens))
        return max(hbm_ns, compute_ns), nbytes, flops

    def _iteration_layers(self, it: int, requests=None) -> list[tuple[int, int, int]]:
        """Per die id, ``(ns, bytes, operations)`` of one layer's attention at iteration
        ``it`` (layer-sharded: were the die to host the layer, for every request served;
        data-parallel: for the die's own requests), cached for the iteration. ``requests``
        (batch indices): only these requests are served (a micro-batch); None: the batch."""
        key = None if requests is None else np.asarray(requests, np.int64).tobytes()
        if it != self._iteration:
            self._iteration, self._cache = it, {}
        if key not in self._cache:
            self._cache[key] = self._serve(it, requests)
        self._per_die, self._busy = self._cache[key]
        return self._per_die

    def _serve(self, it: int, requests):
        """``(per_die, busy)`` of :meth:`_iteration_layers`, computed: busy lists the dies
        whose attention takes time."""
        q, c, on = self.tokens[it], self.context[it], self.request_die
        if requests is not None:
            q, c, on = q[requests], c[requests], on[requests]
        pairs = q * c - q * (q - 1) // 2
        per_die = [(0, 0, 0)] * self.num_dies
        if self.sharded:
            every = (int(q.sum()), int(c.sum()), int(pairs.sum()))
            for d in self.live.tolist():          # the same requests: alike dies, same times
                first = self.alike[d]
                per_die[d] = per_die[first] if first != d else self._die_layer(d, *every)
        else:
            sums = np.zeros((3, self.num_dies), np.int64)
            for row, values in zip(sums, (q, c, pairs)):
                np.add.at(row, on, values)
            for d in self.live.tolist():
                per_die[d] = self._die_layer(d, *(int(v) for v in sums[:, d]))
        return per_die, [d for d, done in enumerate(per_die) if done[0]]

    # ---- the phase before a MoE layer ---------------------------------------------------
    def _phase(self, t0: int, it: int, layer: int, requests=None):
        """``(dies, ends, bytes, operations)`` of the attention before MoE layer ``layer``
        at iteration ``it`` started at ``t0``, for ``requests`` (None: the batch): each working
        die and when its part ends."""
        per_die = self._iteration_layers(it, requests)
        dies, ends, nbytes, flops = [], [], 0, 0
        if self.sharded:                       # the group's layers in turn, on their hosts
            t = t0
            for d in self.hosts[layer]:
                ns, b, f = per_die[d]
                t += ns
                dies.append(d)
                ends.append(t)
                nbytes, flops = nbytes + b, flops + f
        else:                                  # every die its own requests, side by side
            repeat = len(self.groups[layer])
            for d in self._busy:
                ns, b, f = per_die[d]
                dies.append(d)
                ends.append(t0 + ns * repeat)
                nbytes, flops = nbytes + b * repeat, flops + f * repeat
        return dies, ends, nbytes, flops

    def layer_die_ns(self, it: int, layer: int) -> np.ndarray:
        """Per die, the attention time (ns) of the model layers that precede MoE layer
        ``layer`` (its index in the trace) at iteration ``it``: the time each die's HBM and
        compute are busy with attention before that layer's routing; shape (dies,)."""
        per_die = self._iteration_layers(it)
        out = np.zeros(self.num_dies, np.int64)
        dies = self._phase(0, it, layer)[0]
        for d in dies:
            out[d] += per_die[d][0] * (1 if self.sharded else len(self.groups[layer]))
        return out

    def phase_ns(self, it: int, layer: int) -> int:
        """How long the attention before MoE layer ``layer`` at iteration ``it`` lasts: the
        layers in turn (layer-sharded) or the slowest die (data-parallel)."""
        return max(self._phase(0, it, layer)[1], default=0)

    def phase_end(self, t0: int, it: int, layer: int) -> int:
        """When the attention before MoE layer ``layer`` at iteration ``it``, started at
        ``t0``, has ended; counts it and holds its dies' HBM and compute until then."""
        dies, ends, nbytes, flops = self._phase(t0, it, layer)
        end = max(ends, default=t0)
        self._count(end - t0, nbytes, flops)
        self.hold(dies, ends)
        return end

    def micro_batch_ns(self, it: int, layer: int, requests) -> int:
        """How long the attention before MoE layer ``layer`` at iteration ``it`` lasts for
        the micro-batch of ``requests`` (batch indices) alone; counts it.

        The phase of :meth:`phase_ns` with only these requests served: the same roofline on
        the same dies, each die reading the layer's attention weights again (a second pass:
        two micro-batches read them twice) and the KV cache of its requests in the
        micro-batch. It holds nothing in the kernel: the two micro-batches' phases are each
        timed alone and composed by :class:`~hwmodel.system.microbatch.Pipeline`, where
        this is a phase on the wafer's compute (``MicroBatches.attention``).
        """
        _, ends, nbytes, flops = self._phase(0, it, layer, requests)
        ns = max(ends, default=0)
        self._count(ns, nbytes, flops)
        return ns

    def _count(self, ns: int, nbytes: int, flops: int) -> None:
        self.totals["attention_ns"] += ns
        self.totals["attention_bytes"] += nbytes
        self.totals["attention_flops"] += flops

    def hold(self, dies: list[int], ends: list[int]) -> None:
        """Raise the release time of ``dies``' HBM and compute resources to ``ends`` in the
        run's kernel (resources: LLC ports, then HBMs, then compute units, then links)."""
        if self.kernel is None:
            return
        release, n = self.kernel.release_ns, self.num_dies
        for die, end in zip(dies, ends):
            for resource in (n + die, 2 * n + die):               # its HBM, its compute
                release[resource] = max(int(release[resource]), end)


def first_alike(dies, efficiency, live) -> list[int]:
    """Per die id, the first of the ``live`` dies whose HBM and compute unit (their types and
    parameters) and HBM ``efficiency`` are the die's: serving the same requests, the two take
    the same time (:meth:`AttentionTime._die_layer`). A die not live is its own."""
    first: dict = {}
    out = list(range(len(dies)))
    for d in np.asarray(live).tolist():
        hbm, compute = dies[d].hbm, dies[d].compute
        key = (type(hbm), hbm.params, type(compute), compute.params, float(efficiency[d]))
        out[d] = first.setdefault(key, d)
    return out


def _layer_groups(moe_layers: np.ndarray, num_layers: int) -> list[np.ndarray]:
    """The model layers whose attention precedes each MoE layer: ``(previous MoE layer, this
    MoE layer]``; the layers after the last MoE layer join its group."""
    bounds = np.concatenate([[-1], moe_layers])
    groups = [np.arange(bounds[i] + 1, bounds[i + 1] + 1, dtype=np.int64)
              for i in range(len(moe_layers))]
    groups[-1] = np.concatenate([groups[-1], np.arange(moe_layers[-1] + 1, num_layers,
                                                        dtype=np.int64)])
    return groups
