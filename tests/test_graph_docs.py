"""The examples of docs/graph.md, docs/diagrams.md and docs/configuration.md run as written."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, subprocess_env

DOCS = ["graph.md", "diagrams.md", "configuration.md"]


def blocks(doc: str, language: str) -> list[str]:
    text = (REPO / "docs" / doc).read_text()
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)


@pytest.fixture
def user_dir(tmp_path, monkeypatch):
    """An empty folder holding a copy of examples/, as a user's checkout would."""
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("doc", DOCS)
def test_python_examples_run(doc, user_dir, capsys):
    found = blocks(doc, "python")
    assert found, f"docs/{doc} has no Python example"
    for code in found:
        exec(compile(code, f"docs/{doc}", "exec"), {})  # noqa: S102 (running the docs is the test)
    out = capsys.readouterr().out
    if doc == "graph.md":
        assert "24 37" in out and "10 3350.0 4352" in out
    if doc == "diagrams.md":
        assert "24 37" in out and (user_dir / "traffic.png").exists()


@pytest.mark.slow
@pytest.mark.parametrize("doc", ["graph.md", "diagrams.md"])
def test_shell_examples_run(doc, user_dir):
    hwmodel = Path(sys.executable).with_name("hwmodel")
    assert hwmodel.exists(), "the hwmodel console script is not installed"
    for script in blocks(doc, "sh"):
        result = subprocess.run(["bash", "-e", "-c", script], cwd=user_dir,
                                capture_output=True, text=True, check=False,
                                env=subprocess_env(PATH=f"{hwmodel.parent}:/usr/bin:/bin"))
        assert result.returncode == 0, result.stderr
    if doc == "diagrams.md":
        for name in ("wafer.svg", "wafer.dot", "dojo.png", "mesh-8x8.svg", "die.svg",
                     "d2d.svg", "cp.png", "hwmodel-out/tsmc-sow-wafer.svg"):
            assert (user_dir / name).exists(), name
