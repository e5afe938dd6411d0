"""Ahead-of-time build of the kernels, once per machine and sources (issue 18).

A process that runs a numba kernel pays numba's import and, before its first compiled call,
the set-up of numba's target (every implementation registry, and a BLAS probe that imports
``scipy.linalg``): about 0.8 CPU-s, measured (docs/replay.md, "Start-up of a process"). An
extension module built by numba's ``pycc`` from the same Python functions loads without numba.

``python -m hwmodel.aot [replay options]`` (:mod:`hwmodel.aot.build`) runs a replay (by
default the built-in batch, every strategy, both meshes) with numba's JIT, notes every kernel
called and the types of its arguments, and compiles exactly those into one extension module
under the cache folder (:func:`aot_dir`), named by the SHA-256 of hwmodel's sources, numba's
version and the Python ABI: a changed source, numba or interpreter simply finds no build, and
the kernels run through numba as before. A call goes to the build only when its arguments
have exactly the types the build was compiled for (checked here, since ``pycc``'s wrappers do
not check them); any other call goes to numba's JIT. ``HWMODEL_AOT=off`` turns the builds
off. The set-up (``scripts/install.sh``, run by ``make run`` and ``make test``) builds with
``python -m hwmodel.aot --install`` (:func:`hwmodel.aot.build.install`): once per version of
the sources, and a failure leaves the JIT.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import importlib.util
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np

__all__ = ["aot_dir", "entries_for", "source_key"]

#: Folder of the builds, or ``off``.
AOT_ENV = "HWMODEL_AOT"

_PACKAGE = Path(__file__).resolve().parents[1]
_loaded: dict | None = None       # kernel key -> [(accepts, function)] of this process's build


def aot_dir() -> Path | None:
    """Folder of the builds: ``$HWMODEL_AOT`` (``off``: None, no builds), else
    ``$XDG_CACHE_HOME/hwmodel/aot``, else ``~/.cache/hwmodel/aot``."""
    chosen = os.environ.get(AOT_ENV)
    if chosen:
        return None if chosen == "off" else Path(chosen)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "hwmodel" / "aot"


def source_key() -> str:
    """SHA-256 (24 hex digits) of what a build depends on: every ``.py`` file of hwmodel
    (path and bytes), numba's version file, the interpreter's ABI and the machine."""
    digest = hashlib.sha256(json.dumps(
        [sys.implementation.cache_tag, sys.version, platform.machine()]).encode())
    for path in sorted(_PACKAGE.rglob("*.py")):
        digest.update(json.dumps(str(path.relative_to(_PACKAGE))).encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    numba = importlib.util.find_spec("numba")
    version = Path(numba.origin).with_name("_version.py") if numba and numba.origin else None
    digest.update(version.read_bytes() if version and version.is_file() else b"no numba")
    return digest.hexdigest()[:24]


def entries_for(kernel_key: str) -> list:
    """``[(accepts(args), function)]`` of the kernel ``module:qualname`` in this machine's
    build of the current sources (empty without one)."""
    global _loaded
    if _loaded is None:
        _loaded = _load()
    return _loaded.get(kernel_key, [])


def _load() -> dict:
    """This process's table of :func:`entries_for`: empty without a usable build (none for
    these sources, or one that does not load: the kernels then run through numba, exactly)."""
    folder = aot_dir()
    if folder is None:
        return {}
    key = source_key()
    name = f"hwmodel_aot_{key}"
    try:
        exports = json.loads((folder / key / "manifest.json").read_text())
        (library,) = (folder / key).glob(f"{name}.*")
        spec = importlib.util.spec_from_file_location(
            name, library, loader=importlib.machinery.ExtensionFileLoader(name, str(library)))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        table: dict = {}
        for entry in exports:
            compiled = getattr(module, entry["name"])
            table.setdefault(entry["kernel"], []).append((_checker(entry["args"]), compiled))
    except (OSError, ValueError, ImportError, AttributeError, KeyError, TypeError):
        return {}
    return table


# ------------------------------------------------------------------------- argument types
def _spec(numba_type):
    """A JSON description of one argument's numba type, or None if the build does not take
    it (the call then stays with the JIT)."""
    from numba.core import types
    if isinstance(numba_type, types.Array):
        if not isinstance(numba_type.dtype, (types.Boolean, types.Integer, types.Float)):
            return None
        return ["array", str(np.dtype(str(numba_type.dtype))), numba_type.ndim,
                numba_type.layout, numba_type.mutable, numba_type.aligned]
    if isinstance(numba_type, (types.NamedTuple, types.NamedUniTuple)):
        cls = numba_type.instance_class
        fields = [_spec(t) for t in numba_type.types]
        if None in fields or "<locals>" in cls.__qualname__:
            return None
        return ["named", cls.__module__, cls.__qualname__, fields]
    if isinstance(numba_type, types.Boolean):
        return ["bool"]
    if isinstance(numba_type, types.Integer) and str(numba_type) == "int64":
        return ["int64"]
    if isinstance(numba_type, types.Float) and str(numba_type) == "float64":
        return ["float64"]
    return None


def _checker(specs: list, remember: bool = True):
    """``accepts(args)``: whether ``args`` have exactly the numba types of ``specs`` (what
    numba's ``typeof`` gives them), so that the compiled wrapper reads them correctly.

    With ``remember``, a structure (named tuple) accepted at a position is not checked again
    when the same object comes back: a tuple's members cannot be replaced, and an array's
    type (dtype, dimensions, layout, writeability) stays what it was unless assigned in place,
    which hwmodel never does to a kernel's arrays. This makes the check of a replay's state
    (some 60 arrays, the same object layer after layer) free after its first call. Arrays
    are not remembered: that would keep the last one passed alive (a prefill's rows: 6 MB
    more peak memory on Llama-4), and their check is one test of the flags' bits."""
    checks = [_remembered(_check_of(spec)) if remember and spec[0] == "named"
              else _check_of(spec) for spec in specs]
    count = len(checks)

    def accepts(args) -> bool:
        if len(args) != count:
            return False
        for check, arg in zip(checks, args):
            if not check(arg):
                return False
        return True
    return accepts


def _remembered(check):
    """``check``, answering True at once for the object it accepted last."""
    last = [_remembered]        # a sentinel no argument is

    def remembered(arg) -> bool:
        if arg is last[0]:
            return True
        if check(arg):
            last[0] = arg
            return True
        return False
    return remembered


#: numpy's array flags (``ndarray.flags.num``) that numba's array type depends on
_C, _F, _ALIGNED, _WRITEABLE = 0x1, 0x2, 0x100, 0x400

#: numba's layout -> (flags looked at, their values): "C" if C-contiguous, else "F" if
#: F-contiguous, else "A"
_LAYOUT_FLAGS = {"C": (_C, _C), "F": (_C | _F, _F), "A": (_C | _F, 0)}


_INT64 = (-(1 << 63), (1 << 63) - 1)


def _check_of(spec):
    kind = spec[0]
    if kind == "array":
        _, dtype, ndim, layout, mutable, aligned = spec
        dtype = np.dtype(dtype)       # native byte order: a foreign one compares unequal
        mask, want = _LAYOUT_FLAGS[layout]
        mask, want = mask | _WRITEABLE | _ALIGNED, (want | (_WRITEABLE if mutable else 0)
                                                    | (_ALIGNED if aligned else 0))

        def check(a) -> bool:
            return (type(a) is np.ndarray and a.ndim == ndim and a.dtype == dtype
                    and a.flags.num & mask == want)
        return check
    if kind == "named":
        _, module, qualname, fields = spec
        cls = importlib.import_module(module)
        for part in qualname.split("."):
            cls = getattr(cls, part)
        inner = _checker(fields, remember=False)
        return lambda a: type(a) is cls and inner(a)
    if kind == "bool":
        return lambda a: type(a) is bool or type(a) is np.bool_
    if kind == "int64":
        return lambda a: ((type(a) is int and _INT64[0] <= a <= _INT64[1])
                          or type(a) is np.int64)
    if kind == "float64":
        return lambda a: type(a) is float or type(a) is np.float64
    raise ValueError(f"unknown argument type {spec!r} in an ahead-of-time build")
