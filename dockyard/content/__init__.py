"""Layer 1: the content store (sha256-addressed blobs), OCI media types and descriptors."""

from dockyard.content.descriptor import BlobInfo, Descriptor
from dockyard.content.digests import digest_from_hex, hex_of, is_digest, sha256_digest, validate_digest
from dockyard.content.store import ContentStore, IngestWriter

__all__ = ["BlobInfo", "ContentStore", "Descriptor", "IngestWriter", "digest_from_hex", "hex_of",
           "is_digest", "sha256_digest", "validate_digest"]
