"""The results store of a sweep: one SQLite file, each run committed as it ends.

Table ``runs`` holds what a run computes, deterministically: its key (SHA-256 of its full inputs),
the inputs themselves as JSON, the trace content hash, the software version, status, every CSV
column of :attr:`ReplayResult.CSV_HEADER` (as the artefact prints it), the scalar outputs, the
per-link bytes, and the error of a failed run. Table ``costs`` holds what differs between two
identical runs (wall time, peak memory, worker host, finish time), so that two stores of the same
grid compare equal on ``runs`` whether made by the process pool or on Ray.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

__all__ = ["CSV_COLUMNS", "ResultsStore"]


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


class ResultsStore:
    """A SQLite results file (created if absent); safe to reopen after a crash.

    Parameters
    ----------
    path : str or Path
        The ``.sqlite`` file.
    """

    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path)
        # WAL: a run's commit is durable at once and readers (the report) never block writers
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_schema())

    def close(self) -> None:
        self._db.close()

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
