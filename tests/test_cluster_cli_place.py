"""``hwmodel place``: outputs, diagram, parameter dump and one-line errors with exit 2."""

import csv

import pytest

from hwmodel.cli import main


def _error_line(capsys, argv):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hwmodel: error: ")
    return lines[0]


@pytest.mark.parametrize("argv, culprit", [
    (["place", "--policy", "remap,bogus"], "'bogus'"),
    (["place", "--batch", "64,x"], "'64,x'"),
    (["place", "--batch", "0"], "positive"),
    (["place", "--cluster", "no-such-cluster"], "no-such-cluster"),
    (["place", "--trace", "/nonexistent/trace"], "/nonexistent/trace"),
])
def test_bad_input_gives_one_line_and_exit_2(capsys, argv, culprit):
    assert culprit in _error_line(capsys, argv)


def test_bad_cluster_yaml_names_the_key(capsys, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("cluster:\n  nvlink: {bandwidth_GBps: -1}\n")
    assert "cluster.nvlink.bandwidth_GBps" in _error_line(capsys, ["place", "--cluster",
                                                                   str(path)])


def test_table_files_and_determinism(tmp_path, capsys):
    argv = ["place", "--model", "deepseek-v2-lite", "--requests", "16", "--batch", "16",
            "--policy", "default,remap", "-o"]
    assert main([*argv, str(tmp_path / "a")]) == 0
    assert main([*argv, str(tmp_path / "b")]) == 0
    rows = list(csv.DictReader((tmp_path / "a" / "place.csv").read_text().splitlines()))
    assert [r["policy"] for r in rows] == ["default", "remap"]
    assert float(rows[0]["speedup_vs_default"]) == 1.0
    for name in ("place.csv", "place.json", "place.png"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_diagram_and_params_come_from_the_graph(tmp_path, capsys):
    assert main(["place", "--cluster", "dgx-h100-8node", "--diagram",
                 str(tmp_path / "c.svg")]) == 0
    svg = (tmp_path / "c.svg").read_text()
    assert svg.count("nvswitch_") >= 8 and "gpu_7_7" in svg
    assert main(["place", "--params"]) == 0
    assert "num_nodes: 1" in capsys.readouterr().out
