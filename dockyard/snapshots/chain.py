"""Diff IDs and chain IDs, as the OCI image spec defines them.

- A layer's *diff ID* is the digest of its **uncompressed** tar stream (``rootfs.diff_ids`` in an
  image config). It names the layer's content alone.
- A *chain ID* names a layer *together with every layer beneath it*, i.e. one applied stack:
  ``chainid(L0) = diffid(L0)`` and ``chainid(Ln) = sha256(chainid(Ln-1) + " " + diffid(Ln))``.
  Two images whose first n layers are the same share the first n chain IDs, so an unpacked layer
  is stored once per chain ID.
"""

from __future__ import annotations

import hashlib

from dockyard.content.digests import validate_digest


def next_chain_id(parent: str | None, diff_id: str) -> str:
    """The chain ID of layer ``diff_id`` applied on top of chain ``parent`` (None: the base layer)."""
    validate_digest(diff_id)
    if parent is None:
        return diff_id
    validate_digest(parent)
    return "sha256:" + hashlib.sha256(f"{parent} {diff_id}".encode()).hexdigest()


def chain_ids(diff_ids: list[str]) -> list[str]:
    """The chain ID of every layer of ``diff_ids`` (bottom-most first, like the input)."""
    out: list[str] = []
    parent: str | None = None
    for diff_id in diff_ids:
        parent = next_chain_id(parent, diff_id)
        out.append(parent)
    return out
