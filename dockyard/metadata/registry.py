"""The one metadata database of a daemon root, opened once per process.

The image, snapshot, container and volume services of one root all use the same
:class:`MetadataDB` (``<root>/metadata.db``); :func:`open_db` opens it on first use — migrating
its schema and importing the JSON records of earlier versions
(:mod:`dockyard.metadata.legacy_import`) — and returns the same object afterwards, for as long
as something holds it.
"""

from __future__ import annotations

import threading
import weakref
from pathlib import Path

from dockyard.metadata.db import MetadataDB
from dockyard.metadata.legacy_import import import_legacy_json

DB_NAME = "metadata.db"

_lock = threading.Lock()
# Weak: a database stays open while a service holds it (the daemon's, for its lifetime), and closes
# with the last service that used it (a test's), rather than piling up open files.
_open: weakref.WeakValueDictionary[str, MetadataDB] = weakref.WeakValueDictionary()


def _key(root: Path) -> str:
    return str(Path(root).resolve())


def open_db(root: Path) -> MetadataDB:
    """The database of the daemon root ``root``, opened (and its legacy records imported) on first use."""
    with _lock:
        db = _open.get(_key(root))
        if db is None:
            Path(root).mkdir(parents=True, exist_ok=True)
            db = MetadataDB(Path(root) / DB_NAME)
            import_legacy_json(db, Path(root))
            _open[_key(root)] = db
        return db


def opened(root: Path) -> MetadataDB | None:
    """The database of ``root`` if this process has opened it, else None."""
    with _lock:
        return _open.get(_key(root))


def forget(root: Path) -> None:
    """Close and forget the database of ``root`` (tests that reopen a root as a restart would)."""
    with _lock:
        db = _open.pop(_key(root), None)
    if db is not None:
        db.close()
