"""Trace stores of a sweep, built once and cached by content.

A trace spec (model, source or synthesis seed, request count) is turned into a binary store file
under the cache folder the first time it is needed; later runs and later sweeps memory-map the
same file. Each store is named by the SHA-256 of its spec and identified in results by the
SHA-256 of its bytes (the trace content hash), so a changed source gives a new store.

:func:`cached_batch` does the same for one ``hwmodel replay`` process: the request JSON of a
trace is parsed once, and later processes memory-map the store named by the SHA-256 of the
requests' bytes (:func:`trace_cache_dir`; ``HWMODEL_TRACE_CACHE=off`` turns it off). A link
under ``stat/``, named by what the operating system says of the request files (path, size,
modification and change times, inode), gives that hash without reading the files again; a file
rewritten since has a new change time, so it is read and hashed as before.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path

from .grid import TraceSpec

__all__ = ["cached_batch", "file_sha256", "is_cached", "trace_cache_dir", "trace_store"]

#: Folder of the replay's parsed request stores, or ``off``.
TRACE_CACHE_ENV = "HWMODEL_TRACE_CACHE"

#: A request file whose modification or change time is less than this many seconds old when
#: it is hashed gets no stat link: a rewrite within the file system's time-stamp granularity
#: could leave its time stamps as they were (git's "racy" index entries).
RACY_SECONDS = 2.0

_CONTENT_KEY = re.compile(r"[0-9a-f]{32}")


def file_sha256(path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _identity(path: str | None):
    """A source's path and the digest of its content: a source changed in place, even one
    request file inside a folder rewritten at the same size, must not reuse the old store."""
    if path is None:
        return None
    source = Path(path)
    return [str(source.resolve()), _content_digest(source)]


def _content_digest(source: Path) -> str:
    """SHA-256 of what a reader takes from ``source``: a store or adapter-format file's bytes,
    an adapter-format folder's files (names and bytes), else the request files of the dataset's
    JSON source (folder, archive or list file, with the files a list names)."""
    from ..traces.adapters import detect_format
    from ..traces.store import is_store_file
    if source.is_file() and (is_store_file(source) or detect_format(source) is not None):
        return file_sha256(source)
    if source.is_dir() and detect_format(source) is not None:
        digest = hashlib.sha256()
        for file in sorted(p for p in source.rglob("*") if p.is_file()):
            digest.update(json.dumps(str(file.relative_to(source))).encode())
            digest.update(bytes.fromhex(file_sha256(file)))
        return digest.hexdigest()
    return _requests_key(source, None, None)


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


def is_cached(spec: TraceSpec, cache_dir) -> bool:
    """Whether :func:`trace_store` finds ``spec``'s store complete in ``cache_dir``."""
    key = _spec_key(spec)
    return all((Path(cache_dir) / f"{key}.{suffix}").is_file() for suffix in ("store", "sha256"))


def trace_store(spec: TraceSpec, cache_dir) -> tuple[Path, str]:
    """The cached store file of ``spec`` (built if absent) and its content hash.

    The file and its ``.sha256`` are written under temporary names and renamed, so an
    interrupted build leaves nothing that a later sweep would take for complete.
    """
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    key = _spec_key(spec)
    path, digest_file = cache / f"{key}.store", cache / f"{key}.sha256"
    if not is_cached(spec, cache):
        _save_store(_build(spec), cache, key, with_digest=True)
    return path, digest_file.read_text().strip()


def _save_store(store, cache: Path, key: str, with_digest: bool = False) -> None:
    """Write ``store`` as ``cache/<key>.store`` (and with ``with_digest`` the SHA-256 of its
    bytes as ``<key>.sha256``), each under a temporary name renamed when complete."""
    partial = cache / f"{key}.{os.getpid()}.partial"
    try:
        store.save(partial.with_suffix(".store"))
        digest = file_sha256(partial.with_suffix(".store")) if with_digest else None
        os.replace(partial.with_suffix(".store"), cache / f"{key}.store")
        if with_digest:
            partial.write_text(digest + "\n")
            os.replace(partial, cache / f"{key}.sha256")
    finally:  # an interrupted build leaves no partial file behind
        partial.unlink(missing_ok=True)
        partial.with_suffix(".store").unlink(missing_ok=True)


def trace_cache_dir() -> Path | None:
    """Folder of :func:`cached_batch`'s stores: ``$HWMODEL_TRACE_CACHE`` (``off``: None, no
    cache), else ``$XDG_CACHE_HOME/hwmodel/traces``, else ``~/.cache/hwmodel/traces``."""
    chosen = os.environ.get(TRACE_CACHE_ENV)
    if chosen:
        return None if chosen == "off" else Path(chosen)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "hwmodel" / "traces"


def _source_header(source: Path, model):
    """What identifies a request source's reading besides its files: the reader's and the
    store's versions, the model the requests are checked against, the source's path."""
    from .. import __version__
    from ..models import load_model
    from ..traces.store import STORE_VERSION
    return json.dumps({
        "hwmodel": __version__, "store": STORE_VERSION,
        "model": None if model is None else repr(load_model(model)),
        "source": str(source.resolve())}, sort_keys=True).encode()


def _requests_key(source: Path, model, limit: int | None) -> str:
    """SHA-256 of everything :func:`hwmodel.traces.open_batch` reads of a request source: the
    bytes of each request it would read (with its id and path, which the store keeps; so a
    ``limit`` beyond the last request reads the same store as none), the model it checks them
    against and the reader's version."""
    from ..traces import request_sources
    digest = hashlib.sha256(_source_header(source, model))
    for count, (request_id, path, read) in enumerate(request_sources(source)):
        if limit is not None and count >= limit:
            break
        data = read()
        digest.update(json.dumps([request_id, path, len(data)]).encode())
        digest.update(data)
    return digest.hexdigest()[:32]


def _stat_key(source: Path, model, limit: int | None) -> tuple[str, bool] | None:
    """``(key, settled)``: SHA-256 of what the operating system says of the source and of
    each request file :func:`_requests_key` would read (device, inode, size, modification
    and change times in ns; an archive's member by the archive's), under the same header;
    ``settled`` when every time stamp is at least :data:`RACY_SECONDS` old. None if a file
    cannot be stat'ed (the caller hashes the content)."""
    from ..traces import request_sources
    digest = hashlib.sha256(_source_header(source, model))
    newest = 0
    try:
        files = [("", str(source), source.stat())]
        for count, (request_id, path, _read) in enumerate(request_sources(source)):
            if limit is not None and count >= limit:
                break
            files.append((request_id, path, os.stat(path.split("::", 1)[0])))
    except OSError:
        return None
    for request_id, path, st in files:
        stamps = [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]
        digest.update(json.dumps([request_id, path, stamps]).encode())
        newest = max(newest, st.st_mtime_ns, st.st_ctime_ns)
    return digest.hexdigest()[:32], newest <= (time.time() - RACY_SECONDS) * 1e9


def _linked_key(link: Path) -> str | None:
    """The content key a stat link names, or None (no link, or not a key)."""
    try:
        key = link.read_text().strip()
    except OSError:
        return None
    return key if _CONTENT_KEY.fullmatch(key) else None


def _write_link(link: Path, key: str) -> None:
    """``link`` naming content key ``key``, written under a temporary name and renamed."""
    partial = link.with_name(f"{link.name}.{os.getpid()}.partial")
    try:
        link.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(key + "\n")
        os.replace(partial, link)
    finally:
        partial.unlink(missing_ok=True)


def cached_batch(source, model=None, limit: int | None = None, cache_dir=None):
    """:func:`hwmodel.traces.open_batch` of ``source``, parsed once per content.

    Request JSON (a file, folder, archive or list file) is read and hashed; a store of the same
    hash in ``cache_dir`` (default :func:`trace_cache_dir`) is memory-mapped instead of parsing
    the JSON again, else the parsed store is written there for the next process. Store files,
    other formats and a disabled cache read as :func:`~hwmodel.traces.open_batch` does. A bad
    request is refused as there, and nothing is cached. A stat link (:func:`_stat_key`) to the
    store skips reading and hashing the JSON when no request file changed.
    """
    from ..traces import TraceStore, open_batch
    from ..traces.adapters import detect_format
    from ..traces.store import is_store_file
    source = Path(source)
    cache = Path(cache_dir) if cache_dir is not None else trace_cache_dir()
    if (cache is None or not source.exists()
            or (source.is_file() and is_store_file(source)) or detect_format(source) is not None):
        return open_batch(source, model=model, limit=limit)
    stat = _stat_key(source, model, limit)
    link = cache / "stat" / f"{stat[0]}.key" if stat is not None else None
    linked = _linked_key(link) if link is not None else None
    if linked is not None and (cache / f"{linked}.store").is_file():
        return TraceStore.load(cache / f"{linked}.store")
    key = _requests_key(source, model, limit)
    path = cache / f"{key}.store"
    if path.is_file():
        store = TraceStore.load(path)
    else:
        store = open_batch(source, model=model, limit=limit)
    try:
        if not path.is_file():
            cache.mkdir(parents=True, exist_ok=True)
            _save_store(store, cache, key)
        # linked only if no file changed while it was read, nor lately (RACY_SECONDS)
        if stat is not None and stat[1] and _stat_key(source, model, limit) == stat:
            _write_link(link, key)
    except OSError:
        pass    # a cache that cannot be written only costs the next process the parse
    return store
