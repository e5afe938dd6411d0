"""Strategies are objects: a user's own runs without touching the replay loop."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, subprocess_env
from test_system_replay import _replay, _tiny_store

from hwmodel.models import load_model
from hwmodel.system import (
    STRATEGIES,
    Replay,
    Strategy,
    get_strategy,
    register_strategy,
    strategy_names,
)
from hwmodel.system.strategies import FirstAppearance
from hwmodel.topologies.wafer import wafer_from
from hwmodel.traces.synth import default_batch


def test_the_papers_five_are_registered_in_fig12_order():
    assert strategy_names()[:5] == STRATEGIES
    assert [get_strategy(s).predicts for s in STRATEGIES] == [False, False, False, True, True]


def test_a_users_strategy_runs_by_object_and_by_name():
    """Round robin from die 0 instead of die 7: expert 0 (home die 0) runs on its home die, so
    the one-token request makes no remote read, where base makes 3 x 7 hops per layer."""
    store = _tiny_store([([0, 0], [])])
    mine = Strategy("rr0-test", FirstAppearance(offset=0), predicts=False,
                    description="round robin from die 0")
    assert _replay(store, max_iterations=1).run(mine).hops == 0
    assert _replay(store, max_iterations=1).run("base").hops == 3 * 7 * 24
    if "rr0-test" not in strategy_names():
        register_strategy(mine)
    assert _replay(store, max_iterations=1).run("rr0-test").hops == 0
    with pytest.raises(ValueError, match="registered already"):
        register_strategy(mine)
    with pytest.raises(ValueError, match="unknown strategy 'nope'"):
        _replay(store, max_iterations=1).run("nope")


# --------------------------------------------------------------------------- plug-ins
PLUGIN = '''
from hwmodel.system.strategies import FirstAppearance, Strategy

RR0 = Strategy("rr0-plugin", FirstAppearance(offset=0), predicts=False,
               description="round robin from die 0")


def broken():
    raise RuntimeError("no strategy today")
'''


def _plugin_path(tmp_path, entry_points: str) -> Path:
    """A folder holding a module and an installed distribution's metadata (a tiny dist-info,
    as pip writes it) whose entry points are ``entry_points``."""
    root = tmp_path / "site"
    (root / "rr0_plugin-1.0.dist-info").mkdir(parents=True)
    (root / "rr0_plugin.py").write_text(PLUGIN)
    (root / "rr0_plugin-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: rr0-plugin\nVersion: 1.0\n")
    (root / "rr0_plugin-1.0.dist-info" / "entry_points.txt").write_text(
        "[hwmodel.strategies]\n" + entry_points)
    return root


def _hwmodel(root, *argv):
    env = subprocess_env(PYTHONPATH=f"{REPO}{os.pathsep}{root}")
    return subprocess.run([sys.executable, "-m", "hwmodel", *argv], capture_output=True,
                          text=True, env=env, cwd=root, check=False)


def test_a_plugin_strategy_runs_from_hwmodel_replay(tmp_path):
    """A strategy registered only through the ``hwmodel.strategies`` entry point group runs
    from the command line, on two processes, and gives the row the same strategy object gives
    in Python (the other way in); ``all`` includes it after the paper's five."""
    root = _plugin_path(tmp_path, "rr0 = rr0_plugin:RR0\n")
    done = _hwmodel(root, "replay", "--batch", "2", "--strategy", "base,rr0-plugin",
                    "--jobs", "2", "--quiet")
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("llama4,")]
    assert len(rows) == 2
    store = default_batch("llama4-maverick", requests=2)
    mine = Strategy("rr0-plugin", FirstAppearance(offset=0), predicts=False)
    replay = Replay(wafer=wafer_from("tsmc-sow"), model=load_model("llama4-maverick"),
                    store=store)
    assert rows[1] == replay.run(mine).row()
    assert rows[0] == replay.run("base").row() != rows[1]
    listing = _hwmodel(root, "replay", "--strategy", "nope", "--quiet")
    assert listing.returncode == 2
    assert "base, ep, allo, pred, allo+pred, rr0-plugin" in listing.stderr


def test_a_broken_plugin_is_one_line_naming_its_entry_point(tmp_path):
    root = _plugin_path(tmp_path, "broken = rr0_plugin:broken\n")
    done = _hwmodel(root, "replay", "--batch", "1", "--strategy", "base", "--quiet")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "entry point broken = 'rr0_plugin:broken' (hwmodel.strategies)" in lines[0]
    assert "RuntimeError: no strategy today" in lines[0]
