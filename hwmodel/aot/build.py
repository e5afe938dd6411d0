"""``python -m hwmodel.aot [hwmodel replay options]``: build this machine's kernels ahead of
time (:mod:`hwmodel.aot`). Kept apart from the loader, which every kernel's first call imports,
because the build runs a replay through the command line.

``python -m hwmodel.aot --install`` is the set-up's step (``scripts/install.sh``): it builds
only when this machine has no build of the current sources, and never fails: without numba's
``pycc``, a C compiler, or on any other failure it says so in one line and exits 0, and the
kernels run through numba's JIT (the same results; a process then pays numba's start-up)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
import warnings
from pathlib import Path

from . import AOT_ENV, _spec, aot_dir, source_key

__all__ = ["INSTALL_SAMPLES", "REQUIRE_ENV", "build", "built", "install", "main"]

#: ``1``: a failed set-up build is an error (CI, which must exercise the build).
REQUIRE_ENV = "HWMODEL_REQUIRE_AOT"

#: The replays whose kernels the set-up builds: every strategy of the built-in batch on both
#: meshes in paper mode (the same kernels and argument types as the shared Llama-4 trace's
#: paper-mode runs, checked), and once more with the physical switches on (the flows' kernels).
INSTALL_SAMPLES = (["--wafer", "tsmc-sow,dojo", "--strategy", "all"],
                   ["--wafer", "tsmc-sow,dojo", "--strategy", "all", "--mode", "physical"])


def build(replay_args: list[str] | None = None, folder: Path | None = None,
          samples: list[list[str]] | None = None) -> Path:
    """Run ``hwmodel replay REPLAY_ARGS`` (or each of ``samples``) with the JIT, then compile
    every kernel called, for the argument types it was called with, into ``folder`` (default
    :func:`aot_dir`) ``/<source key>/``. Returns that folder."""
    from numba.pycc import CC

    from ..jit import kernels
    folder = Path(folder) if folder is not None else aot_dir()
    if folder is None:
        raise ValueError(f"{AOT_ENV}=off: no folder to build into")
    before = os.environ.get(AOT_ENV)
    os.environ[AOT_ENV] = "off"            # the sample replay runs with the JIT only
    try:
        for sample in samples or [replay_args]:
            _run_sample(sample)
    finally:
        if before is None:
            del os.environ[AOT_ENV]
        else:
            os.environ[AOT_ENV] = before
    key = source_key()
    name = f"hwmodel_aot_{key}"
    compiler = CC(name)
    exports = []
    for kernel in kernels():
        if kernel._dispatcher is None:
            continue
        for signature in kernel._dispatcher.nopython_signatures:
            specs = [_spec(t) for t in signature.args]
            if None in specs:
                continue
            export = f"k{len(exports)}"
            compiler.export(export, signature)(kernel.py_func)
            exports.append({"kernel": kernel.key, "name": export, "args": specs})
    target = folder / key
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=f"{key}.partial-") as scratch:
        compiler.output_dir = scratch
        compiler.compile()
        (Path(scratch) / "manifest.json").write_text(json.dumps(exports) + "\n")
        final = Path(scratch) / "done"
        final.mkdir()
        for path in Path(scratch).iterdir():
            if path.is_file():
                path.rename(final / path.name)
        if target.exists():
            for path in target.iterdir():
                path.unlink()
            target.rmdir()
        final.rename(target)
    return target


def _run_sample(replay_args: list[str] | None) -> None:
    from ..cli import main
    with tempfile.TemporaryDirectory(prefix="hwmodel-aot-sample-") as out:
        args = replay_args or ["--wafer", "tsmc-sow,dojo", "--strategy", "all"]
        code = main(["replay", *args, "--jobs", "1", "--quiet", "--no-plots", "--out", out])
        if code:
            raise SystemExit(code)


def built(folder: Path | None = None) -> Path | None:
    """This machine's build of the current sources in ``folder`` (default :func:`aot_dir`),
    if there is one."""
    folder = Path(folder) if folder is not None else aot_dir()
    if folder is None:
        return None
    target = folder / source_key()
    library = list(target.glob(f"hwmodel_aot_{target.name}.*"))
    return target if (target / "manifest.json").is_file() and library else None


def install(folder: Path | None = None) -> int:
    """The set-up's build: the kernels of :data:`INSTALL_SAMPLES`, unless ``HWMODEL_AOT=off``
    or a build of the current sources exists. Never fails (returns 0): a failure is one line
    on stdout, and the kernels then run through numba's JIT. With ``HWMODEL_REQUIRE_AOT=1``
    (for CI) a failure returns 1."""
    folder = Path(folder) if folder is not None else aot_dir()
    if folder is None:
        print(f"kernels: {AOT_ENV}=off, no ahead-of-time build (they run through numba's JIT)")
        return 0
    done = built(folder)
    if done is not None:
        print(f"kernels: built ahead of time for these sources already ({done})")
        return 0
    print("kernels: compiling ahead of time for this machine and these sources (once; about "
          "a minute)", flush=True)
    try:
        with (warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()),
              contextlib.redirect_stderr(io.StringIO())):
            warnings.simplefilter("ignore")        # pycc's deprecation notice
            target = build(folder=folder, samples=[list(s) for s in INSTALL_SAMPLES])
    except (Exception, SystemExit) as error:       # noqa: BLE001 - the JIT is always there
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"kernels: no ahead-of-time build ({type(error).__name__}: {reason}); they run "
              "through numba's JIT (same results, slower start of each process)")
        return 1 if os.environ.get(REQUIRE_ENV) == "1" else 0
    count = len(json.loads((target / "manifest.json").read_text()))
    print(f"kernels: built {count} kernel variants into {target}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m hwmodel.aot [hwmodel replay options]``: build this machine's kernels;
    ``python -m hwmodel.aot --install``: :func:`install`."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["-h"], ["--help"]):
        from . import __doc__ as about
        print(about)
        return 0
    if argv == ["--install"]:
        return install()
    target = build(argv)
    exports = json.loads((target / "manifest.json").read_text())
    print(f"built {len(exports)} kernel variants into {target}")
    return 0
