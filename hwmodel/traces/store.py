"""The compact, memory-mappable trace store.

A :class:`TraceStore` holds a batch of requests' expert selections as numpy arrays: one row per
token (prefill tokens first, then one row per decode step) of shape ``(num_moe_layers, top_k)``.
Replay needs iterations 0..127 only (SPEC sections 5 and 6: prefill plus 127 decode steps), but a
recorded request may hold 128 decode steps. Nothing is dropped: the store keeps the capped part,
which replay reads, in ``ids``, and the decode steps past the cap in a separate *cut* section
(``cut_ids``), which only :meth:`TraceStore.request_json` (the exact JSON round trip) reads. So
the cap costs nothing at load time and replays never see an iteration past 127.

File layout (version 1), all little-endian, no JSON anywhere:

* 8 bytes magic ``HWMTRACE``, ``uint32`` version, ``uint32`` number of arrays;
* one 72-byte directory entry per array: name (16 bytes), numpy dtype string (8 bytes),
  ``int64`` ndim, three ``int64`` dimensions, ``int64`` byte offset;
* the arrays, each aligned to 64 bytes. Strings (model name, request ids, source paths) are
  UTF-8 blobs with ``int64`` offsets.

:meth:`TraceStore.load` maps the file and wraps each array with ``np.frombuffer``: no page of
``ids`` is read until replay touches it.
"""

from __future__ import annotations

import mmap
import os
import struct
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["ITERATION_CAP", "MAX_DECODE_STEPS", "STORE_VERSION", "TraceError", "TraceStore",
           "stack_requests", "store_from_requests"]

ITERATION_CAP = 128
"""Iterations replayed per request: the prefill and 127 decode steps (SPEC section 6)."""
MAX_DECODE_STEPS = ITERATION_CAP - 1
STORE_VERSION = 1
_MAGIC = b"HWMTRACE"
_HEAD = struct.Struct("<8sII")
_ENTRY = struct.Struct("<16s8sqqqqq")
_ALIGN = 64


class TraceError(ValueError):
    """A trace is malformed or contradicts its model; the message names file, iteration,
    layer and token where they apply."""


def id_dtype(num_experts: int) -> np.dtype:
    """The narrowest unsigned dtype holding expert ids ``0..num_experts-1``."""
    return np.dtype(np.uint8) if num_experts <= 256 else np.dtype(np.uint16)


def _strings_to_blob(strings):
    encoded = [s.encode() for s in strings]
    offsets = np.zeros(len(encoded) + 1, np.int64)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    return np.frombuffer(b"".join(encoded), np.uint8), offsets


def _blob_to_strings(blob, offsets):
    data = bytes(blob)
    return [data[a:b].decode() for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist(),
                                               strict=True)]


class TraceStore:
    """A batch of requests' expert selections, in memory or memory-mapped from a store file.

    Parameters
    ----------
    model : str
        Model preset name, or ``""`` when the trace's model is not a preset.
    num_layers : int
        All layers of the model, dense ones included.
    moe_layers : array of int
        The MoE layer indices, ascending; column ``j`` of a row is layer ``moe_layers[j]``.
    top_k, num_experts : int
        Experts per token and routed experts per layer.
    request_ids, source_paths : list of str
        Per request: its id (path relative to the batch source) and where it was read from.
    prefill_len, decode_len : int32 arrays (R,)
        Prompt tokens, and decode steps kept for replay (at most :data:`MAX_DECODE_STEPS`).
    token_offset : int64 array (R+1,)
        Rows of request ``r`` are ``token_offset[r]:token_offset[r+1]``: its prefill tokens,
        then one row per decode step.
    ids : array (T, len(moe_layers), top_k)
        Expert ids, uint8 when ``num_experts <= 256`` else uint16.
    cut_len, cut_offset, cut_ids : arrays, optional
        Decode steps recorded past the cap (count per request, row offsets, rows); kept only so
        the JSON round trip is exact. Empty by default.
    notes : str
        Free text saying what the source lacked (adapters fill it in).
    decode_only : bool
        The source's format records decode steps only, so requests without prompt rows are
        intended (``gpt-oss-json`` read with ``prefill="from-decode"``, ``switch-csv``).
        Otherwise a request without prompt rows is refused by :meth:`check_prefill`. Saved as
        an optional ``decode_only`` array, present only when true (older stores load as false).
    """

    def __init__(self, *, model, num_layers, moe_layers, top_k, num_experts, request_ids,
                 source_paths, prefill_len, decode_len, token_offset, ids, cut_len=None,
                 cut_offset=None, cut_ids=None, notes="", decode_only=False):
        self.model = str(model)
        self.num_layers = int(num_layers)
        self.moe_layers = np.asarray(moe_layers, dtype=np.int64)
        self.top_k = int(top_k)
        self.num_experts = int(num_experts)
        self.request_ids = list(request_ids)
        self.source_paths = list(source_paths)
        self.prefill_len = np.asarray(prefill_len, dtype=np.int32)
        self.decode_len = np.asarray(decode_len, dtype=np.int32)
        self.token_offset = np.asarray(token_offset, dtype=np.int64)
        self.ids = ids
        count = len(self.prefill_len)
        if cut_len is None:
            cut_len = np.zeros(count, np.int32)
            cut_offset = np.zeros(count + 1, np.int64)
            cut_ids = np.zeros((0, len(self.moe_layers), self.top_k), ids.dtype)
        self.cut_len = np.asarray(cut_len, dtype=np.int32)
        self.cut_offset = np.asarray(cut_offset, dtype=np.int64)
        self.cut_ids = cut_ids
        self.notes = str(notes)
        self.decode_only = bool(decode_only)
        self._check_shapes()

    def _check_shapes(self):
        count = len(self.prefill_len)
        width = (len(self.moe_layers), self.top_k)
        problems = []
        if len(self.request_ids) != count or len(self.source_paths) != count:
            problems.append(f"{len(self.request_ids)} request ids and {len(self.source_paths)} "
                            f"source paths for {count} requests")
        if len(self.decode_len) != count or len(self.cut_len) != count:
            problems.append("decode_len/cut_len length differs from prefill_len")
        if self.ids.ndim != 3 or self.ids.shape[1:] != width:
            problems.append(f"ids shape {self.ids.shape}, expected (T, {width[0]}, {width[1]})")
        if self.ids.dtype != id_dtype(self.num_experts):
            problems.append(f"ids dtype {self.ids.dtype}, expected {id_dtype(self.num_experts)}")
        if np.any(self.decode_len > MAX_DECODE_STEPS):
            problems.append(f"decode_len above the cap of {MAX_DECODE_STEPS} steps")
        for name, offsets, lengths, rows in (
                ("token_offset", self.token_offset, self.prefill_len + self.decode_len,
                 len(self.ids)),
                ("cut_offset", self.cut_offset, self.cut_len, len(self.cut_ids))):
            if (len(offsets) != count + 1 or offsets[0] != 0 or offsets[-1] != rows
                    or np.any(np.diff(offsets) != lengths)):
                problems.append(f"{name} does not match the row counts ({rows} rows)")
        if problems:
            raise TraceError("inconsistent trace store: " + "; ".join(problems))

    # ----------------------------------------------------------------- queries
    def __len__(self) -> int:
        return len(self.prefill_len)

    def __repr__(self) -> str:
        return (f"TraceStore(model={self.model!r}, requests={len(self)}, rows={len(self.ids)}, "
                f"moe_layers={len(self.moe_layers)}, top_k={self.top_k}, "
                f"num_experts={self.num_experts}, cut_steps={self.cut_steps})")

    @property
    def num_rows(self) -> int:
        return len(self.ids)

    @property
    def cut_steps(self) -> int:
        """Decode steps recorded past iteration 127, kept aside (not replayed)."""
        return int(self.cut_len.sum())

    @property
    def cut_requests(self) -> int:
        """Requests that recorded decode steps past iteration 127."""
        return int(np.count_nonzero(self.cut_len))

    @property
    def num_iterations(self) -> int:
        """Iterations of the batch in lockstep: 1 + the longest kept decode."""
        return 1 + int(self.decode_len.max(initial=0))

    def check_prefill(self, where: str = "trace") -> None:
        """Refuse a request without prompt rows unless the store is :attr:`decode_only`.

        Iteration 0 of a request is its prefill (SPEC section 5); a request whose prefill is
        missing would replay its first decode step as iteration 1 with nothing before it.

        Raises
        ------
        TraceError
            Naming ``where``, the request and its source.
        """
        if self.decode_only:
            return
        missing = np.flatnonzero(self.prefill_len == 0)
        if len(missing):
            first = int(missing[0])
            raise TraceError(
                f"{where}: request {self.request_ids[first]!r} ({self.source_paths[first]}) "
                f"has no prefill rows (iteration 0 is missing; {len(missing)} of {len(self)} "
                "requests); expected the prompt's rows first, or a decode-only format "
                "(gpt-oss-json with prefill 'from-decode', switch-csv)")

    def prefill_ids(self, request: int) -> np.ndarray:
        """Rows ``(prefill_len, moe_layers, top_k)`` of a request's prompt."""
        start = self.token_offset[request]
        return self.ids[start:start + self.prefill_len[request]]

    def decode_ids(self, request: int) -> np.ndarray:
        """Rows ``(decode_len, moe_layers, top_k)`` of a request's kept decode steps."""
        start = self.token_offset[request] + self.prefill_len[request]
        return self.ids[start:self.token_offset[request + 1]]

    def iteration_rows(self, iteration: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows of every request at ``iteration``, in batch order then token order.

        Returns ``(rows, requests)``: the rows ``(n, moe_layers, top_k)`` and, per row, its
        request index. Iteration 0 is every prefill; iteration ``s >= 1`` holds one row per
        request whose kept decode reaches step ``s``.
        """
        starts = self.token_offset[:-1]
        if iteration == 0:
            lengths = self.prefill_len.astype(np.int64)
            requests = np.repeat(np.arange(len(self)), lengths)
            first = np.repeat(starts - np.cumsum(lengths) + lengths, lengths)
            index = first + np.arange(len(requests))
        else:
            requests = np.flatnonzero(self.decode_len >= iteration)
            index = starts[requests] + self.prefill_len[requests] + iteration - 1
        return self.ids[index], requests

    def select(self, indices) -> TraceStore:
        """The requests ``indices`` (in that order) as a new store.

        A contiguous ascending range is a view (no copy, memory maps stay mapped).
        """
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if len(indices) and (indices.min() < 0 or indices.max() >= len(self)):
            raise IndexError(f"request index out of range 0..{len(self) - 1}: "
                             f"{indices[(indices < 0) | (indices >= len(self))][0]}")
        ids = self._gather(self.ids, self.token_offset, indices)
        cut_ids = self._gather(self.cut_ids, self.cut_offset, indices)
        lengths = self.prefill_len[indices].astype(np.int64) + self.decode_len[indices]
        cut_len = self.cut_len[indices]
        return TraceStore(
            model=self.model, num_layers=self.num_layers, moe_layers=self.moe_layers,
            top_k=self.top_k, num_experts=self.num_experts,
            request_ids=[self.request_ids[i] for i in indices.tolist()],
            source_paths=[self.source_paths[i] for i in indices.tolist()],
            prefill_len=self.prefill_len[indices], decode_len=self.decode_len[indices],
            token_offset=np.concatenate([[0], np.cumsum(lengths)]), ids=ids,
            cut_len=cut_len, cut_offset=np.concatenate([[0], np.cumsum(cut_len, dtype=np.int64)]),
            cut_ids=cut_ids, notes=self.notes, decode_only=self.decode_only)

    @staticmethod
    def _gather(rows, offsets, indices):
        if len(indices) == 0:
            return rows[:0]
        if np.all(np.diff(indices) == 1):
            return rows[offsets[indices[0]]:offsets[indices[-1] + 1]]
        lengths = offsets[indices + 1] - offsets[indices]
        first = np.repeat(offsets[indices] - np.cumsum(lengths) + lengths, lengths)
        return rows[first + np.arange(int(lengths.sum()))]

    def check_ids(self) -> None:
        """Raise :class:`TraceError` if an expert id is ``>= num_experts`` (reads every row)."""
        for name, rows, offsets in (("ids", self.ids, self.token_offset),
                                    ("cut_ids", self.cut_ids, self.cut_offset)):
            if len(rows) and rows.max() >= self.num_experts:
                row = int(np.flatnonzero((rows >= self.num_experts).any(axis=(1, 2)))[0])
                request = int(np.searchsorted(offsets, row, side="right") - 1)
                raise TraceError(f"{self.source_paths[request]}: {name} row {row}: expert id "
                                 f"{int(rows[row].max())} out of range 0.."
                                 f"{self.num_experts - 1}")

    # ------------------------------------------------------------ JSON export
    def request_json_data(self, request: int) -> list:
        """A request as the dataset's JSON structure (list of iterations), all steps included."""
        prefill = self.prefill_ids(request).tolist()
        decode = self.decode_ids(request).tolist()
        start = self.cut_offset[request]
        decode += self.cut_ids[start:self.cut_offset[request + 1]].tolist()
        moe = {int(layer): column for column, layer in enumerate(self.moe_layers)}
        iterations = [{str(layer): None if layer not in moe
                       else [row[moe[layer]] for row in prefill]
                       for layer in range(self.num_layers)}]
        for row in decode:
            iterations.append({str(layer): None if layer not in moe else [row[moe[layer]]]
                               for layer in range(self.num_layers)})
        return iterations

    def request_json(self, request: int, indent: int | None = 4) -> bytes:
        """The request's JSON text as the dataset writes it (``indent=4``, Python's ``json``)."""
        import json
        return json.dumps(self.request_json_data(request), indent=indent).encode()

    # ------------------------------------------------------------------ files
    def _arrays(self):
        model_blob = np.frombuffer(self.model.encode(), np.uint8)
        notes_blob = np.frombuffer(self.notes.encode(), np.uint8)
        rid_blob, rid_off = _strings_to_blob(self.request_ids)
        src_blob, src_off = _strings_to_blob(self.source_paths)
        meta = np.array([self.num_layers, self.top_k, self.num_experts, ITERATION_CAP], np.int64)
        arrays = {"meta": meta, "model": model_blob, "notes": notes_blob,
                  "moe_layers": self.moe_layers, "request_ids": rid_blob,
                  "request_ids_off": rid_off, "source_paths": src_blob,
                  "source_paths_off": src_off, "prefill_len": self.prefill_len,
                  "decode_len": self.decode_len, "token_offset": self.token_offset,
                  "ids": self.ids, "cut_len": self.cut_len, "cut_offset": self.cut_offset,
                  "cut_ids": self.cut_ids}
        if self.decode_only:   # optional: stores without it stay byte-identical
            arrays["decode_only"] = np.ones(1, np.uint8)
        return arrays

    def save(self, path) -> Path:
        """Write the store to ``path`` (format version :data:`STORE_VERSION`); returns the path."""
        path = Path(path)
        arrays = self._arrays()
        offset = _HEAD.size + _ENTRY.size * len(arrays)
        entries, layout = [], []
        for name, array in arrays.items():
            offset = -(-offset // _ALIGN) * _ALIGN
            shape = tuple(array.shape) + (0,) * (3 - array.ndim)
            entries.append(_ENTRY.pack(name.encode(), array.dtype.str.encode(), array.ndim,
                                       *shape, offset))
            layout.append((offset, array))
            offset += array.nbytes
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        tmp = Path(tmp)
        os.chmod(tmp, 0o644)   # mkstemp's 0600 would hide the store from other users
        try:
            self._write(os.fdopen(handle, "wb"), entries, layout, len(arrays))
            tmp.replace(path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    @staticmethod
    def _write(file, entries, layout, count):
        with file:
            file.write(_HEAD.pack(_MAGIC, STORE_VERSION, count))
            file.write(b"".join(entries))
            for start, array in layout:
                file.write(b"\0" * (start - file.tell()))
                # Chunks keep the peak memory of saving a memory-mapped store small.
                flat = array.reshape(-1)
                step = max(1, (64 << 20) // max(1, array.itemsize))
                file.writelines(np.ascontiguousarray(flat[first:first + step]).tobytes()
                                for first in range(0, len(flat), step))

    @classmethod
    def load(cls, path, mmap: bool = True) -> TraceStore:
        """Open a store file; with ``mmap`` (default) arrays are read-only views of the file.

        Raises
        ------
        TraceError
            Not a store file, or a version this reader does not know.
        """
        path = Path(path)
        with open(path, "rb") as file:
            if mmap:
                buffer = _map(file)
            else:
                buffer = file.read()
        if len(buffer) < _HEAD.size or buffer[:8] != _MAGIC:
            raise TraceError(f"{path}: not a hwmodel trace store (no {_MAGIC.decode()} magic)")
        _, version, count = _HEAD.unpack_from(buffer, 0)
        if version != STORE_VERSION:
            raise TraceError(f"{path}: trace store version {version}, this reader knows "
                             f"version {STORE_VERSION}; convert the traces again")
        arrays = _read_directory(buffer, count, path)
        if arrays["meta"].shape != (4,):
            raise TraceError(f"{path}: damaged store: meta holds {arrays['meta'].size} values, "
                             "expected 4")
        num_layers, top_k, num_experts, cap = (int(v) for v in arrays["meta"])
        if cap != ITERATION_CAP:
            raise TraceError(f"{path}: store written with an iteration cap of {cap}, this "
                             f"reader replays {ITERATION_CAP}")
        try:
            return cls._from_arrays(arrays, num_layers, top_k, num_experts)
        except (ValueError, IndexError, KeyError, TypeError, UnicodeDecodeError) as error:
            if isinstance(error, TraceError):
                raise TraceError(f"{path}: damaged store: {error}") from None
            raise TraceError(f"{path}: damaged store ({type(error).__name__}: {error}); "
                             "convert the traces again") from None

    @classmethod
    def _from_arrays(cls, arrays, num_layers, top_k, num_experts):
        """The store of validated directory ``arrays``; ids checked against the offsets."""
        for name in ("request_ids_off", "source_paths_off"):
            offsets, blob = arrays[name], arrays[name.removesuffix("_off")]
            if (offsets.ndim != 1 or len(offsets) == 0 or offsets[0] != 0
                    or np.any(np.diff(offsets) < 0) or offsets[-1] != len(blob)):
                raise TraceError(f"{name} are not ascending offsets into {len(blob)} bytes")
        if not 0 < num_experts <= 65536 or top_k <= 0 or num_layers <= 0:
            raise TraceError(f"meta (layers {num_layers}, top-k {top_k}, experts "
                             f"{num_experts}) out of range")
        return cls(model=bytes(arrays["model"]).decode(), num_layers=num_layers,
                   moe_layers=arrays["moe_layers"], top_k=top_k, num_experts=num_experts,
                   request_ids=_blob_to_strings(arrays["request_ids"], arrays["request_ids_off"]),
                   source_paths=_blob_to_strings(arrays["source_paths"],
                                                 arrays["source_paths_off"]),
                   prefill_len=arrays["prefill_len"], decode_len=arrays["decode_len"],
                   token_offset=arrays["token_offset"], ids=arrays["ids"],
                   cut_len=arrays["cut_len"], cut_offset=arrays["cut_offset"],
                   cut_ids=arrays["cut_ids"], notes=bytes(arrays["notes"]).decode(),
                   decode_only=_flag(arrays.get("decode_only")))


def _flag(array) -> bool:
    """The optional one-byte flag array: absent is false; anything but [0] or [1] is damage."""
    if array is None:
        return False
    if array.shape != (1,) or int(array[0]) not in (0, 1):
        raise TraceError(f"flag array of shape {array.shape} holding {array.tolist()[:4]}, "
                         "expected one byte 0 or 1")
    return bool(array[0])


#: The arrays a version-1 store holds, and the dtype kinds each may have.
_REQUIRED = {"meta": "i", "model": "u", "notes": "u", "moe_layers": "i", "request_ids": "u",
             "request_ids_off": "i", "source_paths": "u", "source_paths_off": "i",
             "prefill_len": "i", "decode_len": "i", "token_offset": "i", "ids": "u",
             "cut_len": "i", "cut_offset": "i", "cut_ids": "u"}
#: Optional arrays, and their dtype kinds.
_OPTIONAL = {"decode_only": "u"}


def _read_directory(buffer, count: int, path) -> dict:
    """The arrays of a store's directory, each checked to lie inside the file.

    Raises
    ------
    TraceError
        A directory entry outside the file, an unknown dtype, a negative dimension, an array
        past the end of the file, or a missing array.
    """
    if not 0 < count <= 64 or _HEAD.size + count * _ENTRY.size > len(buffer):
        raise TraceError(f"{path}: damaged store: directory of {count} arrays does not fit "
                         f"the file's {len(buffer)} bytes")
    arrays = {}
    for index in range(count):
        name, dtype, ndim, d0, d1, d2, offset = _ENTRY.unpack_from(
            buffer, _HEAD.size + index * _ENTRY.size)
        name = name.rstrip(b"\0").decode("ascii", "replace")
        try:
            dtype = np.dtype(dtype.rstrip(b"\0").decode("ascii"))
        except (TypeError, ValueError, UnicodeDecodeError):
            raise TraceError(f"{path}: damaged store: array {name!r} has dtype "
                             f"{dtype!r}") from None
        shape = (d0, d1, d2)[:ndim]
        if not 1 <= ndim <= 3 or min(shape) < 0 or dtype.kind != {**_REQUIRED, **_OPTIONAL}.get(name, dtype.kind):
            raise TraceError(f"{path}: damaged store: array {name!r} has shape {shape} and "
                             f"dtype {dtype}")
        items = int(np.prod(shape, dtype=np.int64))
        if items and (offset < 0 or offset + items * dtype.itemsize > len(buffer)):
            raise TraceError(f"{path}: damaged store: array {name!r} ({items * dtype.itemsize} "
                             f"bytes at offset {offset}) runs past the end of the file "
                             f"({len(buffer)} bytes); the file is truncated")
        arrays[name] = np.frombuffer(buffer, dtype, count=items,
                                     offset=offset if items else 0).reshape(shape)
    missing = sorted(set(_REQUIRED) - set(arrays))
    if missing:
        raise TraceError(f"{path}: damaged store: no {', '.join(missing)} array")
    return arrays


def is_store_file(path) -> bool:
    """Whether ``path`` starts with the store's magic bytes."""
    try:
        with open(path, "rb") as file:
            return file.read(8) == _MAGIC
    except OSError:
        return False


def _map(file):
    size = Path(file.name).stat().st_size
    if size == 0:
        return b""
    return mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)


def stack_requests(requests, *, model_name, num_layers, moe_layers, num_experts, top_k,
                   notes="", decode_only=False) -> TraceStore:
    """A :class:`TraceStore` of ``[(request_id, source_path, prefill, decode), ...]``.

    Decode steps past :data:`MAX_DECODE_STEPS` go to the store's cut section.
    """
    dtype = id_dtype(num_experts)
    width = (len(moe_layers), top_k)
    main, cut, ids, paths = [], [], [], []
    prefill_len, decode_len, cut_len = [], [], []
    for request_id, path, prefill, decode in requests:
        main.append(prefill.astype(dtype, copy=False))
        main.append(decode[:MAX_DECODE_STEPS].astype(dtype, copy=False))
        cut.append(decode[MAX_DECODE_STEPS:].astype(dtype, copy=False))
        prefill_len.append(len(prefill))
        decode_len.append(min(len(decode), MAX_DECODE_STEPS))
        cut_len.append(max(0, len(decode) - MAX_DECODE_STEPS))
        ids.append(request_id)
        paths.append(path)
    empty = np.zeros((0, *width), dtype)
    lengths = np.array(prefill_len, np.int64) + np.array(decode_len, np.int64)
    return TraceStore(
        model=model_name, num_layers=num_layers, moe_layers=moe_layers, top_k=top_k,
        num_experts=num_experts, request_ids=ids, source_paths=paths,
        prefill_len=np.array(prefill_len, np.int32), decode_len=np.array(decode_len, np.int32),
        token_offset=np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]),
        ids=np.concatenate(main) if main else empty,
        cut_len=np.array(cut_len, np.int32),
        cut_offset=np.concatenate([[0], np.cumsum(np.array(cut_len, np.int64))]),
        cut_ids=np.concatenate(cut) if cut else empty, notes=notes,
        decode_only=decode_only)


def _resolve(model, where, *, num_layers, moe_layers, top_k, largest, num_experts=None,
             hint=None):
    """``(name, num_layers, num_experts)`` of the store: the given model's (checked), a preset
    matching the data exactly (or named by ``hint``), or the data's own shape."""
    from ..models import MODEL_PRESETS, load_model
    candidates = []
    if model is not None:
        candidates = [load_model(model)]
    else:
        for name in MODEL_PRESETS:
            preset = load_model(name)
            if hint is not None:
                if any(hf.lower().endswith("/" + hint.lower()) for hf in preset.hf_ids):
                    candidates = [preset]
                    break
            elif (tuple(preset.moe_layers) == tuple(moe_layers) and preset.top_k == top_k
                  and num_layers <= preset.num_layers
                  and (num_experts == preset.num_experts if num_experts
                       else largest < preset.num_experts)):
                candidates.append(preset)
    if len(candidates) == 1:
        found = candidates[0]
        problems = []
        if found.top_k != top_k:
            problems.append(f"top-k {top_k}, the model has {found.top_k}")
        if not set(moe_layers) <= set(found.moe_layers):
            problems.append(f"MoE layers {list(moe_layers)} are not all among the model's")
        if largest >= found.num_experts or (num_experts or 0) > found.num_experts:
            problems.append(f"expert ids up to {max(largest, (num_experts or 0) - 1)}, the "
                            f"model has {found.num_experts} experts")
        if problems:
            if model is None:  # a hint that does not fit: keep the data's own shape
                return "", num_layers, num_experts or largest + 1
            raise TraceError(f"{where}: contradicts model {found.name}: " + "; ".join(problems))
        return found.name, found.num_layers, found.num_experts
    return "", num_layers, num_experts or largest + 1


def store_from_requests(requests, where, model, *, num_layers, moe_layers, top_k, notes,
                        num_experts=None, hint=None, decode_only=False):
    """The :class:`TraceStore` of a format reader's ``requests``, named after the given model
    (checked against the data), a preset the data match, or the data's own shape."""
    largest = max((int(rows.max()) for _, _, pre, dec in requests for rows in (pre, dec)
                   if rows.size), default=0)
    name, num_layers, num_experts = _resolve(
        model, where, num_layers=num_layers, moe_layers=moe_layers, top_k=top_k,
        largest=largest, num_experts=num_experts, hint=hint)
    return stack_requests(requests, model_name=name, num_layers=num_layers,
                          moe_layers=tuple(moe_layers), num_experts=num_experts, top_k=top_k,
                          notes=notes, decode_only=decode_only)
