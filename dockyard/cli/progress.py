"""Docker's JSON progress messages shown as Docker's CLI shows them (its ``jsonmessage.Display``).

In a terminal each layer (message ``id``) keeps one line, rewritten in place as its status and bar
change (``5583862811e3: Downloading [==>   ]  1.2MB/3.4MB``). Elsewhere the lines without a
``progressDetail`` bar are printed as they come, one per message (``5583862811e3: Pull complete``).
An error line ends the stream as :class:`~dockyard.cli.jsonmessages.StreamError`.
"""

from __future__ import annotations

from dockyard.cli.jsonmessages import messages

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TextIO

    from dockyard.cli.client import Response


def _text(message: dict[str, Any], tty: bool) -> str:
    prefix = f"{message['id']}: " if message.get("id") else ""
    progress = message.get("progress") if tty else ""
    return f"{prefix}{message.get('status') or ''}" + (f" {progress}" if progress else "")


def display(response: Response, out: TextIO, tty: bool) -> list[dict[str, Any]]:
    """Show the stream's messages on ``out``; returns every message (the last ones carry the result)."""
    seen: list[dict[str, Any]] = []
    lines: dict[str, int] = {}  # a layer's line, counted from the top of what we printed
    printed = 0
    for message in messages(response):
        seen.append(message)
        if not message.get("status"):
            continue
        key = message.get("id") or ""
        if tty and key and key in lines:
            up = printed - lines[key]
            out.write(f"\x1b[{up}A\x1b[2K\r{_text(message, tty)}\x1b[{up}B\r")
        elif tty or not message.get("progressDetail"):
            if tty and key:
                lines[key] = printed
            out.write(_text(message, tty) + "\n")
            printed += 1
        out.flush()
    return seen
