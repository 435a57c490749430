"""HTTP/1.1 on asyncio streams with h11, as the Docker Engine API needs it.

Terms:
- *request*: one parsed HTTP request; its body is read lazily (``read``/``iter_body``) so large
  uploads (an image import) stream instead of landing in memory.
- *response*: what a handler returns: ``JSONResponse``/``BytesResponse`` (a sized body),
  ``StreamResponse`` (an async iterator of chunks, sent chunked, so headers go out at once and
  the body follows as it is made, e.g. ``wait`` and ``logs -f``), or ``Hijack``.
- *hijack*: Docker's attach/exec streams. The server answers ``101 UPGRADED`` (or ``200`` with
  ``application/vnd.docker.raw-stream`` when the client did not ask to upgrade), then gives the
  raw socket to the handler, both ways, with any bytes h11 had already buffered.
- *head read*: the future a hijack handler gets, done once the client has read the response head
  (or after :data:`HEAD_READ_LIMIT`). The handler starts at once (an attach must be registered
  before the client, having seen the head, starts the container), but writes nothing before it:
  docker-py parses the head through a buffered reader and then reads the raw socket under it,
  so stream bytes arriving together with the head would be lost to it (docker-py issues 2042, 3332).
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import struct
import termios
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import h11

log = logging.getLogger("dockyard.api")

# What one read of a connection may take: a request body (a build context, an image) then moves
# through h11 in a few large events instead of many 64 KB ones (the reader's buffer limit is 1 MB).
READ_SIZE = 1 << 20
HEAD_READ_LIMIT = 2.0  # seconds a hijacked stream waits for the client to read the response head


async def until_peer_read(writer: asyncio.StreamWriter, limit: float = HEAD_READ_LIMIT) -> None:
    """Wait until the peer has read every byte written so far (at most ``limit`` seconds).

    ``SIOCOUTQ`` on a unix stream socket counts the bytes queued at the peer and not yet read by
    it (on TCP, those not yet acknowledged)."""
    sock = writer.get_extra_info("socket")
    if sock is None:
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while loop.time() < deadline and not writer.transport.is_closing():
        try:
            queued = struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0]
        except (OSError, ValueError):  # ValueError: the socket was closed meanwhile (fd -1)
            return
        if queued <= 0:
            return
        await asyncio.sleep(0.002)


class Request:
    """One request: method, path, query (each key to its list of values), headers, lazy body."""

    def __init__(self, conn: Connection, method: str, target: str, headers: list[tuple[bytes, bytes]]):
        self._conn = conn
        self.method = method
        split = urlsplit(target)
        self.path = split.path
        self.query: dict[str, list[str]] = parse_qs(split.query, keep_blank_values=True)
        self.headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in headers}
        self.api_version: str = ""
        self.params: dict[str, str] = {}
        self._body_done = False

    # -- query helpers (Docker's booleans are 1/true/True; absent means default) --
    def arg(self, name: str, default: str = "") -> str:
        values = self.query.get(name)
        return values[-1] if values else default

    def flag(self, name: str, default: bool = False) -> bool:
        values = self.query.get(name)
        if not values:
            return default
        return values[-1].lower() not in ("", "0", "false", "no")

    def json_arg(self, name: str) -> Any:
        raw = self.arg(name)
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError as exc:
            from dockyard.errors import InvalidParameter

            raise InvalidParameter(f"invalid {name} value: {exc}") from exc

    @property
    def wants_upgrade(self) -> bool:
        return "upgrade" in self.headers.get("connection", "").lower()

    async def iter_body(self) -> AsyncIterator[bytes]:
        """The body's chunks as they arrive; each request body can be read once."""
        if self._body_done:
            return
        async for chunk in self._conn.body_chunks():
            yield chunk
        self._body_done = True

    async def read(self, limit: int = 64 << 20) -> bytes:
        parts: list[bytes] = []
        size = 0
        async for chunk in self.iter_body():
            size += len(chunk)
            if size > limit:
                from dockyard.errors import InvalidParameter

                raise InvalidParameter("request body too large")
            parts.append(chunk)
        return b"".join(parts)

    async def json(self, *, required: bool = False) -> Any:
        """The body parsed as JSON; an empty body is None (or an error when ``required``)."""
        from dockyard.errors import InvalidParameter

        raw = await self.read()
        if not raw.strip():
            if required:
                raise InvalidParameter("invalid JSON: request body is empty")
            return None
        if "json" not in self.headers.get("content-type", "application/json"):
            raise InvalidParameter("unsupported Content-Type header (" + self.headers["content-type"] + "): must be 'application/json'")
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise InvalidParameter(f"invalid JSON: {exc}") from exc


@dataclass
class Response:
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class BytesResponse(Response):
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"


def JSONResponse(obj: Any, status: int = 200, headers: list[tuple[str, str]] | None = None) -> BytesResponse:
    """A JSON body, newline-terminated like Go's encoder."""
    return BytesResponse(status=status, headers=headers or [], body=(json.dumps(obj) + "\n").encode(),
                         content_type="application/json")


def NoContent(status: int = 204) -> BytesResponse:
    return BytesResponse(status=status, content_type="")


@dataclass
class StreamResponse(Response):
    chunks: AsyncIterator[bytes] | None = None
    content_type: str = "application/json"


HijackHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, bytes, "asyncio.Future[None]"],
                         Awaitable[None]]


@dataclass
class Hijack(Response):
    """Take over the connection: ``handler(reader, writer, already_buffered_bytes, head_read)``.

    ``prepare`` runs before the 101 goes out, so errors found there still become HTTP errors.
    """

    handler: HijackHandler | None = None
    content_type: str = "application/vnd.docker.raw-stream"
    upgrade: bool = True


Handler = Callable[[Request], Awaitable[Response]]


class Connection:
    """One client connection: reads requests with h11 and writes the handler's responses."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, app: Handler):
        self.reader = reader
        self.writer = writer
        self.app = app
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=1 << 20)

    async def _next_event(self) -> Any:
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                data = await self.reader.read(READ_SIZE)
                self.h11.receive_data(data)
                continue
            return event

    async def body_chunks(self) -> AsyncIterator[bytes]:
        while True:
            event = await self._next_event()
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return
            elif isinstance(event, h11.ConnectionClosed):
                return
            else:
                return

    async def _send(self, event: Any) -> None:
        data = self.h11.send(event)
        if data:
            self.writer.write(data)
            await self.writer.drain()

    async def serve(self) -> None:
        try:
            while True:
                try:
                    event = await self._next_event()
                except h11.RemoteProtocolError as exc:
                    await self._send_error_raw(400, f"bad request: {exc}")
                    return
                if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                    return
                if not isinstance(event, h11.Request):
                    return
                request = Request(self, event.method.decode(), event.target.decode("latin-1"), list(event.headers))
                response = await self.app(request)
                if isinstance(response, Hijack):
                    await self._hijack(request, response)
                    return
                if not request._body_done:
                    async for _ in request.iter_body():
                        pass
                await self._respond(request, response)
                if self.h11.our_state is h11.MUST_CLOSE or self.h11.their_state is h11.MUST_CLOSE:
                    return
                try:
                    self.h11.start_next_cycle()
                except h11.LocalProtocolError:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception:  # a bug in a handler must not take the server down
            log.exception("connection failed")
        finally:
            self.writer.close()

    async def _respond(self, request: Request, response: Response) -> None:
        headers = [("Api-Version", API_VERSION_HEADER[0]), ("Docker-Experimental", "false"),
                   ("Ostype", "linux"), ("Server", "Docker/dockyard (linux)"), *response.headers]
        if isinstance(response, BytesResponse):
            body = response.body if request.method != "HEAD" else b""
            if response.content_type:
                headers.append(("Content-Type", response.content_type))
            if response.status not in (204, 304):
                headers.append(("Content-Length", str(len(response.body))))
            await self._send(h11.Response(status_code=response.status, headers=headers))
            if body and response.status not in (204, 304):
                await self._send(h11.Data(data=body))
            await self._send(h11.EndOfMessage())
        elif isinstance(response, StreamResponse):
            headers.append(("Content-Type", response.content_type))
            await self._send(h11.Response(status_code=response.status, headers=headers))
            assert response.chunks is not None
            try:
                async for chunk in response.chunks:
                    if chunk:
                        await self._send(h11.Data(data=chunk))
            finally:
                aclose = getattr(response.chunks, "aclose", None)
                if aclose is not None:
                    await aclose()
            await self._send(h11.EndOfMessage())

    async def _hijack(self, request: Request, response: Hijack) -> None:
        # Drain the request body (attach has none) so what follows is the raw stream.
        if not request._body_done:
            async for _ in request.iter_body():
                pass
        buffered, _closed = self.h11.trailing_data
        if request.wants_upgrade:
            head = (f"HTTP/1.1 101 UPGRADED\r\nContent-Type: {response.content_type}\r\n"
                    "Connection: Upgrade\r\nUpgrade: tcp\r\n")
        else:
            head = f"HTTP/1.1 200 OK\r\nContent-Type: {response.content_type}\r\n"
        head += f"Api-Version: {API_VERSION_HEADER[0]}\r\n"
        for k, v in response.headers:
            head += f"{k}: {v}\r\n"
        self.writer.write((head + "\r\n").encode("latin-1"))
        await self.writer.drain()
        head_read = asyncio.ensure_future(until_peer_read(self.writer))
        try:
            assert response.handler is not None
            await response.handler(self.reader, self.writer, bytes(buffered), head_read)
        finally:
            head_read.cancel()

    async def _send_error_raw(self, status: int, message: str) -> None:
        body = (json.dumps({"message": message}) + "\n").encode()
        try:
            await self._send(h11.Response(status_code=status, headers=[
                ("Content-Type", "application/json"), ("Content-Length", str(len(body))), ("Connection", "close")]))
            await self._send(h11.Data(data=body))
            await self._send(h11.EndOfMessage())
        except h11.LocalProtocolError:
            pass


# Set by the app at start-up; a list so the module stays import-light.
API_VERSION_HEADER = ["1.47"]


async def serve_connection(app: Handler, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await Connection(reader, writer, app).serve()


class Connections:
    """The tasks serving the clients of one server, held until each ends.

    asyncio keeps only weak references to tasks, and a server's stream protocol drops its
    reference to the task it started as soon as the client disconnects. A hijacked stream whose
    client left is then referenced only by its own pump tasks and futures, a cycle the garbage
    collector destroys while still pending ("Task was destroyed but it is pending", then
    "coroutine ignored GeneratorExit" from its ``finally``). Holding the tasks here lets every
    one run to its end; :meth:`close` ends them when the daemon stops."""

    def __init__(self, app: Handler) -> None:
        self.app = app
        self._tasks: set[asyncio.Task[Any]] = set()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """The server's ``client_connected_cb``."""
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await Connection(reader, writer, self.app).serve()
        except asyncio.CancelledError:
            # Only close() cancels a connection. The task must not end cancelled: the stream
            # protocol's done callback calls task.exception(), which raises (and is logged) then.
            pass
        finally:
            self._tasks.discard(task)

    async def close(self) -> None:
        """Cancel every connection (open event streams, attaches, waits) and wait until each ended."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
