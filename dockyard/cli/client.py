"""A tiny HTTP/1.1 client over a unix or TCP socket, on the built-in ``_socket`` module.

Terms used here:

- *address*: where the daemon listens, parsed from Docker's host syntax (``unix:///run/x.sock``,
  ``tcp://host:port``); a ``tcp`` address may carry TLS settings (``dockyard.cli.tls``).
- *framing*: how a response body ends: a ``Content-Length``, ``Transfer-Encoding: chunked``, or the
  server closing the connection.
- *hijack*: Docker's attach trick: the request carries ``Connection: Upgrade`` and ``Upgrade: tcp``,
  the daemon answers ``101 Switching Protocols`` and from then on the socket is a raw byte pipe in
  both directions (the client half-closes its side when its stdin ends).

One connection serves one request; on a local socket a fresh connection costs microseconds and keeps
the code free of connection-reuse state. ``http.client`` and ``socket`` are not used: both import
``enum``, ``re`` and more, which the CLI's start-up time cannot afford.
"""

from __future__ import annotations

import _socket

from dockyard.cli import jsoncodec

TYPE_CHECKING = False  # typing costs milliseconds at start-up; type checkers see the imports below
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from typing import Any

    from dockyard.cli.tls import TLSSettings

    Body = bytes | Iterable[Any] | None  # an iterable of bytes or of file slices (with send_to, size)

USER_AGENT = "dockyard-cli/0.1.0"
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
RECV_SIZE = 65536


class ProtocolError(OSError):
    """The peer spoke something that is not the HTTP we expect, or closed mid-message."""


class Address:
    """Where the daemon listens: ``scheme`` is ``unix`` (``path`` set) or ``tcp`` (``host``, ``port``)."""

    __slots__ = ("text", "scheme", "path", "host", "port", "tls")

    def __init__(self, text: str, scheme: str, path: str = "", host: str = "", port: int = 0) -> None:
        self.text = text
        self.scheme = scheme
        self.path = path
        self.host = host
        self.port = port
        self.tls: TLSSettings | None = None

    def __repr__(self) -> str:
        return f"Address({self.text!r})"

    @property
    def host_header(self) -> str:
        return "docker" if self.scheme == "unix" else f"{self.host}:{self.port}"


def parse_address(text: str, default_port: int = 2375) -> Address:
    """Parse Docker's ``-H`` syntax; raise ``ValueError`` for anything else."""
    if text.startswith("unix://"):
        path = text[len("unix://"):]
        if not path:
            raise ValueError(f"Invalid bind address format: {text}")
        return Address(text, "unix", path=path)
    for scheme in ("tcp://", "http://"):
        if text.startswith(scheme):
            rest = text[len(scheme):].rstrip("/")
            host, sep, port = rest.rpartition(":")
            if not sep:
                host, port = rest, str(default_port)
            host = host.strip("[]") or "127.0.0.1"
            if not port.isdigit():
                raise ValueError(f"Invalid bind address format: {text}")
            return Address(text, "tcp", host=host, port=int(port))
    if text.startswith("/"):
        return Address(text, "unix", path=text)
    raise ValueError(f"Invalid bind address format: {text}")


def quote(text: str) -> str:
    """Percent-encode ``text`` for a query string (everything but RFC 3986 unreserved bytes)."""
    data = text.encode("utf-8")
    if all(b in _UNRESERVED for b in data):
        return text
    return "".join(chr(b) if b in _UNRESERVED else f"%{b:02X}" for b in data)


def query_string(params: Iterable[tuple[str, str]]) -> str:
    """``?k=v&k2=v2`` (percent-encoded), or ``""`` when there are no parameters."""
    parts = [f"{quote(k)}={quote(v)}" for k, v in params]
    return "?" + "&".join(parts) if parts else ""


def connect(address: Address, timeout: float | None = None) -> Any:
    """Open a stream socket to ``address``; ``OSError`` (e.g. ``ENOENT``, ``ECONNREFUSED``) if none answers."""
    if address.tls is not None and address.scheme == "tcp":
        from dockyard.cli import tls

        return tls.connect(address, address.tls, timeout)
    if address.scheme == "unix":
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        target: Any = address.path
    else:
        infos = _socket.getaddrinfo(address.host, address.port, 0, _socket.SOCK_STREAM)
        family, kind, proto, _, target = infos[0]
        sock = _socket.socket(family, kind, proto)
    sock.settimeout(timeout)
    try:
        sock.connect(target)
    except BaseException:
        sock.close()
        raise
    sock.settimeout(None)
    return sock


class _Reader:
    """Buffered reads on a socket: lines for the head, exact counts for bodies."""

    def __init__(self, sock: Any, initial: bytes = b"") -> None:
        self.sock = sock
        self.buf = bytearray(initial)

    def _fill(self) -> bool:
        data = self.sock.recv(RECV_SIZE)
        if not data:
            return False
        self.buf += data
        return True

    def readline(self) -> bytes:
        while True:
            end = self.buf.find(b"\n")
            if end >= 0:
                line = bytes(self.buf[: end + 1])
                del self.buf[: end + 1]
                return line.rstrip(b"\r\n")
            if len(self.buf) > 1 << 20:
                raise ProtocolError("header line too long")
            if not self._fill():
                raise ProtocolError("connection closed before the end of the HTTP head")

    def read_exact(self, count: int) -> bytes:
        while len(self.buf) < count:
            if not self._fill():
                raise ProtocolError("connection closed in the middle of the response body")
        data = bytes(self.buf[:count])
        del self.buf[:count]
        return data

    def read_some(self, limit: int = RECV_SIZE) -> bytes:
        """Up to ``limit`` bytes, whatever is buffered or the next ``recv``; ``b""`` at EOF."""
        if not self.buf and not self._fill():
            return b""
        data = bytes(self.buf[:limit])
        del self.buf[:limit]
        return data

    def take_buffer(self) -> bytes:
        data = bytes(self.buf)
        self.buf.clear()
        return data


class Response:
    """A response whose head has been read; the body is read with ``read``, ``chunks`` or ``json``."""

    def __init__(self, sock: Any, reader: _Reader, method: str) -> None:
        self.sock = sock
        self._reader = reader
        status_line = reader.readline().decode("latin-1")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise ProtocolError(f"malformed status line: {status_line!r}")
        self.status = int(parts[1])
        self.reason = parts[2] if len(parts) > 2 else ""
        self.headers: dict[str, str] = {}
        while True:
            line = reader.readline()
            if not line:
                break
            name, _, value = line.decode("latin-1").partition(":")
            self.headers[name.strip().lower()] = value.strip()
        self._remaining = 0
        self._done = False
        encoding = self.headers.get("transfer-encoding", "").lower()
        if method == "HEAD" or self.status in (101, 204, 304) or 100 <= self.status < 200:
            self.framing = "none"
            self._done = self.status != 101
        elif "chunked" in encoding:
            self.framing = "chunked"
        elif "content-length" in self.headers:
            self.framing = "length"
            self._remaining = int(self.headers["content-length"])
            self._done = self._remaining == 0
        else:
            self.framing = "close"

    @property
    def ok(self) -> bool:
        return self.status < 400

    def chunks(self) -> Iterator[bytes]:
        """The body's bytes as they arrive (chunk boundaries are not meaningful)."""
        reader = self._reader
        while not self._done:
            if self.framing == "length":
                data = reader.read_some(min(self._remaining, RECV_SIZE))
                if not data:
                    raise ProtocolError("connection closed in the middle of the response body")
                self._remaining -= len(data)
                self._done = self._remaining == 0
                yield data
            elif self.framing == "chunked":
                if self._remaining == 0:
                    size_line = reader.readline().split(b";", 1)[0].strip()
                    try:
                        size = int(size_line, 16)
                    except ValueError:
                        raise ProtocolError(f"bad chunk size {size_line!r}") from None
                    if size == 0:
                        while reader.readline():  # trailers, then the empty line
                            pass
                        self._done = True
                        break
                    self._remaining = size
                data = reader.read_some(min(self._remaining, RECV_SIZE))
                if not data:
                    raise ProtocolError("connection closed in the middle of a chunk")
                self._remaining -= len(data)
                if self._remaining == 0:
                    reader.read_exact(2)  # the CRLF after the chunk data
                yield data
            else:
                data = reader.read_some()
                if not data:
                    self._done = True
                    break
                yield data
        self.close()

    def read(self) -> bytes:
        """The whole body."""
        return b"".join(self.chunks())

    def json(self) -> Any:
        body = self.read()
        return jsoncodec.loads(body) if body.strip() else None

    def lines(self) -> Iterator[bytes]:
        """The body split on newlines, as they arrive (Docker's JSON-message streams)."""
        pending = b""
        for data in self.chunks():
            pending += data
            *complete, pending = pending.split(b"\n")
            yield from (line for line in complete if line.strip())
        if pending.strip():
            yield pending

    def error_message(self) -> str:
        """The daemon's ``{"message": ...}`` text for an error response (or the raw body)."""
        body = self.read()
        try:
            decoded = jsoncodec.loads(body)
        except ValueError:
            decoded = None
        if isinstance(decoded, dict) and isinstance(decoded.get("message"), str):
            return decoded["message"]
        text = body.decode("utf-8", "replace").strip()
        return text or f"{self.status} {self.reason}".strip()

    def close(self) -> None:
        self._done = True
        try:
            self.sock.close()
        except OSError:
            pass


class Hijacked:
    """The raw two-way byte pipe left after a ``101 Switching Protocols``."""

    def __init__(self, sock: Any, leftover: bytes, tls: bool = False) -> None:
        self.sock = sock
        self._leftover = leftover
        self._tls = tls

    def recv(self, limit: int = RECV_SIZE) -> bytes:
        if self._leftover:
            data, self._leftover = self._leftover[:limit], self._leftover[limit:]
            return data
        return self.sock.recv(limit)

    def sendall(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close_write(self) -> None:
        """Half-close: tell the daemon our input ended while still reading its output.

        Over TLS, as Docker's CLI does, the TCP connection under the TLS session is half-closed (an
        ``SSLSocket``'s own ``shutdown`` would end the TLS session and the reading with it).
        """
        try:
            if self._tls:
                raw = _socket.socket(fileno=self.sock.fileno())
                try:
                    raw.shutdown(_socket.SHUT_WR)
                finally:
                    raw.detach()
            else:
                self.sock.shutdown(_socket.SHUT_WR)
        except OSError:
            pass

    def shutdown_read(self) -> None:
        """Stop reading: a ``recv`` blocked in another thread returns ``b""``."""
        try:
            self.sock.shutdown(_socket.SHUT_RD)
        except OSError:
            pass

    def fileno(self) -> int:
        return int(self.sock.fileno())

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def _send_request(sock: Any, address: Address, method: str, target: str, body: Body,
                  headers: dict[str, str] | None) -> None:
    head = [f"{method} {target} HTTP/1.1", f"Host: {address.host_header}", f"User-Agent: {USER_AGENT}"]
    extra = dict(headers or {})
    lower = {k.lower() for k in extra}
    chunked = False
    if isinstance(body, bytes | bytearray):
        extra.setdefault("Content-Length", str(len(body)))
    elif body is not None and "content-length" not in lower:
        extra["Transfer-Encoding"] = "chunked"
        chunked = True
    elif body is None and method in ("POST", "PUT"):
        extra.setdefault("Content-Length", "0")
    head += [f"{k}: {v}" for k, v in extra.items()]
    data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
    if isinstance(body, bytes | bytearray):
        sock.sendall(data + bytes(body))
        return
    sock.sendall(data)
    if body is None:
        return
    pieces: Iterable[Any] = body
    for piece in pieces:
        send_to = getattr(piece, "send_to", None)
        if send_to is not None:  # a slice of a file (build_context.FileSlice): sent by sendfile(2)
            size: int = getattr(piece, "size")  # noqa: B009 - duck-typed (the client imports no verb's types)
            if size:
                if chunked:
                    sock.sendall(b"%x\r\n" % size)
                send_to(sock)
                if chunked:
                    sock.sendall(b"\r\n")
            continue
        if not piece:
            continue
        sock.sendall(b"%x\r\n%b\r\n" % (len(piece), piece) if chunked else piece)
    if chunked:
        sock.sendall(b"0\r\n\r\n")


def request(address: Address, method: str, target: str, body: Body = None,
            headers: dict[str, str] | None = None) -> Response:
    """Send one request and read the response head. ``target`` is the path plus query string.

    ``body``: bytes (sent with a Content-Length), an iterable of byte strings (sent chunked unless
    ``headers`` give a Content-Length), or ``None``.
    """
    sock = connect(address)
    try:
        try:
            _send_request(sock, address, method, target, body, headers)
        except (BrokenPipeError, ConnectionResetError):
            # The server answered (an error, typically) and closed before taking the whole body:
            # its answer is still worth reading.
            pass
        return Response(sock, _Reader(sock), method)
    except BaseException:
        sock.close()
        raise


def hijack(address: Address, method: str, target: str, body: Body = None,
           headers: dict[str, str] | None = None) -> tuple[Response, Hijacked | None]:
    """Send an upgrade request. On ``101`` (or an old daemon's ``200`` raw stream) return the pipe too.

    On any other status the ``Hijacked`` part is ``None`` and the response holds the error body.
    """
    all_headers = {"Connection": "Upgrade", "Upgrade": "tcp"}
    all_headers.update(headers or {})
    sock = connect(address)
    try:
        _send_request(sock, address, method, target, body, all_headers)
        reader = _Reader(sock)
        response = Response(sock, reader, method)
    except BaseException:
        sock.close()
        raise
    raw_stream = response.headers.get("content-type", "").startswith("application/vnd.docker.raw-stream")
    if response.status == 101 or (response.status == 200 and raw_stream):
        return response, Hijacked(sock, reader.take_buffer(), address.tls is not None)
    return response, None
