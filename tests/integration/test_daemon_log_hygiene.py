"""The daemon's log stays free of asyncio's complaints about task lifetimes: many attaches of
every kind (our CLI, Docker's CLI, docker-py, raw API clients that leave early or detach), exec
streams, open ``/events``, ``logs -f`` and ``wait`` streams, then a SIGTERM (needs root)."""

from __future__ import annotations

import gc
import os
import re
import signal
import socket
import sys
from collections.abc import Iterator

import pexpect
import pytest

from tests.integration.daemon_harness import DOCKER_28, Daemon

pytestmark = pytest.mark.root

COMPLAINTS = re.compile(r"Traceback|Task was destroyed|coroutine ignored GeneratorExit|"
                        r"cannot reuse already awaited coroutine|Exception ignored|"
                        r"Task exception was never retrieved|Unhandled exception in client_connected_cb")


def open_stream(daemon: Daemon, request: str) -> socket.socket:
    """A raw API request whose answer is a stream; the caller reads (or not) and closes it."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(20)
    s.connect(str(daemon.sock))
    s.sendall(request.encode())
    return s


def upgrade(daemon: Daemon, path: str) -> socket.socket:
    s = open_stream(daemon, f"POST {path} HTTP/1.1\r\nHost: d\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(1)
        assert chunk, head
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return s


def read_to_end(s: socket.socket) -> bytes:
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    return data


@pytest.fixture()
def cli_argv() -> Iterator[list[str]]:
    yield [sys.executable, "-m", "dockyard.cli.main"]


def test_attaches_streams_and_sigterm_leave_a_clean_log(fresh_daemon: Daemon, cli_argv: list[str]) -> None:
    d = fresh_daemon
    client = d.client()
    api = client.api
    kept: list[socket.socket] = []
    try:
        # Attached runs and execs through both CLIs.
        assert d.cli("run", "--rm", "busybox", "echo", "hi", check=True).stdout == "hi\n"
        assert d.cli("run", "--rm", "-i", "busybox", "cat", input="through stdin\n", check=True).stdout == \
            "through stdin\n"
        assert d.docker("run", "--rm", "busybox", "echo", "hi", check=True).stdout == "hi\n"
        assert d.docker("run", "--rm", "-i", "busybox", "cat", input="through stdin\n", check=True).stdout == \
            "through stdin\n"
        shell = d.cli("run", "-dit", "busybox", "sh", check=True).stdout.strip()
        d.cli("exec", shell, "echo", "x")  # (an exec's own outcome is tested elsewhere)
        d.docker("exec", shell, "echo", "x")
        for argv in (cli_argv, [DOCKER_28]):  # attach, then the detach keys
            child = pexpect.spawn(argv[0], [*argv[1:], "attach", shell], env=d.env(), timeout=20, encoding="utf-8")
            try:
                child.sendline("echo $((6*7))")
                child.expect("42")
                child.send("\x10\x11")
                child.expect(pexpect.EOF)
            finally:
                child.close(force=True)

        talker = client.containers.run("busybox", ["sh", "-c", "while true; do echo chatter; usleep 10000; done"], detach=True)
        cat = client.containers.run("busybox", ["cat"], detach=True, stdin_open=True)
        said = client.containers.run("busybox", ["echo", "said"], detach=True)
        assert said.wait(timeout=30)["StatusCode"] == 0
        for _ in range(12):
            # docker-py: a stream read a little, then dropped; a whole log; an exec.
            stream = talker.attach(stream=True, logs=False)
            assert b"chatter" in next(iter(stream))
            stream.close()
            assert api.attach(said.id, logs=True, stream=False) == b"said\n"
            cat.exec_run(["echo", "e"])
            # Raw clients leaving early: with output pending, with stdin sent, mid-exec.
            s = upgrade(d, f"/containers/{talker.id}/attach?stream=1&stdout=1&stderr=1")
            s.recv(10)
            s.close()
            s = upgrade(d, f"/containers/{cat.id}/attach?stream=1&stdin=1&stdout=1")
            s.sendall(b"abc\n")
            assert s.recv(100)
            s.close()
            s = upgrade(d, f"/containers/{cat.id}/attach?stream=1&stdin=1&stdout=1&detachKeys=ctrl-x")
            s.sendall(b"\x18")  # the detach keys: the daemon ends the attach
            assert read_to_end(s) == b""
            s.close()
            exec_id = api.exec_create(cat.id, ["sh", "-c", "echo begun; sleep 5"])["Id"]
            s = open_stream(d, f"POST /exec/{exec_id}/start HTTP/1.1\r\nHost: d\r\nConnection: Upgrade\r\n"
                               "Upgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
            assert s.recv(100)
            s.close()
            gc.collect()  # our side only; the daemon collects on its own schedule

        # Streams left open when the daemon stops.
        kept.append(open_stream(d, "GET /events HTTP/1.1\r\nHost: d\r\n\r\n"))
        kept.append(open_stream(d, f"GET /containers/{talker.id}/logs?follow=1&stdout=1 HTTP/1.1\r\nHost: d\r\n\r\n"))
        kept.append(open_stream(d, f"POST /containers/{cat.id}/wait HTTP/1.1\r\nHost: d\r\n\r\n"))
        kept.append(upgrade(d, f"/containers/{cat.id}/attach?stream=1&stdin=1&stdout=1"))
        for s in kept[:3]:
            assert s.recv(1)  # the answer's head has come: the stream is being served
        assert d.proc is not None
        d.proc.send_signal(signal.SIGTERM)
        assert d.proc.wait(30) == 0
        d.proc = None
        for s in kept:
            read_to_end(s)  # every stream was ended by the daemon
    finally:
        for s in kept:
            s.close()
        client.close()
    logs = (d.root / "daemon.stderr").read_text() + (d.root / "data" / "daemon.log").read_text()
    assert "shutting down" in logs
    first = COMPLAINTS.search(logs)
    assert first is None, logs[max(0, first.start() - 300):first.start() + 3000]
    d.start()  # the fixture removes the containers through a running daemon
    assert os.path.exists(d.sock)
