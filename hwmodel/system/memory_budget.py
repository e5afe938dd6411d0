"""Each die's HBM, accounted byte by byte (physical mode's ``hbm_budget`` switch).

The paper's wafer holds only routed experts, plus as many replicas as prediction writes. A
physical die's HBM also holds the attention weights, dense layers and shared experts it hosts and
the KV cache of the requests it serves. :class:`HBMBudget` holds, per die:

* ``usable``: the HBM's capacity minus its reserved share (0 on a dead die);
* ``experts``: its resident (home) routed experts, all MoE layers;
* ``weights``: the attention, dense-FFN and shared-expert weights of the layers it hosts;
* ``kv``: per iteration, the KV cache of the requests it serves.

What is left (``usable - experts - weights - kv``) is the replica region, in whole experts.

Attention placement (``attention_placement``, docs/physical.md):

* ``layer-sharded``: layer ``l``'s attention (and its dense FFN or shared experts) lives on live
  die ``l mod A`` (``A`` live dies, id order); that die holds those weights and the layer's KV
  cache of every request;
* ``data-parallel``: every live die holds every layer's attention, dense and shared weights;
  request ``r`` (batch order) is served by live die ``r mod A``, which holds its whole KV cache.

KV cache of a request at iteration ``it``: its prompt at the prefill (``it = 0``); at decode step
``s`` its prompt plus ``s`` tokens while the request still decodes (``decode_len >= s``), and
nothing once it has finished (its cache is freed).
"""

from __future__ import annotations

import attrs
import numpy as np

__all__ = ["ATTENTION_PLACEMENTS", "HBMBudget", "context_tokens", "hbm_budget", "layer_dies",
           "request_dies"]

#: Where attention (and the other non-expert weights) runs: see the module docstring.
ATTENTION_PLACEMENTS = ("layer-sharded", "data-parallel")

GB = 1e9


@attrs.frozen
class HBMBudget:
    """Per-die HBM use of one (wafer, model, batch); byte arrays indexed by die id.

    Attributes
    ----------
    usable, experts, weights : ndarray of int64, shape (dies,)
    kv : ndarray of int64, shape (iterations, dies)
    expert_bytes : int
        Bytes of one routed expert (a replica is whole).
    wafer : str
        The wafer's name, for messages.
    """

    usable: np.ndarray
    experts: np.ndarray
    weights: np.ndarray
    kv: np.ndarray
    expert_bytes: int
    wafer: str = ""

    @property
    def fixed(self) -> np.ndarray:
        """Bytes that never move: resident experts and hosted weights."""
        return self.experts + self.weights

    def free(self, iteration: int) -> np.ndarray:
        """Bytes left for replicas at ``iteration`` (negative: over budget)."""
        return self.usable - self.fixed - self.kv[iteration]

    def replica_slots(self, iteration: int, cap_bytes: int | None = None) -> np.ndarray:
        """Whole replicated experts each die can hold at ``iteration`` (also under a
        ``replica_capacity_bytes`` bound ``cap_bytes``, if given)."""
        slots = np.maximum(self.free(iteration), 0) // self.expert_bytes
        if cap_bytes is not None:
            slots = np.minimum(slots, int(cap_bytes) // self.expert_bytes)
        return slots

    def peak(self) -> tuple[np.ndarray, np.ndarray]:
        """Per die: the largest KV cache over the iterations and the iteration it occurs."""
        when = np.argmax(self.kv, axis=0)
        return self.kv[when, np.arange(self.kv.shape[1])], when

    def overflow(self) -> str | None:
        """One line naming the die whose weights and KV cache exceed its HBM the most, or
        None when every die's fit at every iteration."""
        kv, when = self.peak()
        over = self.fixed + kv - self.usable
        d = int(np.argmax(over))
        if over[d] <= 0:
            return None
        return (f"die {d} of wafer {self.wafer} needs {(self.fixed[d] + kv[d]) / GB:.2f} GB "
                f"(experts {self.experts[d] / GB:.2f} GB + attention, dense and shared "
                f"weights {self.weights[d] / GB:.2f} GB + KV cache {kv[d] / GB:.2f} GB at "
                f"iteration {int(when[d])}), more than its {self.usable[d] / GB:.2f} GB of "
                f"usable HBM")


def layer_dies(live_dies, layers) -> np.ndarray:
    """``layer-sharded``: the die of each model layer's attention, live die ``l mod A``."""
    live = np.asarray(live_dies, np.int64)
    return live[np.asarray(layers, np.int64) % len(live)]


def request_dies(live_dies, requests) -> np.ndarray:
    """``data-parallel``: the die serving each request (batch index ``r``), live die
    ``r mod A``."""
    live = np.asarray(live_dies, np.int64)
    return live[np.asarray(requests, np.int64) % len(live)]


def context_tokens(store, iterations: int) -> np.ndarray:
    """Tokens in each request's KV cache at each iteration, shape (iterations, requests)."""
    prefill = np.asarray(store.prefill_len, np.int64)
    decode = np.asarray(store.decode_len, np.int64)
    steps = np.arange(iterations, dtype=np.int64)[:, None]
    decoding = (steps == 0) | (decode[None, :] >= steps)
    return np.where(decoding, prefill[None, :] + steps, 0)


def hbm_budget(wafer, model, store, home, live_dies, iterations: int,
               placement: str = "layer-sharded", *, shape: bool = True) -> HBMBudget:
    """The HBM budget of every die (see the module docstring).

    Parameters
    ----------
    wafer : hwmodel.topologies.wafer.Wafer
    model : hwmodel.models.MoEModel
    store : hwmodel.traces.TraceStore
    home : ndarray
        Home die of every routed expert.
    live_dies : ndarray
        Live die ids, ascending.
    iterations : int
        Iterations replayed (prefill plus decode steps).
    placement : str
        One of :data:`ATTENTION_PLACEMENTS`.
    shape : bool
        Count the attention, dense and shared weights and the KV cache (the model must carry
        its attention shape); False: routed experts only.
    """
    if placement not in ATTENTION_PLACEMENTS:
        raise ValueError(f"attention_placement: expected one of "
                         f"{', '.join(ATTENTION_PLACEMENTS)}, not {placement!r}")
    n = wafer.num_dies
    live = np.asarray(live_dies, np.int64)
    usable = np.zeros(n, np.int64)
    usable[live] = [wafer.dies[d].hbm.usable_bytes for d in live.tolist()]
    experts = (np.bincount(np.asarray(home, np.int64), minlength=n).astype(np.int64)
               * model.num_moe_layers * model.expert_bytes)
    weights = np.zeros(n, np.int64)
    kv = np.zeros((iterations, n), np.int64)
    if shape:
        layer_bytes = model.layer_weight_bytes()
        per_token = model.kv_bytes_per_token_layer
        context = context_tokens(store, iterations)
        if placement == "layer-sharded":
            host = layer_dies(live, np.arange(model.num_layers))
            np.add.at(weights, host, layer_bytes)
            layers_on = np.bincount(host, minlength=n).astype(np.int64)
            kv[:] = context.sum(axis=1)[:, None] * layers_on[None, :] * per_token
        else:
            weights[live] = sum(layer_bytes)
            served = request_dies(live, np.arange(context.shape[1]))
            for d in live.tolist():
                kv[:, d] = context[:, served == d].sum(axis=1) * model.num_layers * per_token
    return HBMBudget(usable=usable, experts=experts, weights=weights, kv=kv,
                     expert_bytes=int(model.expert_bytes), wafer=wafer.params.name)
