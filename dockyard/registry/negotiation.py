"""Content negotiation for manifest GET and HEAD: does the client's ``Accept`` header take a media type?

The *accepted set* is the media ranges of the ``Accept`` header (repeated headers joined with ``,``),
without those weighted ``q=0``. A request with no ``Accept`` header, or one naming ``*/*`` or
``application/*``, accepts every manifest. Otherwise a manifest whose media type is not in the set
answers 404 ``MANIFEST_UNKNOWN``, with distribution's wording (distribution 2.8 does so for OCI
manifests and indexes; dockyard does it for every type, as it never converts a manifest).
"""

from __future__ import annotations

from dockyard.content import mediatypes as mt
from dockyard.registry.errors import SpecError

_KINDS = {mt.OCI_MANIFEST: ("OCI manifest", "OCI manifests"), mt.OCI_INDEX: ("OCI index", "OCI indexes"),
          mt.DOCKER_MANIFEST: ("Docker manifest", "Docker manifests"),
          mt.DOCKER_MANIFEST_LIST: ("Docker manifest list", "Docker manifest lists")}


def accepted(accept: str | None) -> set[str] | None:
    """The media types ``accept`` allows, or None when it allows everything."""
    if accept is None or not accept.strip():
        return None
    found: set[str] = set()
    for part in accept.split(","):
        media_range, *params = (p.strip() for p in part.split(";"))
        weight = next((p.partition("=")[2] for p in params if p.lower().startswith("q=")), "1")
        try:
            if float(weight) <= 0:
                continue
        except ValueError:
            pass
        if media_range in ("*/*", "application/*"):
            return None
        if media_range:
            found.add(media_range.lower())
    return found


def check_accepted(accept: str | None, media_type: str, detail: dict[str, str]) -> None:
    """Raise 404 MANIFEST_UNKNOWN when ``accept`` does not take ``media_type``."""
    allowed = accepted(accept)
    if allowed is None or media_type.lower() in allowed:
        return
    one, many = _KINDS.get(media_type, (media_type, media_type))
    raise SpecError("MANIFEST_UNKNOWN", f"{one} found, but accept header does not support {many}", detail=detail)
