"""The README's examples run as written (from a folder with ``../shared`` beside it)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, need_shared, subprocess_env

README = (REPO / "README.md").read_text()


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


@pytest.fixture
def user_dir(tmp_path) -> Path:
    """A working folder laid out like the repository's: ``../shared`` and ``examples/``."""
    shared = need_shared()
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "shared").symlink_to(shared)
    (work / "examples").symlink_to(REPO / "examples")
    return work


@pytest.mark.slow
def test_readme_shell_examples_run(user_dir):
    hwmodel = Path(sys.executable).with_name("hwmodel")
    scripts = [b for b in blocks("sh") if "make " not in b]
    assert len(scripts) >= 4
    for script in scripts:
        result = subprocess.run(["bash", "-e", "-c", script], cwd=user_dir,
                                capture_output=True, text=True, check=False,
                                env=subprocess_env(PATH=f"{hwmodel.parent}:/usr/bin:/bin",
                                                    HOME=str(user_dir)))
        assert result.returncode == 0, f"{script}\n{result.stderr[-2000:]}"
    # What the examples promise: the replay's outputs, the store, the diagrams, the Verilog.
    for name in ("out/llama4/replay.csv", "out/llama4.hwt", "out/analysis/summary.json",
                 "out/ds3.hwt", "pdu.v", "wafer.svg", "mesh.png", "die.svg", "dojo.yaml"):
        assert (user_dir / name).exists(), name
    rows = (user_dir / "out/llama4/replay.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * 5  # header, two wafers x five strategies


def test_readme_python_example_prints_what_it_says():
    code, = blocks("python")
    lines = [line.split("#")[0].rstrip() for line in code.splitlines()]
    namespace: dict = {}
    exec("\n".join(lines[:-2]), namespace)  # noqa: S102 (running the README is the test)
    assert eval(lines[-2], namespace) == 3350.0
    assert len(eval(lines[-1], namespace)) == 9
