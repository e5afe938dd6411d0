"""Execute a grid's runs on a local process pool or on Ray, committing each as it ends.

:func:`prepare` builds (or finds in the cache) every trace store and gives each run its key, the
SHA-256 of its full inputs; :func:`execute_run` is the unit of work, the same function on both
back ends; :func:`run_sweep` skips the runs already in the results store, runs the rest and
commits every result the moment it arrives, so an interruption loses only the runs in flight.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import signal
import socket
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime

import attrs

from ..cli.runs import ReplayJob
from .cache import is_cached, trace_store
from .grid import Grid
from .store import ResultsStore

__all__ = ["Progress", "SweepOutcome", "SweepTask", "check_ray", "execute_run", "prepare",
           "run_sweep"]


def _version() -> str:
    from .. import __version__
    return __version__


def _inputs(run, trace_sha256) -> dict:
    """Every input of a run, as plain data: what its key hashes."""
    from ..config import from_dict, to_dict
    from ..models import load_model
    from ..params import load_wafer
    from ..system import ReplayParams
    replay = from_dict(ReplayParams, run.params_dict(), path="sweep.params")
    return {"model": to_dict(load_model(run.trace.model)),
            "wafer": to_dict(load_wafer(run.wafer)),
            "replay": to_dict(replay), "strategy": run.strategy,
            "trace": {"label": run.trace.label(), "sha256": trace_sha256,
                      "batch": run.trace.batch},
            "hwmodel": _version()}


@attrs.frozen
class SweepTask:
    """One run of a sweep: the typed :class:`~hwmodel.cli.runs.ReplayJob` that
    ``hwmodel replay`` runs, plus what the results store records of it.

    The job carries the wafer and replay parameters decoded from the very inputs the key
    hashes (nothing is loaded again by name in a worker), and reads the run's cached trace
    store. Tasks pickle to the pool's workers and to Ray.

    Members
    -------
    key : str
        SHA-256 of :attr:`inputs`: the run's identity in the results store.
    inputs : str
        Every input of the run as sorted JSON (:func:`_inputs`).
    job : ReplayJob
        Its trace is the cached store's path, its wafer name the wafer's own name.
    trace_label : str
        The trace as the grid names it.
    trace_sha256 : str
        Digest of the cached trace store.
    wafer_source : str
        The wafer as the grid names it (preset or YAML path).
    params_text : str
        The grid's replay parameters of the run, as sorted JSON (the store's ``params``).
    ignore_capacity : bool
        Run even if the model's experts exceed the wafer's usable HBM.
    """

    key: str
    inputs: str = attrs.field(repr=False)
    job: ReplayJob
    trace_label: str
    trace_sha256: str
    wafer_source: str
    params_text: str
    ignore_capacity: bool = False

    @property
    def store(self) -> str:
        """Path of the run's cached trace store."""
        return self.job.trace

    @property
    def batch(self) -> int:
        return self.job.batch

    @property
    def strategy(self) -> str:
        return self.job.strategy

    @property
    def wafer(self) -> str:
        """The wafer's own name (results name a wafer by it, not by its YAML's path)."""
        return self.job.wafer_name

    def record(self) -> dict:
        """The identifying columns of the run's ``runs`` record."""
        return {"key": self.key, "model": self.job.model, "trace": self.trace_label,
                "trace_sha256": self.trace_sha256, "batch": self.batch, "wafer": self.wafer,
                "strategy": self.strategy, "params": self.params_text, "inputs": self.inputs}


def _task(run, grid: Grid, path, digest) -> SweepTask:
    """The task of one grid run whose trace store is cached at ``path`` (digest ``digest``)."""
    from ..config import from_dict
    from ..params import WaferParams
    from ..system import ReplayParams
    inputs = _inputs(run, digest)
    text = json.dumps(inputs, sort_keys=True)
    job = ReplayJob(trace=str(path), batch=run.trace.batch, model=run.trace.model,
                    wafer_name=inputs["wafer"]["name"],
                    wafer=from_dict(WaferParams, inputs["wafer"], path="wafer"),
                    strategy=run.strategy,
                    params=from_dict(ReplayParams, inputs["replay"], path="sweep.params"))
    return SweepTask(key=hashlib.sha256(text.encode()).hexdigest(), inputs=text, job=job,
                     trace_label=run.trace.label(), trace_sha256=digest,
                     wafer_source=run.wafer,
                     params_text=json.dumps(run.params_dict(), sort_keys=True),
                     ignore_capacity=grid.ignore_capacity)


def prepare(grid: Grid, cache_dir, log=None, jobs: int = 1) -> list[SweepTask]:
    """The grid's tasks: per run its key, inputs and cached trace store (built if absent).

    With ``jobs`` > 1 the stores not yet cached are built side by side in that many worker
    processes, largest batch first (a store is the same bytes whichever process builds it).
    """
    specs = list(dict.fromkeys(run.trace for run in grid.runs))
    if jobs > 1:
        _build_stores(specs, cache_dir, jobs, log)
    stores = {}
    tasks = []
    for run in grid.runs:
        if run.trace not in stores:
            if log:
                print(f"trace store: {run.trace.label()}", file=log, flush=True)
            stores[run.trace] = trace_store(run.trace, cache_dir)
        tasks.append(_task(run, grid, *stores[run.trace]))
    return tasks


def _build_stores(specs, cache_dir, jobs: int, log) -> None:
    """Build the stores of ``specs`` missing from ``cache_dir`` on a pool of ``jobs`` workers."""
    missing = [spec for spec in specs if not is_cached(spec, cache_dir)]
    if len(missing) < 2:
        return
    pool = ProcessPoolExecutor(max_workers=min(jobs, len(missing)), initializer=_init_worker,
                               initargs=(os.getpid(),))
    try:
        pending = {pool.submit(trace_store, spec, cache_dir): spec
                   for spec in sorted(missing, key=lambda spec: -spec.batch)}
        for future, spec in pending.items():
            future.result()
            if log:
                print(f"trace store built: {spec.label()}", file=log, flush=True)
    except (KeyboardInterrupt, BrokenProcessPool):
        _stop(pool)
        raise
    pool.shutdown()


def _replay(task: SweepTask):
    """The run of ``task``: its job on the wafer built once from the parameters it carries
    and the model decoded from its inputs (nothing is loaded again by name)."""
    from ..config import from_dict
    from ..models import MoEModel
    from ..system.capacity import check_run
    from ..topologies.wafer import build_wafer
    from ..traces import TraceStore
    wafer = build_wafer(task.job.wafer)
    model = from_dict(MoEModel, json.loads(task.inputs)["model"], path="model")
    store = TraceStore.load(task.store)
    # the checks 'hwmodel replay' makes: a run it would refuse is stored as failed, not ok
    check_run(model, wafer, store, task.batch, task.trace_label,
              ignore_capacity=task.ignore_capacity)
    return task.job.run(opened=(store, model), built=wafer)


def execute_run(task: SweepTask) -> tuple[dict, dict]:
    """Run one task; returns its ``runs`` record and its ``costs`` record. Never raises for
    a failing replay: the error is the record (one line, exception type first)."""
    start = time.perf_counter()
    record = task.record()
    record["hwmodel_version"] = _version()
    try:
        result = _replay(task)
    except Exception as error:  # noqa: BLE001 - a failed run is recorded, the others go on
        record.update(status="failed", error=f"{type(error).__name__}: {error}"[:2000])
    else:
        summary = result.summary()
        del summary["wall_s"]  # timing lives in the costs table, not in the results
        record.update(status="ok", row=result.row(),
                      summary=json.dumps(summary, sort_keys=True),
                      per_link=json.dumps(result.per_link))
    cost = {"wall_s": round(time.perf_counter() - start, 3),
            # ru_maxrss is in KiB on Linux: the worker process's peak up to this run's end
            "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "worker": f"{socket.gethostname()}:{os.getpid()}",
            "finished_utc": datetime.now(UTC).isoformat(timespec="seconds")}
    return record, cost


class Progress:
    """One line per finished run: done of total, failures, elapsed and estimated time left."""

    def __init__(self, total: int, stream=None):
        self.total, self.done, self.failed = total, 0, 0
        self.stream = stream
        self.start = time.monotonic()

    def update(self, record: dict) -> None:
        self.done += 1
        self.failed += record["status"] == "failed"
        if self.stream is None:
            return
        elapsed = time.monotonic() - self.start
        left = elapsed / self.done * (self.total - self.done)
        what = f"{record['model']} {record['batch']} {record['wafer']} {record['strategy']}"
        print(f"[{self.done}/{self.total}] {self.failed} failed, {_clock(elapsed)} elapsed, "
              f"~{_clock(left)} left: {what} {record['status']}", file=self.stream, flush=True)


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes // 60}h{minutes % 60:02d}m{seconds:02d}s"


#: ``prctl`` option that sends the calling process a signal when its parent dies (Linux).
_PR_SET_PDEATHSIG = 1
#: Seconds between two looks at the parent where ``prctl`` is not available.
_PARENT_POLL_S = 1.0


def _die_with_parent(parent: int) -> None:
    """End this worker when the driver ``parent`` dies, even by SIGKILL.

    On Linux the kernel sends SIGKILL on the parent's death (``PR_SET_PDEATHSIG``); elsewhere a
    daemon thread watches the parent id. Either way a worker never outlives its driver, blocked
    on a pipe nobody will write to again."""
    import ctypes
    import threading
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        armed = libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        armed = False
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)
    if not armed:
        def watch():
            while os.getppid() == parent:
                time.sleep(_PARENT_POLL_S)
            os._exit(1)
        threading.Thread(target=watch, name="watch-parent", daemon=True).start()


def _init_worker(parent: int) -> None:
    """Pool worker initializer: Ctrl-C is the parent's to handle (it stops the pool; a worker
    must not die mid-commit), and the worker dies with its parent (:func:`_die_with_parent`)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent)


def _heaviest_first(tasks):
    # prediction runs and big batches take longest: start them first so the workers end together
    from ..system import get_strategy
    return sorted(tasks, key=lambda t: (not get_strategy(t.strategy).predicts, -t.batch))


def _on_pool(tasks, jobs, commit):
    pool = ProcessPoolExecutor(max_workers=jobs, initializer=_init_worker,
                               initargs=(os.getpid(),))
    try:
        pending = {pool.submit(execute_run, t) for t in _heaviest_first(tasks)}
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                commit(*future.result())
    except (KeyboardInterrupt, BrokenProcessPool):
        # runs in flight are lost; everything committed stays.
        _stop(pool)
        raise
    pool.shutdown()


def _stop(pool) -> None:
    """Kill a pool's workers so that the command ends at once instead of finishing their work."""
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.terminate()
    pool.shutdown(wait=False, cancel_futures=True)


#: Seconds to wait for a Ray head at an address before calling it unreachable.
RAY_CONNECT_TIMEOUT_S = 10.0

#: What an HTTP/2 client sends first (RFC 9113, section 3.4): the connection preface, then an
#: empty SETTINGS frame (9-byte header: length 0, type 0x4, flags 0, stream 0).
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
#: Frame type of SETTINGS, the first frame an HTTP/2 server sends (RFC 9113, section 3.4).
_HTTP2_SETTINGS = 4


def _answers_grpc(connection) -> bool:
    """Whether the peer of an open TCP ``connection`` speaks HTTP/2 as a gRPC server (a Ray
    head's GCS, or a Ray Client server, is one): it answers the client preface with a SETTINGS
    frame. Socket timeouts are the caller's (set on ``connection``)."""
    connection.sendall(_HTTP2_PREFACE)
    header = b""
    while len(header) < 9:
        chunk = connection.recv(9 - len(header))
        if not chunk:
            return False
        header += chunk
    return header[3] == _HTTP2_SETTINGS


def check_ray(address: str, timeout: float | None = None) -> None:
    """Refuse ``--ray ADDRESS`` at once if Ray is not installed or no Ray head answers there.

    ``auto`` and ``local`` are left to Ray (it finds or starts the cluster); an address
    ``[ray://]HOST:PORT`` must accept a TCP connection and answer as a gRPC server (as a Ray
    head does), each within ``timeout`` seconds, since ``ray.init`` would otherwise retry for
    minutes, printing a log line per attempt. ``timeout`` None is
    :data:`RAY_CONNECT_TIMEOUT_S`.

    Raises
    ------
    ValueError
        One line naming the address and what was expected.
    """
    try:
        import ray  # noqa: F401
    except ImportError:
        raise ValueError(f"--ray {address}: Ray is not installed; install it with "
                         "pip install 'hwmodel[ray]', or omit --ray to use the local "
                         "process pool") from None
    if address in ("auto", "local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--ray {address!r}: expected 'auto', 'local' or HOST:PORT")
    expected = "expected the address of a running Ray cluster"
    timeout = RAY_CONNECT_TIMEOUT_S if timeout is None else timeout
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as connection:
            connection.settimeout(timeout)
            grpc = _answers_grpc(connection)
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ValueError(f"--ray {address}: no Ray head answers there ({reason} within "
                         f"{timeout:g} s); {expected}") from None
    if not grpc:
        raise ValueError(f"--ray {address}: something listens there but does not answer as a "
                         f"Ray head (no gRPC reply); {expected}")


def _on_ray(tasks, address, jobs, commit, log):
    import ray
    options = {}
    if address == "local":
        # a cluster started for this sweep alone, sized like the process pool
        options = {"num_cpus": jobs}
    ray.init(address=address, include_dashboard=False, log_to_driver=False, **options)
    remote = ray.remote(num_cpus=1)(execute_run)
    try:
        pending = {remote.remote(t): t for t in _heaviest_first(tasks)}
        while pending:
            finished, _ = ray.wait(list(pending), num_returns=1)
            task = pending.pop(finished[0])
            try:
                commit(*ray.get(finished[0]))
            except ray.exceptions.RayError as error:
                # a worker or node lost beyond Ray's retries: the run stays missing, so the
                # next sweep does it; the others go on
                if log:
                    print(f"lost on Ray (not stored): {task.trace_label} {task.wafer} "
                          f"{task.strategy}: {type(error).__name__}", file=log, flush=True)
    finally:
        ray.shutdown()


class SweepOutcome:
    """What a sweep did: runs in the grid, skipped (already stored), executed, failed."""

    def __init__(self, total, skipped, executed, failures, keys=()):
        self.total, self.skipped, self.executed = total, skipped, executed
        self.failures = failures  # list of (what, error)
        self.keys = frozenset(keys)  # the grid's run keys (its inputs as they are now)

    def summary(self) -> str:
        lines = [(f"{self.total} runs in the grid: {self.skipped} already stored, "
                 f"{self.executed} executed, {len(self.failures)} failed")]
        lines += [f"  failed: {what}: {error}" for what, error in self.failures]
        return "\n".join(lines)


def _select(tasks, recorded, rerun, retry_failed):
    if rerun:
        return tasks
    keep = {"ok"} if retry_failed else {"ok", "failed"}
    return [t for t in tasks if recorded.get(t.key) not in keep]


def run_sweep(grid: Grid, results, cache_dir, *, jobs: int | None = None,
              ray_address: str | None = None, rerun: bool = False, retry_failed: bool = False,
              command: str = "", log=sys.stderr) -> SweepOutcome:
    """Run what the results store lacks of ``grid``; each run is committed as it ends.

    ``rerun`` runs every run again, ``retry_failed`` those stored as failed. The store is held
    exclusively for the sweep's life (a second sweep on it gets
    :class:`~hwmodel.sweep.store.StoreBusy`), so no run is executed twice at once.

    Raises KeyboardInterrupt after stopping the workers (runs in flight are lost).
    """
    if ray_address:
        check_ray(ray_address)
    with ResultsStore(results, exclusive=True) as store:
        jobs = jobs or os.cpu_count() or 1
        tasks = prepare(grid, cache_dir, log=log, jobs=1 if ray_address else jobs)
        todo = _select(tasks, store.status(), rerun, retry_failed)
        store.record_sweep(datetime.now(UTC).isoformat(timespec="seconds"), command,
                           grid.source, _versions())
        progress = Progress(len(todo), log)
        failures = []

        def commit(record, cost):
            store.put(record, cost)
            progress.update(record)
            if record["status"] == "failed":
                failures.append((f"{record['trace']} {record['wafer']} {record['strategy']}",
                                 record["error"]))

        if todo and ray_address:
            _on_ray(todo, ray_address, jobs, commit, log)
        elif todo:
            _on_pool(todo, jobs, commit)
    return SweepOutcome(len(tasks), len(tasks) - len(todo), len(todo), failures,
                        keys=[t.key for t in tasks])


def _versions() -> dict:
    import numba
    import numpy
    out = {"hwmodel": _version(), "python": sys.version.split()[0], "numpy": numpy.__version__,
           "numba": numba.__version__}
    try:
        import ray
        out["ray"] = ray.__version__
    except ImportError:
        pass
    return out
