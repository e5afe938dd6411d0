"""The newer commands (sweep, report, place, params) keep the promises of replay and trace
(issue 20): one line and exit code 2 for a bad input, sizes bounded up front, no silent wrong
answer stored, outputs checked before the work, workers that die with their driver and one
sweep at a time per results store. One group of tests per class of the issue."""

import fcntl
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import subprocess_env
from test_cli_errors import error_line

from hwmodel.cli import main
from hwmodel.cli.cosim import cosim_table
from hwmodel.models import load_model
from hwmodel.sweep import ResultsStore, load_grid, run_sweep
from hwmodel.system.capacity import check_experts_fit, usable_hbm_bytes
from hwmodel.topologies import wafer_from

# Two runs of Llama-4 on dojo, two iterations each: a sweep of a few seconds.
TINY = """sweep:
  models: [llama4-maverick]
  batches: [4]
  wafers: [dojo]
  strategies: [{strategies}]
  params: {{max_iterations: 2}}
"""


def tiny_grid(folder: Path, strategies: str = "base, ep", extra: str = "") -> Path:
    (folder / "grid.yaml").write_text(TINY.format(strategies=strategies) + extra)
    return folder / "grid.yaml"


def rows(path) -> list[tuple]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT * FROM runs ORDER BY key").fetchall()


# ----------------------------------------------------------- 1. one line, never a traceback
def _junk(path):
    path.write_bytes(bytes(range(256)) * 8)


def _text(path):
    path.write_text("run,status\n1,ok\n")


def _foreign(path):
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE people (name TEXT)")
        db.execute("INSERT INTO people VALUES ('ada')")


def _truncated(path):
    with ResultsStore(path):
        pass
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 3])


def _foreign_runs(path):
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE runs (id INTEGER)")


@pytest.mark.parametrize(("make", "why"), [
    (_junk, "file is not a database"), (_text, "file is not a database"),
    (_foreign, "table 'people' of another database"), (_truncated, "not a sweep results store"),
    (_foreign_runs, "its table 'runs' lacks column 'key'")])
def test_sweep_refuses_a_file_that_is_not_a_results_store(tmp_path, capsys, make, why):
    store = tmp_path / "r.sqlite"
    make(store)
    before = store.read_bytes()
    code = main(["sweep", str(tiny_grid(tmp_path)), "-o", str(store), "--quiet"])
    error_line(capsys, code, [str(store), "not a sweep results store", why])
    assert store.read_bytes() == before                    # nothing written into it
    assert not (tmp_path / "trace-cache").exists()         # refused before any trace is built


def test_ray_not_installed_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)          # "import ray" raises ImportError
    code = main(["sweep", str(tiny_grid(tmp_path)), "-o", str(tmp_path / "r.sqlite"),
                 "--ray", "auto"])
    error_line(capsys, code, ["--ray auto", "Ray is not installed", "omit --ray"])
    assert not (tmp_path / "r.sqlite").exists()


def test_ray_address_nobody_listens_on_is_refused_at_once(tmp_path, capsys):
    pytest.importorskip("ray")
    import socket
    with socket.socket() as s:                              # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = main(["sweep", str(tiny_grid(tmp_path)), "-o", str(tmp_path / "r.sqlite"),
                 "--ray", f"127.0.0.1:{port}"])
    error_line(capsys, code, [f"--ray 127.0.0.1:{port}", "no Ray head answers there",
                              "expected the address of a running Ray cluster"])


def test_ray_address_that_times_out_names_the_bound(monkeypatch):
    pytest.importorskip("ray")
    import socket

    from hwmodel.sweep import runner
    seen = {}

    def silent(address, timeout):
        seen["timeout"] = timeout
        raise TimeoutError("timed out")
    monkeypatch.setattr(socket, "create_connection", silent)
    with pytest.raises(ValueError, match=r"--ray 10.0.0.1:6379: no Ray head answers there "
                                         r"\(TimeoutError within 10 s\)"):
        runner.check_ray("10.0.0.1:6379")
    assert seen["timeout"] == runner.RAY_CONNECT_TIMEOUT_S == 10
    with pytest.raises(ValueError, match="expected 'auto', 'local' or HOST:PORT"):
        runner.check_ray("10.0.0.1")


class _FakeHead:
    """A TCP server on localhost that answers each connection's first bytes with ``reply``,
    then closes it (``reply`` None: holds it open and never sends a byte)."""

    def __init__(self, reply):
        import socket
        import threading
        self.reply = reply
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.held = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            if self.reply is None:
                self.held.append(connection)
                continue
            connection.recv(64)
            connection.sendall(self.reply)
            connection.close()

    def close(self):
        for connection in self.held:
            connection.close()
        self.server.close()


# An HTTP/2 server's first frame (RFC 9113 3.4): an empty SETTINGS frame, as gRPC servers send.
HTTP2_SETTINGS = bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


@pytest.mark.parametrize(("reply", "why"), [
    (None, "TimeoutError within 0.5 s"),                  # accepts, then says nothing
    (b"HTTP/1.1 400 Bad Request\r\n\r\n", "does not answer as a Ray head"),
    (b"", "does not answer as a Ray head"),                # closes at once
])
def test_ray_address_that_is_not_a_ray_head_is_refused_within_the_bound(reply, why):
    pytest.importorskip("ray")
    from hwmodel.sweep import runner
    head = _FakeHead(reply)
    try:
        with pytest.raises(ValueError, match=f"--ray 127.0.0.1:{head.port}: .*{why}"):
            runner.check_ray(f"127.0.0.1:{head.port}", 0.5)   # seconds
    finally:
        head.close()


def test_ray_address_answering_http2_passes_the_check():
    """The probe accepts what a gRPC server (a Ray head's GCS) answers, so a real head is
    not refused."""
    pytest.importorskip("ray")
    from hwmodel.sweep import runner
    head = _FakeHead(HTTP2_SETTINGS)
    try:
        runner.check_ray(f"ray://127.0.0.1:{head.port}", 5)   # seconds
    finally:
        head.close()


def test_sweep_on_a_silent_address_is_one_line_within_the_bound(tmp_path, capsys, monkeypatch):
    pytest.importorskip("ray")
    from hwmodel.sweep import runner
    monkeypatch.setattr(runner, "RAY_CONNECT_TIMEOUT_S", 0.5)
    head = _FakeHead(None)
    try:
        code = main(["sweep", str(tiny_grid(tmp_path)), "-o", str(tmp_path / "r.sqlite"),
                     "--ray", f"127.0.0.1:{head.port}"])
    finally:
        head.close()
    error_line(capsys, code, [f"--ray 127.0.0.1:{head.port}", "no Ray head answers there",
                              "within 0.5 s"])
    assert not (tmp_path / "r.sqlite").exists()


@pytest.mark.parametrize(("text", "expected"), [
    ("hbm_efficiency: 0", ["replay.hbm_efficiency", "must be in (0, 1], not 0.0"]),
    ("hbm_efficiency: 2.0", ["replay.hbm_efficiency", "must be in (0, 1], not 2.0"]),
    ("clock_MHz: -5", ["replay.clock_MHz", "must be greater than zero, not -5"]),
    ("block_size: 100000000", ["replay.block_size", "at most 1048576 tokens, not 100000000"]),
])
def test_replay_params_are_checked_as_the_wafers_are(tmp_path, capsys, text, expected):
    (tmp_path / "p.yaml").write_text(f"replay:\n  {text}\n")
    code = main(["replay", "--params", str(tmp_path / "p.yaml"), "--quiet"])
    error_line(capsys, code, ["p.yaml", *expected])


def test_one_check_per_quantity_in_a_wafer_yaml_and_in_replay_params(tmp_path, capsys):
    # the same value is refused with the same words, wherever it is given
    (tmp_path / "w.yaml").write_text("wafer:\n  mesh_x: 2\n  mesh_y: 2\n  clock_MHz: -5\n")
    code = main(["params", "--wafer", str(tmp_path / "w.yaml")])
    error_line(capsys, code, ["wafer.clock_MHz", "must be greater than zero, not -5"])
    (tmp_path / "w.yaml").write_text("wafer:\n  mesh_x: 2\n  mesh_y: 2\n"
                                     "  die: {hbm: {efficiency: 2.0}}\n")
    code = main(["params", "--wafer", str(tmp_path / "w.yaml")])
    error_line(capsys, code, ["wafer.die.hbm.efficiency", "must be in (0, 1], not 2.0"])


def test_sweep_params_axis_is_checked_before_anything_runs(tmp_path, capsys):
    grid = tmp_path / "g.yaml"
    grid.write_text(TINY.format(strategies="base").replace("{max_iterations: 2}",
                                                          "{hbm_efficiency: [0.5, 2.0]}"))
    code = main(["sweep", str(grid), "-o", str(tmp_path / "r.sqlite")])
    error_line(capsys, code, ["g.yaml", "sweep.params.hbm_efficiency", "not 2.0"])
    assert not (tmp_path / "r.sqlite").exists()


# ------------------------------------------------------------ 2. sizes bounded up front
def test_a_grid_too_large_is_refused_with_its_count(tmp_path, capsys):
    grid = tmp_path / "g.yaml"
    batches = ", ".join(str(b) for b in range(1, 1001))
    # 1,000 batches x 2 wafers x 5 strategies x 2 values of max_iterations = 20,000 runs
    grid.write_text(f"sweep:\n  models: [llama4-maverick]\n  batches: [{batches}]\n"
                    f"  wafers: [dojo, tsmc-sow]\n  params: {{max_iterations: [1, 2]}}\n")
    code = main(["sweep", str(grid), "-o", str(tmp_path / "r.sqlite")])
    error_line(capsys, code, ["g.yaml", "20,000 runs", "at most 10,000"])
    assert not (tmp_path / "r.sqlite").exists()


def test_a_cluster_too_large_is_refused_with_its_count(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text("cluster:\n  num_nodes: 100000\n")
    code = main(["place", "--cluster", str(tmp_path / "c.yaml")])
    error_line(capsys, code, ["c.yaml", "cluster.num_nodes", "100000 nodes x 8 GPUs",
                              "800,000 GPUs", "at most 4,096"])


def test_place_synthetic_batch_too_large_is_refused_before_numpy(capsys):
    code = main(["place", "--batch", "100000000000"])
    error_line(capsys, code, ["--batch 100000000000", "100,000,000,000 requests",
                              "at most 65,536"])
    code = main(["place", "--requests", "70000", "--batch", "64"])
    error_line(capsys, code, ["--requests 70000", "at most 65,536"])


# ---------------------------------------------------------------- 3. no silent wrong answers
def test_sweep_stores_a_batch_larger_than_its_trace_as_failed(tmp_path):
    from hwmodel.traces.synth import default_batch
    default_batch("qwen3-235b", requests=2).save(tmp_path / "two.hwt")
    (tmp_path / "grid.yaml").write_text(
        "sweep:\n  models: [qwen3-235b]\n  traces: [two.hwt]\n  batches: [2, 5]\n"
        "  wafers: [tsmc-sow]\n  strategies: [ep]\n  params: {max_iterations: 1}\n")
    outcome = run_sweep(load_grid(tmp_path / "grid.yaml"), tmp_path / "r.sqlite",
                        tmp_path / "cache", jobs=1, log=None)
    assert (outcome.executed, len(outcome.failures)) == (2, 1)
    with ResultsStore(tmp_path / "r.sqlite") as store:
        (failed,), (ok,) = store.runs("failed"), store.runs("ok")
    assert (failed["batch"], ok["batch"]) == (5, 2)
    # a 2-request trace asked for 5 requests: the replay command's words
    assert failed["error"].startswith("ValueError: batch 5: the trace ")
    assert failed["error"].endswith("holds only 2 requests; expected a batch of at most 2")


KIMI_GRID = ("sweep:\n  models: [kimi-k2]\n  batches: [1]\n  wafers: [tsmc-sow]\n"
             "  strategies: [ep]\n  params: {max_iterations: 1}\n")


def test_sweep_stores_a_model_that_does_not_fit_as_failed(tmp_path):
    (tmp_path / "g.yaml").write_text(KIMI_GRID)
    outcome = run_sweep(load_grid(tmp_path / "g.yaml"), tmp_path / "r.sqlite",
                        tmp_path / "cache", jobs=1, log=None)
    assert len(outcome.failures) == 1
    # Kimi-K2: 3 x 7168 x 2048 x 2 B x 384 experts x 60 MoE layers = 2029.4 GB; tsmc-sow:
    # 24 dies x 80 GB x 0.9 = 1728.0 GB (the replay command's words)
    error = outcome.failures[0][1]
    assert "2029.4 GB" in error and "1728.0 GB" in error and "tsmc-sow (24 dies)" in error


@pytest.mark.slow
def test_grid_ignore_capacity_runs_it_under_the_same_key(tmp_path):
    (tmp_path / "g.yaml").write_text(KIMI_GRID)
    run_sweep(load_grid(tmp_path / "g.yaml"), tmp_path / "r.sqlite", tmp_path / "cache",
              jobs=1, log=None)
    (tmp_path / "g.yaml").write_text(KIMI_GRID + "  ignore_capacity: true\n")
    forced = load_grid(tmp_path / "g.yaml")
    assert forced.ignore_capacity
    outcome = run_sweep(forced, tmp_path / "r2.sqlite", tmp_path / "cache", jobs=1, log=None)
    assert outcome.failures == []
    # the flag changes no result, so the run's key is the same as without it
    assert rows(tmp_path / "r2.sqlite")[0][0] == rows(tmp_path / "r.sqlite")[0][0]


def test_capacity_counts_live_dies_only(tmp_path):
    (tmp_path / "w.yaml").write_text("wafer:\n  name: holes\n  mesh_x: 2\n  mesh_y: 3\n"
                                     "  dead_dies: [die_0_0, die_1_2]\n")
    wafer = wafer_from(str(tmp_path / "w.yaml"))
    # 4 live dies x 80 GB x (1 - 0.1)
    assert usable_hbm_bytes(wafer) == 4 * 72 * 10**9
    with pytest.raises(ValueError, match=r"288.0 GB of usable HBM of wafer holes "
                                         r"\(4 live of 6 dies\)"):
        check_experts_fit(load_model("qwen3-235b"), wafer)   # 454.2 GB > 288.0 GB


def test_cosim_that_compared_nothing_says_so():
    idle = {"atu": {"simulations": 1, "answers": 0, "cycles": 3, "seconds": 0.1}}
    text = cosim_table(idle, "pysim")
    assert "no answer was compared" in text and "nothing is claimed" in text
    assert "equals the twins" not in text
    mixed = dict(idle, pdu={"simulations": 2, "answers": 9, "cycles": 30, "seconds": 0.2})
    head = cosim_table(mixed, "pysim").splitlines()[0]
    assert head == ("RTL (pysim) equals the twins on every answer in the window "
                    "(none compared for atu):")


@pytest.mark.parametrize(("argv", "expected"), [
    (["--requests", "0"], ["--requests 0", "expected a number of requests >= 1"]),
    (["--replicas", "-1"], ["--replicas -1", "expected extra expert slots per GPU >= 1"]),
    (["--replicas", "0"], ["--replicas 0", "dup would equal default"]),
    (["--model", "deepseek-v2-lite", "--requests", "4", "--batch", "100000"],
     ["--batch 100000", "the synthetic trace holds only", "decode tokens"]),
])
def test_place_refuses_values_it_would_ignore(capsys, argv, expected):
    error_line(capsys, main(["place", *argv]), expected)


def test_place_batch_larger_than_a_trace_names_its_tokens(tmp_path, capsys):
    from hwmodel.traces.synth import default_batch
    store = default_batch("deepseek-v2-lite", requests=3)
    store.save(tmp_path / "three.hwt")
    have = int(store.decode_len.sum())                     # every request's decode steps
    code = main(["place", "--trace", str(tmp_path / "three.hwt"), "--batch", f"{have + 1}"])
    error_line(capsys, code, [f"--batch {have + 1}", "three.hwt", f"holds only {have} decode",
                              f"at most {have}"])


@pytest.mark.parametrize("axis", ["strategies: [base, ep, base]", "batches: [4, 4]",
                                  "wafers: [dojo, dojo]"])
def test_grid_value_listed_twice_is_refused(tmp_path, capsys, axis):
    key = axis.split(":")[0]
    text = TINY.format(strategies="base").replace(f"  {key}:", f"  old_{key}:")
    text = "\n".join(line for line in text.splitlines() if not line.startswith("  old_"))
    (tmp_path / "g.yaml").write_text(text + f"\n  {axis}\n")
    code = main(["sweep", str(tmp_path / "g.yaml"), "-o", str(tmp_path / "r.sqlite")])
    error_line(capsys, code, ["g.yaml", f"sweep.{key}", "listed twice"])


# ------------------------------------------------------------------ 4. output promises
def test_place_output_checked_before_the_work(tmp_path, capsys, monkeypatch):
    import hwmodel.cluster.replay as cluster_replay
    (tmp_path / "file").write_text("x")
    monkeypatch.setattr(cluster_replay, "replay", lambda *a, **k: pytest.fail("work done"))
    code = main(["place", "--model", "deepseek-v2-lite", "--requests", "16", "--batch", "16",
                 "-o", str(tmp_path / "file")])
    error_line(capsys, code, ["--out", "file", "is a file, expected a folder"])


def test_place_and_report_refuse_a_non_empty_folder_without_force(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    argv = ["place", "--model", "deepseek-v2-lite", "--requests", "16", "--batch", "16",
            "--policy", "default,remap", "--quiet", "-o", str(out)]
    error_line(capsys, main(argv), ["--out", "is not empty", "pass --force"])
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt"]
    assert main([*argv, "--force"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt", "place.csv", "place.json",
                                                     "place.png"]
    capsys.readouterr()
    missing = str(tmp_path / "none.sqlite")
    error_line(capsys, main(["report", missing, "-o", str(out)]),
               ["--out", "is not empty", "pass --force"])
    # with --force the output passes, and the next problem is the missing store
    error_line(capsys, main(["report", missing, "-o", str(out), "--force"]),
               ["none.sqlite", "no such results store"])


def test_sweep_force_is_refused_with_the_name_of_rerun(tmp_path, capsys):
    code = main(["sweep", str(tiny_grid(tmp_path)), "-o", str(tmp_path / "r.sqlite"),
                 "--force"])
    error_line(capsys, code, ["--force", "pass --rerun"])
    assert not (tmp_path / "r.sqlite").exists()


# ------------------------------------------------------------- 5. crash and concurrency
def _cli(*args):
    return subprocess.Popen([sys.executable, "-m", "hwmodel", *args], env=subprocess_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its new parent to reap it is dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _wait_for(predicate, what: str, seconds: float = 120):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_pool_workers_die_with_a_sigkilled_driver(tmp_path):
    # 15 runs: the driver is still feeding the pool when it is killed
    grid = tiny_grid(tmp_path, strategies="base, ep, allo, pred, allo+pred")
    grid.write_text(grid.read_text().replace("batches: [4]", "batches: [16, 17, 18]")
                    .replace("max_iterations: 2", "max_iterations: 16"))
    driver = _cli("sweep", str(grid), "-o", str(tmp_path / "r.sqlite"), "--jobs", "2",
                  "--quiet")
    try:
        def workers():
            # the pool's forked workers share the driver's command line (read now: right
            # after Popen it may still be this process's, before the exec)
            command = Path(f"/proc/{driver.pid}/cmdline").read_bytes()
            found = [c for c in _children(driver.pid)
                     if Path(f"/proc/{c}/cmdline").read_bytes() == command]
            return found if len(found) == 2 else None
        pool = _wait_for(workers, "the two pool workers")
        _wait_for(lambda: _committed(tmp_path / "r.sqlite"), "a first run committed")
    finally:
        driver.kill()                                      # SIGKILL, as kill -9
        driver.wait()             # (not communicate: a surviving worker holds its pipes)
        driver.stdout.close()
        driver.stderr.close()
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in pool) and time.monotonic() < deadline:
        time.sleep(0.05)
    survivors = [pid for pid in pool if _alive(pid)]
    for pid in survivors:                                  # leave no orphan behind
        os.kill(pid, signal.SIGKILL)
    assert survivors == [], "pool workers outlived their SIGKILLed driver"


def _committed(path: Path) -> int:
    try:
        return len(rows(path))
    except sqlite3.OperationalError:   # not created yet
        return 0


def _locked_by_other(path: Path) -> bool:
    """Whether another process holds the sweep's lock on ``path``."""
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)                                       # (also releases a lock taken)
    return False


def test_second_sweep_on_a_store_is_refused_while_the_first_runs(tmp_path, capsys):
    grid = tiny_grid(tmp_path)
    store = tmp_path / "r.sqlite"
    with ResultsStore(store, exclusive=True):              # another sweep holds the store
        code = main(["sweep", str(grid), "-o", str(store), "--quiet"])
        error_line(capsys, code, [str(store), "another 'hwmodel sweep' is running",
                                  "pass another --out"])
    assert rows(store) == []


def test_two_sweeps_at_once_run_every_run_once(tmp_path):
    reference = tmp_path / "reference"
    reference.mkdir()
    run_sweep(load_grid(tiny_grid(reference)), reference / "r.sqlite", reference / "cache",
              jobs=1, log=None)
    grid = tiny_grid(tmp_path)
    store = tmp_path / "r.sqlite"
    first = _cli("sweep", str(grid), "-o", str(store), "--jobs", "1", "--quiet")
    _wait_for(lambda: _locked_by_other(store), "the first sweep to lock its store")
    first.send_signal(signal.SIGSTOP)       # it cannot end while the second one starts
    try:
        second = _cli("sweep", str(grid), "-o", str(store), "--jobs", "1", "--quiet")
        out, err = second.communicate()
    finally:
        first.send_signal(signal.SIGCONT)
    assert second.returncode == 2 and out == "", err
    assert err.startswith("hwmodel: error: ") and err.count("\n") == 1
    assert "another 'hwmodel sweep' is running on this results store" in err
    out, err = first.communicate()
    assert first.returncode == 0, err
    assert "2 runs in the grid: 0 already stored, 2 executed, 0 failed" in out
    assert rows(store) == rows(reference / "r.sqlite")
    with ResultsStore(store) as results:
        assert len(results.costs()) == 2                   # each run executed once


# ---------------------------------------------------------------- 7. seen as a new user
def test_replay_svg_is_the_same_bytes_every_time(tmp_path):
    from hwmodel.cli.replay import replay_strategies, write_outputs
    results = replay_strategies(None, ["dojo"], ["base", "ep"], batch=1,
                                model="llama4-maverick")
    for out in ("a", "b"):
        write_outputs(results, tmp_path / out, names=["dojo", "dojo"], title="t")
    svg = (tmp_path / "a" / "speedup.svg").read_bytes()
    assert svg == (tmp_path / "b" / "speedup.svg").read_bytes()   # ids from svg.hashsalt
    assert b"0 hops" in svg


@pytest.mark.parametrize(("command", "shown", "hidden"), [
    (["place"], ["-o DIR", "--quiet", "--force", "(default: dgx-h100)", "(default: 1)"],
     ["--progress"]),
    (["sweep"], ["-o FILE", "--rerun", "auto|local|ADDRESS", "(default: sweep/results.sqlite)"],
     ["--force"]),
    (["report"], ["-o DIR", "--force", "(default: report)"], []),
    (["replay"], ["-o DIR", "(default: 2)"], []),
    (["params"], ["--wafer NAME|FILE", "(default: tsmc-sow)", "-o FILE"], ["--preset"]),
    (["diagram"], ["--wafer NAME|FILE", "(default: tsmc-sow)"], ["--preset"]),
    (["rtl", "sim"], ["--vcd DIR"], []),
    (["rtl", "verilog"], ["-o FILE"], []),
])
def test_help_speaks_one_grammar(capsys, command, shown, hidden):
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for part in shown:
        assert part in text, (command, part)
    for part in [*hidden, "(default: None)", "(default: False)"]:
        assert part not in text, (command, part)
