"""The metadata database: one SQLite file (WAL) that owns every record of the daemon's root.

See :mod:`dockyard.metadata.db` for the connection and transactions, :mod:`dockyard.metadata.schema`
for the tables, :mod:`dockyard.metadata.leases` for leases, :mod:`dockyard.metadata.registry` for
opening the one database of a root, and :mod:`dockyard.metadata.legacy_import` for the JSON records
of earlier versions, imported once.
"""

from dockyard.metadata.db import MetadataDB
from dockyard.metadata.leases import Lease, current_lease
from dockyard.metadata.registry import DB_NAME, open_db, opened

__all__ = ["DB_NAME", "Lease", "MetadataDB", "current_lease", "open_db", "opened"]
