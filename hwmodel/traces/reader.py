"""Reader of the paper's trace dataset: request files, folders, trees, archives and lists.

A request file is a JSON list of iterations (SPEC section 5): iteration 0 maps every layer index
``"0".."L-1"`` to ``null`` (dense layer) or one row of top-k expert ids per prompt token;
iterations 1.. are decode steps with exactly one row per MoE layer.

Parsing has two paths that give identical results. The fast path deletes the file's JSON
whitespace, compares the *skeleton* of what is left (its digits deleted too) with the compact
template (``separators=(",", ":")``) for the shape read off iteration 0, checks that every run
of digits sits in a number's place of the template and that no whitespace stood inside a token,
and reads the numbers with numpy. It builds no Python object per token. Anything else (invalid
JSON, a wrong width, keys out of order, an id out of range...) goes to the checked path, which
parses with orjson and walks the structure to raise a :class:`TraceError` naming the file,
iteration, layer and token, or accepts a file that is valid but written differently.

Request order (:func:`request_sources`): in a folder, request files first, in numeric order of
their stem (``0, 1, 2, ..., 10``; non-numeric stems after, by name), then sub-folders and
``.tar.gz`` subject archives by name (an archive sorts by its name without ``.tar.gz``), each
recursively; an archive's members in the same order. A list file (any other text file) names
one request per line, kept in that order; relative paths are relative to the list file, blank
lines and ``#`` comments are skipped.
"""

from __future__ import annotations

import functools
from pathlib import Path

import attrs
import numpy as np
import orjson

from .adapters import detect_format, read_format
from .files import MAX_REQUEST_BYTES, _gunzip, request_sources
from .store import TraceError, TraceStore, id_dtype, is_store_file, stack_requests

__all__ = ["MAX_REQUEST_BYTES", "ParsedRequest", "open_batch", "parse_request", "request_sources", "stack_requests"]


@attrs.frozen
class ParsedRequest:
    """One request: layer map, prompt rows ``(P, moe, k)`` and decode rows ``(D, moe, k)``."""
    num_layers: int
    moe_layers: tuple[int, ...]
    prefill: np.ndarray
    decode: np.ndarray

    @property
    def top_k(self) -> int:
        return self.prefill.shape[2]


@attrs.frozen
class _Expect:
    """What a request must agree with: the model's, or the first file's, layer map and top-k."""
    num_layers: int | None = None
    moe_layers: tuple[int, ...] | None = None
    top_k: int | None = None
    num_experts: int | None = None
    origin: str = ""


# ------------------------------------------------------------------------------ fast path
_WHITESPACE = b" \t\r\n"
_DIGITS = b"0123456789"
#: Marks of a number's place in a template: a layer key, an expert id.
_KEY, _ID = b"#", b"$"
#: Digits an id may have on the fast path (65,535 has five; a sixth finds the checked path's
#: message "too large").
_MAX_DIGITS = 6


@functools.lru_cache(maxsize=4)
def _template(num_layers: int, moe: tuple[int, ...], top_k: int, rows: int) -> bytes:
    """One iteration as compact JSON (``separators=(",", ":")``) with every number replaced by
    a mark (:data:`_KEY`, :data:`_ID`): ``rows`` rows of ``top_k`` ids per MoE layer."""
    row = b"[" + b",".join([_ID] * top_k) + b"]"
    value = b"[" + b",".join([row] * rows) + b"]"
    return b"{" + b",".join(b'"' + _KEY + b'":' + (value if layer in moe else b"null")
                            for layer in range(num_layers)) + b"}"


@functools.lru_cache(maxsize=4)
def _marks(template: bytes):
    """``template`` without its marks (the *skeleton*), the marks' places in it, and which of
    them are layer keys."""
    text = np.frombuffer(template, np.uint8)
    at = np.flatnonzero((text == _KEY[0]) | (text == _ID[0]))
    return template.translate(None, _KEY + _ID), at - np.arange(len(at)), text[at] == _KEY[0]


def _shape(skeleton: bytes):
    """``(num_layers, moe_layers, top_k, prompt_rows)`` read off a compact skeleton's
    iteration 0: a guess, which the caller checks by comparing whole skeletons.

    Raises
    ------
    ValueError, IndexError
        No iteration, no MoE layer or no row to read them from.
    """
    first = skeleton[2:skeleton.index(b"}")]           # after '[{'
    values = first.split(b'"":')[1:]
    moe = tuple(layer for layer, value in enumerate(values) if value[:1] == b"[")
    row_start = skeleton.index(b"[[") + 1
    row = skeleton[row_start:skeleton.index(b"]", row_start) + 1]
    value = values[moe[0]]
    rows = 0 if value.startswith(b"[]") else value.count(b"[") - 1
    return len(values), moe, row.count(b",") + 1, rows


def _digit_values(a, ends, lengths, most: int):
    """The numbers of the runs of digits of ``a`` ending before ``ends`` with ``lengths``
    digits (at most ``most``)."""
    if int(ends[0]) < most:      # the first run too close to the start: pad
        a, ends = np.concatenate([np.zeros(most, np.uint8), a]), ends + most
    values = np.zeros(len(ends), np.int32)
    for j in range(most, 0, -1):      # the j-th byte before the end: a digit of runs that long
        digit = a[ends - j] - np.uint8(48)
        values = values * 10 + np.where(lengths >= j, digit, np.uint8(0))
    return values


def _compact_parse(text: bytes):
    """``(num_layers, moe_layers, prefill, decode)`` if ``text`` is exactly a request
    in compact JSON (its skeleton equals the template's and every number sits in a mark's
    place: a key counting 0..L-1, an id of at most :data:`_MAX_DIGITS` digits without leading
    zeros), else None."""
    skeleton = text.translate(None, _DIGITS)
    try:
        num_layers, moe, top_k, rows = _shape(skeleton)
    except (ValueError, IndexError):
        return None
    first_skeleton, first_at, first_key = _marks(_template(num_layers, moe, top_k, rows))
    step_skeleton, step_at, step_key = _marks(_template(num_layers, moe, top_k, 1))
    stride = 1 + len(step_skeleton)
    lead = 1 + len(first_skeleton)
    decode, extra = divmod(len(skeleton) - lead - 1, stride)
    if (extra or decode < 0
            or skeleton != b"[" + first_skeleton + (b"," + step_skeleton) * decode + b"]"):
        return None
    # Every number in a mark's place: the runs of digits, in skeleton positions.
    a = np.frombuffer(text, np.uint8)
    digit = (a - np.uint8(48)) < 10
    edges = np.flatnonzero(digit[1:] != digit[:-1]) + 1
    if digit[0] or digit[-1] or len(edges) != 2 * (len(first_at) + decode * len(step_at)):
        return None
    starts, lengths = edges[0::2], edges[1::2] - edges[0::2]
    places = starts - (np.cumsum(lengths) - lengths)
    head = len(first_at)
    steps = places[head:].reshape(decode, len(step_at))
    if (np.any(places[:head] != 1 + first_at)
            or np.any(steps != (lead + 1 + stride * np.arange(decode))[:, None] + step_at)):
        return None
    most = int(lengths.max())
    if most > _MAX_DIGITS or np.any((a[starts] == 48) & (lengths > 1)):
        return None
    values = _digit_values(a, starts + lengths, lengths, most)
    first, steps = values[:head], values[head:].reshape(decode, len(step_at))
    layer_keys = np.arange(num_layers)
    if np.any(first[first_key] != layer_keys) or np.any(steps[:, step_key] != layer_keys):
        return None
    prefill = first[~first_key].reshape(len(moe), rows, top_k).transpose(1, 0, 2)
    decode_ids = steps[:, ~step_key].reshape(decode, len(moe), top_k)
    return (num_layers, moe, np.ascontiguousarray(prefill, np.int64),
            decode_ids.astype(np.int64))


def _whitespace_splits_a_token(raw: bytes, text: bytes) -> bool:
    """Whether whitespace in ``raw`` stood inside a token that ``text`` (``raw`` stripped of
    whitespace, a compact request) shows whole.

    In a compact request two token characters (digits, quotes, the letters of ``null``) are
    adjacent only inside a key (``"12"``), an id or a ``null``; stripping whitespace there
    changes the meaning (``1 2`` -> ``12``, ``" 1"`` -> ``"1"``, ``nu ll`` -> ``null``).
    Removing whitespace never splits a run of token characters and merges two exactly where
    whitespace stood between them, so ``raw`` has as many runs as ``text`` iff none did.
    """
    return _token_runs(raw) != _token_runs(text)


def _token_runs(text: bytes) -> int:
    """Runs of token characters in ``text``: digits, quotes and the letters ``l``..``u`` (which
    hold those of ``null``). Vectorised comparisons, no table look-up, block by block into three
    buffers of :data:`_BLOCK` bytes (temporaries of a whole request's size would be fresh pages
    from the system for every file: more time in page faults than in the comparisons)."""
    a = np.frombuffer(text, np.uint8)
    scratch = np.empty(min(len(a), _BLOCK), np.uint8)
    token, other = np.empty(len(scratch), bool), np.empty(len(scratch), bool)
    runs, after_token = 0, False
    for start in range(0, len(a), _BLOCK):
        block = a[start:start + _BLOCK]
        n = len(block)
        np.less(np.subtract(block, np.uint8(48), out=scratch[:n]), 10, out=token[:n])
        token[:n] |= np.equal(block, 34, out=other[:n])
        token[:n] |= np.less(np.subtract(block, np.uint8(108), out=scratch[:n]), 10,
                             out=other[:n])
        starts = np.greater(token[1:n], token[:n - 1], out=other[1:n])
        runs += int(np.count_nonzero(starts)) + int(token[0] and not after_token)
        after_token = bool(token[n - 1])
    return runs


#: Bytes per block of :func:`_token_runs`: its buffers stay below the C library's threshold for
#: allocating from the system (128 KiB by default), so they reuse memory.
_BLOCK = 1 << 15


def _fast_parse(raw: bytes):
    """The request's ``(num_layers, moe_layers, prefill, decode)`` if ``raw`` stripped of its
    whitespace is a request in compact JSON and the whitespace stood between tokens only,
    else None (the checked path then decides)."""
    text = raw.translate(None, _WHITESPACE)
    parsed = _compact_parse(text)
    if parsed is None or (len(text) != len(raw) and _whitespace_splits_a_token(raw, text)):
        return None
    return parsed


# ---------------------------------------------------------------------------- checked path
def _checked_parse(raw: bytes, where: str, expect: _Expect):
    """Parse with orjson and walk it; raise TraceError naming file, iteration, layer, token."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise TraceError(f"{where}: not valid JSON: {error}") from None
    if not isinstance(data, list):
        raise TraceError(f"{where}: top level must be a list of iterations, "
                         f"not a JSON {_json_type(data)}")
    if not data:
        raise TraceError(f"{where}: no iterations (an empty list); expected the prefill first")
    num_layers = moe_layers = None
    top_k = expect.top_k
    prompt_len = None
    prefill, decode = [], []
    for iteration, layers in enumerate(data):
        here = f"{where}: iteration {iteration}"
        if not isinstance(layers, dict):
            raise TraceError(f"{here}: expected an object mapping layer indices to rows, "
                             f"not a JSON {_json_type(layers)}")
        keys = sorted(layers, key=lambda k: (len(k), k))
        expected = [str(i) for i in range(len(keys))]
        if keys != expected:
            wrong = sorted(set(keys) - set(expected)) or sorted(set(expected) - set(keys))
            raise TraceError(f"{here}: layer keys must be \"0\"..\"{len(keys) - 1}\", found "
                             f"{', '.join(repr(k) for k in wrong[:5])} among {len(keys)} keys")
        layer_set = tuple(i for i in range(len(keys)) if layers[str(i)] is not None)
        if num_layers is None:
            num_layers, moe_layers = len(keys), layer_set
            _check_layer_map(where, num_layers, moe_layers, expect)
        elif len(keys) != num_layers or layer_set != moe_layers:
            changed = sorted(set(layer_set) ^ set(moe_layers)) or [len(keys)]
            raise TraceError(f"{here}: the MoE/dense layer set changes between iterations: "
                             f"{len(keys)} layers with MoE layers {_span(layer_set)} here, "
                             f"{num_layers} layers with MoE layers {_span(moe_layers)} in "
                             f"iteration 0 (layer {changed[0]} differs)")
        step = []
        for column, layer in enumerate(moe_layers):
            rows = layers[str(layer)]
            if not isinstance(rows, list):
                raise TraceError(f"{here}, layer {layer}: expected a list of rows (or null), "
                                 f"not {rows!r}")
            if iteration == 0:
                if prompt_len is None:
                    prompt_len = len(rows)
                elif len(rows) != prompt_len:
                    raise TraceError(f"{here}, layer {layer}: {len(rows)} prompt rows, but "
                                     f"layer {moe_layers[0]} has {prompt_len}")
            elif len(rows) != 1:
                raise TraceError(f"{here}, layer {layer}: a decode step must hold exactly one "
                                 f"row, found {len(rows)}")
            for token, row in enumerate(rows):
                at = f"{here}, layer {layer}, token {token}"
                if not isinstance(row, list):
                    raise TraceError(f"{at}: expected a row of expert ids, not {row!r}")
                if not row:
                    raise TraceError(f"{at}: an empty row []; expected at least one expert id")
                if top_k is None:
                    top_k = len(row)
                if len(row) != top_k:
                    source = f"model {expect.origin}" if expect.top_k else "the first row"
                    raise TraceError(f"{at}: row {row!r} has {len(row)} expert ids, expected "
                                     f"top-k {top_k} ({source})")
                for value in row:
                    if type(value) is not int or value < 0:
                        raise TraceError(f"{at}: expert id {value!r} is not a non-negative "
                                         "integer")
                    if expect.num_experts is not None and value >= expect.num_experts:
                        raise TraceError(f"{at}: expert id {value} out of range "
                                         f"0..{expect.num_experts - 1} for model "
                                         f"{expect.origin}")
                    if value > 65535:
                        raise TraceError(f"{at}: expert id {value} too large (more than "
                                         "65,536 experts)")
            step.append(rows)
        (prefill if iteration == 0 else decode).append(step)
    top_k = top_k or 1
    pre = np.array(prefill[0], dtype=np.int64).reshape(len(moe_layers), prompt_len or 0, top_k)
    dec = np.array(decode, dtype=np.int64).reshape(len(decode), len(moe_layers), top_k)
    return num_layers, moe_layers, pre.transpose(1, 0, 2), dec


def _json_type(value) -> str:
    return {dict: "object", list: "list", str: "string", int: "number", float: "number",
            bool: "boolean", type(None): "null"}.get(type(value), type(value).__name__)


def _span(layers) -> str:
    layers = list(layers)
    if len(layers) > 6:
        return f"[{', '.join(map(str, layers[:3]))}, ..., {', '.join(map(str, layers[-2:]))}]"
    return str(layers)


def _check_layer_map(where, num_layers, moe_layers, expect: _Expect):
    if expect.num_layers is not None and num_layers != expect.num_layers:
        raise TraceError(f"{where}: iteration 0 has {num_layers} layers, {expect.origin} has "
                         f"{expect.num_layers}")
    if expect.moe_layers is not None and tuple(moe_layers) != tuple(expect.moe_layers):
        diff = sorted(set(moe_layers) ^ set(expect.moe_layers))
        raise TraceError(f"{where}: iteration 0: MoE layers {_span(moe_layers)} differ from "
                         f"{expect.origin}'s {_span(expect.moe_layers)} (layer {diff[0]} "
                         f"is {'MoE' if diff[0] in moe_layers else 'dense'} here)")


def parse_request(raw: bytes, where: str = "<request>", model=None, *,
                  _expect: _Expect | None = None) -> ParsedRequest:
    """Parse and validate one request file's bytes (plain or gzip-compressed JSON).

    Parameters
    ----------
    raw : bytes
        The file's contents.
    where : str
        Its name, used in error messages.
    model : MoEModel, preset name or None
        The model the request must agree with (layers, MoE layers, top-k, id range).

    Raises
    ------
    TraceError
        Naming ``where``, the iteration, layer and token of the first problem.
    """
    if raw[:2] == b"\x1f\x8b":
        raw = _gunzip(raw, where)
    if len(raw) > MAX_REQUEST_BYTES:
        raise TraceError(f"{where}: {len(raw)} bytes of JSON; expected at most "
                         f"{MAX_REQUEST_BYTES} per request file")
    expect = _expect or _expect_from_model(model)
    parsed = _fast_parse(raw)
    if parsed is not None:
        num_layers, moe_layers, prefill, decode = parsed
        agrees = ((expect.num_layers in (None, num_layers))
                  and (expect.moe_layers in (None, tuple(moe_layers)))
                  and (expect.top_k in (None, prefill.shape[2]))
                  and (prefill.size + decode.size == 0
                       or max(prefill.max(initial=0), decode.max(initial=0))
                       < (expect.num_experts or 65536)))
        if not agrees:
            parsed = None
    if parsed is None:
        num_layers, moe_layers, prefill, decode = _checked_parse(raw, where, expect)
    if len(prefill) == 0:
        raise TraceError(f"{where}: iteration 0 holds no prompt rows; expected the prefill "
                         "first (one row of expert ids per prompt token)")
    return ParsedRequest(num_layers=num_layers, moe_layers=tuple(moe_layers),
                         prefill=prefill, decode=decode)


def _expect_from_model(model) -> _Expect:
    if model is None:
        return _Expect()
    from ..models import load_model
    model = load_model(model)
    return _Expect(num_layers=model.num_layers, moe_layers=tuple(model.moe_layers),
                   top_k=model.top_k, num_experts=model.num_experts, origin=model.name)


# -------------------------------------------------------------------------------- batches
def open_batch(source, model=None, limit: int | None = None, progress: bool = False,
               mmap: bool = True, format: str | None = None,
               prefill: str | None = None) -> TraceStore:
    """A batch of requests as a :class:`TraceStore`.

    Parameters
    ----------
    source : path
        A store file (memory-mapped), a request file (``.json``/``.json.gz``), a subject,
        benchmark or whole ``profiling_result`` folder, a subject ``.tar.gz`` archive, or a text
        file listing request files one per line.
    model : str, path or MoEModel, optional
        The model the trace must agree with. Default: inferred from the first request's path
        (``<org>/<model>``, see :func:`hwmodel.models.model_from_path`); if none matches, the
        layer map and top-k come from the first request and ``num_experts`` from the largest id.
    limit : int, optional
        Read only the first ``limit`` requests in batch order.
    progress : bool
        Show a tqdm progress bar.
    format : str, optional
        Read ``source`` with an adapter of :mod:`hwmodel.traces.adapters` (``deepseek-csv``,
        ``vllm-jsonl``, ``flame-csv``, ``switch-csv``, ``gpt-oss-json``). Default: detected
        from the file's (or the folder's first file's) first line, a JSON request that is an
        object being ``gpt-oss-json``; the dataset's JSON otherwise.
    prefill : str, optional
        For the decode-only ``gpt-oss-json`` format: ``from-decode`` (default) or ``synth``
        (:mod:`hwmodel.traces.gptoss`). Refused for any other source.

    Raises
    ------
    TraceError
        A malformed request or one that contradicts the model (names file, iteration, layer,
        token). FileNotFoundError for a missing source.
    """
    from ..models import load_model, model_from_path
    source = Path(source)
    if limit is not None and limit < 1:
        raise ValueError(f"limit {limit}: expected a number of requests >= 1")
    if format is None and not (source.is_file() and is_store_file(source)):
        format = detect_format(source)
    if format is not None:
        return read_format(source, format, model=model, limit=limit, prefill=prefill)
    if prefill is not None:
        raise ValueError(f"--prefill {prefill!r} applies to the decode-only gpt-oss-json "
                         f"format; {source} is not one")
    if source.is_file() and is_store_file(source):
        store = TraceStore.load(source, mmap=mmap)
        store.check_ids()
        if model is not None and load_model(model).name != store.model:
            _check_store_model(store, load_model(model), source)
        return store.select(np.arange(min(limit, len(store)))) if limit is not None else store
    sources = request_sources(source)
    first = next(sources, None)
    if first is None:
        raise TraceError(f"{source}: holds no request files (*.json, *.json.gz, *.tar.gz)")
    if model is None:
        model = model_from_path(Path(first[1].split("::")[0]).resolve())
    moe_model = load_model(model) if model is not None else None
    expect = _expect_from_model(moe_model)

    def all_sources():
        yield first
        yield from sources

    requests = []
    iterator = all_sources()
    if progress:
        from tqdm import tqdm
        iterator = tqdm(iterator, desc="reading requests", unit="req")
    largest = -1
    for count, (request_id, path, read) in enumerate(iterator):
        if limit is not None and count >= limit:
            break
        parsed = parse_request(read(), path, _expect=expect)
        if expect.moe_layers is None:
            # No model: the first request fixes the layer map and top-k for the others.
            expect = _Expect(num_layers=parsed.num_layers, moe_layers=parsed.moe_layers,
                             top_k=parsed.top_k, origin=f"the first request ({path})")
        for rows in (parsed.prefill, parsed.decode):
            if rows.size:
                largest = max(largest, int(rows.max()))
        # Kept in the narrowest type the ids fit (checked above: below the model's expert
        # count, else below 65,536), not as parsed int64: a large batch held 8x its size.
        held = id_dtype(expect.num_experts) if expect.num_experts else np.uint16
        requests.append((request_id, path, parsed.prefill.astype(held),
                         parsed.decode.astype(held)))
    if moe_model is not None:
        name, num_experts = moe_model.name, moe_model.num_experts
    else:
        name, num_experts = "", largest + 1
    return stack_requests(requests, model_name=name, num_layers=expect.num_layers,
                          moe_layers=expect.moe_layers, num_experts=max(num_experts, 1),
                          top_k=expect.top_k)


def _check_store_model(store, model, source):
    if (store.num_layers != model.num_layers
            or tuple(store.moe_layers.tolist()) != tuple(model.moe_layers)
            or store.top_k != model.top_k or store.num_experts > model.num_experts):
        raise TraceError(f"{source}: store of model {store.model or 'unknown'} ({store.num_layers}"
                         f" layers, {len(store.moe_layers)} MoE, top-{store.top_k}, "
                         f"{store.num_experts} experts) contradicts model {model.name}")
