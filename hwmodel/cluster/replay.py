"""Replay a trace's decode in batches through a cluster and placement policies.

A decode batch of ``B`` tokens is the trace's decode rows in lockstep order (step 1 of every
request, then step 2 ...) up to ``B`` rows. Policies see the prefill counts of every request
(Remap, Dup, EPLB), the locality policy also per-request vectors, and the oracles the batch's
own decode counts. Tokens live on a GPU by request: round-robin over all GPUs, or, for a
policy that groups requests, round-robin over the GPUs of the request's node.
"""

from __future__ import annotations

import attrs
import numpy as np
from tqdm import tqdm

from ..traces import MAX_DECODE_STEPS
from .moe_layer import all_to_all, gpu_times_ns
from .placement import POLICIES, PlacementContext, make_policy

__all__ = ["COLUMNS", "decode_batch", "expert_counts", "replay", "replay_batch", "split_prefill"]

#: Columns of the result table, in order.
COLUMNS = ("batch", "tokens", "policy", "moe_time_us", "speedup_vs_default", "max_over_mean",
           "intra_bytes", "inter_bytes", "intra_time_us", "inter_time_us")

_CHUNK_ROWS = 1 << 16
_FEATURE_LAYERS = 4
_TRAIN_REQUESTS = 256


def expert_counts(rows: np.ndarray, num_experts: int) -> np.ndarray:
    """(L, E) token counts of ``rows`` (n, L, k)."""
    layers = rows.shape[1]
    offset = (np.arange(layers) * num_experts)[None, :, None]
    flat = (rows.astype(np.int64) + offset).ravel()
    return np.bincount(flat, minlength=layers * num_experts).reshape(layers, num_experts)


def prefill_counts(store) -> np.ndarray:
    """(L, E) counts over every request's prefill, read in chunks of rows."""
    mask = np.zeros(store.num_rows, dtype=bool)
    starts = store.token_offset[:-1]
    ends = starts + store.prefill_len
    marks = np.zeros(store.num_rows + 1, dtype=np.int64)
    np.add.at(marks, starts, 1)
    np.add.at(marks, ends, -1)
    mask[:] = np.cumsum(marks[:-1]) > 0
    total = np.zeros((len(store.moe_layers), store.num_experts), np.int64)
    for start in range(0, store.num_rows, _CHUNK_ROWS):
        chunk = slice(start, start + _CHUNK_ROWS)
        total += expert_counts(store.ids[chunk][mask[chunk]], store.num_experts)
    return total


def decode_batch(store, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``batch`` decode rows in lockstep order and their request indices."""
    rows, requests, have = [], [], 0
    for step in range(1, store.num_iterations):
        step_rows, step_requests = store.iteration_rows(step)
        rows.append(step_rows[:batch - have])
        requests.append(step_requests[:batch - have])
        have += len(rows[-1])
        if have >= batch:
            break
    if not have:
        raise ValueError(f"trace {store.model or 'batch'} has no decode steps to replay")
    return np.concatenate(rows), np.concatenate(requests)


def _request_vectors(store, requests, decode: bool, layers) -> np.ndarray:
    """(n, L, E) counts of each request's decode (or prefill) rows on ``layers``."""
    out = np.zeros((len(requests), len(layers), store.num_experts), np.float32)
    for i, request in enumerate(requests):
        rows = store.decode_ids(request) if decode else store.prefill_ids(request)
        out[i] = expert_counts(rows[:, layers], store.num_experts)
    return out


def _locality_inputs(store, batch_requests) -> dict:
    layers = np.unique(np.linspace(0, len(store.moe_layers) - 1, _FEATURE_LAYERS).astype(int))
    all_layers = np.arange(len(store.moe_layers))
    train = np.unique(np.linspace(0, len(store) - 1, min(len(store), _TRAIN_REQUESTS))
                      .astype(int))
    train_counts = _request_vectors(store, train, True, all_layers)
    return {"train_counts": train_counts,
            "train_vectors": train_counts[:, layers].reshape(len(train), -1),
            "batch_vectors": _request_vectors(store, batch_requests, False, layers)
            .reshape(len(batch_requests), -1)}


def _source_gpu(requests, placement, cluster) -> np.ndarray:
    """GPU holding each row's token, from its request."""
    distinct, index = np.unique(requests, return_inverse=True)
    if placement.request_node is None:
        return index % cluster.num_gpus
    per_node = cluster.params.gpus_per_node
    gpu_of_request = np.empty(len(distinct), dtype=int)
    for n in np.unique(placement.request_node):
        members = np.flatnonzero(placement.request_node == n)
        gpu_of_request[members] = n * per_node + np.arange(len(members)) % per_node
    return gpu_of_request[index]


def _source_counts(rows, gpu, num_gpus, num_experts) -> np.ndarray:
    layers = rows.shape[1]
    layer = np.broadcast_to(np.arange(layers)[None, :, None], rows.shape)
    source = np.broadcast_to(gpu[:, None, None], rows.shape)
    flat = ((layer * num_gpus + source) * num_experts + rows.astype(np.int64)).ravel()
    return np.bincount(flat, minlength=layers * num_gpus * num_experts) \
        .reshape(layers, num_gpus, num_experts)


def _evaluate(name, placement, rows, requests, counts, cluster, model) -> dict:
    times = gpu_times_ns(counts, placement.shares, model, cluster.params.gpu)
    sources = _source_counts(rows, _source_gpu(requests, placement, cluster), cluster.num_gpus,
                             counts.shape[1])
    traffic = all_to_all(sources, placement.shares, model, cluster)
    moe = times.max(axis=1).sum()
    return {"policy": name, "moe_time_us": float(moe / 1e3),
            "max_over_mean": float(moe / times.mean(axis=1).sum()),
            "intra_bytes": traffic.intra_bytes, "inter_bytes": traffic.inter_bytes,
            "intra_time_us": traffic.intra_time_ns / 1e3,
            "inter_time_us": traffic.inter_time_ns / 1e3}


def replay_batch(store, cluster, model, policies, batch: int, prefill, *,
                 replicas_per_gpu: int = 1, seed: int = 0) -> list[dict]:
    """Table rows (one per policy) of one decode batch of ``batch`` tokens."""
    rows, requests = decode_batch(store, batch)
    counts = expert_counts(rows, store.num_experts)
    distinct = np.unique(requests)
    extra = _locality_inputs(store, distinct) if "locality" in policies else {}
    context = PlacementContext(cluster=cluster, model=model, prefill_counts=prefill,
                               batch_tokens=len(rows) * store.top_k, decode_counts=counts,
                               replicas_per_gpu=replicas_per_gpu, seed=seed, extra=extra)
    placements = {name: make_policy(name).place(context) for name in policies
                  if not POLICIES[name].oracle}
    context = attrs.evolve(context, extra={**extra, "candidates": dict(placements)})
    for name in policies:
        if POLICIES[name].oracle:
            placements[name] = make_policy(name).place(context)
    table = [_evaluate(name, placements[name], rows, requests, counts, cluster, model)
             for name in policies]
    default = next((r["moe_time_us"] for r in table if r["policy"] == "default"), None)
    for row in table:
        row.update(batch=batch, tokens=len(rows))
        row["speedup_vs_default"] = float(default / row["moe_time_us"]) if default \
            else float("nan")
    return [{column: row[column] for column in COLUMNS} for row in table]


def replay(store, cluster, model, policies, batches, *, replicas_per_gpu: int = 1,
           seed: int = 0, progress: bool = False) -> list[dict]:
    """Table rows of every batch size through every policy (batch-major)."""
    _check_shapes(store, model, cluster)
    unknown = [name for name in policies if name not in POLICIES]
    if unknown:
        raise ValueError(f"unknown placement policy {unknown[0]!r}; expected one of "
                         f"{', '.join(POLICIES)}")
    prefill = prefill_counts(store)
    table = []
    for batch in tqdm(batches, desc="place", unit="batch", disable=not progress):
        table += replay_batch(store, cluster, model, policies, batch, prefill,
                              replicas_per_gpu=replicas_per_gpu, seed=seed)
    return table


def _check_shapes(store, model, cluster) -> None:
    if (store.num_experts, store.top_k, len(store.moe_layers)) != \
            (model.num_experts, model.top_k, model.num_moe_layers):
        raise ValueError(f"trace ({store.num_experts} experts, top-{store.top_k}, "
                         f"{len(store.moe_layers)} MoE layers) does not match model "
                         f"{model.name} ({model.num_experts}, top-{model.top_k}, "
                         f"{model.num_moe_layers})")
    if model.num_experts % cluster.num_gpus:
        raise ValueError(f"model {model.name}'s {model.num_experts} experts do not split "
                         f"evenly over the cluster's {cluster.num_gpus} GPUs")


def split_prefill(store, max_steps: int = MAX_DECODE_STEPS):
    """A prefill-only store (e.g. DeepSeek-V2-Lite CSV) split per request into guide and test.

    The first half of each prompt's tokens stay its prefill; the rest (at most ``max_steps``)
    become its "decode" rows, so prefill-guided policies are judged on tokens they did not see.
    """
    from ..traces import TraceStore
    prefill = store.prefill_len.astype(np.int64)
    keep = (prefill + 1) // 2
    decode = np.minimum(prefill - keep, max_steps)
    starts = store.token_offset[:-1]
    index = np.concatenate([np.arange(s, s + k + d) for s, k, d in zip(starts, keep, decode)])
    offsets = np.concatenate([[0], np.cumsum(keep + decode)])
    return TraceStore(model=store.model, num_layers=store.num_layers, moe_layers=store.moe_layers,
                      top_k=store.top_k, num_experts=store.num_experts,
                      request_ids=store.request_ids, source_paths=store.source_paths,
                      prefill_len=keep, decode_len=decode, token_offset=offsets,
                      ids=np.ascontiguousarray(store.ids[index]),
                      notes=store.notes + "; prefill split: second half replayed as decode")
