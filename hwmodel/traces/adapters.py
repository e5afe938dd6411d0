"""Adapters: the other public trace formats, read into the same :class:`TraceStore`.

Each reader validates as it goes (a :class:`TraceError` names the file and line, the bad value
and what was expected) and writes into ``store.notes`` what its source lacks, so a later user of
the store knows. Formats (``FORMATS``, names used by ``open_batch(format=...)`` and
``hwmodel trace convert --format``):

``deepseek-csv`` (:func:`read_deepseek_csv`)
    Per-prompt CSV of prefill routing, header ``Layer ID,Batch Number,Token,Activated Expert
    IDs``; rows grouped by layer, token order within a layer; ``Token`` a quoted tokenizer piece
    (may hold commas), ids a JSON list. One request per file and batch number. *Lacks*: decode
    (prefill only), scores. The token text is checked to be the same at every layer, not kept.
``vllm-jsonl`` (:func:`read_vllm_jsonl`)
    vLLM per-layer log: a ``{"type": "meta"}`` line, then ``route`` lines (``req_id``,
    ``token_idx``, ``layer``, ``topk_ids``, ``topk_weights``). A forward pass starts where
    ``token_idx`` drops to 0; the first ``warmup_passes`` (2) passes run dummy tokens and are
    skipped, counted in the notes. *Lacks*: request identity (``req_id`` is one constant in
    the logs seen) and so the prefill/decode split and token order of a request: **each kept
    forward pass becomes one store request** whose rows are all that pass's tokens (as
    iteration-0 rows, in ``token_idx`` order); only ONE layer (a store column); the weights are
    not kept.
``flame-csv`` (:func:`read_flame_csv`)
    Dense router scores, ``layer_id,token_id,expert_0..expert_{E-1}``, one file per layer (the
    real layer is ``_layer<L>_`` in the file name; the ``layer_id`` column is ignored). Exactly
    top-k scores of a row are non-zero: those experts are chosen, **ordered by score
    descending, ties by expert id ascending**. Sequences: ``<S>seqs`` in the file name splits
    the token ids ``0..N-1`` into S requests of N/S consecutive tokens (one request without
    it). *Lacks*: decode (a pretraining forward pass), the dense layers, a model preset (the
    store carries its shape: ``num_layers`` = last MoE layer + 1, ``model`` empty).
``switch-csv`` (:func:`read_switch_csv`)
    Switch-Transformer decoder log, no header: article id, then repeated (step, Python repr of
    a list alternating ``tensor(logits)`` and ``tensor([choice])`` per MoE layer,
    ``tensor(token)``); parsed with regular expressions, never ``eval``. One request per row.
    *Lacks*: prefill (decode only; ``prefill_len`` 0), the encoder's MoE layers, a model preset:
    the M recorded layers are taken as the sparse layers of a 2M-layer decoder (every other
    layer, 1, 3, ..., 2M-1, as in Switch/T5), ``model`` empty, experts = logits per layer.
    The generated token ids and the logits are checked, not kept.

Model shape: with ``model=`` the data must agree with it (top-k, MoE layers a subset, ids in
range). Without, the shape comes from the data and a preset is named only when its MoE layers
and top-k are exactly the data's and its expert count is the source's (or above the largest
id); for vLLM, the preset whose Hugging Face id ends with the meta line's ``model_id``. Else
``store.model`` is ``""``.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import orjson

from .files import _file_key
from .gptoss import read_gptoss_json, sniff_gptoss
from .store import TraceError, TraceStore, store_from_requests

__all__ = ["FORMATS", "detect_format", "read_deepseek_csv", "read_flame_csv", "read_format",
           "read_switch_csv", "read_vllm_jsonl"]

_DEEPSEEK_HEADER = ["Layer ID", "Batch Number", "Token", "Activated Expert IDs"]


def _natural_key(path: Path):
    """``prompt_2`` before ``prompt_10``: digit runs compare as numbers."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part)
            for part in re.split(r"(\d+)", path.name)], path.name


def _files(source: Path, suffixes) -> list[Path]:
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"no such trace source: {source}")
    if source.is_file():
        return [source]
    files = sorted((p for p in source.iterdir()
                    if p.is_file() and p.name.endswith(suffixes) and not p.name.startswith(".")),
                   key=_natural_key)
    if not files:
        raise TraceError(f"{source}: holds no {'/'.join(suffixes)} files")
    return files


def _int(text, where, what):
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise TraceError(f"{where}: {what} {text!r} is not an integer") from None
    if value < 0:
        raise TraceError(f"{where}: {what} {value} is negative")
    return value


def _id_row(value, where, top_k):
    if not isinstance(value, list) or not all(type(v) is int and v >= 0 for v in value):
        raise TraceError(f"{where}: expert ids {value!r} are not a list of non-negative "
                         "integers")
    if top_k is not None and len(value) != top_k:
        raise TraceError(f"{where}: {len(value)} expert ids {value!r}, expected top-k {top_k} "
                         "(the first row)")
    return value


# --------------------------------------------------------------------------- DeepSeek CSV
def _deepseek_file(path: Path, top_k):
    """``([(batch, rows (P, L, k))], layers, top_k)`` of one prompt file."""
    with open(path, newline="", encoding="utf-8") as file:
        reader = csv.reader(file)
        header = next(reader, None)
        if header != _DEEPSEEK_HEADER:
            raise TraceError(f"{path}:1: header {header!r}, expected "
                             f"{','.join(_DEEPSEEK_HEADER)}")
        layers, id_text, lines = [], [], []
        for row in reader:
            line = reader.line_num
            where = f"{path}:{line}"
            if len(row) != 4:
                raise TraceError(f"{where}: {len(row)} fields {row!r}, expected 4 "
                                 f"({', '.join(_DEEPSEEK_HEADER)})")
            layer = _int(row[0], where, "Layer ID")
            batch = _int(row[1], where, "Batch Number")
            if not layers or layers[-1][0] != layer:
                if any(seen == layer for seen, _ in layers):
                    raise TraceError(f"{where}: layer {layer} starts again after layer "
                                     f"{layers[-1][0]}; rows must be grouped by layer")
                layers.append((layer, {}))
            layers[-1][1].setdefault(batch, []).append((row[2], len(id_text)))
            id_text.append(row[3])
            lines.append(line)
    if not layers:
        raise TraceError(f"{path}: no rows after the header")
    try:  # one parse for the whole file; a bad field is then found row by row
        flat = orjson.loads("[" + ",".join(id_text) + "]")
        if len(flat) != len(id_text):
            raise ValueError
    except (orjson.JSONDecodeError, ValueError):
        flat = None
    ids = []
    for index, text in enumerate(id_text):
        where = f"{path}:{lines[index]}"
        if flat is None:
            try:
                value = orjson.loads(text)
            except orjson.JSONDecodeError:
                raise TraceError(f"{where}: Activated Expert IDs {text!r} is not a JSON "
                                 "list") from None
        else:
            value = flat[index]
        top_k = len(_id_row(value, where, top_k))
        ids.append(value)
    ids = np.array(ids, np.int64).reshape(len(ids), top_k)
    first_layer, first = layers[0]
    for layer, batches in layers[1:]:
        for batch in sorted(set(batches) | set(first)):
            here, there = batches.get(batch, []), first.get(batch, [])
            if len(here) != len(there):
                row = lines[(here or there)[0][1]]
                raise TraceError(f"{path}:{row}: layer {layer} batch {batch} has {len(here)} "
                                 f"tokens, layer {first_layer} has {len(there)}")
            for position, ((token, index), (expected, _)) in enumerate(
                    zip(here, there, strict=True)):
                if token != expected:
                    raise TraceError(f"{path}:{lines[index]}: layer {layer} batch {batch} token "
                                     f"{position} is {token!r}, layer {first_layer} has "
                                     f"{expected!r} (token order must match across layers)")
    result = []
    for batch in sorted(first):
        columns = [ids[[index for _, index in batches[batch]]] for _, batches in layers]
        result.append((batch, np.stack(columns, axis=1)))
    return result, [layer for layer, _ in layers], top_k


def read_deepseek_csv(source, model=None, limit: int | None = None) -> TraceStore:
    """Read DeepSeek-V2-Lite-style prefill CSV (a file or a folder of ``prompt_<n>_data.csv``).

    Files are read in natural order of their names (``prompt_2`` before ``prompt_10``); each
    (file, batch number) is one request, batch numbers ascending; its rows are the prompt's
    tokens, columns the layers present in the file, ascending. The source has no decode steps:
    ``decode_len`` is 0 everywhere (noted in ``store.notes``).

    Raises
    ------
    TraceError
        Wrong header, a non-integer layer or batch, ids not a JSON list of non-negative
        integers or of another width than the first row, layers not grouped, token counts or
        token text differing between layers, layer sets differing between files (file:line).
    """
    files = _files(source, (".csv",))
    requests, layers, top_k, origin = [], None, None, None
    for path in files:
        batches, file_layers, top_k = _deepseek_file(path, top_k)
        order = np.argsort(file_layers, kind="stable")
        if layers is None:
            layers, origin = sorted(file_layers), path
        elif sorted(file_layers) != layers:
            raise TraceError(f"{path}: layers {sorted(file_layers)} differ from {origin}'s "
                             f"{layers}")
        for batch, rows in batches:
            request_id = path.name if len(batches) == 1 and batch == 0 else \
                f"{path.name}#batch{batch}"
            empty = np.zeros((0, len(layers), top_k), np.int64)
            requests.append((request_id, str(path), rows[:, order], empty))
        if limit is not None and len(requests) >= limit:
            requests = requests[:limit]
            break
    notes = ("deepseek-csv: prefill only (no decode steps), no router scores; token text "
             "checked, not kept")
    return store_from_requests(requests, str(source), model, num_layers=layers[-1] + 1, moe_layers=layers,
                  top_k=top_k, notes=notes)


# ----------------------------------------------------------------------------- vLLM JSONL
def read_vllm_jsonl(source, model=None, warmup_passes: int = 2,
                    limit: int | None = None) -> TraceStore:
    """Read one vLLM per-layer routing log (a ``.jsonl`` file; ONE layer, one run).

    Each forward pass after the ``warmup_passes`` warm-up passes becomes one store request
    (id ``<file>#pass<n>``, ``n`` counting from 0 at the first pass of the file, warm-up
    included) holding all its tokens as prompt rows in ``token_idx`` order; the store has one
    MoE column, the logged layer. The skipped warm-up passes and their routes are counted in
    ``store.notes``.

    Raises
    ------
    TraceError
        Invalid JSON, an unknown ``type``, a missing or wrong field, a layer other than the
        file's first, ``token_idx`` not counting up by one inside a pass, fewer passes than the
        warm-up (file:line).
    """
    files = _files(source, (".jsonl",))
    if len(files) != 1:
        raise TraceError(f"{source}: {len(files)} vLLM logs; each holds one layer of a separate "
                         "run and cannot be merged: convert them one at a time")
    path = files[0]
    meta, layer, top_k = None, None, None
    passes, ids, expected = [], [], 0
    with open(path, "rb") as file:
        for line_number, line in enumerate(file, 1):
            where = f"{path}:{line_number}"
            if not line.strip():
                continue
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError as error:
                raise TraceError(f"{where}: not valid JSON: {error}") from None
            kind = record.get("type") if isinstance(record, dict) else None
            if kind == "meta" and meta is None and not ids:
                meta = record
                continue
            if kind != "route":
                raise TraceError(f"{where}: record type {kind!r}, expected 'route' (or one "
                                 "'meta' line first)")
            missing = [k for k in ("token_idx", "layer", "topk_ids") if k not in record]
            if missing:
                raise TraceError(f"{where}: route without {', '.join(missing)}")
            token = record["token_idx"]
            if type(token) is not int or token < 0:
                raise TraceError(f"{where}: token_idx {token!r} is not a non-negative integer")
            if layer is None:
                layer = _int(record["layer"], where, "layer")
            elif record["layer"] != layer:
                raise TraceError(f"{where}: layer {record['layer']!r}, but this log holds layer "
                                 f"{layer} (one layer per file)")
            row = _id_row(record["topk_ids"], where, top_k)
            top_k = len(row)
            if token == 0:
                passes.append(len(ids))
                expected = 0
            elif token != expected or not passes:
                raise TraceError(f"{where}: token_idx {token}, expected {expected} (a pass "
                                 "counts 0, 1, 2, ...)")
            expected = token + 1
            ids.append(row)
    if layer is None:
        raise TraceError(f"{path}: no route records")
    logged = (meta or {}).get("layers_logged")
    if logged is not None and list(logged) != [layer]:
        raise TraceError(f"{path}:1: meta layers_logged {logged!r}, but the routes are layer "
                         f"{layer}")
    if len(passes) <= warmup_passes:
        raise TraceError(f"{path}: {len(passes)} forward passes, expected more than the "
                         f"{warmup_passes} warm-up passes")
    bounds = passes + [len(ids)]
    ids = np.array(ids, np.int64).reshape(len(ids), 1, top_k)
    skipped = bounds[warmup_passes]
    requests = [(f"{path.name}#pass{n}", str(path), ids[bounds[n]:bounds[n + 1]],
                 np.zeros((0, 1, top_k), np.int64))
                for n in range(warmup_passes, len(passes))][:limit]
    notes = (f"vllm-jsonl: skipped {warmup_passes} warm-up passes ({skipped} routes); "
             f"{len(passes) - warmup_passes} forward passes kept, one store request each "
             "(no request identity, so no prefill/decode split); one layer only "
             f"({layer}); weights not kept")
    hint = (str(meta.get("model_id", "")).split("/")[-1] or None) if meta else None
    return store_from_requests(requests, str(path), model, num_layers=layer + 1, moe_layers=[layer],
                  top_k=top_k, notes=notes, hint=hint)


# ---------------------------------------------------------------------------- FLAME CSV
_FLAME_LAYER = re.compile(r"_layer(\d+)_")
_FLAME_SEQS = re.compile(r"_(\d+)seqs")


def _flame_file(path: Path):
    """``(scores (N, E) float64, header width)`` of one FLAME score file, checked."""
    with open(path, newline="") as file:
        reader = csv.reader(file)
        header = next(reader, None)
        if (not header or header[:2] != ["layer_id", "token_id"] or len(header) < 3
                or header[2:] != [f"expert_{e}" for e in range(len(header) - 2)]):
            raise TraceError(f"{path}:1: header {(header or [])[:4]!r}..., expected "
                             "layer_id,token_id,expert_0..expert_<E-1>")
        rows = list(reader)
    width = len(header)
    bad = next((n for n, row in enumerate(rows) if len(row) != width), None)
    if bad is not None:
        raise TraceError(f"{path}:{bad + 2}: {len(rows[bad])} fields, expected {width}")
    if not rows:
        raise TraceError(f"{path}: no rows after the header")
    try:
        table = np.array(rows, dtype=np.float64)
    except ValueError:
        for number, row in enumerate(rows, 2):
            for column, text in enumerate(row):
                try:
                    float(text)
                except ValueError:
                    raise TraceError(f"{path}:{number}: {header[column]} {text!r} is not a "
                                     "number") from None
        raise  # pragma: no cover - numpy and float() agree
    token = table[:, 1]
    expected = np.arange(len(rows))
    if np.any(token != expected):
        bad = int(np.flatnonzero(token != expected)[0])
        raise TraceError(f"{path}:{bad + 2}: token_id {rows[bad][1]}, expected {bad} (token ids "
                         "count 0, 1, 2, ...)")
    scores = table[:, 2:]
    if np.any(scores < 0) or not np.all(np.isfinite(scores)):
        bad = int(np.flatnonzero((scores < 0).any(axis=1) | ~np.isfinite(scores).all(axis=1))[0])
        raise TraceError(f"{path}:{bad + 2}: router scores must be finite and non-negative")
    return scores


def read_flame_csv(source, model=None, limit: int | None = None) -> TraceStore:
    """Read FLAME-MoE router-score CSVs (a folder of ``*_layer<L>_*.csv`` or one such file).

    Every file is one MoE layer (from its name) over the same tokens. A row's chosen experts
    are its non-zero scores, ordered by score descending then id ascending; every row must have
    the same count (top-k, from the first row of the first file). ``<S>seqs`` in the file name
    splits the tokens into S requests of equal length, all prompt rows.

    Raises
    ------
    TraceError
        No ``_layer<L>_`` in a name, a layer twice, a wrong header, a non-number, token ids not
        0..N-1, a row with another count of non-zero scores, files differing in tokens,
        experts or sequence count (file:line).
    """
    files = _files(source, (".csv",))
    layers = {}
    for path in files:
        match = _FLAME_LAYER.search(path.name)
        if not match:
            raise TraceError(f"{path}: no _layer<L>_ in the file name (the real layer)")
        layer = int(match.group(1))
        if layer in layers:
            raise TraceError(f"{path}: layer {layer} again (also {layers[layer]})")
        layers[layer] = path
    order = sorted(layers)
    first = layers[order[0]]
    columns, top_k, tokens, experts = [], None, None, None
    for layer in order:
        path = layers[layer]
        scores = _flame_file(path)
        chosen = np.count_nonzero(scores, axis=1)
        if top_k is None:
            top_k, tokens, experts = int(chosen[0]), len(scores), scores.shape[1]
        if scores.shape != (tokens, experts):
            raise TraceError(f"{path}: {len(scores)} tokens x {scores.shape[1]} experts, "
                             f"{first} has {tokens} x {experts}")
        if np.any(chosen != top_k):
            bad = int(np.flatnonzero(chosen != top_k)[0])
            raise TraceError(f"{path}:{bad + 2}: {chosen[bad]} non-zero router scores, expected "
                             f"top-k {top_k} (the first row of {first.name})")
        # Stable sort of -score: equal scores keep ascending expert id.
        columns.append(np.argsort(-scores, axis=1, kind="stable")[:, :top_k])
    ids = np.stack(columns, axis=1)
    seqs = {int(m.group(1)) if (m := _FLAME_SEQS.search(p.name)) else 1
            for p in layers.values()}
    if len(seqs) != 1 or tokens % next(iter(seqs)):
        raise TraceError(f"{source}: sequence counts {sorted(seqs)} in the file names do not "
                         f"split {tokens} tokens evenly")
    count = seqs.pop()
    length = tokens // count
    empty = np.zeros((0, len(order), top_k), np.int64)
    requests = [(f"seq{s}", str(first.parent), ids[s * length:(s + 1) * length], empty)
                for s in range(count)][:limit]
    notes = (f"flame-csv: {count} sequences x {length} tokens, prefill only (pretraining "
             "forward pass, no decode); dense layers absent; experts ordered by router score "
             "descending, ties by id; scores not kept")
    return store_from_requests(requests, str(source), model, num_layers=order[-1] + 1, moe_layers=order,
                  top_k=top_k, num_experts=experts, notes=notes)


# --------------------------------------------------------------------------- Switch CSV
_TENSOR = re.compile(r"tensor\(\[([^\[\]]*)\]\)")
_TOKEN = re.compile(r"\s*tensor\((-?\d+)\)\s*")
_LIST_REST = re.compile(r"[\s,]*")


def _switch_row(row, where):
    """``(article, rows (steps, M, 1), logits width)`` of one Switch CSV record."""
    if len(row) < 4 or (len(row) - 1) % 3:
        raise TraceError(f"{where}: {len(row)} fields, expected an article id then triples "
                         "(step, router list, tensor(token))")
    steps, width = [], None
    for index in range(1, len(row), 3):
        step_text, routes, token = row[index:index + 3]
        step = len(steps)
        if step_text.strip() != str(step):
            raise TraceError(f"{where}: field {index + 1}: step {step_text!r}, expected {step}")
        if not _TOKEN.fullmatch(token):
            raise TraceError(f"{where}: step {step}: token {token[:40]!r}, expected "
                             "tensor(<int>)")
        text = routes.strip()
        tensors = _TENSOR.findall(text)
        if (not (text.startswith("[") and text.endswith("]"))
                or not _LIST_REST.fullmatch(_TENSOR.sub("", text[1:-1]))
                or len(tensors) % 2 or not tensors):
            raise TraceError(f"{where}: step {step}: router list {text[:60]!r}... is not a "
                             "list of (tensor(logits), tensor([choice])) pairs")
        choices = []
        for layer, (logits, choice) in enumerate(zip(tensors[0::2], tensors[1::2],
                                                     strict=True)):
            values = logits.replace(",", " ").split()
            try:
                [float(v) for v in values]
                chosen = int(choice)
            except ValueError:
                raise TraceError(f"{where}: step {step}, MoE layer {layer}: logits or choice "
                                 f"{choice!r} not numbers") from None
            if width is None:
                width = len(values)
            if len(values) != width or not 0 <= chosen < width:
                raise TraceError(f"{where}: step {step}, MoE layer {layer}: {len(values)} logits "
                                 f"and choice {chosen}, expected {width} logits and a choice "
                                 f"in 0..{width - 1}")
            choices.append(chosen)
        if steps and len(choices) != len(steps[0]):
            raise TraceError(f"{where}: step {step}: {len(choices)} MoE layers, step 0 has "
                             f"{len(steps[0])}")
        steps.append(choices)
    return row[0], np.array(steps, np.int64)[:, :, None], width


def read_switch_csv(source, model=None, limit: int | None = None) -> TraceStore:
    """Read Switch-Transformer decoder routing CSVs (a file or a folder of ``*.csv``).

    Each record (article) is one request of decode steps only (``prefill_len`` 0); columns are
    the recorded MoE layers, mapped to layers 1, 3, ..., 2M-1 of a 2M-layer decoder unless
    ``model`` gives the layers. Request ids are ``<file>#<article id>``.

    Raises
    ------
    TraceError
        Wrong field count, steps not 0, 1, 2, ..., a router list that is not alternating
        ``tensor(logits)``/``tensor([choice])``, a choice out of range, logit or layer counts
        that change (file:line where the record starts).
    """
    requests, width, layers = [], None, None
    for path in _files(source, (".csv",)):
        with open(path, newline="", encoding="utf-8") as file:
            reader = csv.reader(file)
            start = 1
            for row in reader:
                where = f"{path}:{start}"
                start = reader.line_num + 1
                if not row:
                    continue
                article, rows, row_width = _switch_row(row, where)
                if width is None:
                    width, layers = row_width, rows.shape[1]
                if row_width != width or rows.shape[1] != layers:
                    raise TraceError(f"{where}: {rows.shape[1]} MoE layers of {row_width} "
                                     f"experts, the first record has {layers} of {width}")
                requests.append((f"{path.name}#{article}", str(path),
                                 np.zeros((0, layers, 1), np.int64), rows))
    if not requests:
        raise TraceError(f"{source}: no records")
    requests = requests[:limit]
    if model is not None:
        from ..models import load_model
        moe_layers = list(load_model(model).moe_layers)
        if len(moe_layers) != layers:
            raise TraceError(f"{source}: {layers} MoE layers recorded, model "
                             f"{load_model(model).name} has {len(moe_layers)}")
    else:
        moe_layers = list(range(1, 2 * layers, 2))
    notes = ("switch-csv: decode only (no prefill), decoder MoE layers only (encoder absent), "
             f"recorded layers taken as {moe_layers}; logits and token ids checked, not kept")
    return store_from_requests(requests, str(source), model, num_layers=moe_layers[-1] + 1,
                  moe_layers=moe_layers, top_k=1, num_experts=width, notes=notes,
                  decode_only=True)


# ------------------------------------------------------------------------------ dispatch
def _read_gptoss(source, model=None, limit=None, prefill="from-decode"):
    return read_gptoss_json(source, model=model, limit=limit, prefill=prefill)


FORMATS = {"deepseek-csv": read_deepseek_csv, "vllm-jsonl": read_vllm_jsonl,
           "flame-csv": read_flame_csv, "switch-csv": read_switch_csv,
           "gpt-oss-json": _read_gptoss}
_SWITCH_START = re.compile(r'^[^,\s]+,\s*0\s*,\s*"?\[\s*tensor\(')


def _sniff(path: Path) -> str | None:
    with open(path, "rb") as file:
        head = file.read(4096).decode("utf-8", "replace")
    first = head.split("\n", 1)[0].lstrip("\ufeff").strip()
    if first.startswith(",".join(_DEEPSEEK_HEADER)):
        return "deepseek-csv"
    if first.startswith("layer_id,token_id,expert_0"):
        return "flame-csv"
    if path.name.endswith(".jsonl") and re.match(r'\{\s*"type"\s*:\s*"(meta|route)"', first):
        return "vllm-jsonl"
    if _SWITCH_START.match(head):
        return "switch-csv"
    return None


def detect_format(source) -> str | None:
    """The adapter format of ``source`` (a file, or a folder's first ``.csv``/``.jsonl`` file in
    natural order), or None when it is not one (the dataset's JSON, a store, a list file).

    JSON requests (a ``.json``/``.json.gz`` file, or a folder's first request in batch order)
    are ``gpt-oss-json`` when the file is a JSON object, the dataset's format (None) when not.
    """
    source = Path(source)
    if source.name.endswith((".json", ".json.gz")) or (
            source.is_dir() and not any(p.name.endswith((".csv", ".jsonl"))
                                        for p in source.iterdir() if p.is_file())):
        return _sniff_json(source)
    if source.is_dir():
        entries = [p for p in source.iterdir() if p.is_file() and not p.name.startswith(".")]
        if any(p.name.endswith((".json", ".json.gz", ".tar.gz", ".tgz")) for p in entries):
            return None
        candidates = sorted((p for p in entries if p.name.endswith((".csv", ".jsonl"))),
                            key=_natural_key)
        return _sniff(candidates[0]) if candidates else None
    if source.is_file() and source.name.endswith((".csv", ".jsonl")):
        return _sniff(source)
    return None


def _sniff_json(source: Path) -> str | None:
    """``gpt-oss-json`` if the first JSON request of ``source`` (file or folder tree, not an
    archive) is a JSON object, else None."""
    if source.is_dir():
        source = _first_request(source)
        if source is None:
            return None
    if not source.is_file():
        return None
    with open(source, "rb") as file:
        head = file.read(4096)
    return "gpt-oss-json" if sniff_gptoss(head) else None


def _first_request(folder: Path) -> Path | None:
    """The first ``.json``/``.json.gz`` file of ``folder`` in batch order, sub-folders included
    (archives are the dataset's: not looked into)."""
    entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    files = sorted((p for p in entries if p.is_file() and p.name.endswith((".json", ".json.gz"))),
                   key=lambda p: _file_key(p.name))
    if files:
        return files[0]
    if any(p.is_file() and p.name.endswith((".tar.gz", ".tgz")) for p in entries):
        return None
    for sub in sorted((p for p in entries if p.is_dir()), key=lambda p: p.name):
        found = _first_request(sub)
        if found is not None:
            return found
    return None


def read_format(source, format: str, model=None, limit: int | None = None,
                prefill: str | None = None) -> TraceStore:
    """Read ``source`` with the adapter named ``format`` (a key of :data:`FORMATS`).

    ``prefill`` (``gpt-oss-json`` only, see :mod:`hwmodel.traces.gptoss`): what stands for the
    unrecorded prefill; None is the format's default.
    """
    if format not in FORMATS:
        raise ValueError(f"unknown trace format {format!r}; expected one of "
                         f"{', '.join(FORMATS)}")
    if prefill is None:
        return FORMATS[format](source, model=model, limit=limit)
    if format != "gpt-oss-json":
        raise ValueError(f"--prefill {prefill!r} applies to the decode-only gpt-oss-json "
                         f"format, not {format}")
    return FORMATS[format](source, model=model, limit=limit, prefill=prefill)

