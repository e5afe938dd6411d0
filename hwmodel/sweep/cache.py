"""Trace stores of a sweep, built once and cached by content.

A trace spec (model, source or synthesis seed, request count) is turned into a binary store file
under the cache folder the first time it is needed; later runs and later sweeps memory-map the
same file. Each store is named by the SHA-256 of its spec and identified in results by the
SHA-256 of its bytes (the trace content hash), so a changed source gives a new store.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from .grid import TraceSpec

__all__ = ["file_sha256", "trace_store"]


def file_sha256(path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _identity(path: str | None):
    # a source changed in place (same path) must not reuse the old store
    if path is None:
        return None
    stat = Path(path).stat()
    return [str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns]


def _spec_key(spec: TraceSpec) -> str:
    from .. import __version__
    key = {"model": spec.model, "batch": spec.batch, "seed": spec.seed,
           "source": _identity(spec.path), "like": _identity(spec.like), "hwmodel": __version__}
    if spec.like:   # a top-k > 1 source is fitted by the leader fit since issue 19
        key["fit"] = "auto: leader for top-k > 1"
    text = json.dumps(key, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _build(spec: TraceSpec):
    from ..traces import open_batch
    from ..traces.synth import synthesize
    if spec.path is None:
        like = open_batch(spec.like) if spec.like else None
        return synthesize(like, model=spec.model, requests=spec.batch, seed=spec.seed)
    return open_batch(spec.path, model=spec.model, limit=spec.batch)


def trace_store(spec: TraceSpec, cache_dir) -> tuple[Path, str]:
    """The cached store file of ``spec`` (built if absent) and its content hash.

    The file and its ``.sha256`` are written under temporary names and renamed, so an
    interrupted build leaves nothing that a later sweep would take for complete.
    """
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    key = _spec_key(spec)
    path, digest_file = cache / f"{key}.store", cache / f"{key}.sha256"
    if not (path.is_file() and digest_file.is_file()):
        partial = cache / f"{key}.{os.getpid()}.partial"
        try:
            _build(spec).save(partial.with_suffix(".store"))
            digest = file_sha256(partial.with_suffix(".store"))
            os.replace(partial.with_suffix(".store"), path)
            partial.write_text(digest + "\n")
            os.replace(partial, digest_file)
        finally:  # an interrupted build leaves no partial file behind
            partial.unlink(missing_ok=True)
            partial.with_suffix(".store").unlink(missing_ok=True)
    return path, digest_file.read_text().strip()
