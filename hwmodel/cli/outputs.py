"""Outputs of the command line: checked before the work, written atomically.

:func:`check_output_file` and :func:`check_output_dir` run before a command does any work, so a
bad ``--out`` fails in a second, not after a finished replay. :func:`atomic_file` writes through a
temporary file in the same folder and renames it over the target (``os.replace``), so an
interrupted write never leaves a half-written output; :func:`output_dir` does the same for a
folder of outputs (written into a hidden temporary folder, renamed when complete).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["add_force_option", "atomic_file", "check_output_dir", "check_output_file",
           "output_dir"]


def add_force_option(parser) -> None:
    """Add ``--force`` (alias ``--overwrite``): replace existing outputs."""
    parser.add_argument("--force", "--overwrite", action="store_true",
                        help="replace an existing output instead of refusing")


def _check_parent(path: Path, option: str) -> None:
    parent = path.parent
    for folder in (parent, *parent.parents):
        if folder.exists():
            if not folder.is_dir():
                raise ValueError(f"{option} {str(path)!r}: {str(folder)!r} is a file, "
                                 "expected a folder")
            if not os.access(folder, os.W_OK | os.X_OK):
                raise ValueError(f"{option} {str(path)!r}: folder {str(folder)!r} is not "
                                 "writable")
            return


def check_output_file(path, option: str = "output", force: bool = False) -> Path:
    """Refuse ``path`` as an output file before any work: a folder, an existing file without
    ``force``, or a parent that is a file or not writable (a missing parent is created later).

    Raises
    ------
    ValueError
        One line naming ``option``, the path and what was expected.
    """
    path = Path(path)
    if path.is_dir() or str(path).endswith(os.sep):
        raise ValueError(f"{option} {str(path)!r} is a folder, expected a file name")
    if path.exists() and not force:
        raise ValueError(f"{option} {str(path)!r} exists; pass --force to replace it")
    _check_parent(path, option)
    return path


def check_output_dir(path, option: str = "output", force: bool = False) -> Path:
    """Refuse ``path`` as an output folder before any work: a file, or a non-empty folder
    without ``force``, or a parent that is a file or not writable.

    Raises
    ------
    ValueError
        One line naming ``option``, the path and what was expected.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{option} {str(path)!r} is a file, expected a folder")
    if path.is_dir() and any(path.iterdir()) and not force:
        raise ValueError(f"{option} {str(path)!r} is not empty; pass --force to write into it")
    _check_parent(path / "x", option)
    return path


@contextlib.contextmanager
def atomic_file(path):
    """Yield a temporary path beside ``path``; on success rename it to ``path``, else remove it.

    The parent folder is created if missing.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    tmp = Path(tmp)
    os.chmod(tmp, 0o644)   # mkstemp's 0600 would hide the output from other users
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def output_dir(path):
    """Yield a temporary folder beside ``path``; on success move its files into ``path``.

    An interrupted command leaves only the hidden ``.<name>.*.partial`` folder, removed here,
    never a folder with some outputs and no sign that it is incomplete. Each file is moved with
    ``os.replace`` (atomic per file).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
    try:
        yield tmp
        path.mkdir(exist_ok=True)
        for item in sorted(tmp.rglob("*")):
            target = path / item.relative_to(tmp)
            if item.is_dir():
                target.mkdir(exist_ok=True)
            else:
                os.replace(item, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
