"""Docker's JSON message streams: the progress answers of pull, import and load.

The body is one JSON object per line; a line with ``error`` (or ``errorDetail.message``) ends the
operation with that text. :func:`messages` yields the other objects and raises
:class:`StreamError` for an error line; lines that are not JSON objects are skipped.
"""

from __future__ import annotations

from dockyard.cli import jsoncodec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

    from dockyard.cli.client import Response


class StreamError(Exception):
    """An error line in the stream; ``text`` is the daemon's message."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


def messages(response: Response) -> Iterator[dict[str, Any]]:
    for line in response.lines():
        try:
            message = jsoncodec.loads(line)
        except ValueError:
            continue
        if not isinstance(message, dict):
            continue
        error_text = message.get("error") or (message.get("errorDetail") or {}).get("message")
        if error_text:
            raise StreamError(str(error_text))
        yield message
