"""The results store of a sweep: one SQLite file, each run committed as it ends.

Table ``runs`` holds what a run computes, deterministically: its key (SHA-256 of its full inputs),
the inputs themselves as JSON, the trace content hash, the software version, status, every CSV
column of :attr:`ReplayResult.CSV_HEADER` (as the artefact prints it), the scalar outputs, the
per-link bytes, and the error of a failed run. Table ``costs`` holds what differs between two
identical runs (wall time, peak memory, worker host, finish time), so that two stores of the same
grid compare equal on ``runs`` whether made by the process pool or on Ray.

A file that is not such a store (junk bytes, text, another program's SQLite database, a
truncated store) is refused with one line before anything is written to it. A sweep opens its
store ``exclusive``: an advisory lock (``flock``) held for the sweep's life refuses a second
sweep on the same store instead of letting both run every run.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
from pathlib import Path

__all__ = ["CSV_COLUMNS", "ResultsStore", "StoreBusy"]


def _csv_columns() -> tuple[str, ...]:
    from ..system import ReplayResult
    return tuple(ReplayResult.CSV_HEADER.split(","))


CSV_COLUMNS = _csv_columns()

_RUN_COLUMNS = ("key", "status", "model", "trace", "trace_sha256", "batch", "wafer",
                "strategy", "params", "inputs", "hwmodel_version", "error", "row", "summary",
                "per_link")


def _schema() -> str:
    csv = ", ".join(f'"csv_{name}" TEXT' for name in CSV_COLUMNS)
    return f"""
    CREATE TABLE IF NOT EXISTS runs (
        key TEXT PRIMARY KEY, status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
        model TEXT, trace TEXT, trace_sha256 TEXT, batch INTEGER, wafer TEXT, strategy TEXT,
        params TEXT, inputs TEXT, hwmodel_version TEXT, error TEXT, row TEXT, summary TEXT,
        per_link TEXT, {csv});
    CREATE TABLE IF NOT EXISTS costs (
        key TEXT PRIMARY KEY, wall_s REAL, peak_rss_bytes INTEGER, worker TEXT,
        finished_utc TEXT);
    CREATE TABLE IF NOT EXISTS sweeps (
        started_utc TEXT, command TEXT, grid TEXT, versions TEXT);
    """


_TABLES = {"runs", "costs", "sweeps"}


class StoreBusy(ValueError):
    """Another sweep holds the results store's lock."""


def _not_a_store(path: Path, why: str) -> ValueError:
    return ValueError(f"{path}: not a sweep results store ({why}); expected a file written by "
                      "'hwmodel sweep' or a new file name")


def _check_tables(db, path: Path) -> None:
    """Refuse a SQLite file whose tables are not (a subset of) a results store's."""
    try:
        tables = {name for (name,) in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "runs" in tables:
            columns = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
            missing = [name for name in _RUN_COLUMNS if name not in columns]
            if missing:
                raise _not_a_store(path, f"its table 'runs' lacks column {missing[0]!r}")
    except sqlite3.DatabaseError as error:
        raise _not_a_store(path, str(error)) from None
    foreign = sorted(tables - _TABLES)
    if foreign:
        raise _not_a_store(path, f"it holds table {foreign[0]!r} of another database")


class ResultsStore:
    """A SQLite results file (created if absent); safe to reopen after a crash.

    Parameters
    ----------
    path : str or Path
        The ``.sqlite`` file.
    exclusive : bool
        Hold an advisory lock on the file until :meth:`close`: a second exclusive opener
        gets :class:`StoreBusy` (a sweep opens its store so; readers such as the report do not).

    Raises
    ------
    ValueError
        The file exists but is not a results store (one line naming it).
    StoreBusy
        ``exclusive`` and another process holds the lock.
    """

    def __init__(self, path, exclusive: bool = False):
        self.path = Path(path)
        self._lock = None
        if self.path.exists() and not self.path.is_file():
            raise ValueError(f"{self.path}: is a folder, expected a results store file")
        existed = self.path.is_file() and self.path.stat().st_size > 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path)
        try:
            if existed:
                _check_tables(self._db, self.path)
            if exclusive:
                self._lock = self._take_lock()
            # WAL: a run's commit is durable at once and readers (the report) never block
            # writers
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_schema())
        except sqlite3.DatabaseError as error:
            self.close()
            raise _not_a_store(self.path, str(error)) from None
        except BaseException:
            self.close()
            raise

    def _take_lock(self) -> int:
        """A file descriptor holding ``flock(LOCK_EX)`` on the store, or :class:`StoreBusy`.

        ``flock`` locks are independent of the POSIX locks SQLite takes on the same file; the
        descriptor is closed only after the database (:meth:`close`)."""
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreBusy(f"{self.path}: another 'hwmodel sweep' is running on this results "
                            "store; wait for it to end, or pass another --out") from None
        return fd

    def close(self) -> None:
        self._db.close()
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def status(self) -> dict[str, str]:
        """Run key -> 'ok' or 'failed', for every run recorded."""
        return dict(self._db.execute("SELECT key, status FROM runs"))

    def record_sweep(self, started_utc: str, command: str, grid: str, versions: dict) -> None:
        with self._db:
            self._db.execute("INSERT INTO sweeps VALUES (?, ?, ?, ?)",
                             (started_utc, command, grid, json.dumps(versions, sort_keys=True)))

    def put(self, run: dict, cost: dict) -> None:
        """Commit one finished run (replacing an earlier record of the same key)."""
        values = [run.get(name) for name in _RUN_COLUMNS]
        cells = run.get("row", "").split(",") if run["status"] == "ok" else []
        values += cells + [None] * (len(CSV_COLUMNS) - len(cells))
        marks = ", ".join("?" * len(values))
        with self._db:
            self._db.execute(f"INSERT OR REPLACE INTO runs VALUES ({marks})", values)
            self._db.execute("INSERT OR REPLACE INTO costs VALUES (?, ?, ?, ?, ?)",
                             (run["key"], cost.get("wall_s"), cost.get("peak_rss_bytes"),
                              cost.get("worker"), cost.get("finished_utc")))

    def runs(self, status: str | None = None) -> list[dict]:
        """Every recorded run as a dict of its columns, ordered by key."""
        query = "SELECT * FROM runs" + (" WHERE status = ?" if status else "") + " ORDER BY key"
        cursor = self._db.execute(query, (status,) if status else ())
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, values)) for values in cursor]

    def costs(self) -> dict[str, dict]:
        cursor = self._db.execute("SELECT * FROM costs")
        names = [d[0] for d in cursor.description]
        return {values[0]: dict(zip(names, values)) for values in cursor}

    def sweeps(self) -> list[dict]:
        cursor = self._db.execute("SELECT * FROM sweeps ORDER BY started_utc")
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, values)) for values in cursor]
