"""The tables of the metadata database, as an ordered list of migrations.

Terms:
- *migration*: one SQL script; ``schema_migrations`` records the versions applied, so opening an
  older database applies the missing ones in order, each in its own transaction.
- *ref*: a normalised image reference (``docker.io/library/busybox:latest``) → image ID.
- *image layer*: the n-th layer of an image (position 0 is the bottom-most): its blob, diff ID
  and chain ID.
- *layer*: an unpacked layer (a snapshot) named by its chain ID, with its parent chain ID; its
  directory is ``snapshots/layers/<hex>/diff``. ``blob`` is the content-store blob it was
  unpacked from, when known.
- *container snapshot*: a container's writable layer and the chain it stands on (``parent``,
  the top-most chain ID, plus the lowerdirs as overlay wants them).
- *blob*: a content-store blob some record references (configs, manifests, layer blobs).
- *lease*: protection for content being written (see :mod:`dockyard.metadata.leases`).
- *build cache entry*: one cached build step (see :mod:`dockyard.build.cache`): its step key → the
  intermediate image the step made. Deleting the image deletes the entry (``ON DELETE CASCADE``).
- *network*: one network (``bridge``, ``host``, ``none`` and user-defined ones), its record as JSON
  (see :mod:`dockyard.networks.records`).
- *endpoint*: a running container's attachment to a network: its address, MAC, aliases and host-side
  veth, as JSON. A network with endpoints cannot be removed.
"""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: the first schema
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE images (
        id TEXT PRIMARY KEY,
        manifest TEXT NOT NULL,
        last_tag_time TEXT,
        parent TEXT,
        created_at REAL NOT NULL
    );
    CREATE TABLE image_layers (
        image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        digest TEXT NOT NULL,
        media_type TEXT NOT NULL,
        size INTEGER NOT NULL,
        diff_id TEXT NOT NULL,
        chain_id TEXT NOT NULL,
        PRIMARY KEY (image_id, position)
    );
    CREATE INDEX image_layers_chain ON image_layers(chain_id);
    CREATE INDEX image_layers_digest ON image_layers(digest);
    CREATE TABLE refs (
        name TEXT PRIMARY KEY,
        image_id TEXT NOT NULL REFERENCES images(id)
    );
    CREATE INDEX refs_image ON refs(image_id);
    CREATE TABLE layers (
        chain_id TEXT PRIMARY KEY,
        diff_id TEXT NOT NULL,
        parent TEXT REFERENCES layers(chain_id) DEFERRABLE INITIALLY DEFERRED,
        size INTEGER NOT NULL,
        blob TEXT,
        created_at REAL NOT NULL
    );
    CREATE TABLE container_snapshots (
        container_id TEXT PRIMARY KEY,
        parent TEXT,
        lowers TEXT NOT NULL
    );
    CREATE TABLE containers (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        record TEXT NOT NULL
    );
    CREATE TABLE volumes (
        name TEXT PRIMARY KEY,
        record TEXT NOT NULL
    );
    CREATE TABLE blobs (
        digest TEXT PRIMARY KEY,
        size INTEGER NOT NULL
    );
    CREATE TABLE leases (
        id TEXT PRIMARY KEY,
        purpose TEXT NOT NULL,
        pid INTEGER NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL
    );
    CREATE TABLE lease_resources (
        lease_id TEXT NOT NULL REFERENCES leases(id) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        key TEXT NOT NULL,
        PRIMARY KEY (lease_id, kind, key)
    );
    """,
    # 2: the build cache (build-cache, issue 8)
    """
    CREATE TABLE build_cache (
        key TEXT PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        parent_id TEXT NOT NULL,
        created_by TEXT NOT NULL,
        size INTEGER NOT NULL,
        created_at REAL NOT NULL,
        last_used_at REAL,
        usage_count INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX build_cache_image ON build_cache(image_id);
    """,
    # 3: networks and their endpoints (net-service, issue 9)
    """
    CREATE TABLE networks (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        record TEXT NOT NULL
    );
    CREATE TABLE endpoints (
        network_id TEXT NOT NULL REFERENCES networks(id),
        container_id TEXT NOT NULL,
        record TEXT NOT NULL,
        PRIMARY KEY (network_id, container_id)
    );
    CREATE INDEX endpoints_container ON endpoints(container_id);
    """,
]
