"""Repository names and tags as the distribution spec allows them.

A *repository name* is path components of lowercase letters and digits joined by ``.``, ``_``,
``__`` or dashes, separated by ``/``; a *tag* is up to 128 characters of ``[A-Za-z0-9_.-]`` not
starting with ``.`` or ``-``. Neither can start with ``_`` or ``.``, so the storage's own
``_layers``/``_manifests`` folders and ``.tmp-`` files never clash with them.
"""

from __future__ import annotations

import re

from dockyard.registry.errors import SpecError

_NAME = re.compile(r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
MAX_NAME = 255


def check_name(name: str) -> str:
    """``name`` if it is a valid repository name, else NAME_INVALID."""
    if len(name) > MAX_NAME or _NAME.fullmatch(name) is None:
        raise SpecError("NAME_INVALID", f"invalid repository name: {name[:300]!r}")
    return name


def is_tag(value: str) -> bool:
    return _TAG.fullmatch(value) is not None
