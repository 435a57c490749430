"""``dockyard images``: ``GET /images/json``, one row per repository:tag, Docker's table or a template."""

from __future__ import annotations

import sys

from dockyard.cli import units
from dockyard.cli.flags import Flag, FlagSet
from dockyard.cli.listing import filters_param, render
from dockyard.cli.references import short_id, split_reference

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from dockyard.cli.flags import Parsed
    from dockyard.cli.invocation import Invocation

FLAGS = FlagSet([
    Flag("all", "a", "bool", "Show all images (default hides intermediate images)"),
    Flag("digests", "", "bool", "Show digests"),
    Flag("filter", "f", "list", "Filter output based on conditions provided", type_name="filter"),
    Flag("format", "", "string", "Format output using a custom template"),
    Flag("no-trunc", "", "bool", "Don't truncate output"),
    Flag("quiet", "q", "bool", "Only show image IDs"),
])

DEFAULT_FORMAT = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
DIGEST_FORMAT = "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
HEADERS = {"Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST", "ID": "IMAGE ID",
           "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE",
           "Containers": "CONTAINERS", "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE",
           "VirtualSize": "VIRTUAL SIZE"}
NONE = "<none>"


def image_rows(image: dict[str, Any], trunc: bool, now: float) -> list[dict[str, Any]]:
    """One row per tag (``<none>:<none>`` for an untagged image), as Docker lists them."""
    image_id = image.get("Id", "")
    created = float(image.get("Created") or 0)
    size = image.get("Size") or 0
    digests: dict[str, str] = {}
    for repo_digest in image.get("RepoDigests") or []:
        repo, _, digest = repo_digest.partition("@")
        digests.setdefault(repo, digest)
    base = {
        "ID": short_id(image_id) if trunc else image_id,
        "CreatedSince": units.since(created, now) if created else "N/A",
        "CreatedAt": units.go_time_string(created),
        "Size": units.human_size(size),
        "VirtualSize": units.human_size(image.get("VirtualSize", size), 4),
        "Containers": str(image["Containers"]) if image.get("Containers", -1) >= 0 else "N/A",
        "SharedSize": "N/A", "UniqueSize": "N/A",
    }
    rows = []
    tags = [t for t in image.get("RepoTags") or [] if t != "<none>:<none>"]
    for tagged in tags:
        repo, tag, _ = split_reference(tagged)
        rows.append({**base, "Repository": repo, "Tag": tag or NONE, "Digest": digests.get(repo, NONE)})
    if not tags:
        for repo, digest in digests.items():
            rows.append({**base, "Repository": repo, "Tag": NONE, "Digest": digest})
    if not rows:
        rows.append({**base, "Repository": NONE, "Tag": NONE, "Digest": NONE})
    return [dict(sorted(row.items())) for row in rows]  # Go's sorted map order for ``{{json .}}``


def main(invocation: Invocation, verb: str, parsed: Parsed) -> int:
    import time

    params = []
    if parsed["all"]:
        params.append(("all", "1"))
    filters = list(parsed["filter"])
    if parsed.args:
        filters.append(f"reference={parsed.args[0]}")
    if filters:
        params.append(("filters", filters_param(filters)))
    images = invocation.api.json("GET", "/images/json", params) or []
    now = time.time()
    trunc = not parsed["no-trunc"]
    rows = [row for image in images for row in image_rows(image, trunc, now)]
    format_text = parsed["format"] or ""
    if parsed["quiet"] and (not format_text or format_text.strip().startswith("table")):
        format_text = "{{.ID}}"
    elif not format_text:
        format_text = DIGEST_FORMAT if parsed["digests"] else DEFAULT_FORMAT
    sys.stdout.write(render(format_text, rows, HEADERS))
    return 0
