"""The ``hwmodel`` command line of the foundation: diagram, params/show and the default job."""

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import subprocess_env

from hwmodel.cli import build_parser, main
from hwmodel.cli.default import foundation_demo
from hwmodel.params import load_wafer

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "mesh-8x8.yaml"
SVG = "{http://www.w3.org/2000/svg}"


def svg_counts(path):
    """(die nodes, D2D link edges, command edges) of a rendered wafer SVG."""
    dies = d2d = cmd = 0
    for group in ET.parse(path).getroot().iter(f"{SVG}g"):
        classes = group.get("class", "").split()
        dies += "node" in classes and "die" in classes
        d2d += "edge" in classes and "d2d" in classes
        cmd += "edge" in classes and "cmd" in classes
    return dies, d2d, cmd


@pytest.mark.parametrize(("args", "expected"), [
    (["--preset", "tsmc-sow"], (24, 37, 24)),
    (["--preset", "dojo"], (25, 40, 25)),
    (["--wafer", str(EXAMPLE)], (64, 112, 64)),
])
def test_diagram_command_writes_svg_with_dies_and_links(tmp_path, args, expected):
    out = tmp_path / "wafer.svg"
    assert main(["diagram", *args, "-o", str(out)]) == 0
    assert svg_counts(out) == expected
    assert out.with_suffix(".dot").exists()


def test_diagram_views_and_png(tmp_path, capsys):
    assert main(["diagram", "--view", "die", "--die", "die_1_1", "--format", "png",
                 "-o", str(tmp_path / "die.png")]) == 0
    assert (tmp_path / "die.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["diagram", "--view", "component", "--component", "global_cp",
                 "-o", str(tmp_path / "cp.svg")]) == 0
    text = (tmp_path / "cp.svg").read_text()
    # tsmc-sow by default: 24 command ports, each linked to its die's cp port.
    assert text.count('class="node port"') == 24 and "wafer.die_2_7.cp" in text
    assert "wrote" in capsys.readouterr().out


def test_bad_arguments_exit_2_with_one_line(tmp_path, capsys):
    assert main(["diagram", "--view", "component", "--component", "die_9_9.hbm",
                 "-o", str(tmp_path / "x.svg")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hwmodel: error: --component 'die_9_9.hbm': wafer has no child "
                          "'die_9_9'") and err.count("\n") == 1
    assert main(["params", "--wafer", str(tmp_path / "absent.yaml")]) == 2
    assert "absent.yaml' does not exist" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("wafer: {mesh_x: 2, mesh_y: 2, die: {d2d: {bandwidth_GBps: 0}}}\n")
    assert main(["show", "--wafer", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: wafer.die.d2d.bandwidth_GBps: bandwidth_GBps must be greater than zero, " \
           "not 0.0" in err


def test_params_output_loads_into_the_same_wafer(tmp_path, capsys):
    assert main(["params", "--preset", "dojo-enhanced"]) == 0
    printed = capsys.readouterr().out
    out = tmp_path / "p.yaml"
    assert main(["show", "--preset", "dojo-enhanced", "--tree", "-o", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("# dojo-enhanced: 5 x 5 mesh, 25 dies, 40 D2D links")
    assert "size_bytes=4352" in text and text.endswith(printed)
    assert load_wafer(out) == load_wafer("dojo-enhanced")


def test_every_option_has_help():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name in ("diagram", "params"):
        for action in sub.choices[name]._actions:
            assert action.help, f"{name} {action.option_strings} has no help"


def test_foundation_demo_prints_params_and_writes_diagrams(tmp_path, capsys):
    written = foundation_demo(tmp_path / "out")
    printed = capsys.readouterr().out
    assert "mesh_x: 3" in printed and "mesh_y: 8" in printed
    names = sorted(p.name for p in written)
    assert names == ["tsmc-sow-die.svg", "tsmc-sow-params.yaml", "tsmc-sow-wafer.png",
                     "tsmc-sow-wafer.svg"]
    assert svg_counts(tmp_path / "out" / "tsmc-sow-wafer.svg") == (24, 37, 24)
    assert load_wafer(tmp_path / "out" / "tsmc-sow-params.yaml") == load_wafer("tsmc-sow")


@pytest.mark.slow
def test_installed_command_runs_default_job(tmp_path):
    # As a user would: the console script with no arguments, in an empty folder.
    result = subprocess.run([sys.executable, "-m", "hwmodel"], cwd=tmp_path,
                            capture_output=True, text=True, check=False,
                            env=subprocess_env())
    assert result.returncode == 0, result.stderr
    assert "wafer:" in result.stdout and "name: tsmc-sow" in result.stdout
    assert (tmp_path / "hwmodel-out" / "tsmc-sow-wafer.svg").exists()
