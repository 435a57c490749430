"""The metadata database's connection: SQLite in WAL mode, one connection behind one lock.

Terms:
- *transaction*: ``with db.transaction():`` runs its statements as one ``BEGIN IMMEDIATE`` …
  ``COMMIT``; an exception rolls everything back, so a crash (even ``kill -9``) leaves the old
  state or the new one, never half. Transactions nest: an inner one joins the outer.
- *durable*: ``transaction(durable=True)`` commits with ``synchronous=FULL`` (the WAL is fsynced
  at the commit) for the commit points that pair with files already fsynced on disk (an image
  record after its blobs, a container's creation). Other commits use ``synchronous=NORMAL``: in
  WAL mode they survive a killed process (the WAL is in the page cache) and may only be lost,
  whole, to a power cut.

The daemon calls in from its event loop and from worker threads; one connection with a
re-entrant lock serialises them (SQLite would serialise writers anyway, and every statement
here is short).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from dockyard.errors import DockyardError
from dockyard.metadata.schema import MIGRATIONS

Params = Sequence[Any] | dict[str, Any]


class MetadataDB:
    """The database at ``path`` (created, and migrated to the newest schema, on open)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.lock = threading.RLock()
        self._depth = 0  # transaction nesting, guarded by ``lock``
        self._after: list[Callable[[], object]] = []  # run once the outermost transaction commits
        try:
            self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            self._conn.row_factory = sqlite3.Row
            mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise DockyardError(f"{self.path}: cannot use WAL mode (got {mode})")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self.migrate()
        except sqlite3.DatabaseError as e:
            raise DockyardError(f"{self.path}: cannot open the metadata database: {e}") from e

    # -- schema --------------------------------------------------------------------------

    def migrate(self) -> int:
        """Apply the migrations not yet applied; returns the schema version."""
        with self.lock:
            self._conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations "
                               "(version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)")
            row = self._conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
            version = int(row[0] or 0)
            if version > len(MIGRATIONS):
                raise DockyardError(f"{self.path}: schema version {version} is newer than this dockyard knows "
                                    f"({len(MIGRATIONS)})")
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                with self.transaction(durable=True):
                    for statement in script.split(";"):
                        if statement.strip():
                            self._conn.execute(statement)
                    self._conn.execute("INSERT INTO schema_migrations VALUES (?, ?)", (number, time.time()))
            return len(MIGRATIONS)

    @property
    def version(self) -> int:
        return int(self.scalar("SELECT MAX(version) FROM schema_migrations") or 0)

    # -- statements ----------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self, durable: bool = False) -> Iterator[sqlite3.Connection]:
        """One atomic change (see the module docstring); yields the connection."""
        with self.lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self._conn
                finally:
                    self._depth -= 1
                return
            if durable:
                self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self._conn
            except BaseException:
                self._depth = 0
                self._after.clear()
                self._conn.execute("ROLLBACK")
                if durable:
                    self._conn.execute("PRAGMA synchronous=NORMAL")
                raise
            self._depth = 0
            try:
                self._conn.execute("COMMIT")
            except BaseException:
                self._after.clear()
                raise
            finally:
                if durable:
                    self._conn.execute("PRAGMA synchronous=NORMAL")
            hooks, self._after = self._after, []
        for hook in hooks:
            hook()

    def after_commit(self, hook: Callable[[], object]) -> None:
        """Run ``hook`` once the current (outermost) transaction commits — at once outside one.

        Files a change makes garbage (a deleted image's blobs, a removed layer's directory) are
        removed this way: after the rows, so a crash in between leaves only files without rows,
        which the collector removes, never rows naming files that are gone.
        """
        with self.lock:
            if self._depth:
                self._after.append(hook)
                return
        hook()

    def execute(self, sql: str, params: Params = (), durable: bool = False) -> int:
        """Run one changing statement in its own transaction (or the caller's); returns the rows changed."""
        with self.transaction(durable=durable) as conn:
            return conn.execute(sql, params).rowcount

    def query(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        with self.lock:
            return self._conn.execute(sql, params).fetchall()

    def one(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        with self.lock:
            row: sqlite3.Row | None = self._conn.execute(sql, params).fetchone()
            return row

    def scalar(self, sql: str, params: Params = ()) -> Any:
        row = self.one(sql, params)
        return None if row is None else row[0]

    # -- meta ----------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        value = self.scalar("SELECT value FROM meta WHERE key = ?", (key,))
        return None if value is None else str(value)

    def set_meta(self, key: str, value: str) -> None:
        self.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                     (key, value))

    # -- upkeep --------------------------------------------------------------------------

    def integrity_problems(self) -> list[str]:
        """What ``PRAGMA quick_check`` and ``foreign_key_check`` report (empty when sound)."""
        with self.lock:
            out = [str(r[0]) for r in self._conn.execute("PRAGMA quick_check").fetchall() if r[0] != "ok"]
            for r in self._conn.execute("PRAGMA foreign_key_check").fetchall():
                out.append(f"table {r[0]} row {r[1]} refers to a missing row of {r[2]}")
            return out

    def compact(self) -> None:
        """Fold the WAL into the database file and truncate it, then ``VACUUM`` free pages away."""
        with self.lock:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._conn.execute("VACUUM")
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        with self.lock:
            self._conn.close()
