"""``python -m hwmodel.aot [hwmodel replay options]``: build this machine's kernels ahead of
time (:mod:`hwmodel.aot`). Kept apart from the loader, which every kernel's first call imports,
because the build runs a replay through the command line."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

from . import AOT_ENV, _spec, aot_dir, source_key

__all__ = ["build", "main"]


def build(replay_args: list[str] | None = None, folder: Path | None = None) -> Path:
    """Run ``hwmodel replay REPLAY_ARGS`` with the JIT, then compile every kernel it called,
    for the argument types it called them with, into ``folder`` (default :func:`aot_dir`)
    ``/<source key>/``. Returns that folder."""
    from numba.pycc import CC

    from ..jit import kernels
    folder = Path(folder) if folder is not None else aot_dir()
    if folder is None:
        raise ValueError(f"{AOT_ENV}=off: no folder to build into")
    before = os.environ.get(AOT_ENV)
    os.environ[AOT_ENV] = "off"            # the sample replay runs with the JIT only
    try:
        _run_sample(replay_args)
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


def main(argv: list[str] | None = None) -> int:
    """``python -m hwmodel.aot [hwmodel replay options]``: build this machine's kernels."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["-h"], ["--help"]):
        from . import __doc__ as about
        print(about)
        return 0
    target = build(argv)
    exports = json.loads((target / "manifest.json").read_text())
    print(f"built {len(exports)} kernel variants into {target}")
    return 0
