"""The main job on a built-in default: what ``hwmodel`` with no arguments does.

It builds the default wafer (``tsmc-sow``), prints its component tree and parameters, writes its
diagrams, then replays the built-in synthetic Llama-4 batch on it with the five strategies of
the study, prints the summary table and writes the CSV, JSON, plots and link heat maps, all into
``./hwmodel-out/``. It needs no trace and no ``../shared``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .params import DEFAULT_PRESET, tree_text

__all__ = ["DEFAULT_OUT_DIR", "foundation_demo", "run"]

#: Where the default job writes its files.
DEFAULT_OUT_DIR = Path("hwmodel-out")


def foundation_demo(out_dir: str | Path = DEFAULT_OUT_DIR, preset: str = DEFAULT_PRESET,
                    stream=None) -> list[Path]:
    """Build ``preset``, print its component tree and parameters, write its diagrams.

    Parameters
    ----------
    out_dir : path
        Folder for ``<preset>-params.yaml``, ``<preset>-wafer.svg``/``.png``/``.dot`` and
        ``<preset>-die.svg``/``.dot``.
    preset : str
        Wafer preset to build.
    stream : file, optional
        Where to print (default standard output).

    Returns
    -------
    list of Path
        The files written.
    """
    from ..diagrams import draw_die, draw_wafer
    from ..params import load_wafer
    from ..topologies.wafer import build_wafer
    stream = sys.stdout if stream is None else stream
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    wafer = build_wafer(load_wafer(preset))
    text = wafer.dump_params()
    stream.write(tree_text(wafer) + text)
    params_file = out_dir / f"{preset}-params.yaml"
    params_file.write_text(text)
    written = [params_file,
               draw_wafer(wafer, out_dir / f"{preset}-wafer.svg"),
               draw_wafer(wafer, out_dir / f"{preset}-wafer.png"),
               draw_die(wafer.die(0), out_dir / f"{preset}-die.svg")]
    for path in written:
        stream.write(f"wrote {path}\n")
    return written


def run() -> int:
    from .replay import run_default
    written = foundation_demo(DEFAULT_OUT_DIR)
    print()
    written += run_default(DEFAULT_OUT_DIR)
    print(f"wrote {len(written)} files into {DEFAULT_OUT_DIR}/")
    return 0
