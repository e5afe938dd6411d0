"""Sweep execution (hwmodel.sweep.runner): resumption, failures, interruption, Ray."""

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hwmodel.sweep import ResultsStore, load_grid, run_sweep
from hwmodel.sweep.runner import Progress, prepare

GRID = """sweep:
  models: [llama4-maverick]
  batches: [4, 5]
  wafers: [dojo, {wafer}]
  strategies: [base, allo+pred]
  params: {{max_iterations: 2}}
"""
# 6 dies of 160 GB (144 GB usable): Llama-4's 773 GB of experts fit, as 'replay' demands
WAFER = ("wafer:\n  name: w23\n  mesh_x: 2\n  mesh_y: 3\n"
         "  die:\n    hbm: {capacity_bytes: 160000000000}\n")
RUNS = 2 * 2 * 2  # batches x wafers x strategies


def _write_grid(folder: Path) -> Path:
    (folder / "w23.yaml").write_text(WAFER)
    (folder / "grid.yaml").write_text(GRID.format(wafer="w23.yaml"))
    return folder / "grid.yaml"


def _rows(path) -> list[tuple]:
    """The deterministic table, every column, ordered by run key."""
    with sqlite3.connect(path) as db:
        return db.execute("SELECT * FROM runs ORDER BY key").fetchall()


def _stored(path) -> int:
    """Runs committed so far (0 while the sweep has not yet created its store)."""
    try:
        return len(_rows(path))
    except sqlite3.OperationalError:
        return 0


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))


def _cli(*args, env=None):
    return subprocess.Popen([sys.executable, "-m", "hwmodel", *args], env=env or _env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted sweep of GRID on the process pool: the store others must equal."""
    folder = tmp_path_factory.mktemp("reference")
    outcome = run_sweep(load_grid(_write_grid(folder)), folder / "r.sqlite", folder / "cache",
                        jobs=2, log=None)
    assert (outcome.executed, outcome.failures) == (RUNS, [])
    return folder


def test_every_run_is_stored_with_all_csv_columns(reference):
    from hwmodel.system import ReplayResult
    with ResultsStore(reference / "r.sqlite") as store:
        runs = store.runs()
        costs = store.costs()
    assert len(runs) == RUNS and {r["status"] for r in runs} == {"ok"}
    header = ReplayResult.CSV_HEADER.split(",")
    for run in runs:
        cells = run["row"].split(",")
        assert [run[f"csv_{name}"] for name in header] == cells
        assert json.loads(run["inputs"])["strategy"] == run["strategy"] == run["strategy"]
        assert "wall_s" not in json.loads(run["summary"])
        assert costs[run["key"]]["wall_s"] > 0 and costs[run["key"]]["peak_rss_bytes"] > 1e6
    # 2 x 3 mesh: 7 links (2 rows of 2 + 3 columns... (2-1)*3 + 2*(3-1) = 7)
    small = [r for r in runs if r["wafer"] == "w23"]
    assert {len(json.loads(r["per_link"])) for r in small} == {7}


def test_resume_does_nothing_and_rerun_does_everything(reference):
    grid = load_grid(reference / "grid.yaml")
    before = _rows(reference / "r.sqlite")
    again = run_sweep(grid, reference / "r.sqlite", reference / "cache", jobs=2, log=None)
    assert (again.skipped, again.executed) == (RUNS, 0)
    forced = run_sweep(grid, reference / "r.sqlite", reference / "cache", jobs=2, log=None,
                       rerun=True)
    assert forced.executed == RUNS
    assert _rows(reference / "r.sqlite") == before  # deterministic: same bytes again


def test_run_key_follows_the_content_of_a_user_wafer(reference, tmp_path):
    (tmp_path / "w23.yaml").write_text(WAFER)
    (tmp_path / "grid.yaml").write_text(GRID.format(wafer="w23.yaml"))
    keys = {t.key for t in prepare(load_grid(tmp_path / "grid.yaml"), reference / "cache")}
    assert keys == {r[0] for r in _rows(reference / "r.sqlite")}  # same inputs, same keys
    (tmp_path / "w23.yaml").write_text(WAFER + "    d2d: {hop_latency_ns: 150.0}\n")
    changed = {t.key for t in prepare(load_grid(tmp_path / "grid.yaml"), reference / "cache")}
    assert len(keys & changed) == RUNS // 2  # only the dojo runs keep their keys


def test_failed_run_is_recorded_and_the_others_go_on(tmp_path):
    grid = load_grid(_write_grid(tmp_path))
    tasks = prepare(grid, tmp_path / "cache")
    broken = next(t.store for t in tasks if t.batch == 5)
    Path(broken).write_bytes(b"not a store")  # a corrupted cache entry: its runs fail
    outcome = run_sweep(grid, tmp_path / "r.sqlite", tmp_path / "cache", jobs=2, log=None)
    assert (outcome.executed, len(outcome.failures)) == (RUNS, RUNS // 2)
    with ResultsStore(tmp_path / "r.sqlite") as store:
        failed = store.runs("failed")
    assert {r["batch"] for r in failed} == {5}
    assert all(r["error"].startswith("TraceError") and r["row"] is None for r in failed)


def test_progress_estimates_time_left_from_the_mean_run(monkeypatch):
    import io
    clock = iter([100.0, 130.0])
    monkeypatch.setattr(time, "monotonic", lambda: next(clock))
    out = io.StringIO()
    progress = Progress(4, out)
    progress.update({"status": "failed", "model": "m", "batch": 4, "wafer": "w",
                     "strategy": "base"})
    # one run in 30 s, three left: 90 s
    assert out.getvalue().startswith("[1/4] 1 failed, 0h00m30s elapsed, ~0h01m30s left")


# The sweep command with a results store that interrupts the command (SIGINT to itself, as
# Ctrl-C would) right after its first commit: the interrupt always lands while runs remain.
INTERRUPT_AFTER_FIRST_COMMIT = """
import os, signal, sys
from hwmodel.cli import main
from hwmodel.sweep import store

put = store.ResultsStore.put
def put_then_interrupt(self, *args):
    put(self, *args)
    os.kill(os.getpid(), signal.SIGINT)
store.ResultsStore.put = put_then_interrupt
sys.exit(main(sys.argv[1:]))
"""


def test_interrupted_sweep_resumes_with_only_missing_runs(reference, tmp_path):
    grid = _write_grid(tmp_path)
    results = tmp_path / "r.sqlite"
    process = subprocess.Popen(
        [sys.executable, "-c", INTERRUPT_AFTER_FIRST_COMMIT, "sweep", str(grid), "-o",
         str(results), "--jobs", "1"], env=_env(), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    _, err = process.communicate()
    assert process.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err
    done = len(_rows(results))
    assert done == 1   # exactly the run committed before the interrupt
    with ResultsStore(results) as store:
        first_costs = store.costs()
    rerun = _cli("sweep", str(grid), "-o", str(results), "--jobs", "1", "--quiet")
    out, err = rerun.communicate()
    assert rerun.returncode == 0, err
    assert f"{done} already stored, {RUNS - done} executed, 0 failed" in out
    with ResultsStore(results) as store:
        costs = store.costs()
    assert all(costs[key] == cost for key, cost in first_costs.items())  # not run again
    assert _rows(results) == _rows(reference / "r.sqlite")


def test_retry_failed_runs_exactly_the_failed_runs(reference, tmp_path):
    """Batch 5's cached store is corrupted: its 4 runs fail. Repaired, a plain rerun runs
    nothing (failures are recorded answers), --retry-failed runs those 4 and only those, and
    the store then equals the uninterrupted sweep's."""
    grid = load_grid(_write_grid(tmp_path))
    tasks = prepare(grid, tmp_path / "cache")
    broken = Path(next(t.store for t in tasks if t.batch == 5))
    good = broken.read_bytes()
    broken.write_bytes(b"not a store")
    results = tmp_path / "r.sqlite"
    run_sweep(grid, results, tmp_path / "cache", jobs=1, log=None)
    with ResultsStore(results) as store:
        ok_costs = store.costs()
        failed = {r["key"] for r in store.runs("failed")}
    assert len(failed) == RUNS // 2
    broken.write_bytes(good)
    plain = run_sweep(grid, results, tmp_path / "cache", jobs=1, log=None)
    assert (plain.skipped, plain.executed) == (RUNS, 0)
    retried = run_sweep(grid, results, tmp_path / "cache", jobs=1, log=None, retry_failed=True)
    assert (retried.skipped, retried.executed, retried.failures) == (RUNS // 2, RUNS // 2, [])
    with ResultsStore(results) as store:
        costs = store.costs()
        assert {r["key"] for r in store.runs("failed")} == set()
    for key in set(ok_costs) - failed:
        assert costs[key] == ok_costs[key]   # the runs that had succeeded were not run again
    assert _rows(results) == _rows(reference / "r.sqlite")


def test_a_runs_key_changes_with_its_replay_parameters(tmp_path):
    """Keys hash the replay parameters: max_iterations 2 and 3 share no key; spelling out a
    default (block_size 512) keeps every key."""
    _write_grid(tmp_path)

    def keys(params: str) -> set:
        (tmp_path / "g.yaml").write_text(GRID.replace("{{max_iterations: 2}}", params)
                                         .format(wafer="w23.yaml"))
        return {t.key for t in prepare(load_grid(tmp_path / "g.yaml"), tmp_path / "cache")}
    two = keys("{{max_iterations: 2}}")
    assert len(two) == RUNS
    assert not two & keys("{{max_iterations: 3}}")
    assert keys("{{max_iterations: 2, block_size: 512}}") == two


def test_killed_worker_loses_only_its_run(reference, tmp_path):
    grid = _write_grid(tmp_path)
    results = tmp_path / "r.sqlite"
    process = _cli("sweep", str(grid), "-o", str(results), "--jobs", "1")
    deadline = time.monotonic() + 120
    while _stored(results) < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
    os.kill(int(children[-1]), signal.SIGKILL)  # the pool's worker, as the OOM killer would
    _, err = process.communicate()
    assert process.returncode == 1, err
    assert "Traceback" not in err and "worker process died" in err
    done = _stored(results)
    assert 1 <= done < RUNS
    rerun = _cli("sweep", str(grid), "-o", str(results), "--jobs", "1", "--quiet")
    out, err = rerun.communicate()
    assert f"{done} already stored, {RUNS - done} executed, 0 failed" in out, err
    assert _rows(results) == _rows(reference / "r.sqlite")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port, head, seconds=120):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert head.poll() is None, head.stderr.read()
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"Ray head did not listen on 127.0.0.1:{port}")


@pytest.mark.slow
def test_ray_cluster_gives_the_same_store_as_the_process_pool(reference, tmp_path):
    pytest.importorskip("ray")
    grid = _write_grid(tmp_path)
    port = _free_port()
    env = dict(_env(), RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
    # --block: the head lives as long as this one process; ending it stops exactly the Ray
    # processes it started (no `ray stop`, which would stop every Ray session on the machine)
    head = subprocess.Popen(
        ["ray", "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}",
         "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_port(port, head)
        sweep = _cli("sweep", str(grid), "-o", str(tmp_path / "r.sqlite"), "--quiet",
                     "--ray", f"127.0.0.1:{port}", env=env)
        out, err = sweep.communicate()
        assert sweep.returncode == 0, err
        assert f"0 already stored, {RUNS} executed, 0 failed" in out
    finally:
        head.send_signal(signal.SIGTERM)
        head.communicate()
    assert _rows(tmp_path / "r.sqlite") == _rows(reference / "r.sqlite")


def test_stores_built_side_by_side_equal_those_built_in_turn(tmp_path):
    """prepare(jobs=2) builds the two synthetic stores in two worker processes: the same
    bytes, digests and run keys as one process building them in turn."""
    grid = load_grid(_write_grid(tmp_path))
    serial = prepare(grid, tmp_path / "one")
    parallel = prepare(grid, tmp_path / "two", jobs=2)
    assert [t.key for t in parallel] == [t.key for t in serial]
    assert [t.trace_sha256 for t in parallel] == [t.trace_sha256 for t in serial]
    stores = {Path(t.store).name for t in serial}
    assert len(stores) == 2     # batches 4 and 5
    for name in stores:
        assert (tmp_path / "two" / name).read_bytes() == (tmp_path / "one" / name).read_bytes()
