"""The results store of sweeps: an SQLite database (standard library), one table per sweep.

The database runs in WAL mode with a busy timeout, and every point is written in its own
transaction as soon as it finishes: a process killed at any moment loses only the points it had
not yet written, and two sweeps writing to one store wait for each other instead of corrupting it.

Tables:

* ``sweeps`` — one row per sweep: its name, job, the canonical JSON of its sweep file's content
  (``spec``) and the number of points of its design;
* ``sweep_<name>`` — one row per point: ``point`` (its index in the design), ``key`` (the canonical
  JSON of its parameters, unique), one column ``p_<parameter>`` per parameter and ``m_<metric>``
  per metric (numbers, booleans as 0/1, text), ``status`` (``done``, ``refused``, ``failed``),
  ``reason``, ``fingerprint`` (the code that computed it), ``seconds`` (its wall-clock time) and
  ``finished`` (UTC, ISO 8601), and ``params``/``metrics`` as JSON (the values exactly as computed;
  the typed columns are for queries).
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from pathlib import Path

__all__ = ["Store", "canonical", "table_name"]

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,62}$")
_BUSY_MS = 60_000


def canonical(value) -> str:
    """Canonical JSON (sorted keys, no spaces): equal values give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def table_name(name: str) -> str:
    """The table of sweep ``name``.

    Raises:
        ValueError: naming ``name`` when it is not a letter followed by up to 62 letters, digits or ``_``.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"name must be a letter followed by letters, digits or '_' (at most 63), got {name!r}")
    return f"sweep_{name}"


def _column_type(value) -> str:
    return "INTEGER" if isinstance(value, (bool, int)) else "REAL" if isinstance(value, float) else "TEXT"


def _cell(value):
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float, str)) or value is None:
        return value
    return canonical(value)


class Store:
    """An SQLite results store (module docstring); a context manager that closes its connection.

    Arguments:
        path: the database file (created when missing; its directory must exist), or ``":memory:"``.

    Raises:
        ValueError: naming ``store`` when the file cannot be opened as an SQLite database.
    """

    def __init__(self, path: str):
        self.path = str(path)
        if self.path != ":memory:" and not Path(self.path).resolve().parent.is_dir():
            raise ValueError(f"store: directory {str(Path(self.path).parent)!r} does not exist")
        try:
            self._db = sqlite3.connect(self.path, timeout=_BUSY_MS / 1000, isolation_level=None)
            self._db.execute(f"PRAGMA busy_timeout = {_BUSY_MS}")
            if self.path != ":memory:":
                self._when_unlocked("PRAGMA journal_mode = WAL")
            self._when_unlocked("CREATE TABLE IF NOT EXISTS sweeps (name TEXT PRIMARY KEY, job TEXT NOT NULL, "
                                "spec TEXT NOT NULL, points INTEGER NOT NULL)")
        except sqlite3.DatabaseError as exc:
            raise ValueError(f"store: {self.path!r} is not an SQLite results store ({exc})") from None

    def _when_unlocked(self, statement: str) -> None:
        """Execute ``statement``, retrying for up to the busy timeout while another process holds the lock.

        SQLite does not call its busy handler for every lock a new database's set-up meets (switching
        a database to WAL while another connection does the same fails at once with "database is
        locked"), so two sweeps that create one store at the same moment retry here.
        """
        deadline = time.monotonic() + _BUSY_MS / 1000
        while True:
            try:
                self._db.execute(statement)
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
                time.sleep(0.01)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    def sweeps(self) -> list[dict]:
        """The sweeps held: ``[{"name", "job", "spec", "points"}]`` by name."""
        rows = self._db.execute("SELECT name, job, spec, points FROM sweeps ORDER BY name").fetchall()
        return [{"name": n, "job": j, "spec": json.loads(s), "points": p} for n, j, s, p in rows]

    def open_sweep(self, name: str, job: str, spec: dict, points: int, params: dict, metrics) -> None:
        """Create the table of sweep ``name`` (or check that the stored one comes from the same sweep file).

        Arguments:
            name: the sweep's name.
            job: its job's name.
            spec: its sweep file's content (compared as canonical JSON).
            points: the number of points of its design.
            params: ``{parameter: an example value}`` (the columns' types).
            metrics: the metrics' names (their columns take each value as written).

        Raises:
            ValueError: naming the sweep, when the store holds a sweep of that name made from another file.
        """
        table = table_name(name)
        text = canonical(spec)
        self._db.execute("BEGIN IMMEDIATE")
        try:
            row = self._db.execute("SELECT spec FROM sweeps WHERE name = ?", (name,)).fetchone()
            if row is not None and row[0] != text:
                raise ValueError(f"sweep {name!r}: the store {self.path!r} holds a sweep of this name made from another "
                                 "sweep file (give the sweep another name, or another --store)")
            if row is None:
                self._db.execute("INSERT INTO sweeps VALUES (?, ?, ?, ?)", (name, job, text, points))
            columns = [f'"p_{k}" {_column_type(v)}' for k, v in params.items()]
            columns += [f'"m_{k}"' for k in metrics]  # no declared type: each value is kept as written
            self._db.execute(f'CREATE TABLE IF NOT EXISTS "{table}" (point INTEGER NOT NULL, key TEXT PRIMARY KEY, '
                             f'{", ".join(columns)}, status TEXT NOT NULL, reason TEXT, fingerprint TEXT NOT NULL, '
                             'seconds REAL, finished TEXT, params TEXT NOT NULL, metrics TEXT NOT NULL)')
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def stored(self, name: str) -> dict:
        """``{key: (status, fingerprint)}`` of the points of sweep ``name`` already stored ({} when none)."""
        table = table_name(name)
        if not self._has(table):
            return {}
        return {k: (s, f) for k, s, f in self._db.execute(f'SELECT key, status, fingerprint FROM "{table}"')}

    def put(self, name: str, point: int, key: str, params: dict, result: dict, fingerprint: str) -> None:
        """Write one point (replacing a stored one with the same key), in its own transaction.

        Arguments:
            name: the sweep's name.
            point: the point's index in the design.
            key: the canonical JSON of its parameters.
            params: its parameters.
            result: :func:`ssmpoison.verify._sweep_jobs.run_point`'s result.
            fingerprint: the code fingerprint of the job.
        """
        table = table_name(name)
        cols = ["point", "key", *(f'"p_{k}"' for k in params), *(f'"m_{k}"' for k in result["metrics"]),
                "status", "reason", "fingerprint", "seconds", "finished", "params", "metrics"]
        values = [point, key, *(_cell(v) for v in params.values()), *(_cell(v) for v in result["metrics"].values()),
                  result["status"], result["reason"], fingerprint, result["seconds"],
                  time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), canonical(params), canonical(result["metrics"])]
        self._db.execute(f'INSERT OR REPLACE INTO "{table}" ({", ".join(cols)}) VALUES ({", ".join("?" * len(cols))})',
                         values)

    def rows(self, name: str) -> list[dict]:
        """Every stored point of sweep ``name`` by index: ``{"point", "params", "metrics", "status", ...}``.

        Raises:
            ValueError: naming the sweep when the store has none of that name.
        """
        table = table_name(name)
        if not self._has(table):
            held = ", ".join(s["name"] for s in self.sweeps()) or "none"
            raise ValueError(f"sweep {name!r} is not in the store {self.path!r} (it holds: {held})")
        cur = self._db.execute(f'SELECT * FROM "{table}" ORDER BY point')
        names = [d[0] for d in cur.description]
        out = []
        for values in cur.fetchall():
            row = dict(zip(names, values))
            out.append({
                "point": row["point"], "params": json.loads(row["params"]), "metrics": json.loads(row["metrics"]),
                "status": row["status"], "reason": row["reason"], "fingerprint": row["fingerprint"],
                "seconds": row["seconds"], "finished": row["finished"],
            })
        return out

    def _has(self, table: str) -> bool:
        return self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone() is not None
