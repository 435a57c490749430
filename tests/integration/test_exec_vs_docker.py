"""Exec's TTY, detach keys and output, with a private dockerd (``test_cli_against_dockerd.py``'s fixture) as the reference.

Each check sends the same raw Engine API requests to dockerd and to our shared ``daemon``:
- the process's TTY is fixed at exec create; the start request's ``Tty`` only chooses raw or
  framed output;
- with a TTY, the detach keys (ctrl-p,ctrl-q, or the create request's ``DetachKeys``) typed on a
  hijacked start end the stream and are never passed to the process. dockerd 20.10 then also
  closes the process's stdin (its shell exits); dockyard leaves it running, as Docker documents
  for detaching (and as a container attach does), with an ``exec_detach`` event;
- our CLI's and Docker's ``exec -it`` detach the same way from a terminal.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import docker
import pexpect
import pytest

from tests.integration.daemon_harness import DOCKER_28, Daemon
from tests.integration.test_cli_against_dockerd import Dockerd, dockerd  # noqa: F401 - the fixture

pytestmark = [pytest.mark.root, pytest.mark.docker_cli]

ENGINES = ["dockyard", "dockerd"]


def _socket_path(engine: str, daemon: Daemon, reference: Dockerd) -> str:
    return str(daemon.sock) if engine == "dockyard" else str(reference.root / "docker.sock")


@contextmanager
def _sleeper(path: str) -> Iterator[tuple[docker.APIClient, str]]:
    api = docker.APIClient(base_url=f"unix://{path}", version="1.41", timeout=30)
    cid = api.create_container("busybox", ["sleep", "300"])["Id"]
    try:
        api.start(cid)
        yield api, cid
    finally:
        api.remove_container(cid, force=True)
        api.close()


def _hijacked_start(path: str, exec_id: str, body: dict[str, object]) -> tuple[socket.socket, bytes]:
    """``POST /exec/{id}/start`` with an upgrade; the socket and the bytes after the headers."""
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(10)
    sock.connect(path)
    data = json.dumps(body).encode()
    sock.sendall(b"POST /v1.41/exec/%s/start HTTP/1.1\r\nHost: engine\r\nContent-Type: application/json\r\n"
                 b"Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: %d\r\n\r\n%s"
                 % (exec_id.encode(), len(data), data))
    seen = b""
    while b"\r\n\r\n" not in seen:
        chunk = sock.recv(4096)
        assert chunk, seen
        seen += chunk
    head, _, rest = seen.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock, rest


def _read_until(sock: socket.socket, seen: bytes, marker: bytes) -> bytes:
    while marker not in seen:
        chunk = sock.recv(4096)
        assert chunk, f"the stream ended before {marker!r}: {seen!r}"
        seen += chunk
    return seen


def _read_to_end(sock: socket.socket) -> bytes:
    out = b""
    while chunk := sock.recv(4096):
        out += chunk
    return out


@pytest.mark.parametrize("engine", ENGINES)
def test_start_tty_false_keeps_the_create_time_tty(engine: str, daemon: Daemon, dockerd: Dockerd) -> None:  # noqa: F811
    with _sleeper(_socket_path(engine, daemon, dockerd)) as (api, cid):
        exec_id = api.exec_create(cid, ["sh", "-c", "test -t 1 && echo tty || echo notty"], tty=True)["Id"]
        sock, rest = _hijacked_start(_socket_path(engine, daemon, dockerd), exec_id, {"Detach": False, "Tty": False})
        with sock:
            out = rest + _read_to_end(sock)
        # A terminal (so "\r\n"), its output in one stdout frame since the start asked for no TTY.
        assert out == b"\x01\x00\x00\x00\x00\x00\x00\x05tty\r\n"
        assert api.exec_inspect(exec_id)["ProcessConfig"]["tty"] is True
        # and the other way round: no TTY at create, Tty:true at start gives raw output
        exec_id = api.exec_create(cid, ["sh", "-c", "test -t 1 && echo tty || echo notty"], tty=False)["Id"]
        sock, rest = _hijacked_start(_socket_path(engine, daemon, dockerd), exec_id, {"Detach": False, "Tty": True})
        with sock:
            assert rest + _read_to_end(sock) == b"notty\n"
        assert api.exec_inspect(exec_id)["ProcessConfig"]["tty"] is False


@pytest.mark.parametrize("keys", ["", "ctrl-x,y"], ids=["default", "custom"])
@pytest.mark.parametrize("engine", ENGINES)
def test_detach_keys_end_a_tty_exec_stream(engine: str, keys: str, daemon: Daemon,
                                           dockerd: Dockerd) -> None:  # noqa: F811
    sequence = b"\x18y" if keys else b"\x10\x11"
    path = _socket_path(engine, daemon, dockerd)
    with _sleeper(path) as (api, cid):
        since = time.time()
        # docker-py sends the field as "detachKeys": Go's JSON decoder matches names case-insensitively
        exec_id = api.exec_create(cid, ["sh"], tty=True, stdin=True, detach_keys=keys or None)["Id"]
        assert api.exec_inspect(exec_id)["DetachKeys"] == ("GHk=" if keys else "")  # Go's []byte: base64
        sock, seen = _hijacked_start(path, exec_id, {"Detach": False, "Tty": True})
        with sock:
            sock.sendall(b"echo $((6*7))\n")
            _read_until(sock, seen, b"42\r\n")
            sock.sendall(sequence[:1])  # the keys may come in pieces
            time.sleep(0.2)
            sock.sendall(sequence[1:] + b"echo never-typed\n")
            rest = _read_to_end(sock)  # the engine ends the stream
        assert b"never-typed" not in rest
        if engine == "dockerd":
            return  # 20.10 also ends the process (see the module's docstring)
        assert api.exec_inspect(exec_id)["Running"] is True
        actions = [e["Action"] for e in api.events(since=since, until=time.time() + 0.5, decode=True,
                                                   filters={"container": cid})]
        assert "exec_detach" in actions


@pytest.mark.parametrize("engine", ENGINES)
def test_invalid_exec_detach_keys_are_refused_at_create(engine: str, daemon: Daemon,
                                                        dockerd: Dockerd) -> None:  # noqa: F811
    with _sleeper(_socket_path(engine, daemon, dockerd)) as (api, cid):
        with pytest.raises(docker.errors.APIError) as info:
            api.exec_create(cid, ["sh"], tty=True, stdin=True, detach_keys="ctrl-1")
        assert info.value.status_code == 500
        assert info.value.explanation == "Invalid escape keys (ctrl-1) provided"


@pytest.mark.parametrize("client", ["dockyard", "docker"])
@pytest.mark.parametrize("flags", [(), ("--detach-keys", "ctrl-x,y")], ids=["default", "custom"])
@pytest.mark.parametrize("engine", ENGINES)
def test_cli_exec_it_detaches_and_the_exec_runs_on(engine: str, daemon: Daemon, dockerd: Dockerd,  # noqa: F811
                                                   client: str, flags: tuple[str, ...]) -> None:
    argv = [sys.executable, "-m", "dockyard.cli.main"] if client == "dockyard" else [DOCKER_28]
    sequence = "\x18y" if flags else "\x10\x11"
    path = _socket_path(engine, daemon, dockerd)
    with _sleeper(path) as (api, cid):
        child = pexpect.spawn(argv[0], [*argv[1:], "-H", f"unix://{path}", "exec", "-it", *flags, cid, "sh"],
                              env=daemon.env(), timeout=20, encoding="utf-8", cwd=os.getcwd())
        try:
            child.expect(r"# ")
            child.sendline("echo $((6*7))")
            child.expect("42")
            child.send(sequence)
            child.expect(pexpect.EOF)
        finally:
            child.close(force=True)
        # Docker's CLI ends a detached exec with this message and status 1 (against dockerd too)
        assert child.exitstatus == 1, child.before
        assert child.before.rstrip().endswith("read escape sequence")
        exec_ids = api.inspect_container(cid)["ExecIDs"]
        assert len(exec_ids) == 1
        assert api.exec_inspect(exec_ids[0])["Running"] is True  # detached, not ended


def test_every_exec_delivers_its_output_and_exit_code(daemon: Daemon) -> None:
    """Quick execs back to back: none may lose its output (the shim used to read the process's
    first output before accepting the start's connection) or fail to start (the daemon missed the
    process's pid when its "ready" came first)."""
    with _sleeper(str(daemon.sock)) as (api, cid):
        for index in range(30):
            exec_id = api.exec_create(cid, ["sh", "-c", f"echo out-{index}; echo err-{index} >&2; exit 3"])["Id"]
            assert api.exec_start(exec_id, demux=True) == (f"out-{index}\n".encode(), f"err-{index}\n".encode())
            assert api.exec_inspect(exec_id)["ExitCode"] == 3
