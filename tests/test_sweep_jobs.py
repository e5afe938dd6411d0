"""A sweep's run is the typed replay job of ``hwmodel replay`` (issue 21, point 4): it carries
its wafer and replay parameters, the worker builds its wafer once from them and loads nothing
again by name, and the run keys are what they were (a hash of the run's inputs)."""

import hashlib
import json
import pickle
from pathlib import Path

import pytest

import hwmodel
from hwmodel.cli.runs import ReplayJob
from hwmodel.config import to_dict
from hwmodel.models import load_model
from hwmodel.params import load_wafer
from hwmodel.sweep import load_grid
from hwmodel.sweep.runner import SweepTask, execute_run, prepare
from hwmodel.system import ReplayParams

GRID = """sweep:
  models: [llama4-maverick]
  batches: [4]
  wafers: [dojo]
  strategies: [base, ep]
  params: {max_iterations: 2}
"""


@pytest.fixture(scope="module")
def tasks(tmp_path_factory):
    folder = tmp_path_factory.mktemp("jobs")
    (folder / "grid.yaml").write_text(GRID)
    return prepare(load_grid(folder / "grid.yaml"), folder / "cache")


def test_a_sweep_task_is_a_typed_replay_job(tasks):
    assert [t.strategy for t in tasks] == ["base", "ep"]
    for task in tasks:
        assert isinstance(task, SweepTask) and isinstance(task.job, ReplayJob)
        assert task.job.wafer == load_wafer("dojo")
        assert task.job.params == ReplayParams(max_iterations=2)
        assert (task.job.model, task.batch, task.wafer) == ("llama4-maverick", 4, "dojo")
        assert Path(task.store).is_file()
        assert pickle.loads(pickle.dumps(task)) == task      # to the pool and to Ray


def test_the_key_hashes_the_run_inputs_as_before(tasks):
    """The inputs written out by hand from the grid: the key is their SHA-256, so the keys of
    stores written before the typed tasks still name the same runs."""
    for task in tasks:
        digest = hashlib.sha256(Path(task.store).read_bytes()).hexdigest()
        inputs = {"model": to_dict(load_model("llama4-maverick")),
                  "wafer": to_dict(load_wafer("dojo")),
                  "replay": to_dict(ReplayParams(max_iterations=2)),
                  "strategy": task.strategy,
                  "trace": {"label": "llama4-maverick/synth(seed=0)/4", "sha256": digest,
                            "batch": 4},
                  "hwmodel": hwmodel.__version__}
        text = json.dumps(inputs, sort_keys=True)
        assert task.inputs == text
        assert task.key == hashlib.sha256(text.encode()).hexdigest()


def test_the_worker_builds_the_wafer_once_and_loads_nothing_by_name(tasks, monkeypatch):
    """A run in the worker builds its wafer once, from the job's parameters; loading a wafer
    or model by name fails the run. Its row is that of the same job run as 'replay' runs it."""
    import hwmodel.models
    import hwmodel.params
    import hwmodel.topologies.wafer as wafer_module
    task = tasks[0]
    expected = task.job.run(opened=(task.job.open()[0], load_model("llama4-maverick")),
                            built=wafer_module.build_wafer(load_wafer("dojo"))).row()
    built = []
    real_build = wafer_module.build_wafer

    def counting_build(params):
        built.append(params)
        return real_build(params)

    def by_name(*args, **kwargs):
        raise AssertionError(f"loaded by name: {args}")
    monkeypatch.setattr(wafer_module, "build_wafer", counting_build)
    for module, name in ((hwmodel.params, "load_wafer"), (wafer_module, "wafer_from"),
                         (hwmodel.models, "load_model")):
        monkeypatch.setattr(module, name, by_name)
    record, _ = execute_run(task)
    assert record["status"] == "ok", record.get("error")
    assert built == [load_wafer("dojo")]          # the test's own, unpatched loader
    assert record["row"] == expected
    assert (record["key"], record["wafer"], record["strategy"]) == (task.key, "dojo", "base")
