"""The CLI's HTTP client against a tiny fake server on a temporary unix socket."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dockyard.cli import client
from dockyard.cli.engine_api import EngineAPI
from dockyard.cli.failure import ConnectFailure, DaemonError

Handler = Callable[[socket.socket, bytes, bytes], None]


def read_request(conn: socket.socket) -> tuple[bytes, bytes]:
    """The request head, and the body (Content-Length or chunked)."""
    data = b""
    while b"\r\n\r\n" not in data:
        piece = conn.recv(65536)
        if not piece:
            return data, b""
        data += piece
    head, _, rest = data.partition(b"\r\n\r\n")
    lower = head.lower()
    if b"content-length:" in lower:
        length = int(lower.split(b"content-length:")[1].split(b"\r\n")[0])
        while len(rest) < length:
            rest += conn.recv(65536)
        return head, rest
    if b"transfer-encoding: chunked" in lower:
        while not rest.endswith(b"0\r\n\r\n"):
            rest += conn.recv(65536)
        body, pos = b"", 0
        while True:
            end = rest.index(b"\r\n", pos)
            size = int(rest[pos:end], 16)
            if size == 0:
                return head, body
            body += rest[end + 2:end + 2 + size]
            pos = end + 2 + size + 2
    return head, rest


class FakeServer:
    """Serves each connection with ``handler(conn, head, body)`` in a thread."""

    def __init__(self, path: Path, handler: Handler) -> None:
        self.path = path
        self.handler = handler
        self.requests: list[bytes] = []
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(8)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                head, body = read_request(conn)
                self.requests.append(head + b"\r\n\r\n" + body)
                self.handler(conn, head, body)

    @property
    def address(self) -> client.Address:
        return client.parse_address(f"unix://{self.path}")

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[[Handler], FakeServer]]:
    servers: list[FakeServer] = []

    def start(handler: Handler) -> FakeServer:
        server = FakeServer(tmp_path / f"s{len(servers)}.sock", handler)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def reply(status: str, body: bytes, headers: str = "") -> Handler:
    def handler(conn: socket.socket, head: bytes, request_body: bytes) -> None:
        conn.sendall(f"HTTP/1.1 {status}\r\n{headers}Content-Length: {len(body)}\r\n\r\n".encode() + body)
    return handler


def test_content_length_and_request_line(serve: Callable[[Handler], FakeServer]) -> None:
    server = serve(reply("200 OK", b'{"a": 1}', "Content-Type: application/json\r\n"))
    response = client.request(server.address, "POST", "/x" + client.query_string([("name", "a b/é")]),
                              b'{"k":1}', {"Content-Type": "application/json"})
    assert response.status == 200 and response.headers["content-type"] == "application/json"
    assert response.json() == {"a": 1}
    request = server.requests[0]
    assert request.startswith(b"POST /x?name=a%20b%2F%C3%A9 HTTP/1.1\r\n")
    assert b"Content-Length: 7\r\n" in request and request.endswith(b'{"k":1}')


def test_chunked_response_arrives_in_pieces(serve: Callable[[Handler], FakeServer]) -> None:
    def handler(conn: socket.socket, head: bytes, body: bytes) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for piece in (b"hello ", b"chunked ", b"world"):
            conn.sendall(b"%x;ext=1\r\n%s\r\n" % (len(piece), piece))
        conn.sendall(b"0\r\nX-Trailer: t\r\n\r\n")
    server = serve(handler)
    response = client.request(server.address, "GET", "/logs")
    assert response.read() == b"hello chunked world"


def test_body_until_close_and_lines(serve: Callable[[Handler], FakeServer]) -> None:
    def handler(conn: socket.socket, head: bytes, body: bytes) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\n\r\n{\"status\":\"a\"}\n{\"sta")
        conn.sendall(b"tus\":\"b\"}\n")
    server = serve(handler)
    response = client.request(server.address, "GET", "/events")
    assert list(response.lines()) == [b'{"status":"a"}', b'{"status":"b"}']


def test_chunked_request_body(serve: Callable[[Handler], FakeServer]) -> None:
    server = serve(reply("200 OK", b"{}"))
    client.request(server.address, "POST", "/import", iter([b"abc", b"", b"def"])).read()
    request = server.requests[0]
    assert b"Transfer-Encoding: chunked" in request
    assert request.endswith(b"abcdef")


def test_hijack_101_half_close(serve: Callable[[Handler], FakeServer]) -> None:
    def handler(conn: socket.socket, head: bytes, body: bytes) -> None:
        assert b"Connection: Upgrade" in head and b"Upgrade: tcp" in head
        conn.sendall(b"HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\nearly:")
        received = b""
        while True:  # echo stdin back until the client half-closes
            piece = conn.recv(4096)
            if not piece:
                break
            received += piece
        conn.sendall(b"got " + received)
    server = serve(handler)
    response, pipe = client.hijack(server.address, "POST", "/containers/x/attach?stream=1")
    assert response.status == 101 and pipe is not None
    pipe.sendall(b"ping")
    pipe.close_write()
    data = b""
    while True:
        piece = pipe.recv()
        if not piece:
            break
        data += piece
    pipe.close()
    assert data == b"early:got ping"


def test_hijack_refused_keeps_error(serve: Callable[[Handler], FakeServer]) -> None:
    server = serve(reply("404 Not Found", b'{"message": "No such container: x"}'))
    response, pipe = client.hijack(server.address, "POST", "/containers/x/attach")
    assert pipe is None and response.status == 404
    assert response.error_message() == "No such container: x"


def test_engine_api_negotiates_and_raises_daemon_errors(serve: Callable[[Handler], FakeServer]) -> None:
    """The first request goes out with our version and no ping; a daemon that finds it too new (as
    dockerd answers, 400) is pinged, and the request sent again with the version negotiated."""
    too_new = b'{"message":"client version 1.47 is too new. Maximum supported API version is 1.41"}'

    def handler(conn: socket.socket, head: bytes, body: bytes) -> None:
        if head.startswith(b"GET /_ping"):
            conn.sendall(b"HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Length: 2\r\n\r\nOK")
        elif head.startswith(b"POST /v1.47/"):
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: %d\r\n\r\n%s" % (len(too_new), too_new))
        else:
            conn.sendall(b'HTTP/1.1 404 Not Found\r\nContent-Length: 35\r\n\r\n{"message":"No such container: zz"}')
    server = serve(handler)
    api = EngineAPI(f"unix://{server.path}", explicit=True)
    with pytest.raises(DaemonError) as caught:
        api.json("POST", "/containers/zz/stop")
    assert caught.value.message == "Error response from daemon: No such container: zz"
    assert caught.value.status_code == 404
    assert api.api_version == "1.41"
    assert [r.split(b" HTTP/")[0] for r in server.requests] == [
        b"POST /v1.47/containers/zz/stop", b"GET /_ping", b"POST /v1.41/containers/zz/stop"]


def test_engine_api_first_request_without_ping(serve: Callable[[Handler], FakeServer]) -> None:
    """A daemon that takes our version answers the first request at once: no ping, and a later
    error (a 400 of another kind) is the daemon's, not a reason to negotiate."""
    def handler(conn: socket.socket, head: bytes, body: bytes) -> None:
        if b"/containers/create" in head:
            conn.sendall(b'HTTP/1.1 201 Created\r\nContent-Length: 11\r\n\r\n{"Id":"ab"}')
        else:
            conn.sendall(b'HTTP/1.1 400 Bad Request\r\nContent-Length: 19\r\n\r\n{"message":"nope!"}')
    server = serve(handler)
    api = EngineAPI(f"unix://{server.path}", explicit=True)
    assert api.json("POST", "/containers/create", body={"Image": "x"}) == {"Id": "ab"}
    with pytest.raises(DaemonError, match="nope!"):
        api.json("POST", "/containers/ab/start")
    assert [r.split(b" HTTP/")[0] for r in server.requests] == [
        b"POST /v1.47/containers/create", b"POST /v1.47/containers/ab/start"]


def test_engine_api_newer_server_uses_our_version(serve: Callable[[Handler], FakeServer]) -> None:
    server = serve(lambda conn, head, body: conn.sendall(
        b"HTTP/1.1 200 OK\r\nApi-Version: 1.51\r\nContent-Length: 2\r\n\r\nOK"))
    assert EngineAPI(f"unix://{server.path}", explicit=True).negotiate() == "1.47"


def test_no_daemon_at_explicit_host(tmp_path: Path) -> None:
    with pytest.raises(ConnectFailure):
        EngineAPI(f"unix://{tmp_path}/nothing.sock", explicit=True).negotiate()


def test_parse_address() -> None:
    assert client.parse_address("unix:///run/x.sock").path == "/run/x.sock"
    tcp = client.parse_address("tcp://127.0.0.1:2375")
    assert (tcp.scheme, tcp.host, tcp.port) == ("tcp", "127.0.0.1", 2375)
    with pytest.raises(ValueError):
        client.parse_address("bogus")


def test_default_host_autostarts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 serve: Callable[[Handler], FakeServer]) -> None:
    """Nothing on the default socket: the daemon is started (here: a fake server appears), then used."""
    from dockyard.cli import autostart

    path = tmp_path / "default.sock"
    started: list[str] = []

    def fake_start(address: client.Address) -> None:
        started.append(address.path)
        server = FakeServer(path, lambda conn, head, body: conn.sendall(
            b"HTTP/1.1 200 OK\r\nApi-Version: 1.47\r\nContent-Length: 2\r\n\r\nOK"))
        assert autostart.ping(server.address)

    monkeypatch.setattr(autostart, "start_daemon", fake_start)
    api = EngineAPI(f"unix://{path}", explicit=False)
    assert api.negotiate() == "1.47"
    assert started == [str(path)]


def test_default_host_autostarts_on_the_first_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first request (sent without a ping) finds no daemon at the default socket: it is started,
    pinged, and the request sent again."""
    from dockyard.cli import autostart

    path = tmp_path / "default.sock"
    servers: list[FakeServer] = []

    def handler(conn: socket.socket, head: bytes, body: bytes) -> None:
        if head.startswith(b"GET /_ping"):
            conn.sendall(b"HTTP/1.1 200 OK\r\nApi-Version: 1.47\r\nContent-Length: 2\r\n\r\nOK")
        else:
            conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}')

    def fake_start(address: client.Address) -> None:
        servers.append(FakeServer(path, handler))

    monkeypatch.setattr(autostart, "start_daemon", fake_start)
    api = EngineAPI(f"unix://{path}", explicit=False)
    assert api.json("GET", "/info") == {}
    assert len(servers) == 1
    assert [r.split(b" HTTP/")[0] for r in servers[0].requests] == [b"GET /_ping", b"GET /v1.47/info"]


def test_daemon_argv_runs_this_python_isolated() -> None:
    """This Python, isolated (no cwd on sys.path, no PYTHON* variables), this checkout's dockyard."""
    import sys

    from dockyard.cli import autostart

    argv = autostart.daemon_argv(["--root", "/x"])
    assert argv[:3] == [sys.executable, "-I", "-c"] and argv[4:] == ["--root", "/x"]
    assert repr(str(Path(__file__).resolve().parents[2])) in argv[3]
    assert "-m" not in argv
