"""Synthetic traces: a generative model of expert selection, fitted to a real trace or built in.

The model (:class:`SynthModel`), per MoE layer ``l`` of the target shape:

* ``prefill_popularity[l]``, ``decode_popularity[l]``: expert frequencies in prompts and decode;
* ``layer_transition[l]``: P(expert j at layer l | expert i at layer l-1, same token);
* ``token_transition[l]``: P(expert j at token t | expert i at token t-1, same layer, request);
* prompt and decode lengths: empirical samples, drawn with replacement.

Sampling walks tokens in order and layers in order, slot by slot of the top-k row: each slot is
drawn from the token transition of the same slot at the previous token with probability
``token_weight``, else from the layer transition of the same slot at the previous layer with
probability ``layer_weight``, else from the stage's popularity (the first layer and first token
use popularity for the missing parent). Duplicates inside a row are redrawn from popularity.
All draws are vectorised over the requests of a chunk (:data:`CHUNK_ROWS`); the result is
seeded and deterministic (byte-identical stores for the same seed).

Shape mapping (fitting Llama-4, 24 layers x 128 experts top-1, then sampling DeepSeek-V3, 58 x
256 top-8): target layer ``j`` takes source layer ``round(j (Ls-1)/(Lt-1))``; target experts are
matched to source experts *by popularity rank* (target rank ``r`` <- source rank
``floor(r Es/Et)``), then the ranks are placed on expert ids by a seeded permutation per layer.
Popularity is the source's sorted curve resampled at the target's ranks; transitions are the
source's between the matched experts, spread over the target experts that share a source expert
in proportion to their popularity. Top-k slots are filled independently and de-duplicated.

Built-in parameters (:func:`builtin_model`, used by :func:`default_batch` with no real trace):
Zipf popularity with exponent 1.0 (prefill) and 1.1 (decode), same ranking, per-layer random
expert ids; each expert has 8 preferred successors at the next layer carrying 60% of its mass
(rest by popularity), and the token transition keeps the same expert with 30%, 6 preferred
successors with 40%, popularity for the rest; prompts of 1..59 tokens (log-normal, median 16),
decode of 127 steps for 95% of requests and 32..126 for the others; weights token 0.45,
layer 0.45, popularity 0.10.
"""

from __future__ import annotations

import attrs
import numpy as np

from .store import MAX_DECODE_STEPS, TraceStore, id_dtype

__all__ = ["SynthModel", "builtin_model", "default_batch", "fit", "sample", "synthesize"]


@attrs.frozen
class SynthModel:
    """A fitted (or built-in) generative model of expert selection for one model shape."""
    model: str
    num_layers: int
    moe_layers: tuple[int, ...]
    num_experts: int
    top_k: int
    prefill_popularity: np.ndarray   # (L, E), rows sum to 1
    decode_popularity: np.ndarray    # (L, E)
    layer_transition: np.ndarray     # (L, E, E), row i = P(. | i at the previous layer)
    token_transition: np.ndarray     # (L, E, E), row i = P(. | i at the previous token)
    prompt_lengths: np.ndarray       # samples
    decode_lengths: np.ndarray       # samples, at most MAX_DECODE_STEPS
    token_weight: float = 0.45
    layer_weight: float = 0.45


def _normalise(counts, axis=-1):
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum(axis=axis, keepdims=True)
    uniform = np.full_like(counts, 1.0 / counts.shape[axis])
    return np.where(total > 0, counts / np.where(total > 0, total, 1), uniform)


def fit(store: TraceStore, smoothing: float = 0.01) -> SynthModel:
    """Fit the generative model to a trace, in the trace's own shape.

    ``smoothing`` adds that share of the layer's popularity to every transition row, so that
    experts never seen after a given one stay possible.
    """
    from .analysis import layer_counts, layer_transition_counts, token_transition_counts
    experts = store.num_experts
    prefill, decode = layer_counts(store, "prefill"), layer_counts(store, "decode")
    popularity = _normalise(prefill + decode)
    layers = len(store.moe_layers)
    layer_t = np.empty((layers, experts, experts))
    token_t = np.empty((layers, experts, experts))
    layer_t[0] = popularity[0]
    for j in range(layers):
        if j:
            layer_t[j] = _normalise(layer_transition_counts(store, j - 1))
        token_t[j] = _normalise(token_transition_counts(store, j))
    layer_t = (1 - smoothing) * layer_t + smoothing * popularity[:, None, :]
    token_t = (1 - smoothing) * token_t + smoothing * popularity[:, None, :]
    return SynthModel(model=store.model, num_layers=store.num_layers,
                      moe_layers=tuple(store.moe_layers.tolist()), num_experts=experts,
                      top_k=store.top_k, prefill_popularity=_normalise(prefill),
                      decode_popularity=_normalise(decode), layer_transition=layer_t,
                      token_transition=token_t,
                      prompt_lengths=np.asarray(store.prefill_len, np.int64).copy(),
                      decode_lengths=np.asarray(store.decode_len, np.int64).copy())


def reshape(fitted: SynthModel, model, seed: int = 0) -> SynthModel:
    """Map a fitted model onto another model shape (layers, experts, top-k) by rank."""
    from ..models import load_model
    target = load_model(model)
    rng = np.random.default_rng([seed, 1])
    layers_t, experts_t = len(target.moe_layers), target.num_experts
    layers_s, experts_s = len(fitted.moe_layers), fitted.num_experts
    src_layer = np.rint(np.arange(layers_t) * (layers_s - 1) / max(1, layers_t - 1)).astype(int)
    shapes = {name: np.empty((layers_t, experts_t)) for name in ("prefill", "decode")}
    layer_t = np.empty((layers_t, experts_t, experts_t))
    token_t = np.empty((layers_t, experts_t, experts_t))
    mapping = []  # per target layer: source expert of every target expert
    for j, s in enumerate(src_layer):
        order = np.argsort(-(fitted.prefill_popularity[s] + fitted.decode_popularity[s]),
                           kind="stable")                 # source experts by rank
        place = rng.permutation(experts_t)                 # target id of each target rank
        source_of = np.empty(experts_t, np.int64)
        source_of[place] = order[np.arange(experts_t) * experts_s // experts_t]
        mapping.append(source_of)
        for name, pop in (("prefill", fitted.prefill_popularity[s]),
                          ("decode", fitted.decode_popularity[s])):
            share = np.bincount(source_of, minlength=experts_s)[source_of]
            shapes[name][j] = pop[source_of] / share
        weight = _normalise(shapes["prefill"][j] + shapes["decode"][j])
        group = np.bincount(source_of, weights=weight, minlength=experts_s)[source_of]
        spread = weight / np.where(group > 0, group, 1)
        token_t[j] = fitted.token_transition[s][np.ix_(source_of, source_of)] * spread
        if j:
            previous = mapping[j - 1]
            layer_t[j] = fitted.layer_transition[max(s, 1)][np.ix_(previous, source_of)] * spread
        else:
            layer_t[j] = weight
    return attrs.evolve(
        fitted, model=target.name, num_layers=target.num_layers,
        moe_layers=tuple(target.moe_layers), num_experts=experts_t, top_k=target.top_k,
        prefill_popularity=_normalise(shapes["prefill"]),
        decode_popularity=_normalise(shapes["decode"]),
        layer_transition=_normalise(layer_t), token_transition=_normalise(token_t))


def builtin_model(model="llama4-maverick", seed: int = 0) -> SynthModel:
    """The built-in generative model of the module docstring, for ``model``'s shape."""
    from ..models import load_model
    target = load_model(model)
    rng = np.random.default_rng([seed, 2])
    layers, experts = len(target.moe_layers), target.num_experts
    ranks = np.arange(1, experts + 1, dtype=np.float64)
    prefill = np.empty((layers, experts))
    decode = np.empty((layers, experts))
    layer_t = np.empty((layers, experts, experts))
    token_t = np.empty((layers, experts, experts))
    for j in range(layers):
        place = rng.permutation(experts)
        prefill[j, place] = ranks ** -1.0
        decode[j, place] = ranks ** -1.1
        pop = _normalise(prefill[j] + decode[j])
        affinity = np.zeros((experts, experts))
        rows = np.repeat(np.arange(experts), 8)
        affinity[rows, rng.integers(0, experts, experts * 8)] += 1
        layer_t[j] = 0.6 * _normalise(affinity) + 0.4 * pop
        successors = np.zeros((experts, experts))
        rows = np.repeat(np.arange(experts), 6)
        successors[rows, rng.integers(0, experts, experts * 6)] += 1
        token_t[j] = 0.3 * np.eye(experts) + 0.4 * _normalise(successors) + 0.3 * pop
    prompts = np.clip(np.rint(np.exp(rng.normal(np.log(16), 0.7, 4096))), 1, 59)
    decodes = np.where(rng.random(4096) < 0.95, MAX_DECODE_STEPS, rng.integers(32, 127, 4096))
    return SynthModel(model=target.name, num_layers=target.num_layers,
                      moe_layers=tuple(target.moe_layers), num_experts=experts,
                      top_k=target.top_k, prefill_popularity=_normalise(prefill),
                      decode_popularity=_normalise(decode), layer_transition=_normalise(layer_t),
                      token_transition=_normalise(token_t),
                      prompt_lengths=prompts.astype(np.int64),
                      decode_lengths=decodes.astype(np.int64))


class _Tables:
    """Categorical draws from many rows at once in O(1) each: an inverse-CDF table per row.

    All rows of the popularity (2L rows: prefill then decode), layer-transition (L*E) and
    token-transition (L*E) matrices share one flat ``uint8``/``uint16`` table; row ``r``'s
    entry ``q`` holds the expert whose cumulative probability interval holds
    ``(q + 0.5) / RESOLUTION`` (probabilities resolved to 1/4096). Built without a Python loop:
    expert ``e`` of a row fills the entries between ``ceil(R c[e-1] - 1/2)`` and
    ``ceil(R c[e] - 1/2)``, ``c`` the row's cumulative sum.
    """
    RESOLUTION = 4096
    SHIFT = 12  # log2(RESOLUTION): the low bits of a random word pick the entry

    def __init__(self, synth: SynthModel):
        layers, experts = len(synth.moe_layers), synth.num_experts
        parts = [np.concatenate([synth.prefill_popularity, synth.decode_popularity]),
                 np.asarray(synth.layer_transition).reshape(layers * experts, experts),
                 np.asarray(synth.token_transition).reshape(layers * experts, experts)]
        self.pop_base = 0
        self.layer_base = 2 * layers
        self.token_base = self.layer_base + layers * experts
        cumulative = np.cumsum(np.concatenate(parts).astype(np.float64), axis=1)
        cumulative /= cumulative[:, -1:]
        bounds = np.clip(np.ceil(cumulative * self.RESOLUTION - 0.5), 0, self.RESOLUTION)
        bounds = bounds.astype(np.int64)
        bounds[:, -1] = self.RESOLUTION   # rounding never leaves an entry unfilled
        counts = np.diff(bounds, axis=1, prepend=0)
        self.flat = np.repeat(np.tile(np.arange(experts, dtype=id_dtype(experts)),
                                      len(cumulative)), counts.reshape(-1))
        assert len(self.flat) == len(cumulative) * self.RESOLUTION
        if len(self.flat) >= 2 ** 31:
            raise ValueError(f"{layers} layers x {experts} experts: sampling tables too large")

    def draw(self, rows, entries):
        """Experts of table rows ``rows`` at entries ``entries`` (int32 arrays, same shape)."""
        return self.flat.take(rows * self.RESOLUTION + entries)


CHUNK_ROWS = 1 << 16
"""Rows per sampling chunk (whole requests): bounds the working memory; a fixed constant so
that the random stream, hence the output, does not depend on the machine."""


def sample(synth: SynthModel, requests: int, seed: int = 0, progress: bool = False,
           source: str = "synthetic") -> TraceStore:
    """Draw ``requests`` requests from ``synth`` (seeded, deterministic).

    Requests are processed in chunks of about :data:`CHUNK_ROWS` rows, and inside a chunk layer
    after layer for every token at once, written straight into the preallocated ``ids``. A slot
    drawn from the token transition takes as its parent the nearest earlier token of the
    request whose same slot was drawn from the layer transition or popularity (a chain of token
    draws collapses onto its first fresh ancestor), so all draws of a layer are vectorised. One
    32-bit random word per slot decides both the source (high 20 bits against the weights) and
    the table entry (low 12 bits).
    """
    rng = np.random.default_rng([seed, 3])
    layers, experts, top_k = len(synth.moe_layers), synth.num_experts, synth.top_k
    prompt = rng.choice(synth.prompt_lengths, requests).astype(np.int64)
    decode = np.minimum(rng.choice(synth.decode_lengths, requests), MAX_DECODE_STEPS)
    lengths = prompt + decode
    offset = np.concatenate([[0], np.cumsum(lengths)])
    rows = int(offset[-1])
    ids = np.empty((rows, layers, top_k), id_dtype(experts))
    tables = _Tables(synth)
    scale = 1 << (32 - tables.SHIFT)
    token_limit = np.uint32(round(synth.token_weight * scale))
    layer_limit = np.uint32(round((synth.token_weight + synth.layer_weight) * scale))
    cuts = np.searchsorted(offset, np.arange(CHUNK_ROWS, rows, CHUNK_ROWS), side="left")
    cuts = np.unique(np.concatenate([[0], cuts, [requests]]))
    chunks = list(zip(cuts[:-1].tolist(), cuts[1:].tolist(), strict=True))
    if progress:
        from tqdm import tqdm
        chunks = tqdm(chunks, desc="synthesising", unit="chunk")
    for first_request, end_request in chunks:
        r0, r1 = int(offset[first_request]), int(offset[end_request])
        _sample_chunk(ids[r0:r1], lengths[first_request:end_request],
                      prompt[first_request:end_request], synth, tables, rng,
                      token_limit, layer_limit)
    return TraceStore(
        model=synth.model, num_layers=synth.num_layers, moe_layers=synth.moe_layers,
        top_k=top_k, num_experts=experts,
        request_ids=[f"{source}/{i}" for i in range(requests)],
        source_paths=[source] * requests, prefill_len=prompt.astype(np.int32),
        decode_len=decode.astype(np.int32), token_offset=offset, ids=ids,
        notes=f"synthetic ({source}), seed {seed}")


def _sample_chunk(out, lengths, prompt, synth, tables, rng, token_limit, layer_limit):
    """Fill ``out`` (rows of whole requests, ``(n, L, k)``) layer by layer, slot-major."""
    n, layers, top_k = out.shape
    experts = synth.num_experts
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    position = np.arange(n) - starts
    first = position == 0
    pop_row = (tables.pop_base
               + (position >= np.repeat(prompt, lengths)).astype(np.int32) * layers)
    index = np.arange(n, dtype=np.int32)
    slot_base = (np.arange(top_k, dtype=np.int32) * n)[:, None]
    previous = None
    for j in range(layers):
        word = rng.integers(0, 1 << 32, size=(top_k, n), dtype=np.uint32)
        entry = (word & np.uint32(tables.RESOLUTION - 1)).astype(np.int32)
        word >>= np.uint32(tables.SHIFT)
        from_token = word < token_limit
        from_token &= ~first
        table_row = np.broadcast_to(pop_row + j, (top_k, n))
        if previous is not None:
            from_layer = (word < layer_limit) & ~from_token
            table_row = np.where(from_layer, previous + (tables.layer_base + j * experts),
                                 table_row)
        drawn = tables.draw(table_row, entry)
        if from_token.any():
            # Nearest earlier fresh draw of the same slot (a request's first row is fresh).
            fresh = np.where(from_token, np.int32(-1), index)
            np.maximum.accumulate(fresh, axis=1, out=fresh)
            fresh += slot_base
            parent = drawn.reshape(-1).take(fresh).astype(np.int32)
            parent += tables.token_base + j * experts
            np.copyto(drawn, tables.draw(parent, entry), where=from_token)
        if top_k > 1:
            _deduplicate(drawn, pop_row + j, tables, rng, experts)
        out[:, j, :] = drawn.T
        previous = drawn.astype(np.int32)


def _duplicates(block):
    """Mask ``(k, m)`` of slots whose expert already appears in an earlier slot of the column."""
    dup = np.zeros(block.shape, bool)
    for slot in range(1, len(block)):
        for earlier in range(slot):
            dup[slot] |= block[slot] == block[earlier]
    return dup


def _deduplicate(block, pop_row, tables, rng, experts):
    """Make every column (token) of ``block`` ``(k, n)`` distinct in place: redraw repeats from
    popularity once, then step leftovers to the next expert id (deterministic)."""
    dup = _duplicates(block)
    bad = np.flatnonzero(dup.any(axis=0))
    if not len(bad):
        return
    sub, dup = block[:, bad], dup[:, bad]
    slot, column = np.nonzero(dup)
    entry = rng.integers(0, tables.RESOLUTION, size=len(slot), dtype=np.int32)
    sub[slot, column] = tables.draw(pop_row[bad][column], entry)
    still = np.arange(len(bad))
    for _ in range(experts):
        part = sub[:, still]
        repeat = _duplicates(part)
        keep = repeat.any(axis=0)
        if not keep.any():
            break
        part[repeat] = (part[repeat].astype(np.int64) + 1) % experts
        sub[:, still] = part
        still = still[keep]
    block[:, bad] = sub


def synthesize(like: TraceStore | None = None, model=None, requests: int = 256,
               seed: int = 0, progress: bool = False) -> TraceStore:
    """A synthetic batch: fitted to ``like`` (or built in), in ``model``'s shape."""
    if like is None:
        synth = builtin_model(model or "llama4-maverick", seed=seed)
        source = "builtin"
    else:
        synth = fit(like)
        source = f"like:{like.model or 'trace'}"
        if model is not None:
            synth = reshape(synth, model, seed=seed)
    return sample(synth, requests, seed=seed, progress=progress, source=source)


def default_batch(model="llama4-maverick", requests: int = 64, seed: int = 0) -> TraceStore:
    """The built-in default batch: needs no real trace (used by ``hwmodel`` with no arguments)."""
    return synthesize(None, model=model, requests=requests, seed=seed)
