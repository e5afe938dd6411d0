"""Reader of the gpt-oss router-data format (format name ``gpt-oss-json``): real top-k, decode only.

One file (``.json`` or ``.json.gz``) is one request, a JSON object whose ``router_data`` is a
list with one entry per generated token, ``{"token_<i>": {"layer_<l>": {"selected_experts":
[k ids], "selected_probs": [k weights]}}}``; ``i`` counts the token's position in the whole
text, so the first generated token's ``i`` is the prompt's length. The prompt's own routing is
not recorded. Other keys (``original_prompt``, ``full_text``...) are not read.

Checked, naming the file, the token (``token_<i>``) and the layer: the gzip stream and the JSON
complete; token positions consecutive; every token holding the same ``layer_0..layer_{L-1}``
keys; ``selected_experts`` a list of top-k distinct integer ids in ``0..E-1`` (top-k and
``E`` from the model, else top-k from the first token); ``selected_probs`` top-k numbers in
``[0, 1]``. The router's order (by probability, descending) is kept in the store's slots; the
probabilities are checked, not kept.

The missing prefill (``prefill``) is a user's choice, written into the store's notes:

``"from-decode"`` (default)
    The request is replayed from its first decode step: ``prefill_len`` 0, every recorded
    token a decode step, and the store is marked :attr:`~hwmodel.traces.TraceStore.decode_only`
    so replay accepts it. Nothing is invented.
``"synth"``
    The prompt's rows are synthesised, as many as the prompt's tokens (the first token's
    position), from the generative model of :mod:`hwmodel.traces.synth` fitted to the batch's
    own decode rows (seed ``seed``). Replay then sees a prefill of the right size whose routing
    follows the model's decode statistics, not the real prompt's.

Requests are read in the order of :func:`hwmodel.traces.reader.request_sources` (folders
recursively, by name). The model is the ``gpt-oss-20b`` preset unless ``model`` names another
(a user YAML for gpt-oss-120b, say): the only gpt-oss traces this format is known for.
"""

from __future__ import annotations

import math
import re

import numpy as np
import orjson

from .files import MAX_REQUEST_BYTES, _gunzip, request_sources
from .store import TraceError, stack_requests, store_from_requests

__all__ = ["PREFILL_CHOICES", "read_gptoss_json", "sniff_gptoss"]

DEFAULT_MODEL = "gpt-oss-20b"
"""The model a gpt-oss trace is checked against unless the caller names another."""
PREFILL_CHOICES = ("from-decode", "synth")
"""How the missing prefill is handled (see the module docstring); the first is the default."""

_TOKEN = re.compile(r"token_(\d+)")
_LAYER = re.compile(r"layer_(\d+)")


def sniff_gptoss(raw: bytes) -> bool:
    """Whether the start of a request file (plain or gzip) is a JSON object (not a list)."""
    if raw[:2] == b"\x1f\x8b":
        import zlib
        try:
            raw = zlib.decompressobj(wbits=31).decompress(raw, 256)
        except zlib.error:
            return False
    return raw.lstrip()[:1] == b"{"


def _layers_of(entry, where):
    """The layer indices of one token's entry, in order, checked to be ``layer_<n>`` keys."""
    if not isinstance(entry, dict) or not entry:
        raise TraceError(f"{where}: expected an object of layer_<n> keys, not "
                         f"{_short(entry)}")
    layers = []
    for key in entry:
        match = _LAYER.fullmatch(key)
        if not match:
            raise TraceError(f"{where}: key {key!r}, expected layer_<n>")
        layers.append(int(match.group(1)))
    return layers


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _row(cell, where, top_k, num_experts, origin):
    """The ``selected_experts`` of one (token, layer) cell, checked."""
    if not isinstance(cell, dict) or "selected_experts" not in cell:
        raise TraceError(f"{where}: expected an object with selected_experts and "
                         f"selected_probs, not {_short(cell)}")
    ids, probs = cell["selected_experts"], cell.get("selected_probs")
    if not isinstance(ids, list) or not all(type(v) is int for v in ids):
        raise TraceError(f"{where}: selected_experts {_short(ids)} is not a list of integers")
    if top_k is not None and len(ids) != top_k:
        raise TraceError(f"{where}: {len(ids)} expert ids {ids}, expected top-k {top_k} "
                         f"({origin})")
    bad = [v for v in ids if v < 0 or (num_experts is not None and v >= num_experts)]
    if bad:
        limit = f"0..{num_experts - 1}" if num_experts is not None else ">= 0"
        raise TraceError(f"{where}: expert id {bad[0]} out of range {limit} ({origin})")
    if len(set(ids)) != len(ids):
        twice = next(v for v in ids if ids.count(v) > 1)
        raise TraceError(f"{where}: expert {twice} chosen twice in {ids}; expected distinct ids")
    if (not isinstance(probs, list) or len(probs) != len(ids)
            or not all(type(p) in (int, float) and math.isfinite(p) and 0 <= p <= 1
                       for p in probs)):
        raise TraceError(f"{where}: selected_probs {_short(probs)}, expected {len(ids)} numbers "
                         "in [0, 1]")
    return ids


def parse_gptoss(raw: bytes, where: str, expect: dict):
    """``(prompt_len, rows (T, L, k) int64, layers)`` of one request file's bytes.

    ``expect`` holds what the request must agree with: ``layers`` (list), ``top_k``,
    ``num_experts`` and ``origin`` (where they come from); missing ones are filled in from this
    request.
    """
    if raw[:2] == b"\x1f\x8b":
        raw = _gunzip(raw, where)
    if len(raw) > MAX_REQUEST_BYTES:
        raise TraceError(f"{where}: {len(raw)} bytes of JSON; expected at most "
                         f"{MAX_REQUEST_BYTES} per request file")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise TraceError(f"{where}: not valid JSON ({error}); expected a gpt-oss request "
                         "object") from None
    if not isinstance(data, dict) or not isinstance(data.get("router_data"), list):
        raise TraceError(f"{where}: expected a JSON object with a router_data list")
    tokens = data["router_data"]
    if not tokens:
        raise TraceError(f"{where}: router_data is empty; expected one entry per generated "
                         "token")
    rows, first = [], None
    for index, entry in enumerate(tokens):
        if not isinstance(entry, dict) or len(entry) != 1:
            raise TraceError(f"{where}: router_data[{index}]: expected one token_<i> key, not "
                             f"{_short(entry)}")
        key, layers_entry = next(iter(entry.items()))
        match = _TOKEN.fullmatch(key)
        if not match:
            raise TraceError(f"{where}: router_data[{index}]: key {key!r}, expected token_<i>")
        position = int(match.group(1))
        if first is None:
            first = position
        if position != first + index:
            raise TraceError(f"{where}: token {position} (router_data[{index}]): expected "
                             f"token_{first + index} (positions count up by one)")
        here = f"{where}: token {position}"
        layers = _layers_of(layers_entry, here)
        if "layers" not in expect:
            expect["layers"] = sorted(layers)
            expect.setdefault("origin", f"the first token of {where}")
        if sorted(layers) != expect["layers"]:
            missing = sorted(set(expect["layers"]) - set(layers))
            extra = sorted(set(layers) - set(expect["layers"]))
            problem = (f"layer {missing[0]} missing" if missing
                       else f"layer {extra[0]} not expected")
            raise TraceError(f"{here}, {problem}: expected layers {_span(expect['layers'])} "
                             f"({expect['origin']})")
        row = []
        for layer in expect["layers"]:
            ids = _row(layers_entry[f"layer_{layer}"], f"{here}, layer {layer}",
                       expect.get("top_k"), expect.get("num_experts"), expect["origin"])
            expect.setdefault("top_k", len(ids))
            row.append(ids)
        rows.append(row)
    return first, np.array(rows, np.int64), expect["layers"]


def _span(layers) -> str:
    return f"layer_{layers[0]}..layer_{layers[-1]}" if layers == list(
        range(layers[0], layers[-1] + 1)) else str(layers)


def read_gptoss_json(source, model=None, limit: int | None = None,
                     prefill: str = PREFILL_CHOICES[0], seed: int = 0):
    """Read gpt-oss router-data requests (a file, a folder tree, an archive or a list file).

    Parameters
    ----------
    source : path
        Anything :func:`hwmodel.traces.reader.request_sources` accepts.
    model : str, path or MoEModel, optional
        The model the data must agree with (layers, top-k, id range). Default:
        ``gpt-oss-20b``.
    limit : int, optional
        Read only the first ``limit`` requests.
    prefill : ``"from-decode"`` or ``"synth"``
        What stands for the unrecorded prefill (module docstring).
    seed : int
        Seed of the synthesised prefill.

    Raises
    ------
    TraceError
        A damaged file or routing entry, naming the file, the token and the layer.
    """
    from ..models import load_model
    if prefill not in PREFILL_CHOICES:
        raise ValueError(f"prefill {prefill!r}: expected one of {', '.join(PREFILL_CHOICES)}")
    given = model is not None
    found = load_model(model if given else DEFAULT_MODEL)
    expect = {"layers": list(found.moe_layers), "top_k": found.top_k,
              "num_experts": found.num_experts,
              "origin": f"model {found.name}" + ("" if given else ", the format's default; "
                                                 "pass --model for another")}
    requests, prompts = [], []
    for count, (request_id, path, read) in enumerate(request_sources(source)):
        if limit is not None and count >= limit:
            break
        prompt_len, rows, layers = parse_gptoss(read(), path, expect)
        prompts.append(prompt_len)
        requests.append((request_id, path, rows[:0], rows))
    if not requests:
        raise TraceError(f"{source}: holds no request files (*.json, *.json.gz)")
    layers = expect["layers"]
    notes = ("gpt-oss-json: real decode steps of top-k routing; router probabilities checked, "
             "not kept; ")
    store = store_from_requests(requests, str(source), found, num_layers=layers[-1] + 1, moe_layers=layers,
                   top_k=expect["top_k"], notes=notes + "prefill not recorded: requests replayed "
                   "from their first decode step (prefill 'from-decode')", decode_only=True)
    if prefill == "synth":
        store = _with_synthetic_prefill(store, requests, prompts, seed, notes)
    return store


def _with_synthetic_prefill(decode_store, requests, prompts, seed, notes):
    """The batch with each request's prompt rows drawn from the model fitted to its decode."""
    from .synth import fit, sample
    fitted = fit(decode_store)
    prompt = np.asarray(prompts, np.int64)
    drawn = sample(fitted, len(prompts), seed=seed, prompt_lengths=prompt,
                   decode_lengths=np.zeros(len(prompts), np.int64))
    with_prompts = [(request_id, path, np.asarray(drawn.prefill_ids(index)), rows)
                    for index, (request_id, path, _, rows) in enumerate(requests)]
    return stack_requests(
        with_prompts, model_name=decode_store.model, num_layers=decode_store.num_layers,
        moe_layers=tuple(decode_store.moe_layers.tolist()),
        num_experts=decode_store.num_experts, top_k=decode_store.top_k,
        notes=notes + f"prefill not recorded: prompt rows (as many as the prompt's tokens, the "
                      f"first token's position) synthesised from the batch's decode statistics, "
                      f"seed {seed} (prefill 'synth')")
