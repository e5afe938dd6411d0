"""Request files of a trace source: which files, in which order, and their bytes, bounded.

A source is a request file (``.json``, ``.json.gz``), a folder tree, a ``.tar.gz`` subject
archive or a list file; :func:`request_sources` yields its requests in batch order (see
:mod:`hwmodel.traces.reader`). Every format's reader takes its files from here, so the readers
and the format adapters import this module and not each other.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from pathlib import Path

from .store import TraceError

__all__ = ["MAX_REQUEST_BYTES", "request_sources"]

#: Largest request file accepted (bytes of JSON, after decompression): the largest request of
#: the shared dataset is a few MB, so 256 MB is a generous bound that still stops a runaway
#: file before it exhausts memory.
MAX_REQUEST_BYTES = 256 << 20


def _gunzip(raw: bytes, where: str) -> bytes:
    """Decompress a ``.json.gz`` request, bounded by :data:`MAX_REQUEST_BYTES`."""
    import zlib
    inflate = zlib.decompressobj(wbits=31)
    try:
        data = inflate.decompress(raw, MAX_REQUEST_BYTES + 1)
    except zlib.error as error:
        raise TraceError(f"{where}: damaged gzip data ({error}); expected a gzip-compressed "
                         "request file") from None
    if len(data) > MAX_REQUEST_BYTES:
        raise TraceError(f"{where}: decompresses to more than {MAX_REQUEST_BYTES} bytes; "
                         "expected at most that per request file")
    if not inflate.eof:
        raise TraceError(f"{where}: truncated gzip data (the file ends before the compressed "
                         "stream); expected a complete .json.gz file")
    return data


_REQUEST_SUFFIXES = (".json", ".json.gz")
_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")


def _stem(name: str) -> str:
    for suffix in _REQUEST_SUFFIXES + _ARCHIVE_SUFFIXES:
        if name.endswith(suffix):
            return name[:-len(suffix)]
    return name


def _file_key(name: str):
    stem = _stem(name)
    return (0, int(stem), name) if stem.isdigit() else (1, 0, name)


def request_sources(source) -> Iterator[tuple[str, str, object]]:
    """``(request_id, source_path, read)`` for every request of ``source``, in batch order.

    ``read()`` returns the request file's bytes. See the module docstring for the order.
    """
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"no such trace source: {source}")
    if source.is_dir():
        yield from _walk(source, "")
    elif source.name.endswith(_ARCHIVE_SUFFIXES):
        yield from _archive(source, "")
    elif source.name.endswith(_REQUEST_SUFFIXES):
        yield source.name, str(source), _bounded_reader(source)
    else:
        yield from _list_file(source)


def _walk(folder: Path, prefix: str):
    entries = list(folder.iterdir())
    files = sorted((e for e in entries if e.is_file() and e.name.endswith(_REQUEST_SUFFIXES)),
                   key=lambda e: _file_key(e.name))
    for entry in files:
        yield prefix + entry.name, str(entry), _bounded_reader(entry)
    nested = [e for e in entries if e.is_dir() or (e.is_file()
                                                  and e.name.endswith(_ARCHIVE_SUFFIXES))]
    for entry in sorted(nested, key=lambda e: (_stem(e.name), e.name)):
        if entry.is_dir():
            yield from _walk(entry, f"{prefix}{entry.name}/")
        else:
            yield from _archive(entry, f"{prefix}{_stem(entry.name)}/")


def _archive(path: Path, prefix: str):
    with tarfile.open(path, "r:*") as archive:
        members = [m for m in archive.getmembers()
                   if m.isfile() and m.name.endswith(_REQUEST_SUFFIXES)]
        folders = {}
        for member in members:
            parent, _, name = member.name.rpartition("/")
            folders.setdefault(parent, []).append((name, member))
        for parent in sorted(folders):
            for name, member in sorted(folders[parent], key=lambda item: _file_key(item[0])):
                _check_size(member.size, f"{path}::{member.name}")
                data = archive.extractfile(member).read()
                inner = member.name.split("/", 1)[1] if "/" in member.name else member.name
                yield (prefix + (inner if prefix else member.name),
                       f"{path}::{member.name}", lambda data=data: data)


def _check_size(size: int, where: str) -> None:
    if size > MAX_REQUEST_BYTES:
        raise TraceError(f"{where}: request file of {size} bytes; expected at most "
                         f"{MAX_REQUEST_BYTES}")


def _bounded_reader(path: Path):
    """``read()`` of a request file that refuses, before reading, one above the size bound."""
    def read() -> bytes:
        _check_size(path.stat().st_size, str(path))
        return path.read_bytes()
    return read


def _list_file(path: Path):
    """Entries of a list file, each a request file named once: a path relative to the list
    file's folder (``..`` allowed) or an absolute one. Reading what the user names is theirs
    to decide; what hwmodel writes is confined where it writes (``trace export``)."""
    if path.stat().st_size > MAX_REQUEST_BYTES:
        raise TraceError(f"{path}: list file of {path.stat().st_size} bytes; expected at most "
                         f"{MAX_REQUEST_BYTES}")
    try:
        lines = path.read_text().splitlines()
    except UnicodeDecodeError as error:
        raise TraceError(f"{path}: not a text list file nor a request (.json, .json.gz), "
                         f"store or archive ({error.reason} at byte {error.start})") from None
    seen = {}
    for number, line in enumerate(lines, 1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        target = path.parent / entry     # an absolute entry stays itself
        if not target.is_file():
            raise FileNotFoundError(f"{path}:{number}: no such request file: {entry}")
        same = target.resolve()
        if same in seen:
            raise TraceError(f"{path}:{number}: {entry!r} already listed on line "
                             f"{seen[same]}; expected each request once")
        seen[same] = number
        yield entry, str(target), _bounded_reader(target)
