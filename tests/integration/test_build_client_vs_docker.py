"""``dockyard build`` sends what Docker's classic CLI (``DOCKER_BUILDKIT=0 docker build``) sends.

Both CLIs talk to one recording server that answers like a classic builder; the test compares the
``POST /build`` query and the context tar (names, types, modes, owners, contents) and what each
prints. Needs Docker's CLI (the harness's ``DOCKER``), not a daemon.
"""

from __future__ import annotations

import http.server
import io
import json
import os
import re
import socketserver
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.integration.daemon_harness import DOCKER, REPO

IMAGE_ID = "sha256:" + "ab" * 32
ANSWER = b"".join(json.dumps(m).encode() + b"\r\n" for m in (
    {"stream": "Step 1/1 : FROM busybox\n"}, {"stream": " ---> 1a2b3c4d5e6f\n"}, {"aux": {"ID": IMAGE_ID}},
    {"stream": "Successfully built 1a2b3c4d5e6f\n"}))
RANDOM_NAME = re.compile(r"\.dockerfile\.[0-9a-f]{20}")


class Recorder(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str) -> None:
        self.builds: list[tuple[dict[str, list[str]], bytes]] = []
        self.answer = ANSWER
        super().__init__(path, _Handler)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: Recorder

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding") == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _answer(self, body: bytes, send_body: bool = True) -> None:
        self.send_response(200)
        self.send_header("Api-Version", "1.47")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def do_HEAD(self) -> None:  # noqa: N802 (http.server's names)
        self._answer(b"OK", send_body=False)

    def do_GET(self) -> None:  # noqa: N802
        self._answer(b"OK")

    def do_POST(self) -> None:  # noqa: N802
        body = self._body()
        split = urlsplit(self.path)
        if split.path.endswith("/build"):
            self.server.builds.append((parse_qs(split.query, keep_blank_values=True), body))
        self._answer(self.server.answer)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def recorder(tmp_path: Path) -> Iterator[Recorder]:
    server = Recorder(str(tmp_path / "r.sock"))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "ctx"
    for path, text in {"Dockerfile": "FROM busybox\n", "src/a.py": "a", "src/b.log": "b", "README.md": "r",
                       "notes.md": "n", "node_modules/x/i.js": "i", "docs/keep.md": "k", "docs/drop.md": "d",
                       "app.Dockerfile": "FROM busybox\nRUN true\n", "empty/.keep": ""}.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    os.chmod(root / "src" / "a.py", 0o755)
    os.symlink("src/a.py", root / "link")
    (root / ".dockerignore").write_text("node_modules\n**/*.log\n*.md\n!README.md\ndocs\n!docs/keep.md\n"
                                        "Dockerfile\n.dockerignore\n")
    (tmp_path / "outside.Dockerfile").write_text("FROM busybox\nRUN outside\n")
    return root


def tar_view(body: bytes) -> dict[str, tuple[Any, ...]]:
    # Docker's CLI ends a context it rewrote (a Dockerfile added) without the last member's padding
    # and the end-of-archive blocks (the daemon reads it all the same): pad it for Python's reader.
    body += b"\0" * (-len(body) % 512) + b"\0" * 1024
    out = {}
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        for m in tar:
            data = tar.extractfile(m).read() if m.isreg() else m.linkname  # type: ignore[union-attr]
            out[RANDOM_NAME.sub(".dockerfile.X", m.name)] = (m.type, oct(m.mode), m.uid, m.gid,
                                                              RANDOM_NAME.sub(".dockerfile.X", str(data)))
    return out


def query_view(q: dict[str, list[str]]) -> dict[str, list[str]]:
    return {k: [RANDOM_NAME.sub(".dockerfile.X", v) for v in vs] for k, vs in q.items()}


def run_both(recorder: Recorder, cwd: Path, args: list[str], stdin: bytes | None = None) -> list[Any]:
    """Each CLI's (exit status, stdout, query, tar view) for ``build ARGS``."""
    env = {**os.environ, "DOCKER_HOST": f"unix://{recorder.server_address}",
           "DOCKYARD_HOST": f"unix://{recorder.server_address}", "DOCKER_BUILDKIT": "0",
           "DOCKER_CONFIG": str(cwd / "docker-config"), "PYTHONPATH": str(REPO), "BUILD_ARG_FROM_ENV": "e"}
    results = []
    for argv in ([DOCKER, "build"], [sys.executable, "-m", "dockyard.cli.main", "build"]):
        before = len(recorder.builds)
        done = subprocess.run([*argv, *args], input=stdin, capture_output=True, env=env, cwd=cwd, timeout=60)
        assert len(recorder.builds) == before + 1, done.stderr
        q, body = recorder.builds[-1]
        results.append((done.returncode, done.stdout.decode(), query_view(q), tar_view(body),
                        done.stderr.decode().rpartition("environment-variable.\n\n")[2]))
    return results


@pytest.mark.parametrize("args", [
    ["ctx"],
    ["-t", "app:1", "-t", "app:2", "--build-arg", "A=1", "--build-arg", "BUILD_ARG_FROM_ENV", "--build-arg",
     "UNSET_ONE", "--label", "k=v", "--label", "bare", "--target", "final", "--no-cache", "--pull",
     "--network", "host", "--platform", "linux/amd64", "--force-rm", "--rm=false", "ctx"],
    ["-q", "ctx"],
    ["-f", "ctx/app.Dockerfile", "ctx"],
    ["-f", "outside.Dockerfile", "ctx"],
])
def test_the_same_request_as_dockers_cli(recorder: Recorder, project: Path, args: list[str]) -> None:
    theirs, ours = run_both(recorder, project.parent, args)
    assert ours[2] == theirs[2]  # the query
    assert ours[3] == theirs[3]  # the context
    assert ours[0] == theirs[0] == 0
    if "-q" in args:
        assert ours[1] == IMAGE_ID + "\n"
    elif "outside.Dockerfile" in args:  # Docker's CLI counts a rewritten context short (see tar_view)
        assert ours[1].partition("\n")[2] == theirs[1].partition("\n")[2]
    else:
        assert ours[1] == theirs[1]  # "Sending build context …" and the stream


def test_the_same_request_with_stdin(recorder: Recorder, project: Path) -> None:
    dockerfile = b"FROM busybox\nRUN from-stdin\n"
    for args in (["-f", "-", "ctx"], ["-"]):
        theirs, ours = run_both(recorder, project.parent, args, dockerfile)
        assert ours[2] == theirs[2] and ours[3] == theirs[3] and ours[0] == theirs[0] == 0
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tar.gettarinfo(project / "Dockerfile", "Dockerfile")
        info.mtime = int(info.mtime)
        with (project / "Dockerfile").open("rb") as f:
            tar.addfile(info, f)
    theirs, ours = run_both(recorder, project.parent, ["-"], buf.getvalue())
    assert ours[2] == theirs[2] and ours[3] == theirs[3]


def test_a_failed_step_ends_both_alike(recorder: Recorder, project: Path) -> None:
    message = "The command '/bin/sh -c exit 3' returned a non-zero code: 3"
    recorder.answer = b"".join(json.dumps(m).encode() + b"\r\n" for m in (
        {"stream": "Step 1/2 : FROM busybox\n"}, {"stream": "Step 2/2 : RUN exit 3\n"},
        {"stream": " ---> Running in 0123456789ab\n"}, {"errorDetail": {"code": 3, "message": message},
                                                        "error": message}))
    theirs, ours = run_both(recorder, project.parent, ["ctx"])
    assert ours[0] == theirs[0] == 3
    assert ours[1] == theirs[1] and ours[4] == theirs[4] == message + "\n"
