"""A small HTTP/1.1 server on asyncio streams with h11, as the registry needs it.

*Exchange*: one request (method, path, query, lower-cased headers, a body read once, as it
arrives) and its *reply*: a status, headers and either bytes or a byte range of a file, which is
sent in pieces so a large blob never lands in memory. The Engine API's server (``api/http.py``)
sits in a layer the registry may not import and does hijacks this one never needs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import h11

log = logging.getLogger("dockyard.registry")

RECV = 1 << 16
SEND = 1 << 20
IDLE = 300.0  # seconds a connection may send nothing before it is closed


class Exchange:
    """A request as the handlers see it."""

    def __init__(self, conn: _Connection, event: h11.Request) -> None:
        self._conn = conn
        self.method = event.method.decode()
        split = urlsplit(event.target.decode("latin-1"))
        self.path = split.path
        self.query = parse_qs(split.query, keep_blank_values=True)
        self.headers: dict[str, str] = {}
        for key, value in event.headers:  # a repeated header (Go clients send one Accept per type) joins with ", "
            name, text = key.decode("latin-1").lower(), value.decode("latin-1")
            self.headers[name] = f"{self.headers[name]}, {text}" if name in self.headers else text
        self.body_read = False
        self.peer = conn.peer

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None

    async def body(self) -> AsyncIterator[bytes]:
        """The body's pieces; a second call yields nothing."""
        if self.body_read:
            return
        self.body_read = True
        if self._conn.h11.they_are_waiting_for_100_continue:
            await self._conn.send(h11.InformationalResponse(status_code=100, headers=[]))
        while True:
            event = await self._conn.next_event()
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            else:
                return

    async def read_all(self, limit: int) -> bytes | None:
        """The whole body, or None when it is longer than ``limit`` bytes (the rest is drained)."""
        parts, size = [], 0
        async for piece in self.body():
            size += len(piece)
            if size <= limit:
                parts.append(piece)
        return b"".join(parts) if size <= limit else None


@dataclass
class Reply:
    """A response: ``body`` bytes, or ``file`` sent from ``offset`` for ``length`` bytes."""

    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    file: Path | None = None
    offset: int = 0
    length: int = 0


Handler = Callable[[Exchange], Awaitable[Reply]]


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, handler: Handler,
                 server_headers: list[tuple[str, str]]) -> None:
        self.reader = reader
        self.writer = writer
        self.handler = handler
        self.server_headers = server_headers
        self.h11 = h11.Connection(h11.SERVER)
        peername = writer.get_extra_info("peername")
        self.peer = str(peername[0]) if isinstance(peername, tuple) else "local"

    async def next_event(self) -> object:
        while (event := self.h11.next_event()) is h11.NEED_DATA:
            self.h11.receive_data(await asyncio.wait_for(self.reader.read(RECV), IDLE))
        return event

    async def send(self, event: Any) -> None:
        data = self.h11.send(event)
        if data:
            self.writer.write(data)
            await self.writer.drain()

    async def run(self) -> None:
        try:
            while True:
                event = await self.next_event()
                if not isinstance(event, h11.Request):
                    return
                exchange = Exchange(self, event)
                reply = await self.handler(exchange)
                async for _ in exchange.body():  # whatever the handler left unread
                    pass
                await self._reply(exchange, reply)
                if h11.MUST_CLOSE in (self.h11.our_state, self.h11.their_state):
                    return
                self.h11.start_next_cycle()
        except (ConnectionError, asyncio.IncompleteReadError, h11.LocalProtocolError, h11.RemoteProtocolError,
                TimeoutError):
            pass
        except Exception:
            log.exception("registry connection failed")
        finally:
            self.writer.close()

    async def _reply(self, exchange: Exchange, reply: Reply) -> None:
        size = reply.length if reply.file is not None else len(reply.body)
        headers = [*self.server_headers, *reply.headers]
        if not any(k.lower() == "content-length" for k, _ in headers):
            headers.append(("Content-Length", str(size)))
        await self.send(h11.Response(status_code=reply.status, headers=headers, reason=_reason(reply.status)))
        if exchange.method != "HEAD":
            if reply.file is not None:
                await self._send_file(reply.file, reply.offset, reply.length)
            elif reply.body:
                await self.send(h11.Data(data=reply.body))
        await self.send(h11.EndOfMessage())


    async def _send_file(self, path: Path, offset: int, length: int) -> None:
        """``length`` bytes of the file from ``offset``, each piece handed to the transport as read
        (h11 passes it through instead of copying it; a fresh piece each time, since a transport
        may keep a reference to what it could not send yet)."""
        with open(path, "rb", buffering=0) as f:
            f.seek(offset)
            left = length
            while left > 0 and (piece := f.read(min(SEND, left))):
                left -= len(piece)
                for chunk in self.h11.send_with_data_passthrough(h11.Data(data=piece)) or []:
                    self.writer.write(chunk)
                await self.writer.drain()


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


class Server:
    """Serves ``handler`` on accepted connections; holds the connection tasks until each ends."""

    def __init__(self, handler: Handler, server_headers: list[tuple[str, str]]) -> None:
        self.handler = handler
        self.server_headers = server_headers
        self._tasks: set[asyncio.Task[None]] = set()

    async def connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        try:
            await _Connection(reader, writer, self.handler, self.server_headers).run()
        except asyncio.CancelledError:
            pass
        finally:
            self._tasks.discard(task)  # type: ignore[arg-type]

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
