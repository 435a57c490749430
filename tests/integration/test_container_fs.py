"""A container's filesystem verbs end to end: the archive API and ``cp`` (ours, Docker 28's and
docker-py's), ``diff``, ``export`` and ``commit`` — including hostile symlinks planted in the
container, which must never make the daemon read or write host files — and no mount left behind."""

from __future__ import annotations

import base64
import io
import json
import os
import pty
import secrets
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.daemon_harness import DOCKER, DOCKER_28, Daemon, mounts_under

pytestmark = pytest.mark.root

SETUP = ("mkdir -p /data/sub && echo one > /data/f1 && echo two > /data/sub/f2 && "
         "ln -s /etc /data/etclink && ln -s ../../../../etc/passwd /data/pwlink && "
         "ln -s ../../../../../../tmp /data/tmplink")


class Containers:
    """Makes containers for a test and removes them (and images) afterwards."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.names: list[str] = []
        self.images: list[str] = []

    def running(self, script: str = SETUP) -> str:
        name = f"fs-{secrets.token_hex(4)}"
        self.names.append(name)
        self.daemon.cli("run", "-d", "--name", name, "busybox", "sh", "-c", f"{script}; touch /ready; sleep 600",
                        check=True)
        api = self.daemon.client().api
        for _ in range(200):
            try:
                api.get_archive(name, "/ready")
                return name
            except Exception:  # noqa: BLE001 - not there yet
                time.sleep(0.05)
        raise AssertionError("container never got ready")

    def stopped(self, script: str = SETUP) -> str:
        name = f"fs-{secrets.token_hex(4)}"
        self.names.append(name)
        result = self.daemon.cli("run", "--name", name, "busybox", "sh", "-c", script)
        assert result.returncode == 0, result.stderr
        return name

    def close(self) -> None:
        if self.names:
            self.daemon.cli("rm", "-f", *self.names, timeout=60)
        if self.images:
            self.daemon.cli("rmi", "-f", *self.images, timeout=60)


@pytest.fixture()
def made(daemon: Daemon) -> Iterator[Containers]:
    c = Containers(daemon)
    try:
        yield c
    finally:
        c.close()
        assert not mounts_under(daemon.root), "a mount was left behind"


def _stat(daemon: Daemon, name: str, path: str) -> tuple[int, dict[str, Any] | None]:
    api = daemon.client().api
    response = api.head(api._url("/containers/{0}/archive", name), params={"path": path})
    header = response.headers.get("X-Docker-Container-Path-Stat")
    return response.status_code, json.loads(base64.b64decode(header)) if header else None


def _tar_members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: m for m in tar.getmembers()}


def _get(daemon: Daemon, name: str, path: str) -> tuple[dict[str, Any], bytes]:
    bits, stat = daemon.client().api.get_archive(name, path)
    return stat, b"".join(bits)


def _file_in(daemon: Daemon, name: str, path: str) -> bytes:
    _, data = _get(daemon, name, path)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        member = tar.next()
        assert member is not None and member.isreg(), member
        f = tar.extractfile(member)
        assert f is not None
        return f.read()


def _one_file_tar(name: str, content: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


# -- the archive API -------------------------------------------------------------------------------

@pytest.mark.parametrize("state", ["running", "stopped"])
def test_head_stat_header(daemon: Daemon, made: Containers, state: str) -> None:
    name = made.running() if state == "running" else made.stopped()
    status, st = _stat(daemon, name, "/data/f1")
    assert status == 200 and st is not None
    assert st["name"] == "f1" and st["size"] == 4 and st["mode"] == 0o644 and st["linkTarget"] == ""
    assert st["mtime"].endswith("Z") and st["mtime"][:4].isdigit()
    _, st = _stat(daemon, name, "/data/sub/")
    assert st is not None and st["name"] == "sub" and st["mode"] == (1 << 31) | 0o755
    _, st = _stat(daemon, name, "/data/etclink")
    assert st is not None and st["mode"] == (1 << 27) | 0o777 and st["linkTarget"] == "/etc"
    _, st = _stat(daemon, name, "/data/pwlink")  # climbs above the root: stops at the container's /
    assert st is not None and st["linkTarget"] == "/etc/passwd"
    status, st = _stat(daemon, name, "/nope")
    assert status == 404 and st is None
    with pytest.raises(Exception, match=f"Could not find the file /nope in container {name}"):
        _get(daemon, name, "/nope")


@pytest.mark.parametrize("state", ["running", "stopped"])
def test_get_archive_names_follow_docker(daemon: Daemon, made: Containers, state: str) -> None:
    name = made.running() if state == "running" else made.stopped()
    stat, data = _get(daemon, name, "/data/sub")
    assert stat["name"] == "sub" and sorted(_tar_members(data)) == ["sub", "sub/f2"]
    _, data = _get(daemon, name, "/data/sub/.")
    assert sorted(_tar_members(data)) == [".", "./f2"]
    _, data = _get(daemon, name, "/data/etclink")  # the link itself, not /etc
    members = _tar_members(data)
    assert list(members) == ["etclink"] and members["etclink"].issym()
    _, data = _get(daemon, name, "/data/etclink/")  # a trailing slash follows it
    assert "etclink/passwd" in _tar_members(data)


def test_put_archive_into_running_and_stopped(daemon: Daemon, made: Containers) -> None:
    api = daemon.client().api
    running = made.running()
    assert api.put_archive(running, "/data/sub", _one_file_tar("new.txt", b"hello"))
    assert _file_in(daemon, running, "/data/sub/new.txt") == b"hello"
    stopped = made.stopped()
    assert api.put_archive(stopped, "/data", _one_file_tar("put.txt", b"stopped"))
    assert _file_in(daemon, stopped, "/data/put.txt") == b"stopped"
    cid = api.inspect_container(stopped)["Id"]
    upper = daemon.root / "data" / "snapshots" / "containers" / cid / "upper"
    assert (upper / "data" / "put.txt").read_bytes() == b"stopped"  # landed in the upper dir
    with pytest.raises(Exception, match="extraction point is not a directory"):
        api.put_archive(stopped, "/data/f1", _one_file_tar("x", b"x"))
    with pytest.raises(Exception, match="Could not find the file /missing in container"):
        api.put_archive(stopped, "/missing", _one_file_tar("x", b"x"))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.addfile(tarfile.TarInfo("sub"))  # a regular file over the directory /data/sub
    response = api.put(api._url("/containers/{0}/archive", stopped),
                       params={"path": "/data", "noOverwriteDirNonDir": "true"}, data=buf.getvalue())
    assert response.status_code == 400 and "cannot overwrite directory" in response.json()["message"]


# -- hostile symlinks ------------------------------------------------------------------------------------

@pytest.mark.parametrize("state", ["running", "stopped"])
def test_hostile_symlinks_stay_inside(daemon: Daemon, made: Containers, state: str) -> None:
    name = made.running() if state == "running" else made.stopped()
    api = daemon.client().api
    marker = f"dockyard-escape-{secrets.token_hex(6)}"
    try:
        # writing through a link to /etc writes the container's /etc
        assert api.put_archive(name, "/data/etclink", _one_file_tar(marker, b"inside"))
        assert not Path("/etc", marker).exists()
        assert _file_in(daemon, name, f"/etc/{marker}") == b"inside"
        # through a link climbing out with .. (to the host's /tmp if it were followed on the host)
        assert api.put_archive(name, "/data/tmplink", _one_file_tar(marker, b"tmp"))
        assert not Path("/tmp", marker).exists()
        assert _file_in(daemon, name, f"/tmp/{marker}") == b"tmp"
        # .. in the path argument
        assert api.put_archive(name, "/../../../../../../tmp", _one_file_tar(marker + "2", b"dots"))
        assert not Path("/tmp", marker + "2").exists()
        # a tar whose own entry is a symlink out, then a file through it
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            link = tarfile.TarInfo("evil")
            link.type, link.linkname = tarfile.SYMTYPE, "/etc"
            tar.addfile(link)
            info = tarfile.TarInfo(f"evil/{marker}3")
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
        api.put(api._url("/containers/{0}/archive", name), params={"path": "/data"}, data=buf.getvalue())
        assert not Path("/etc", marker + "3").exists()
    finally:
        for leftover in (Path("/etc", marker), Path("/tmp", marker), Path("/tmp", marker + "2"),
                         Path("/etc", marker + "3")):
            leftover.unlink(missing_ok=True)
    # reading never returns host files
    host_passwd = Path("/etc/passwd").read_bytes()
    container_passwd = _file_in(daemon, name, "/etc/passwd")
    assert container_passwd != host_passwd
    assert _file_in(daemon, name, "/data/etclink/passwd") == container_passwd
    _, st = _stat(daemon, name, "/data/pwlink")
    assert st is not None and st["linkTarget"] == "/etc/passwd"
    assert _file_in(daemon, name, "/../../../../etc/passwd") == container_passwd


# -- cp with our CLI and Docker's ------------------------------------------------------------------------

@pytest.mark.parametrize("cli", ["dockyard", "docker"])
def test_cp_both_ways(daemon: Daemon, made: Containers, tmp_path: Path, cli: str) -> None:
    def cp(*args: str) -> subprocess.CompletedProcess[str]:
        run = daemon.cli if cli == "dockyard" else daemon.docker
        result = run("cp", *args)
        assert result.returncode == 0, result.stderr
        return result

    running = made.running()
    # out of a running container
    cp(f"{running}:/data/f1", str(tmp_path / "f1copy"))
    assert (tmp_path / "f1copy").read_text() == "one\n"
    cp(f"{running}:/data/sub", str(tmp_path / "subcopy"))  # missing dest: becomes the copy
    assert (tmp_path / "subcopy" / "f2").read_text() == "two\n"
    run = daemon.cli if cli == "dockyard" else daemon.docker
    refused = run("cp", f"{running}:/data", str(tmp_path / "datacopy"))  # holds ../../../../etc/passwd
    assert refused.returncode != 0 and "invalid symlink" in refused.stderr
    assert not Path("/etc/passwd").is_symlink()
    (tmp_path / "existing").mkdir()
    cp(f"{running}:/data/sub", str(tmp_path / "existing"))  # existing dir: lands inside
    assert (tmp_path / "existing" / "sub" / "f2").read_text() == "two\n"
    cp(f"{running}:/data/sub/.", str(tmp_path / "existing"))  # trailing /.: contents only
    assert (tmp_path / "existing" / "f2").read_text() == "two\n"
    cp("-L", f"{running}:/data/pwlink", str(tmp_path / "pw"))  # followed inside the container
    assert (tmp_path / "pw").read_bytes() == _file_in(daemon, running, "/etc/passwd")
    assert (tmp_path / "pw").read_bytes() != Path("/etc/passwd").read_bytes()
    # into it
    src = tmp_path / "src"
    (src / "deep").mkdir(parents=True)
    (src / "a.txt").write_text("A")
    (src / "deep" / "b.txt").write_text("B")
    cp(str(src / "a.txt"), f"{running}:/data/sub/")
    assert _file_in(daemon, running, "/data/sub/a.txt") == b"A"
    cp(str(src / "a.txt"), f"{running}:/data/renamed.txt")
    assert _file_in(daemon, running, "/data/renamed.txt") == b"A"
    cp(str(src), f"{running}:/data/newdir")
    assert _file_in(daemon, running, "/data/newdir/deep/b.txt") == b"B"
    cp(str(src) + "/.", f"{running}:/data/sub")
    assert _file_in(daemon, running, "/data/sub/deep/b.txt") == b"B"
    # into a stopped container, and a tar through stdin
    stopped = made.stopped()
    cp(str(src / "a.txt"), f"{stopped}:/data/")
    assert _file_in(daemon, stopped, "/data/a.txt") == b"A"
    piped = subprocess.run([*([sys.executable, "-m", "dockyard.cli.main"] if cli == "dockyard" else [DOCKER]),
                            "cp", "-", f"{stopped}:/data"], input=_one_file_tar("piped.txt", b"P"),
                           capture_output=True, env=daemon.env())
    assert piped.returncode == 0, piped.stderr
    assert _file_in(daemon, stopped, "/data/piped.txt") == b"P"
    out = subprocess.run([*([sys.executable, "-m", "dockyard.cli.main"] if cli == "dockyard" else [DOCKER]),
                          "cp", f"{stopped}:/data/piped.txt", "-"], capture_output=True, env=daemon.env())
    assert out.returncode == 0 and list(_tar_members(out.stdout)) == ["piped.txt"]
    missing = run("cp", f"{stopped}:/nope", str(tmp_path / "nope"))
    # Docker's 20.10 CLI words it itself, from the 404 of HEAD .../archive
    said = "Could not find the file /nope" if cli == "dockyard" or DOCKER == DOCKER_28 else "No such container:path"
    assert missing.returncode != 0 and said in missing.stderr, missing.stderr


@pytest.mark.parametrize("cli", ["dockyard", "docker"])
def test_cp_into_hostile_link_writes_inside(daemon: Daemon, made: Containers, tmp_path: Path, cli: str) -> None:
    name = made.running()
    marker = f"dockyard-cp-escape-{secrets.token_hex(6)}"
    (tmp_path / marker).write_text("M")
    run = daemon.cli if cli == "dockyard" else daemon.docker
    try:
        result = run("cp", str(tmp_path / marker), f"{name}:/data/etclink/")
        assert result.returncode == 0, result.stderr
        assert not Path("/etc", marker).exists()
        assert _file_in(daemon, name, f"/etc/{marker}") == b"M"
    finally:
        Path("/etc", marker).unlink(missing_ok=True)


# -- diff, export, commit ------------------------------------------------------------------------------------

CHANGES = "echo new > /newfile && echo more >> /etc/group && rm /bin/ls && mkdir /newdir && echo x > /newdir/x"
EXPECTED_DIFF = [("/bin", 0), ("/bin/ls", 2), ("/etc", 0), ("/etc/group", 0), ("/newdir", 1), ("/newdir/x", 1),
                 ("/newfile", 1)]


def test_diff(daemon: Daemon, made: Containers) -> None:
    name = made.stopped(CHANGES)
    api = daemon.client().api
    assert [(c["Path"], c["Kind"]) for c in api.diff(name)] == EXPECTED_DIFF
    out = daemon.cli("diff", name, check=True).stdout.splitlines()
    assert out == [f"{'CAD'[k]} {p}" for p, k in EXPECTED_DIFF]
    assert daemon.docker("diff", name, check=True).stdout.splitlines() == out
    fresh = made.stopped("true")
    assert api.diff(fresh) in (None, [])  # the runtime's own mount points are not changes


def test_export(daemon: Daemon, made: Containers, tmp_path: Path) -> None:
    name = made.stopped(CHANGES)
    data = b"".join(daemon.client().containers.get(name).export())
    members = _tar_members(data)
    assert "newfile" in members and "bin/busybox" in members and "newdir/x" in members
    assert "bin/ls" not in members
    daemon.cli("export", "-o", str(tmp_path / "out.tar"), name, check=True)
    assert "newfile" in _tar_members((tmp_path / "out.tar").read_bytes())
    running = made.running()
    members = _tar_members(b"".join(daemon.client().containers.get(running).export()))
    assert "data/f1" in members and not any(n.startswith("proc/") for n in members)
    # never to a terminal
    leader, follower = pty.openpty()
    try:
        result = subprocess.run([sys.executable, "-m", "dockyard.cli.main", "export", name], stdout=follower,
                                stderr=subprocess.PIPE, env=daemon.env(), timeout=30)
    finally:
        os.close(follower)
        os.close(leader)
    assert result.returncode == 1 and b"cowardly refusing to save to a terminal" in result.stderr


def test_commit_and_run(daemon: Daemon, made: Containers) -> None:
    name = made.stopped(CHANGES)
    repo = f"committed-{secrets.token_hex(4)}"
    made.images.append(f"{repo}:v1")
    out = daemon.cli("commit", "-a", "me", "-m", "hello", "-c", 'CMD ["echo","x"]', name, f"{repo}:v1", check=True)
    image_id = out.stdout.strip()
    assert image_id.startswith("sha256:") and len(image_id) == 71
    assert daemon.cli("run", "--rm", f"{repo}:v1", check=True).stdout == "x\n"
    seen = daemon.cli("run", "--rm", f"{repo}:v1", "sh", "-c",
                      "cat /newfile /newdir/x; tail -n1 /etc/group; test -e /bin/ls || echo ls-gone", check=True)
    assert seen.stdout == "new\nx\nmore\nls-gone\n"
    info = daemon.client().api.inspect_image(f"{repo}:v1")
    assert info["Author"] == "me" and info["Comment"] == "hello" and info["Config"]["Cmd"] == ["echo", "x"]
    assert len(info["RootFS"]["Layers"]) == 2
    assert info["Parent"] == daemon.client().api.inspect_image("busybox:latest")["Id"]
    history = daemon.client().api.history(f"{repo}:v1")
    assert history[0]["Comment"] == "hello"


def test_commit_with_docker_cli_and_docker_py(daemon: Daemon, made: Containers) -> None:
    running = made.running("echo kept > /kept && rm /bin/cat")
    repo = f"committed-{secrets.token_hex(4)}"
    made.images += [f"{repo}:docker", f"{repo}:py"]
    daemon.docker("commit", running, f"{repo}:docker", check=True)
    container = daemon.client().containers.get(running)
    image = container.commit(repository=repo, tag="py", changes=['ENV FOO=bar'])
    assert "FOO=bar" in image.attrs["Config"]["Env"]
    for tag in ("docker", "py"):
        seen = daemon.cli("run", "--rm", f"{repo}:{tag}", "sh", "-c", "read x < /kept; echo $x; "
                          "test -e /bin/cat || echo cat-gone", check=True)
        assert seen.stdout == "kept\ncat-gone\n"
    assert daemon.client().api.inspect_container(running)["State"]["Running"]  # unpaused afterwards
    assert not daemon.client().api.inspect_container(running)["State"]["Paused"]


def test_docker_py_archive_roundtrip(daemon: Daemon, made: Containers) -> None:
    container = daemon.client().containers.get(made.running())
    assert container.put_archive("/data", _one_file_tar("py.txt", b"docker-py"))
    bits, stat = container.get_archive("/data/py.txt")
    assert stat["name"] == "py.txt" and stat["size"] == 9
    assert _tar_members(b"".join(bits))["py.txt"].size == 9
    assert {"Path": "/data/py.txt", "Kind": 1} in container.diff()
