"""``dockyard build`` as a client: the context tar, the query, the rendering of the build stream.

The daemon here is a fake server on a unix socket that records the request and answers with a
classic builder's JSON stream.
"""

from __future__ import annotations

import io
import json
import os
import socket
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from dockyard.cli import main as cli_main
from dockyard.cli.build_context import from_directory, from_stdin, is_archive
from dockyard.cli.failure import CliFailure
from tests.unit.test_cli_client import FakeServer, Handler

IMAGE_ID = "sha256:" + "ab" * 32
STEPS = [
    {"stream": "Step 1/2 : FROM busybox\n"},
    {"stream": " ---> 1a2b3c4d5e6f\n"},
    {"stream": "Step 2/2 : RUN echo hi\n"},
    {"stream": " ---> Using cache\n"},
    {"stream": " ---> 0f9e8d7c6b5a\n"},
    {"aux": {"ID": IMAGE_ID}},
    {"stream": "Successfully built 0f9e8d7c6b5a\n"},
    {"stream": "Successfully tagged app:1\n"},
]


def members(ctx_body: bytes) -> dict[str, bytes | None]:
    with tarfile.open(fileobj=io.BytesIO(ctx_body)) as tar:
        return {m.name: (tar.extractfile(m).read() if m.isreg() else None) for m in tar}  # type: ignore[union-attr]


def context_members(*args: object, **kwargs: object) -> tuple[dict[str, bytes | None], str]:
    ctx = from_directory(*args, **kwargs)  # type: ignore[arg-type]
    data = ctx.read_all()
    assert len(data) == ctx.size
    return members(data), ctx.dockerfile


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "ctx"
    (root / "src").mkdir(parents=True)
    (root / "Dockerfile").write_text("FROM busybox\n")
    (root / "src" / "a.py").write_text("a")
    (root / "src" / "b.log").write_text("b")
    (root / "notes.md").write_text("n")
    (root / "README.md").write_text("r")
    (root / "node_modules" / "x").mkdir(parents=True)
    (root / "node_modules" / "x" / "i.js").write_text("i")
    return root


# -- the context ---------------------------------------------------------------------------------

def test_the_context_honours_dockerignore(project: Path) -> None:
    (project / ".dockerignore").write_text("node_modules\n**/*.log\n*.md\n!README.md\nDockerfile\n.dockerignore\n")
    found, dockerfile = context_members(str(project))
    assert dockerfile == "Dockerfile"
    assert set(found) == {"Dockerfile", ".dockerignore", "README.md", "src", "src/a.py"}  # build files always sent


def test_context_headers_are_owned_by_root(project: Path) -> None:
    ctx = from_directory(str(project))
    with tarfile.open(fileobj=io.BytesIO(ctx.read_all())) as tar:
        assert {(m.uid, m.gid, m.uname, m.gname) for m in tar} == {(0, 0, "", "")}


def test_a_dockerfile_specific_ignore_file_wins(project: Path) -> None:
    (project / ".dockerignore").write_text("src\n")
    (project / "app.Dockerfile").write_text("FROM busybox\n")
    (project / "app.Dockerfile.dockerignore").write_text("node_modules\n")
    found, dockerfile = context_members(str(project), str(project / "app.Dockerfile"))
    assert dockerfile == "app.Dockerfile"
    assert "src/a.py" in found and "node_modules/x/i.js" not in found


def test_an_exception_inside_an_excluded_directory(project: Path) -> None:
    (project / ".dockerignore").write_text("node_modules\n!node_modules/x/i.js\n")
    found, _ = context_members(str(project))
    assert "node_modules/x/i.js" in found and "node_modules" not in found


def test_a_dockerfile_outside_the_context_is_added_and_ignored(project: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.Dockerfile"
    outside.write_text("FROM busybox\nRUN true\n")
    (project / ".dockerignore").write_text("*.md\n")
    found, dockerfile = context_members(str(project), str(outside))
    assert dockerfile.startswith(".dockerfile.") and len(dockerfile) == len(".dockerfile.") + 20
    assert found[dockerfile] == b"FROM busybox\nRUN true\n"
    assert found[".dockerignore"] == b"*.md\n\n" + dockerfile.encode() + b"\n"
    assert "README.md" not in found


def test_a_dockerfile_from_stdin(project: Path) -> None:
    found, dockerfile = context_members(str(project), dockerfile_text=b"FROM scratch\n")
    assert found[dockerfile] == b"FROM scratch\n"
    assert found[".dockerignore"] == b"\n" + dockerfile.encode() + b"\n"  # made when the context has none


def test_relative_dockerfile_paths_are_taken_from_the_working_directory(project: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    (project / "src" / "Dockerfile.dev").write_text("FROM busybox\n")
    monkeypatch.chdir(project.parent)
    _, dockerfile = context_members("ctx", "ctx/src/Dockerfile.dev")
    assert dockerfile == "src/Dockerfile.dev"


def test_context_errors_in_dockers_words(tmp_path: Path) -> None:
    with pytest.raises(CliFailure, match='unable to prepare context: path "nope" not found'):
        from_directory("nope")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CliFailure, match="unable to prepare context: unable to evaluate symlinks in Dockerfile "
                                         f"path: lstat {empty}/Dockerfile: no such file or directory"):
        from_directory(str(empty))


def test_stdin_is_a_tar_or_a_dockerfile() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = 13
        tar.addfile(info, io.BytesIO(b"FROM busybox\n"))
    raw = buf.getvalue()
    assert is_archive(raw[:512]) and is_archive(b"\x1f\x8b\x08\x00") and not is_archive(b"FROM busybox\n")
    ctx = from_stdin(io.BytesIO(raw), "Dockerfile")
    assert ctx.read_all() == raw and ctx.dockerfile == "Dockerfile"
    ctx = from_stdin(io.BytesIO(b"FROM busybox\nRUN true\n"))
    assert members(ctx.read_all()) == {"Dockerfile": b"FROM busybox\nRUN true\n"} and ctx.dockerfile == "Dockerfile"
    assert ctx.size == 4 * 512  # header, data, the two zero blocks: no record padding, as Go's tar


# -- against a fake daemon -----------------------------------------------------------------------

def stream_reply(messages: list[dict[str, object]]) -> Handler:
    def handler(conn: socket.socket, head: bytes, body: bytes) -> None:
        if head.startswith(b"GET /_ping"):
            conn.sendall(b"HTTP/1.1 200 OK\r\nApi-Version: 1.47\r\nContent-Length: 2\r\n\r\nOK")
            return
        data = b"".join(json.dumps(m).encode() + b"\r\n" for m in messages)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%b"
                     % (len(data), data))
    return handler


@pytest.fixture
def daemon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[list[dict[str, object]]], FakeServer]]:
    servers: list[FakeServer] = []

    def start(messages: list[dict[str, object]]) -> FakeServer:
        server = FakeServer(tmp_path / f"d{len(servers)}.sock", stream_reply(messages))
        servers.append(server)
        monkeypatch.setenv("DOCKYARD_HOST", f"unix://{server.path}")
        return server

    yield start
    for server in servers:
        server.close()


def build_request(server: FakeServer) -> tuple[str, dict[str, list[str]], bytes]:
    raw = server.requests[-1]
    head, _, body = raw.partition(b"\r\n\r\n")
    target = head.split(b"\r\n")[0].split(b" ")[1].decode()
    split = urlsplit(target)
    return split.path, parse_qs(split.query, keep_blank_values=True), body


def test_build_sends_dockers_query_and_renders_the_stream(daemon: Callable[..., FakeServer], project: Path,
                                                          capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    server = daemon(STEPS)
    monkeypatch.setenv("FROM_ENV", "env-value")
    monkeypatch.delenv("UNSET_ARG", raising=False)
    status = cli_main.main(["build", "-t", "app:1", "-t", "app:latest", "--build-arg", "A=1", "--build-arg",
                            "FROM_ENV", "--build-arg", "UNSET_ARG", "--label", "k=v", "--target", "final",
                            "--no-cache", "--pull", "--network", "host", "--platform", "linux/amd64",
                            "--force-rm", str(project)])
    out = capsys.readouterr().out
    assert status == 0
    assert out.startswith("Sending build context to Docker daemon  ")
    assert out.endswith("".join(m["stream"] for m in STEPS if "stream" in m))  # type: ignore[misc]
    path, q, body = build_request(server)
    assert path == "/v1.47/build"
    assert q["t"] == ["app:1", "app:latest"] and q["dockerfile"] == ["Dockerfile"] and q["target"] == ["final"]
    assert q["buildargs"] == ['{"A":"1","FROM_ENV":"env-value","UNSET_ARG":null}']
    assert json.loads(q["labels"][0]) == {"k": "v"}
    assert q["nocache"] == ["1"] and q["pull"] == ["1"] and "rm" not in q and q["forcerm"] == ["1"]
    assert q["networkmode"] == ["host"] and q["platform"] == ["linux/amd64"] and "q" not in q
    assert b"content-type: application/x-tar" in server.requests[-1].lower()
    assert b"transfer-encoding: chunked" in server.requests[-1].lower()  # streamed, as Docker's CLI sends it
    assert "src/a.py" in members(body)


def test_quiet_prints_only_the_id_and_iidfile_gets_it(daemon: Callable[..., FakeServer], project: Path,
                                                      tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    server = daemon(STEPS)
    iid = tmp_path / "iid"
    iid.write_text("stale")
    assert cli_main.main(["build", "-q", "--iidfile", str(iid), "--rm=false", str(project)]) == 0
    assert capsys.readouterr().out == IMAGE_ID + "\n"
    assert iid.read_text() == IMAGE_ID
    _, q, _ = build_request(server)
    assert q["q"] == ["1"] and q["rm"] == ["0"]
    assert set(q) == {"q", "rm", "dockerfile", "version"}  # nothing Docker's CLI leaves out
    assert cli_main.main(["build", "--progress=quiet", str(project)]) == 0
    assert capsys.readouterr().out == IMAGE_ID + "\n"


def test_a_failing_step_exits_with_its_code(daemon: Callable[..., FakeServer], project: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    daemon([{"stream": "Step 1/2 : FROM busybox\n"}, {"stream": "Step 2/2 : RUN exit 3\n"},
            {"stream": " ---> Running in 0123456789ab\n"},
            {"errorDetail": {"code": 3, "message": "The command '/bin/sh -c exit 3' returned a non-zero code: 3"},
             "error": "The command '/bin/sh -c exit 3' returned a non-zero code: 3"}])
    assert cli_main.main(["build", str(project)]) == 3
    captured = capsys.readouterr()
    assert "Step 2/2 : RUN exit 3\n ---> Running in 0123456789ab\n" in captured.out
    assert captured.err == "The command '/bin/sh -c exit 3' returned a non-zero code: 3\n"


def test_an_error_without_a_code_exits_1(daemon: Callable[..., FakeServer], project: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    daemon([{"error": "dockerfile parse error on line 1: unknown instruction: FORM"}])
    assert cli_main.main(["build", str(project)]) == 1
    assert capsys.readouterr().err == "dockerfile parse error on line 1: unknown instruction: FORM\n"


def test_dockerfile_on_stdin_with_a_directory_context(daemon: Callable[..., FakeServer], project: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    server = daemon(STEPS)
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"FROM busybox\nCOPY src /src\n")))
    assert cli_main.main(["build", "-f", "-", str(project)]) == 0
    _, q, body = build_request(server)
    assert members(body)[q["dockerfile"][0]] == b"FROM busybox\nCOPY src /src\n"


def test_stdin_cannot_be_both(project: Path, capsys: pytest.CaptureFixture[str],
                              daemon: Callable[..., FakeServer]) -> None:
    daemon(STEPS)
    assert cli_main.main(["build", "-f", "-", "-"]) == 1
    assert "can't use stdin for both build context and dockerfile" in capsys.readouterr().err


def test_bad_progress_and_arity(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main.main(["build", "--progress=fancy", str(project)]) == 125
    assert 'invalid argument "fancy" for "--progress" flag' in capsys.readouterr().err
    assert cli_main.main(["build"]) == 1
    assert "'dockyard build' requires 1 argument" in capsys.readouterr().err


def test_a_big_context_streams_whole(project: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    (project / "big").write_bytes(data)
    found, _ = context_members(str(project))
    assert found["big"] == data


def test_symlinks_and_fifos_go_as_entries(project: Path) -> None:
    (project / "src" / "gone").symlink_to("nowhere")
    os.mkfifo(project / "fifo")  # kept as an entry, never read
    with tarfile.open(fileobj=io.BytesIO(from_directory(str(project)).read_all())) as tar:
        kinds = {m.name: (m.type, m.linkname) for m in tar}
    assert kinds["fifo"] == (tarfile.FIFOTYPE, "") and kinds["src/gone"] == (tarfile.SYMTYPE, "nowhere")


def test_the_tar_is_what_pythons_tar_writer_makes_without_its_record_padding(project: Path) -> None:
    """Headers and padding made per entry, large files sent by sendfile: the same bytes as tarfile's
    writer (PAX, owners 0, whole-second mtimes) gives, ending with two zero blocks as Go's does."""
    (project / "big").write_bytes(os.urandom((1 << 20) + 5))
    (project / ("long-name-" * 12)).write_bytes(b"long")
    os.link(project / "README.md", project / "hardlink")
    (project / "src" / "link").symlink_to("a.py")
    (project / "src" / "naïve-é.txt").write_bytes(b"non-ascii name")
    (project / "src" / "deep" / ("d" * 99)).mkdir(parents=True)  # 100 bytes with its "/": still ustar
    (project / "src" / "deep" / ("e" * 100)).mkdir()  # 101: a PAX path record
    os.mkfifo(project / "fifo")
    os.utime(project / "README.md", (1e12, 1e12))  # an mtime past ustar's 11 octal digits
    ref = io.BytesIO()
    tar = tarfile.TarFile(fileobj=ref, mode="w", format=tarfile.PAX_FORMAT)
    for directory, dirs, files in os.walk(project):
        rel_dir = os.path.relpath(directory, project)
        for name in sorted(dirs + files):
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            info = tar.gettarinfo(os.path.join(directory, name), arcname=rel)
            info.mtime, info.uid, info.gid, info.uname, info.gname = int(info.mtime), 0, 0, "", ""
            if info.isreg():
                with open(os.path.join(directory, name), "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
        dirs.sort()
    end = tar.offset + 2 * tarfile.BLOCKSIZE
    tar.close()
    assert from_directory(str(project)).read_all() == ref.getvalue()[:end]


def test_a_large_file_goes_by_sendfile_and_arrives_whole(daemon: Callable[..., FakeServer], project: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    data = os.urandom((2 << 20) + 99)
    (project / "big").write_bytes(data)
    server = daemon(STEPS)
    sent: list[int] = []
    real_sendfile = os.sendfile

    def sendfile(out_fd: int, in_fd: int, offset: int, count: int) -> int:
        n = real_sendfile(out_fd, in_fd, offset, count)
        sent.append(n)
        return n

    monkeypatch.setattr(os, "sendfile", sendfile)
    assert cli_main.main(["build", "-q", str(project)]) == 0
    assert sum(sent) == len(data)  # the client's own sockets take the sendfile path
    _, _, body = build_request(server)
    assert members(body)["big"] == data
    assert body == from_directory(str(project)).read_all()


def test_sockets_in_the_context_are_left_out(project: Path) -> None:
    import socket as socket_module

    server = socket_module.socket(socket_module.AF_UNIX)
    try:
        server.bind(str(project / "src" / "sock"))
        found, _ = context_members(str(project))
    finally:
        server.close()
    assert "src/sock" not in found and "src/a.py" in found
