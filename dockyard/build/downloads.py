"""``ADD <url>``: downloading a remote source as Docker's classic builder does (moby
``builder/dockerfile/copy.go`` ``downloadSource``, ``remotecontext.GetWithStatusError``).

- A plain ``GET`` (proxies from the environment, redirects followed); a status of 400 or more
  fails with ``failed to GET <url> with status <code> <reason>: <body>``, its class from the status
  (404 :class:`NotFound`, 400 :class:`InvalidParameter`, 401, 403, else 500).
- The file is named as :func:`dockyard.build.copying.url_file_name` says (the URL path, else the
  ``Content-Disposition`` filename, else ``__unnamed__``), written 0600 into a fresh directory of
  its own, and given the ``Last-Modified`` time as mtime when the server sends one.

:func:`download` fits :func:`dockyard.build.copying.plan_copy`'s ``fetch_url`` (with ``functools.partial``
for the directory); the caller removes the directory when the step is done.
"""

from __future__ import annotations

import email.utils
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from dockyard.build.copying import UNNAMED, url_file_name
from dockyard.errors import DockyardError, Forbidden, InvalidParameter, NotFound, Unauthorized

CHUNK = 1 << 20
MAX_ERROR_BODY = 4096
TIMEOUT = 60.0  # seconds without a byte before giving up
_STATUS_ERRORS: dict[int, type[DockyardError]] = {400: InvalidParameter, 401: Unauthorized, 403: Forbidden,
                                                  404: NotFound}


def download(url: str, into: Path, *, progress: Callable[[int, int | None], None] | None = None,
             timeout: float = TIMEOUT) -> Path:
    """Download ``url`` into a new directory below ``into``; the downloaded file's path.

    ``progress(done, total)`` is called as bytes arrive (``total`` None without Content-Length)."""
    request = urllib.request.Request(url, headers={"User-Agent": "dockyard"})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - http(s) only, checked by the caller
    except urllib.error.HTTPError as e:
        body = e.read(MAX_ERROR_BODY).decode(errors="replace").strip()
        kind = _STATUS_ERRORS.get(e.code, DockyardError)
        raise kind(f"failed to GET {url} with status {e.code} {e.reason}: {body}") from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        raise DockyardError(f'Get "{url}": {reason}') from None
    with response:
        name = url_file_name(url, response.headers.get("Content-Disposition")) or UNNAMED
        folder = Path(tempfile.mkdtemp(prefix="docker-remote", dir=into))
        path = folder / name
        total_header = response.headers.get("Content-Length")
        total = int(total_header) if total_header and total_header.isdigit() else None
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        done = 0
        try:
            while chunk := response.read(CHUNK):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view):]
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
        except OSError as e:
            raise DockyardError(f'Get "{url}": {e}') from None
        finally:
            os.close(fd)
        modified = response.headers.get("Last-Modified")
        if modified:
            try:
                when = email.utils.parsedate_to_datetime(modified).timestamp()
            except (TypeError, ValueError):
                when = None
            if when is not None:
                os.utime(path, (when, when))
    return path
