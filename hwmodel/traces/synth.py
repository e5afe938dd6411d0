"""Synthetic traces: a generative model of expert selection, fitted to a real trace or built in.

The model (:class:`SynthModel`), per stage ``s`` (prompt rows, decode rows) and MoE layer ``l``
of the target shape, every table fitted on that stage's rows only:

* ``prefill_popularity[l]``, ``decode_popularity[l]``: expert frequencies of each stage;
* ``layer_transition[s, l]``: P(expert j at layer l | expert i at layer l-1, same token);
* ``token_transition[s, l]``: P(expert j at token t | expert i at token t-1, same layer,
  request), ``t`` of stage ``s``;
* ``token_repeat[s, l]``: the share of a row's experts that the previous token also chose;
* prompt and decode lengths: empirical samples, drawn with replacement.

Sampling walks layers in order and, inside a layer, tokens in order, slot by slot of the top-k
row. A slot of a non-first token follows the *token chain* with probability ``w[s, l]``: it is
drawn from the lazy token transition ``(1 - a) I + a T`` of the expert the same slot holds at
the previous token (exactly that token: chains are resolved in rounds, see :func:`sample`).
Otherwise it is drawn afresh, from the layer transition of the same slot at the previous layer
(weight ``layer_weight`` of the fresh part, ``token_weight`` + ``layer_weight`` normalised),
else from the stage's popularity. ``w`` and ``a`` are set per stage and layer
(:func:`mixture`) so that the realised repeat share meets ``token_repeat`` while the lazy chain
keeps the stage popularity as its stationary distribution. Duplicates inside a row are redrawn
from popularity. All draws are vectorised over the requests of a chunk (:data:`CHUNK_ROWS`);
the result is seeded and deterministic (byte-identical stores for the same seed).

Shape mapping (fitting Llama-4, 24 layers x 128 experts top-1, then sampling DeepSeek-V3, 58 x
256 top-8): target layer ``j`` takes source layer ``round(j (Ls-1)/(Lt-1))``; target experts are
matched to source experts *by popularity rank* (both stages together; target rank ``r`` <-
source rank ``floor(r Es/Et)``), then the ranks are placed on expert ids by a seeded
permutation per layer. Popularity is the source's sorted curve resampled at the target's ranks;
transitions are the source's between the matched experts, spread over the target experts that
share a source expert in proportion to their popularity, except that a source expert's
self-transition stays on the diagonal. ``token_repeat`` is the source layer's. Top-k slots are
filled independently and de-duplicated.

Top-k > 1 (:func:`fit_leader`, what :func:`synthesize` fits on a top-k > 1 trace): the tables
above describe slot 0 (the router's first choice, the *leader*) alone; the other ``k - 1``
experts of a row are drawn without replacement, weighted by the leader's co-selection row times
how much likelier than by popularity each expert follows the token's row at the previous layer
and the previous token's leader. A top-1 trace is fitted by :func:`fit` as before.

Built-in parameters (:func:`builtin_model`, used by :func:`default_batch` with no real trace):
Zipf popularity with exponent 1.0 (prefill) and 1.1 (decode), per-layer random expert ids, the
decode ranking the prefill ranking perturbed by log-normal noise (sigma
:data:`BUILTIN_DECODE_NOISE`; Spearman about 0.78 on a 64-request DeepSeek-V3 batch); each
expert has 8 preferred successors at the next layer carrying 60% of its mass (rest by the
stage's popularity); the token transition sends 55% to 6 preferred successors, 45% by
popularity, with a repeat share of 0.3; prompts of 1..59 tokens (log-normal, median 16), decode
of 127 steps for 95% of requests and 32..126 for the others; weights token 0.45, layer 0.45,
popularity 0.10.
"""

from __future__ import annotations

import attrs
import numpy as np
from numba import njit, prange

from .store import MAX_DECODE_STEPS, TraceStore, id_dtype

__all__ = ["SynthModel", "builtin_model", "default_batch", "fit", "fit_leader", "sample",
           "synthesize"]


STAGES = ("prefill", "decode")
"""Stage order of the per-stage tables: index 0 prompt rows, 1 decode rows."""


@attrs.frozen
class SynthModel:
    """A fitted (or built-in) generative model of expert selection for one model shape.

    Stage index ``s`` is 0 for prompt rows and 1 for decode rows (:data:`STAGES`); ``L`` is the
    number of MoE layers and ``E`` of experts.
    """
    model: str
    num_layers: int
    moe_layers: tuple[int, ...]
    num_experts: int
    top_k: int
    prefill_popularity: np.ndarray   # (L, E), rows sum to 1
    decode_popularity: np.ndarray    # (L, E)
    layer_transition: np.ndarray     # (2, L, E, E): [s, l, i] = P(. | i at layer l-1, stage s)
    token_transition: np.ndarray     # (2, L, E, E): [s, l, i] = P(. | i at the previous token)
    token_repeat: np.ndarray         # (2, L): share of a row's experts the previous token chose
    prompt_lengths: np.ndarray       # samples
    decode_lengths: np.ndarray       # samples, at most MAX_DECODE_STEPS
    token_weight: float = 0.45
    layer_weight: float = 0.45
    co_selection: np.ndarray | None = None
    """(2, L, E, E) or None. None: every slot of a row is drawn alike (the top-1 fit). Else the
    *leader* fit (:func:`fit_leader`): the tables above describe slot 0 only, and slot 0's
    expert ``i`` draws the row's other ``k - 1`` experts, weighted by ``co_selection[s, l, i]``
    times the two locality ratios below."""
    row_layer: np.ndarray | None = None
    """(2, L, E, E), leader fit only: P(x at layer l | i in the token's row at layer l-1) over
    the popularity of x (all slot pairs; layer 0: ones)."""
    row_token: np.ndarray | None = None
    """(2, L, E, E), leader fit only: P(x in the row | i the previous token's leader) over the
    popularity of x (a request's first token: not used)."""

    def __attrs_post_init__(self):
        layers, experts = len(self.moe_layers), self.num_experts
        shapes = (("prefill_popularity", (layers, experts)),
                  ("decode_popularity", (layers, experts)),
                  ("layer_transition", (2, layers, experts, experts)),
                  ("token_transition", (2, layers, experts, experts)),
                  ("token_repeat", (2, layers)))
        if self.co_selection is not None:
            shapes += tuple((name, (2, layers, experts, experts))
                            for name in ("co_selection", "row_layer", "row_token"))
        for name, shape in shapes:
            got = np.shape(getattr(self, name))
            if got != shape:
                raise ValueError(f"SynthModel.{name}: shape {got}, expected {shape}")
        if not (0 <= self.token_weight and 0 <= self.layer_weight
                and self.token_weight + self.layer_weight <= 1):
            raise ValueError(f"SynthModel weights token {self.token_weight}, layer "
                             f"{self.layer_weight}: expected >= 0 with a sum <= 1")


def _normalise(counts, axis=-1):
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum(axis=axis, keepdims=True)
    uniform = np.full_like(counts, 1.0 / counts.shape[axis])
    return np.where(total > 0, counts / np.where(total > 0, total, 1), uniform)


def _conditional(counts, fallback):
    """Row-normalised ``counts``; a row never seen falls back to ``fallback`` (a distribution)."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum(axis=-1, keepdims=True)
    return np.where(total > 0, counts / np.where(total > 0, total, 1), fallback)


def fit(store: TraceStore, smoothing: float = 0.01) -> SynthModel:
    """Fit the generative model to a trace, in the trace's own shape.

    Every table is fitted per stage (prompt rows, decode rows): popularity, layer transition
    (pairs of rows of that stage), token transition and repeat share (pairs whose later token
    is of that stage). ``smoothing`` adds that share of the stage's layer popularity to every
    transition row, so that experts never seen after a given one stay possible; rows never seen
    (and a stage with no rows at a layer) fall back to popularity.
    """
    from .analysis import layer_counts, layer_transition_counts, token_transition_counts
    experts, layers, top_k = store.num_experts, len(store.moe_layers), store.top_k
    counts = np.stack([layer_counts(store, stage) for stage in STAGES]).astype(np.float64)
    both = counts.sum(axis=0)
    # A stage without rows at a layer (prefill-only or decode-only sources) uses both stages'.
    counts = np.where(counts.sum(axis=2, keepdims=True) > 0, counts, both)
    popularity = _normalise(counts)                       # (2, L, E)
    layer_t = np.empty((2, layers, experts, experts))
    token_t = np.empty((2, layers, experts, experts))
    repeat = np.zeros((2, layers))
    for s, stage in enumerate(STAGES):
        layer_t[s, 0] = popularity[s, 0]
        for j in range(layers):
            if j:
                layer_t[s, j] = _conditional(layer_transition_counts(store, j - 1, stage),
                                             popularity[s, j])
            pairs = token_transition_counts(store, j, stage)
            token_t[s, j] = _conditional(pairs, popularity[s, j])
            # trace / (pairs of rows x k): the share of a row's k experts re-chosen.
            repeat[s, j] = np.trace(pairs) * top_k / pairs.sum() if pairs.sum() else 0.0
    layer_t = (1 - smoothing) * layer_t + smoothing * popularity[:, :, None, :]
    token_t = (1 - smoothing) * token_t + smoothing * popularity[:, :, None, :]
    return SynthModel(model=store.model, num_layers=store.num_layers,
                      moe_layers=tuple(store.moe_layers.tolist()), num_experts=experts,
                      top_k=top_k, prefill_popularity=popularity[0],
                      decode_popularity=popularity[1], layer_transition=layer_t,
                      token_transition=token_t, token_repeat=repeat,
                      prompt_lengths=np.asarray(store.prefill_len, np.int64).copy(),
                      decode_lengths=np.asarray(store.decode_len, np.int64).copy())


def _slot_zero(store: TraceStore) -> TraceStore:
    """The store's first slot alone (the router's first choice), as a top-1 store (views)."""
    return TraceStore(
        model=store.model, num_layers=store.num_layers, moe_layers=store.moe_layers, top_k=1,
        num_experts=store.num_experts, request_ids=store.request_ids,
        source_paths=store.source_paths, prefill_len=store.prefill_len,
        decode_len=store.decode_len, token_offset=store.token_offset, ids=store.ids[:, :, :1],
        cut_len=store.cut_len, cut_offset=store.cut_offset, cut_ids=store.cut_ids[:, :, :1],
        decode_only=store.decode_only)


def fit_leader(store: TraceStore, smoothing: float = 0.01) -> SynthModel:
    """Fit the *leader* model of a top-k > 1 trace (what ``--like`` a top-k > 1 store uses).

    What top-k routing adds to a top-1 trace is fitted on top of :func:`fit` as follows. Slot 0
    of a row (the router's first choice, the *leader*) gets every table of :func:`fit`, fitted
    on slot 0 alone: its popularity per stage (so the hottest expert's skew is that of the
    first slot, not of all k), its layer-to-layer and token-to-token transitions and its repeat
    share. The other ``k - 1`` experts of a row are drawn, distinct, from the *co-selection*
    table ``P(x in the row's other slots | leader i)`` per stage and layer, so the experts a
    token picks together, and hence the pair statistics, the spread of load over the k slots
    and the layer and token locality of the whole row, follow the leader's. ``smoothing`` adds
    that share of the stage's follower popularity to every co-selection row.

    The followers also take the whole row's locality: their weights are the co-selection row
    of the leader times ``row_layer`` (how much more often than its popularity an expert
    follows the token's row at the previous layer, averaged over that row's k experts) times
    ``row_token`` (the same for the previous token's leader), and the ``k - 1`` followers are
    drawn without replacement in proportion to those weights: one after the other, each among
    the experts not yet drawn (the law of Gumbel top-k; compiled, :func:`_draw_followers`).
    """
    from .analysis import _stage_mask
    if store.top_k < 2:
        raise ValueError(f"fit_leader needs a top-k > 1 trace, not top-{store.top_k}")
    leader = fit(_slot_zero(store), smoothing=smoothing)
    experts, layers = store.num_experts, len(store.moe_layers)
    ids = np.asarray(store.ids, np.int64)
    decode = _stage_mask(store)
    co = np.zeros((2, layers, experts, experts))
    for s, rows in enumerate((~decode, decode)):
        if not rows.any():
            rows = np.ones_like(rows)  # a stage without rows uses both stages' (as fit does)
        part = ids[rows]
        for j in range(layers):
            index = part[:, j, :1] * experts + part[:, j, 1:]
            counts = np.bincount(index.reshape(-1), minlength=experts * experts)
            counts = counts.reshape(experts, experts).astype(np.float64)
            followers = _normalise(counts.sum(axis=0))
            table = _conditional(counts, followers)
            co[s, j] = (1 - smoothing) * table + smoothing * followers
            np.fill_diagonal(co[s, j], 0.0)   # the leader is never its own follower
    row_layer, row_token = _row_ratios(store, smoothing)
    return attrs.evolve(leader, top_k=store.top_k, co_selection=_normalise(co),
                        row_layer=row_layer, row_token=row_token)


def _ratio(counts, popularity):
    """Row-conditional of ``counts`` over ``popularity`` (how much likelier than by chance)."""
    return _conditional(counts, popularity) / np.maximum(popularity, 1e-9)


def _row_ratios(store, smoothing):
    """``row_layer`` and ``row_token`` of :func:`fit_leader`, both ``(2, L, E, E)``."""
    from .analysis import _stage_mask, layer_counts, layer_transition_counts
    experts, layers = store.num_experts, len(store.moe_layers)
    ids = np.asarray(store.ids, np.int64)
    decode = _stage_mask(store)
    follows = np.ones(store.num_rows, bool)
    follows[store.token_offset[:-1][store.token_offset[:-1] < store.num_rows]] = False
    row_layer = np.ones((2, layers, experts, experts))
    row_token = np.ones((2, layers, experts, experts))
    for s, stage in enumerate(("prefill", "decode")):
        rows = decode if s else ~decode
        if not rows.any():
            rows, stage = np.ones_like(rows), "all"
        pop = _normalise(layer_counts(store, stage).astype(np.float64))
        after = np.flatnonzero(follows & rows)
        for j in range(layers):
            if j:
                counts = layer_transition_counts(store, j - 1, stage)
                row_layer[s, j] = (1 - smoothing) * _ratio(counts, pop[j]) + smoothing
            index = ids[after - 1, j, :1] * experts + ids[after, j, :]
            counts = np.bincount(index.reshape(-1), minlength=experts * experts)
            row_token[s, j] = ((1 - smoothing) * _ratio(counts.reshape(experts, experts), pop[j])
                               + smoothing)
    return row_layer, row_token


def reshape(fitted: SynthModel, model, seed: int = 0) -> SynthModel:
    """Map a fitted model onto another model shape (layers, experts, top-k) by rank.

    The token transition keeps each source expert's self-transition on the diagonal: a target
    expert re-chosen is never turned into a sibling that shares its source expert.
    """
    from ..models import load_model
    target = load_model(model)
    rng = np.random.default_rng([seed, 1])
    layers_t, experts_t = len(target.moe_layers), target.num_experts
    layers_s, experts_s = len(fitted.moe_layers), fitted.num_experts
    src_layer = np.rint(np.arange(layers_t) * (layers_s - 1) / max(1, layers_t - 1)).astype(int)
    pops = np.empty((2, layers_t, experts_t))
    layer_t = np.empty((2, layers_t, experts_t, experts_t))
    token_t = np.empty((2, layers_t, experts_t, experts_t))
    fitted_pops = np.stack([fitted.prefill_popularity, fitted.decode_popularity])
    diagonal = np.arange(experts_t)
    co = None if fitted.co_selection is None else np.empty((2, layers_t, experts_t, experts_t))
    row_layer = None if co is None else np.ones_like(co)
    row_token = None if co is None else np.ones_like(co)
    previous = None   # source expert of every target expert at the previous target layer
    for j, s in enumerate(src_layer):
        order = np.argsort(-(fitted_pops[0, s] + fitted_pops[1, s]), kind="stable")
        place = rng.permutation(experts_t)                 # target id of each target rank
        source_of = np.empty(experts_t, np.int64)
        source_of[place] = order[np.arange(experts_t) * experts_s // experts_t]
        share = np.bincount(source_of, minlength=experts_s)[source_of]
        siblings = source_of[:, None] == source_of[None, :]
        for st in range(2):
            pops[st, j] = fitted_pops[st, s][source_of] / share
            weight = _normalise(pops[st, j])
            group = np.bincount(source_of, weights=weight, minlength=experts_s)[source_of]
            spread = weight / np.where(group > 0, group, 1)
            tok = fitted.token_transition[st, s][np.ix_(source_of, source_of)] * spread
            tok[siblings] = 0.0
            tok[diagonal, diagonal] = fitted.token_transition[st, s][source_of, source_of]
            token_t[st, j] = tok
            if co is not None:   # followers spread like transitions; never the leader itself
                co[st, j] = fitted.co_selection[st, s][np.ix_(source_of, source_of)] * spread
                co[st, j, diagonal, diagonal] = 0.0
                # ratios to popularity need no spreading: the matched experts' own
                row_token[st, j] = fitted.row_token[st, s][np.ix_(source_of, source_of)]
                if j:
                    row_layer[st, j] = fitted.row_layer[st, max(s, 1)][
                        np.ix_(previous, source_of)]
            if j:
                layer_t[st, j] = (fitted.layer_transition[st, max(s, 1)][
                    np.ix_(previous, source_of)] * spread)
            else:
                layer_t[st, j] = weight
        previous = source_of
    return attrs.evolve(
        fitted, model=target.name, num_layers=target.num_layers,
        moe_layers=tuple(target.moe_layers), num_experts=experts_t, top_k=target.top_k,
        prefill_popularity=_normalise(pops[0]), decode_popularity=_normalise(pops[1]),
        layer_transition=_normalise(layer_t), token_transition=_normalise(token_t),
        token_repeat=np.asarray(fitted.token_repeat)[:, src_layer].copy(),
        co_selection=None if co is None else _normalise(co), row_layer=row_layer,
        row_token=row_token)


def builtin_model(model="llama4-maverick", seed: int = 0) -> SynthModel:
    """The built-in generative model of the module docstring, for ``model``'s shape."""
    from ..models import load_model
    target = load_model(model)
    rng = np.random.default_rng([seed, 2])
    layers, experts = len(target.moe_layers), target.num_experts
    ranks = np.arange(1, experts + 1, dtype=np.float64)
    pops = np.empty((2, layers, experts))
    layer_t = np.empty((2, layers, experts, experts))
    token_t = np.empty((2, layers, experts, experts))
    for j in range(layers):
        place = rng.permutation(experts)
        pops[0, j, place] = ranks ** -1.0
        # Decode ranks: the prefill ranking perturbed by log-normal noise (real traces:
        # Spearman about 0.7, not 1).
        shuffled = np.argsort(np.log(ranks) + rng.normal(0.0, BUILTIN_DECODE_NOISE, experts),
                              kind="stable")
        pops[1, j, place[shuffled]] = ranks ** -1.1
        pops[:, j] /= pops[:, j].sum(axis=1, keepdims=True)
        affinity = np.zeros((experts, experts))
        rows = np.repeat(np.arange(experts), 8)
        affinity[rows, rng.integers(0, experts, experts * 8)] += 1
        successors = np.zeros((experts, experts))
        rows = np.repeat(np.arange(experts), 6)
        successors[rows, rng.integers(0, experts, experts * 6)] += 1
        for st in range(2):
            layer_t[st, j] = 0.6 * _normalise(affinity) + 0.4 * pops[st, j]
            token_t[st, j] = 0.55 * _normalise(successors) + 0.45 * pops[st, j]
    prompts = np.clip(np.rint(np.exp(rng.normal(np.log(16), 0.7, 4096))), 1, 59)
    decodes = np.where(rng.random(4096) < 0.95, MAX_DECODE_STEPS, rng.integers(32, 127, 4096))
    return SynthModel(model=target.name, num_layers=target.num_layers,
                      moe_layers=tuple(target.moe_layers), num_experts=experts,
                      top_k=target.top_k, prefill_popularity=pops[0], decode_popularity=pops[1],
                      layer_transition=_normalise(layer_t), token_transition=_normalise(token_t),
                      token_repeat=np.full((2, layers), 0.3),
                      prompt_lengths=prompts.astype(np.int64),
                      decode_lengths=decodes.astype(np.int64))


BUILTIN_DECODE_NOISE = 0.5
"""Standard deviation of the log-rank noise that turns built-in prefill ranks into decode's."""


def mixture(synth: SynthModel):
    """Per-stage, per-layer source weights and the token tables the sampler uses.

    A slot of a non-first token follows the token chain with probability ``w`` (drawn from the
    *lazy* token transition ``(1 - a) I + a T`` of its previous token's expert), else is drawn
    afresh: from the layer transition with probability ``(1 - w) layer_weight / (1 -
    token_weight)``, else from the stage popularity. The lazy chain keeps ``T``'s stationary
    distribution (the stage popularity) and only adds self-repeats, so ``a`` is chosen to meet
    the fitted repeat share ``r``: ``w ((1 - a) + a d) + (1 - w) q = r``, with ``d`` the
    popularity-weighted diagonal of ``T`` and ``q = sum_e p_e^2`` the chance that a fresh draw
    repeats the previous expert. ``w`` is ``token_weight``, raised where ``r`` needs it (up to
    ``(r - q) / (1 - q) / 0.9``, at most 1).

    Returns
    -------
    token_share, layer_share : float arrays ``(2, L)``
        Probability of a token-chain draw, and of a token-chain or layer draw (cumulative).
    lazy : float array ``(2, L, E, E)``
        The token tables.
    """
    pops = np.stack([synth.prefill_popularity, synth.decode_popularity])
    token_t = np.asarray(synth.token_transition, np.float64)
    target = np.asarray(synth.token_repeat, np.float64)
    q = (pops * pops).sum(axis=2)
    d = np.einsum("sle,slee->sl", pops, token_t)
    need = np.where(q < 1, (target - q) / np.where(q < 1, 1 - q, 1), 0.0)
    w = np.clip(np.maximum(synth.token_weight, need / 0.9), 0.0, 1.0)
    a = np.where((w > 0) & (d < 1),
                 (w - target + (1 - w) * q) / np.where((w > 0) & (d < 1), w * (1 - d), 1), 1.0)
    a = np.clip(a, 0.0, 1.0)
    lazy = a[:, :, None, None] * token_t
    eye = np.arange(synth.num_experts)
    lazy[:, :, eye, eye] += (1 - a)[:, :, None]
    fresh_layer = (synth.layer_weight / (1 - synth.token_weight)
                   if synth.token_weight < 1 else 0.0)
    return w, w + (1 - w) * fresh_layer, lazy


class _Tables:
    """Categorical draws from many rows at once in O(1) each: an inverse-CDF table per row.

    All rows of the popularity (2L rows: prefill then decode), layer-transition (2LE: stage,
    layer, previous expert) and lazy token-transition (2LE, :func:`mixture`) matrices share one
    flat ``uint8``/``uint16`` table; row ``r``'s entry ``q`` holds the expert whose cumulative
    probability interval holds ``(q + 0.5) / RESOLUTION`` (probabilities resolved to 1/4096).
    Built without a Python loop per row: expert ``e`` of a row fills the entries between
    ``ceil(R c[e-1] - 1/2)`` and ``ceil(R c[e] - 1/2)``, ``c`` the row's cumulative sum.
    """
    RESOLUTION = 4096
    SHIFT = 12  # log2(RESOLUTION): the low bits of a random word pick the entry
    BLOCK = 4096  # rows converted at a time (bounds the float64 working memory)

    def __init__(self, synth: SynthModel):
        layers, experts = len(synth.moe_layers), synth.num_experts
        token_share, layer_share, lazy = mixture(synth)
        scale = 1 << (32 - self.SHIFT)
        self.token_limit = np.rint(token_share * scale).astype(np.uint32)   # (2, L)
        self.layer_limit = np.rint(layer_share * scale).astype(np.uint32)
        parts = [np.concatenate([synth.prefill_popularity, synth.decode_popularity]),
                 np.asarray(synth.layer_transition).reshape(2 * layers * experts, experts),
                 lazy.reshape(2 * layers * experts, experts)]
        self.pop_base = 0
        self.layer_base = 2 * layers
        self.token_base = self.layer_base + 2 * layers * experts
        total = self.token_base + 2 * layers * experts
        if total * self.RESOLUTION >= 2 ** 31:
            raise ValueError(f"{layers} layers x {experts} experts: sampling tables too large")
        self.flat = np.empty(total * self.RESOLUTION, id_dtype(experts))
        row = 0
        for part in parts:
            for first in range(0, len(part), self.BLOCK):
                block = part[first:first + self.BLOCK]
                end = (row + len(block)) * self.RESOLUTION
                self.flat[row * self.RESOLUTION:end] = self._expand(block, experts)
                row += len(block)

    def _expand(self, block, experts):
        cumulative = np.cumsum(np.asarray(block, np.float64), axis=1)
        cumulative /= cumulative[:, -1:]
        bounds = np.clip(np.ceil(cumulative * self.RESOLUTION - 0.5), 0, self.RESOLUTION)
        bounds = bounds.astype(np.int64)
        bounds[:, -1] = self.RESOLUTION   # rounding never leaves an entry unfilled
        counts = np.diff(bounds, axis=1, prepend=0)
        return np.repeat(np.tile(np.arange(experts, dtype=self.flat.dtype), len(block)),
                         counts.reshape(-1))

    def draw(self, rows, entries):
        """Experts of table rows ``rows`` at entries ``entries`` (int32 arrays, same shape)."""
        return self.flat.take(rows * self.RESOLUTION + entries)


CHUNK_ROWS = 1 << 16
"""Rows per sampling chunk (whole requests): bounds the working memory; a fixed constant so
that the random stream, hence the output, does not depend on the machine."""


def sample(synth: SynthModel, requests: int, seed: int = 0, progress: bool = False,
           source: str = "synthetic", *, prompt_lengths=None,
           decode_lengths=None) -> TraceStore:
    """Draw ``requests`` requests from ``synth`` (seeded, deterministic).

    ``prompt_lengths`` and ``decode_lengths`` (arrays of ``requests`` values), when given, fix
    every request's lengths instead of drawing them from the model's samples.

    Requests are processed in chunks of about :data:`CHUNK_ROWS` rows, and inside a chunk layer
    after layer for every token at once, written straight into the preallocated ``ids``. One
    32-bit random word per slot decides both the source (high 20 bits against the weights of
    :func:`mixture` for the row's stage and layer) and the table entry (low 12 bits). Fresh
    draws (layer transition, popularity) are made first; token-chain draws then follow their
    previous token exactly, in rounds: round ``n`` resolves the slots ``n`` steps after the
    last fresh draw of their chain, so a layer takes as many rounds as its longest chain.
    """
    rng = np.random.default_rng([seed, 3])
    layers, experts, top_k = len(synth.moe_layers), synth.num_experts, synth.top_k
    prompt = (rng.choice(synth.prompt_lengths, requests) if prompt_lengths is None
              else np.asarray(prompt_lengths)).astype(np.int64)
    decode = np.minimum(rng.choice(synth.decode_lengths, requests) if decode_lengths is None
                        else np.asarray(decode_lengths, np.int64), MAX_DECODE_STEPS)
    lengths = prompt + decode
    offset = np.concatenate([[0], np.cumsum(lengths)])
    rows = int(offset[-1])
    ids = np.empty((rows, layers, top_k), id_dtype(experts))
    tables = _Tables(synth)
    shape = {"model": synth.model, "num_layers": synth.num_layers,
             "moe_layers": synth.moe_layers, "top_k": top_k, "num_experts": experts,
             "decode_only": not np.any(synth.prompt_lengths)}   # fitted on a decode-only trace
    leader_fit = _Leader.of(synth)
    # The tables hold all that sampling needs of the transition matrices: let the model go
    # (2 x (2, L, E, E) float64, 122 MB for DeepSeek-V3) before ``ids`` fills, unless the
    # caller keeps it (synthesize() does not).
    del synth
    cuts = np.searchsorted(offset, np.arange(CHUNK_ROWS, rows, CHUNK_ROWS), side="left")
    cuts = np.unique(np.concatenate([[0], cuts, [requests]]))
    chunks = list(zip(cuts[:-1].tolist(), cuts[1:].tolist(), strict=True))
    if progress:
        from tqdm import tqdm
        chunks = tqdm(chunks, desc="synthesising", unit="chunk")
    for first_request, end_request in chunks:
        r0, r1 = int(offset[first_request]), int(offset[end_request])
        _sample_chunk(ids[r0:r1], lengths[first_request:end_request],
                      prompt[first_request:end_request], leader_fit, experts, tables, rng)
    return TraceStore(
        **shape, request_ids=[f"{source}/{i}" for i in range(requests)],
        source_paths=[source] * requests, prefill_len=prompt.astype(np.int32),
        decode_len=decode.astype(np.int32), token_offset=offset, ids=ids,
        notes=f"synthetic ({source}), seed {seed}")


@attrs.frozen
class _Leader:
    """The leader fit's co-selection tables (:class:`SynthModel`), which sampling reads."""
    co_selection: np.ndarray
    row_layer: np.ndarray
    row_token: np.ndarray

    @classmethod
    def of(cls, synth: SynthModel) -> _Leader | None:
        """``synth``'s tables, or None for a model without a leader fit."""
        if synth.co_selection is None:
            return None
        return cls(synth.co_selection, synth.row_layer, synth.row_token)


def _sample_chunk(out, lengths, prompt, leader_fit, experts, tables, rng):
    """Fill ``out`` (rows of whole requests, ``(n, L, k)``) layer by layer, slot-major;
    ``leader_fit`` a :class:`_Leader` or None."""
    n, layers, top_k = out.shape
    leads = leader_fit is not None
    chained_slots = 1 if leads else top_k   # the leader fit chains slot 0 only
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    position = np.arange(n) - starts
    first = position == 0
    stage = (position >= np.repeat(prompt, lengths)).astype(np.int32)   # 0 prompt, 1 decode
    pop_row = tables.pop_base + stage * layers
    block_row = stage * (layers * experts)       # + j * experts + expert: a transition row
    previous = None
    for j in range(layers):
        word = rng.integers(0, 1 << 32, size=(chained_slots, n), dtype=np.uint32)
        entry = (word & np.uint32(tables.RESOLUTION - 1)).astype(np.int32)
        word >>= np.uint32(tables.SHIFT)
        from_token = word < tables.token_limit[stage, j]
        from_token &= ~first
        table_row = np.broadcast_to(pop_row + j, (chained_slots, n))
        if previous is not None:
            from_layer = (word < tables.layer_limit[stage, j]) & ~from_token
            table_row = np.where(from_layer, previous + (block_row + (tables.layer_base
                                                                       + j * experts)),
                                 table_row)
        drawn = tables.draw(table_row, entry)
        if from_token.any():
            _follow_chains(drawn.reshape(-1), from_token.reshape(-1), entry.reshape(-1),
                           np.broadcast_to(block_row + (tables.token_base + j * experts),
                                           (chained_slots, n)).reshape(-1), tables)
        if leads:
            leader = drawn[0]
            drawn = _followers(leader_fit, stage, j, leader, out[:, j - 1, :] if j else None,
                               first, top_k, rng)
            previous = leader[None, :].astype(np.int32)   # the leader's layer chain
        elif top_k > 1:
            _deduplicate(drawn, pop_row + j, tables, rng, experts)
        out[:, j, :] = drawn.T
        if not leads:
            previous = drawn.astype(np.int32)


def _follow_chains(flat, chained, entry, token_row, tables):
    """Draw every ``chained`` slot of ``flat`` (slot-major, a request's first token never
    chained) from the token table of the expert its previous token holds, in place."""
    _follow_chains_in_order(flat, chained, entry, token_row, tables.flat, tables.RESOLUTION)


@njit(cache=True)
def _follow_chains_in_order(flat, chained, entry, token_row, table, resolution):
    """:func:`_follow_chains`, compiled: one pass in slot order. A chained slot's previous
    token (the slot before it: a request's first token is never chained) is final when the
    pass reaches it, drawn afresh or resolved earlier in the pass, so every chain is followed
    exactly, as the rounds by distance from the chain's fresh draw did."""
    for i in range(len(flat)):
        if chained[i]:
            row = np.int64(token_row[i]) + np.int64(flat[i - 1])
            flat[i] = table[row * resolution + entry[i]]


def _followers(leader_fit, stage, layer, leader, previous_rows, first, top_k, rng):
    """Rows ``(k, n)``: each token's leader, then ``k - 1`` distinct experts drawn without
    replacement in proportion to the weights of :func:`fit_leader` (``leader_fit``'s tables;
    :func:`_draw_followers`, compiled; ``k - 1`` uniforms per token from ``rng``)."""
    n = len(leader)
    chosen = np.empty((n, top_k), np.int32)
    chosen[:, 0] = leader
    uniforms = rng.random((n, top_k - 1))
    previous = (np.zeros((n, 0), np.int32) if previous_rows is None
                else np.ascontiguousarray(previous_rows, np.int32))
    _draw_followers(np.ascontiguousarray(leader_fit.co_selection[:, layer]),
                    np.ascontiguousarray(leader_fit.row_layer[:, layer]),
                    np.ascontiguousarray(leader_fit.row_token[:, layer]),
                    stage.astype(np.int32), previous, first, uniforms, chosen)
    return np.ascontiguousarray(chosen.T).astype(leader.dtype)


FOLLOWER_BLOCK = 16
"""Experts per partial sum in :func:`_draw_followers` (a draw scans blocks, then one block)."""


TOKENS_PER_TASK = 512
"""Tokens per parallel task of :func:`_draw_followers` (tokens are independent given their
uniforms, so the result does not depend on the number of threads)."""


@njit(cache=True, parallel=True)
def _draw_followers(co, row_layer, row_token, stage, previous, first, uniforms, chosen):
    """:func:`_draw_span` over every token of a chunk, in parallel tasks of
    :data:`TOKENS_PER_TASK` tokens."""
    n = len(chosen)
    for task in prange((n + TOKENS_PER_TASK - 1) // TOKENS_PER_TASK):
        _draw_span(co, row_layer, row_token, stage, previous, first, uniforms, chosen,
                   task * TOKENS_PER_TASK, min(n, (task + 1) * TOKENS_PER_TASK))


@njit(cache=True)
def _draw_span(co, row_layer, row_token, stage, previous, first, uniforms, chosen, start, end):
    """Fill ``chosen[t, 1:]`` for tokens ``start <= t < end``, ``chosen[t, 0]`` their leaders.

    The weight of expert ``x`` is ``co[s, lead, x]`` times the sum over the token's row at
    the previous layer (``previous[t]``, empty at layer 0) of ``row_layer[s, i, x]`` times,
    unless ``first[t]``, ``row_token[s, leader of t - 1, x]``; the leader weighs 0. Followers
    are drawn one after the other, each in proportion to the weights of the experts not yet
    drawn (sequential draws without replacement: the same law as the Gumbel top-k of the
    weights, in the same order), by inverse CDF with ``uniforms[t, m - 1]``. An expert of
    weight 0 is drawn only once every positive weight is taken: then the lowest free id.
    """
    top_k = chosen.shape[1]
    experts, rows = co.shape[2], previous.shape[1]
    blocks = (experts + FOLLOWER_BLOCK - 1) // FOLLOWER_BLOCK
    weight = np.empty(experts, co.dtype)
    block_sum = np.empty(blocks)
    taken = np.zeros(experts, np.bool_)
    for t in range(start, end):
        s, lead = stage[t], chosen[t, 0]
        if rows:
            for x in range(experts):
                weight[x] = row_layer[s, previous[t, 0], x]
            for m in range(1, rows):
                i = previous[t, m]
                for x in range(experts):
                    weight[x] += row_layer[s, i, x]
            for x in range(experts):
                weight[x] *= co[s, lead, x]
        else:
            for x in range(experts):
                weight[x] = co[s, lead, x]
        if not first[t]:
            before = chosen[t - 1, 0]
            for x in range(experts):
                weight[x] *= row_token[s, before, x]
        weight[lead] = 0.0
        for x in range(experts):
            taken[x] = False
        taken[lead] = True
        for b in range(blocks):
            block_sum[b] = _block_total(weight, b)
        for m in range(1, top_k):
            pick = _draw_one(weight, block_sum, uniforms[t, m - 1])
            if pick < 0:                   # every positive weight taken
                pick = 0
                while taken[pick]:
                    pick += 1
            chosen[t, m] = pick
            taken[pick] = True
            weight[pick] = 0.0
            block_sum[pick // FOLLOWER_BLOCK] = _block_total(weight, pick // FOLLOWER_BLOCK)


@njit(cache=True)
def _block_total(weight, block):
    """Sum of ``weight`` over block ``block`` of :data:`FOLLOWER_BLOCK` entries (recomputed,
    not decremented, so that a block of zeros sums to exactly 0)."""
    total = 0.0
    for x in range(block * FOLLOWER_BLOCK, min((block + 1) * FOLLOWER_BLOCK, len(weight))):
        total += weight[x]
    return total


@njit(cache=True)
def _draw_one(weight, block_sum, uniform):
    """Index drawn in proportion to ``weight`` (``block_sum`` its sums per
    :data:`FOLLOWER_BLOCK`) by inverse CDF at ``uniform`` in [0, 1); -1 if every weight is 0."""
    total = block_sum.sum()
    if total <= 0.0:
        return -1
    target = uniform * total
    last_block = len(block_sum) - 1
    b = 0
    while b < last_block and target >= block_sum[b]:
        target -= block_sum[b]
        b += 1
    e = b * FOLLOWER_BLOCK
    end = min(e + FOLLOWER_BLOCK, len(weight)) - 1
    while e < end and target >= weight[e]:
        target -= weight[e]
        e += 1
    while weight[e] <= 0.0:   # rounding ran past the last positive weight: step back to it
        e -= 1
    return e


@njit(cache=True)
def _duplicates(block):
    """Mask ``(k, m)`` of slots whose expert already appears in an earlier slot of the column."""
    top_k, columns = block.shape
    dup = np.zeros(block.shape, np.bool_)
    for column in range(columns):
        for slot in range(1, top_k):
            for earlier in range(slot):
                if block[slot, column] == block[earlier, column]:
                    dup[slot, column] = True
                    break
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


FITS = ("auto", "leader", "per-slot")
"""How :func:`synthesize` fits ``like``: ``auto`` is ``leader`` (:func:`fit_leader`) for a
top-k > 1 trace and ``per-slot`` (:func:`fit`, every slot alike) for a top-1 trace."""


def synthesize(like: TraceStore | None = None, model=None, requests: int = 256,
               seed: int = 0, progress: bool = False, fit_method: str = "auto") -> TraceStore:
    """A synthetic batch: fitted to ``like`` (or built in), in ``model``'s shape.

    ``fit_method`` is one of :data:`FITS`; ``leader`` needs a top-k > 1 ``like``.
    """
    if fit_method not in FITS:
        raise ValueError(f"fit {fit_method!r}: expected one of {', '.join(FITS)}")
    source = "builtin" if like is None else f"like:{like.model or 'trace'}"
    # The model is passed on, not kept here: sample() drops its transition matrices once its
    # tables are built.
    return sample(_model_to_sample(like, model, seed, fit_method), requests, seed=seed,
                  progress=progress, source=source)


def _model_to_sample(like, model, seed: int, fit_method: str) -> SynthModel:
    """:func:`synthesize`'s model: built in, or fitted to ``like`` and reshaped to ``model``."""
    if like is None:
        return builtin_model(model or "llama4-maverick", seed=seed)
    leader = fit_method == "leader" or (fit_method == "auto" and like.top_k > 1)
    if leader and like.top_k < 2:
        raise ValueError(f"fit 'leader' needs a top-k > 1 trace to fit; the trace is "
                         f"top-{like.top_k}")
    synth = fit_leader(like) if leader else fit(like)
    return reshape(synth, model, seed=seed) if model is not None else synth


def default_batch(model="llama4-maverick", requests: int = 64, seed: int = 0) -> TraceStore:
    """The built-in default batch: needs no real trace (used by ``hwmodel`` with no arguments)."""
    return synthesize(None, model=model, requests=requests, seed=seed)
