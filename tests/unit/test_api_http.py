"""The HTTP layer and router, over a real unix socket, with fake handlers (no daemon, no root)."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from dockyard.api.http import Hijack, JSONResponse, Request, Response, StreamResponse, serve_connection
from dockyard.api.router import Router
from dockyard.errors import Conflict, NotModified


def make_router() -> Router:
    router = Router()

    @router.route("GET", "/things/{id}/json")
    async def thing(request: Request) -> Response:
        if request.params["id"] == "busy":
            raise Conflict("thing is busy")
        if request.params["id"] == "same":
            raise NotModified("nothing to do")
        return JSONResponse({"id": request.params["id"], "v": request.api_version, "q": request.arg("q")})

    @router.route("GET", "/images/{name:path}/json")
    async def image(request: Request) -> Response:
        return JSONResponse({"name": request.params["name"]})

    @router.route("POST", "/echo")
    async def echo(request: Request) -> Response:
        return JSONResponse(await request.json(required=True))

    @router.route("POST", "/slow")
    async def slow(request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"first":1}\n'
            await asyncio.sleep(0.05)
            yield b'{"second":2}\n'

        return StreamResponse(chunks=chunks())

    @router.route("POST", "/hijack")
    async def hijack(request: Request) -> Response:
        async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, buffered: bytes,
                      head_read: asyncio.Future[None]) -> None:
            data = buffered
            while True:
                chunk = await reader.read(1024)
                if not chunk:
                    break
                data += chunk
            writer.write(b"got:" + data)
            await writer.drain()
            writer.close()

        return Hijack(handler=run)

    @router.route("POST", "/talk")
    async def talk(request: Request) -> Response:
        async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, buffered: bytes,
                      head_read: asyncio.Future[None]) -> None:
            await head_read
            writer.write(b"stream bytes")  # as soon as allowed, as attach with logs=1 does
            await writer.drain()
            writer.close()

        return Hijack(handler=run)

    return router


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[str]:
    path = str(tmp_path / "api.sock")
    loop = asyncio.new_event_loop()
    router = make_router()
    ready = threading.Event()

    async def main() -> None:
        srv = await asyncio.start_unix_server(lambda r, w: serve_connection(router, r, w), path)
        ready.set()
        async with srv:
            await srv.serve_forever()

    task_holder: list[asyncio.Task[None]] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        task_holder.append(loop.create_task(main()))
        try:
            loop.run_until_complete(task_holder[0])
        except asyncio.CancelledError:
            pass

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(5)
    yield path
    loop.call_soon_threadsafe(task_holder[0].cancel)
    thread.join(5)
    loop.close()


def request(path: str, raw: bytes, read_all: bool = True) -> bytes:
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    s.sendall(raw)
    out = b""
    s.settimeout(5)
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        out += chunk
        if not read_all and b"\r\n\r\n" in out:
            break
    s.close()
    return out


def get(path: str, target: str) -> tuple[int, dict[str, str], bytes]:
    raw = request(path, f"GET {target} HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n".encode())
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def test_versioned_and_unversioned_paths(server: str) -> None:
    status, headers, body = get(server, "/v1.41/things/abc/json?q=x")
    assert status == 200
    assert json.loads(body) == {"id": "abc", "v": "1.41", "q": "x"}
    assert headers["api-version"] == "1.47"
    assert headers["ostype"] == "linux"
    status, _, body = get(server, "/things/abc/json")
    assert json.loads(body)["v"] == "1.47"


def test_image_names_with_slashes(server: str) -> None:
    _, _, body = get(server, "/v1.45/images/localhost:5000/team/app:v1/json")
    assert json.loads(body) == {"name": "localhost:5000/team/app:v1"}


def test_percent_encoded_paths_are_decoded_once(server: str) -> None:
    # docker-py quotes everything but "/" and ":": a digest reference arrives as busybox%40sha256:...
    digest = "sha256:" + "a" * 64
    _, _, body = get(server, f"/v1.45/images/busybox%40{digest}/json")
    assert json.loads(body) == {"name": f"busybox@{digest}"}
    _, _, body = get(server, "/things/a%20b%2525/json")  # decoded once: %2525 -> %25, not %
    assert json.loads(body)["id"] == "a b%25"
    _, _, body = get(server, "/images/localhost%3A5000%2Fteam%2Fapp/json")  # an encoded / is a slash
    assert json.loads(body) == {"name": "localhost:5000/team/app"}
    _, _, body = get(server, "/%76%31.41/things/x/json")  # the version prefix too
    assert json.loads(body)["v"] == "1.41"
    status, _, body = get(server, "/things/%ff/json")
    assert status == 400
    assert "percent-escapes are not UTF-8" in json.loads(body)["message"]


def test_version_out_of_range(server: str) -> None:
    status, _, body = get(server, "/v1.99/things/a/json")
    assert status == 400
    assert json.loads(body)["message"] == "client version 1.99 is too new. Maximum supported API version is 1.47"
    status, _, body = get(server, "/v1.12/things/a/json")
    assert status == 400
    assert "is too old" in json.loads(body)["message"]


def test_errors_are_json_in_dockers_format(server: str) -> None:
    status, headers, body = get(server, "/things/busy/json")
    assert status == 409 and json.loads(body) == {"message": "thing is busy"}
    status, _, body = get(server, "/nowhere")
    assert status == 404 and json.loads(body) == {"message": "page not found"}
    assert headers["content-type"] == "application/json"
    status, _, body = get(server, "/v1.44/swarm")
    assert status == 503 and "not a swarm manager" in json.loads(body)["message"]
    status, _, body = get(server, "/things/same/json")
    assert status == 304 and body == b""


def test_bad_json_body_is_400(server: str) -> None:
    body = b"{not json"
    raw = request(server, b"POST /echo HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\n"
                  + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
    assert raw.startswith(b"HTTP/1.1 400")
    assert b"invalid JSON" in raw


def test_keep_alive_serves_several_requests(server: str) -> None:
    one = b"GET /things/a/json HTTP/1.1\r\nHost: d\r\n\r\n"
    two = b"GET /things/b/json HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n"
    raw = request(server, one + two)
    assert raw.count(b"HTTP/1.1 200") == 2
    assert b'"id": "b"' in raw


def test_streamed_body_is_chunked(server: str) -> None:
    raw = request(server, b"POST /slow HTTP/1.1\r\nHost: d\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower()
    assert b'{"first":1}' in body and b'{"second":2}' in body


def test_hijacked_stream_waits_until_the_client_read_the_head(server: str) -> None:
    """docker-py reads the head through a buffered reader, then the raw socket: stream bytes
    that arrived with the head would be lost to it, so none may be sent before it is read."""
    s = socket.socket(socket.AF_UNIX)
    s.connect(server)
    s.sendall(b"POST /talk HTTP/1.1\r\nHost: d\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
    s.settimeout(5)
    time.sleep(0.3)  # a slow client: everything the server sent meanwhile is queued on the socket
    first = s.recv(65536)
    assert first.startswith(b"HTTP/1.1 101 UPGRADED") and first.endswith(b"\r\n\r\n")
    rest = b""
    while chunk := s.recv(1024):
        rest += chunk
    assert rest == b"stream bytes"
    s.close()


def test_hijack_with_upgrade_and_half_close(server: str) -> None:
    s = socket.socket(socket.AF_UNIX)
    s.connect(server)
    s.sendall(b"POST /hijack HTTP/1.1\r\nHost: d\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
              b"Content-Length: 0\r\n\r\nearly")
    s.settimeout(5)
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert head.startswith(b"HTTP/1.1 101 UPGRADED")
    assert b"Upgrade: tcp" in head
    s.sendall(b"-late")
    s.shutdown(socket.SHUT_WR)
    rest = b""
    while chunk := s.recv(1024):
        rest += chunk
    assert rest == b"got:early-late"
    s.close()


def test_volume_create_bodies_are_typed_as_dockerd_decodes_them() -> None:
    # Found by the API fuzzing (tests/integration/test_api_fuzz.py): DriverOpts 0 was a 500.
    from dockyard.api.volumes import create_options
    from dockyard.errors import InvalidParameter

    assert create_options({}) == ("", "", None, None)
    assert create_options({"Name": "v", "Driver": None, "DriverOpts": {"o": "x"}, "Labels": {}}) == \
        ("v", "", {"o": "x"}, {})
    for body, message in (
            ({"DriverOpts": 0}, "cannot unmarshal number into Go struct field CreateOptions.DriverOpts of type "
                                "map[string]string"),
            ({"Labels": ["a"]}, "cannot unmarshal array into Go struct field CreateOptions.Labels"),
            ({"Labels": {"a": 1}}, "cannot unmarshal number into Go struct field CreateOptions.Labels of type string"),
            ({"Name": 5}, "cannot unmarshal number into Go struct field CreateOptions.Name of type string"),
            ([], "must be an object")):
        with pytest.raises(InvalidParameter, match=re.escape(message)):
            create_options(body)
