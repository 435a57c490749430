"""Volumes and mounts: named and anonymous volumes, binds, tmpfs, --volumes-from, image VOLUMEs,
through our CLI, Docker's 28 CLI and docker-py."""

from __future__ import annotations

import io
import json
import os
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.daemon_harness import Daemon, mounts_under

pytestmark = pytest.mark.root


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture()
def cleanup(daemon: Daemon) -> Iterator[list[str]]:
    """Names appended here (``c:<container>`` or ``v:<volume>``) are removed after the test."""
    made: list[str] = []
    yield made
    containers = [n[2:] for n in made if n.startswith("c:")]
    if containers:
        daemon.cli("rm", "-f", "-v", *containers)
    volumes = [n[2:] for n in made if n.startswith("v:")]
    if volumes:
        daemon.cli("volume", "rm", "-f", *volumes)
    assert not [m for m in mounts_under(daemon.root) if "/volumes/" in m]


def run(daemon: Daemon, *args: str) -> tuple[int, str, str]:
    result = daemon.cli("run", *args, timeout=60)
    return result.returncode, result.stdout, result.stderr


def inspect(daemon: Daemon, ref: str) -> dict:
    result = daemon.cli("inspect", ref, check=True)
    return json.loads(result.stdout)[0]


def volume_names(daemon: Daemon, *filters: str) -> set[str]:
    argv = ["volume", "ls", "-q"]
    for f in filters:
        argv += ["--filter", f]
    return set(daemon.cli(*argv, check=True).stdout.split())


def image_with(daemon: Daemon, busybox_tar: Path, tmp_path: Path, extra: list[tuple[tarfile.TarInfo, bytes]],
               changes: list[str]) -> str:
    """busybox plus ``extra`` tar entries, imported with ``changes``; returns its reference."""
    path = tmp_path / "image.tar"
    with tarfile.open(busybox_tar) as src, tarfile.open(path, "w") as dst:
        for member in src.getmembers():
            dst.addfile(member, src.extractfile(member) if member.isfile() else None)
        for info, data in extra:
            dst.addfile(info, io.BytesIO(data) if info.isfile() else None)
    ref = unique("volimg") + ":latest"
    argv = ["import"]
    for change in changes:
        argv += ["--change", change]
    daemon.cli(*argv, str(path), ref, check=True, timeout=120)
    return ref


def entry(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", mode: int = 0o644, uid: int = 0,
          gid: int = 0, link: str = "") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.uid, info.gid = uid, gid
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.linkname = link
    return info, data


# -- named volumes ------------------------------------------------------------------------------

def test_named_volume_survives_rm_and_is_reused(daemon: Daemon, cleanup: list[str]) -> None:
    vol = unique("data")
    cleanup.append(f"v:{vol}")
    code, out, err = run(daemon, "--rm", "-v", f"{vol}:/data", "busybox", "sh", "-c", "echo kept > /data/f")
    assert code == 0, err
    assert vol in volume_names(daemon)
    code, out, err = run(daemon, "--rm", "-v", f"{vol}:/data", "busybox", "cat", "/data/f")
    assert (code, out) == (0, "kept\n"), err
    info = json.loads(daemon.cli("volume", "inspect", vol, check=True).stdout)[0]
    assert info["Name"] == vol and info["Driver"] == "local" and info["Scope"] == "local"
    assert Path(info["Mountpoint"], "f").read_text() == "kept\n"


def test_volume_create_ls_inspect_rm_cli(daemon: Daemon, cleanup: list[str]) -> None:
    vol = unique("made")
    cleanup.append(f"v:{vol}")
    out = daemon.cli("volume", "create", "--label", "team=a", vol, check=True).stdout
    assert out == vol + "\n"
    ls = daemon.cli("volume", "ls", check=True).stdout.splitlines()
    assert ls[0].split() == ["DRIVER", "VOLUME", "NAME"]
    assert any(line.split() == ["local", vol] for line in ls)
    fmt = daemon.cli("volume", "ls", "--filter", f"name={vol}", "--format", "{{.Name}} {{.Labels}}", check=True)
    assert fmt.stdout == f"{vol} team=a\n"
    bad = daemon.cli("volume", "create", "bad/name")
    assert bad.returncode == 1 and "includes invalid characters for a local volume name" in bad.stderr
    missing = daemon.cli("volume", "inspect", unique("nope"))
    assert missing.returncode == 1 and "no such volume" in missing.stderr
    assert daemon.cli("volume", "rm", vol, check=True).stdout == vol + "\n"
    assert vol not in volume_names(daemon)


def test_in_use_volume_is_refused_with_409(daemon: Daemon, cleanup: list[str]) -> None:
    vol, name = unique("busy"), unique("holder")
    cleanup += [f"c:{name}", f"v:{vol}"]
    daemon.docker("create", "--name", name, "-v", f"{vol}:/data", "busybox", "true", check=True)
    cid = inspect(daemon, name)["Id"]
    result = daemon.cli("volume", "rm", vol)
    assert result.returncode == 1
    assert f"remove {vol}: volume is in use - [{cid}]" in result.stderr
    import docker

    client = daemon.client()
    with pytest.raises(docker.errors.APIError) as caught:
        client.volumes.get(vol).remove()
    assert caught.value.status_code == 409
    assert vol not in volume_names(daemon, "dangling=true")
    assert vol in volume_names(daemon, "dangling=false")


def test_rm_v_removes_anonymous_volumes_only(daemon: Daemon, cleanup: list[str]) -> None:
    vol, name = unique("named"), unique("rmv")
    cleanup += [f"c:{name}", f"v:{vol}"]
    daemon.docker("create", "--name", name, "-v", f"{vol}:/named", "-v", "/anon", "busybox", "true", check=True)
    mounts = {m["Destination"]: m for m in inspect(daemon, name)["Mounts"]}
    assert mounts["/named"]["Name"] == vol and mounts["/named"]["Mode"] == "z"
    anon = mounts["/anon"]["Name"]
    assert len(anon) == 64 and mounts["/anon"]["Type"] == "volume" and mounts["/anon"]["RW"] is True
    assert {vol, anon} <= volume_names(daemon)
    daemon.cli("rm", "-v", name, check=True)
    names = volume_names(daemon)
    assert vol in names and anon not in names


def test_auto_remove_drops_anonymous_volume(daemon: Daemon, cleanup: list[str]) -> None:
    before = volume_names(daemon)
    code, _, err = run(daemon, "--rm", "-v", "/scratch", "busybox", "sh", "-c", "echo x > /scratch/f")
    assert code == 0, err
    assert volume_names(daemon) - before == set()


def test_prune_and_filters(daemon: Daemon, cleanup: list[str]) -> None:
    named, label = unique("keep"), unique("lbl")
    cleanup.append(f"v:{named}")
    daemon.cli("volume", "create", "--label", f"{label}=1", named, check=True)
    anon = daemon.cli("volume", "create", "--label", f"{label}=2", check=True).stdout.strip()
    cleanup.append(f"v:{anon}")
    assert volume_names(daemon, f"label={label}") == {named, anon}
    assert volume_names(daemon, f"label={label}=2") == {anon}
    assert named in volume_names(daemon, "driver=local", f"name={named[:8]}")
    assert not volume_names(daemon, "driver=other", f"label={label}")
    bad = daemon.cli("volume", "ls", "--filter", "colour=red")
    assert bad.returncode != 0 and "invalid filter 'colour'" in bad.stderr
    out = daemon.cli("volume", "prune", "-f", "--filter", f"label={label}", check=True).stdout
    assert anon in out and named not in out and "Total reclaimed space:" in out
    assert volume_names(daemon, f"label={label}") == {named}
    out = daemon.cli("volume", "prune", "-f", "--all", "--filter", f"label={label}", check=True).stdout
    assert named in out
    assert not volume_names(daemon, f"label={label}")


# -- binds, tmpfs, volumes-from --------------------------------------------------------------------------

def test_bind_ro_rw_and_file(daemon: Daemon, tmp_path: Path, cleanup: list[str]) -> None:
    host = tmp_path / "share"
    host.mkdir()
    (host / "in").write_text("from host\n")
    code, out, err = run(daemon, "--rm", "-v", f"{host}:/x:ro", "busybox", "sh", "-c",
                         "cat /x/in; echo no > /x/new")
    assert code != 0 and out == "from host\n" and "Read-only file system" in err
    assert not (host / "new").exists()
    code, _, err = run(daemon, "--rm", "-v", f"{host}:/x", "busybox", "sh", "-c", "echo yes > /x/new")
    assert code == 0, err
    assert (host / "new").read_text() == "yes\n"
    greeting = tmp_path / "greeting.txt"
    greeting.write_text("hello file\n")
    code, out, err = run(daemon, "--rm", "-v", f"{greeting}:/etc/greeting:ro", "busybox", "cat", "/etc/greeting")
    assert (code, out) == (0, "hello file\n"), err
    created = tmp_path / "made" / "by-v"
    code, _, err = run(daemon, "--rm", "-v", f"{created}:/m", "busybox", "true")
    assert code == 0 and created.is_dir(), err
    result = daemon.cli("run", "--rm", "--mount", f"type=bind,source={tmp_path}/absent,target=/m", "busybox", "true")
    assert result.returncode == 125
    assert f'invalid mount config for type "bind": bind source path does not exist: {tmp_path}/absent' \
        in result.stderr
    assert not (tmp_path / "absent").exists()
    result = daemon.cli("run", "--rm", "--mount", "type=bind,source=/tmp", "busybox", "true")
    assert result.returncode == 125 and 'for "--mount" flag: target is required' in result.stderr


def test_bind_inspect_view(daemon: Daemon, tmp_path: Path, cleanup: list[str]) -> None:
    name = unique("bview")
    cleanup.append(f"c:{name}")
    daemon.docker("create", "--name", name, "-v", f"{tmp_path}:/b:ro", "--mount",
               f"type=bind,src={tmp_path},dst=/c,bind-propagation=rslave", "--tmpfs", "/t:size=1m", "busybox",
               "true", check=True)
    info = inspect(daemon, name)
    mounts = {m["Destination"]: m for m in info["Mounts"]}
    assert mounts["/b"] == {"Type": "bind", "Source": str(tmp_path), "Destination": "/b", "Mode": "ro", "RW": False,
                            "Propagation": "rprivate"}
    assert mounts["/c"]["Propagation"] == "rslave" and mounts["/c"]["RW"] is True
    assert "/t" not in mounts  # Docker does not list --tmpfs mounts
    assert info["HostConfig"]["Binds"] == [f"{tmp_path}:/b:ro"]
    assert info["HostConfig"]["Tmpfs"] == {"/t": "size=1m"}
    assert info["HostConfig"]["Mounts"][0]["Type"] == "bind"


def test_tmpfs_has_its_size(daemon: Daemon) -> None:
    code, out, err = run(daemon, "--rm", "--tmpfs", "/t:size=1m,mode=1770", "--mount",
                         "type=tmpfs,target=/u,tmpfs-size=2m", "busybox", "sh", "-c",
                         "grep -E ' /(t|u) ' /proc/mounts; stat -c %a /t")
    assert code == 0, err
    lines = out.splitlines()
    t = next(line for line in lines if " /t " in line)
    u = next(line for line in lines if " /u " in line)
    assert t.split()[2] == "tmpfs" and "size=1024k" in t and "noexec" in t and "nosuid" in t and "nodev" in t
    assert u.split()[2] == "tmpfs" and "size=2048k" in u
    assert lines[-1] == "1770"


def test_volumes_from(daemon: Daemon, cleanup: list[str]) -> None:
    vol, source = unique("shared"), unique("source")
    cleanup += [f"c:{source}", f"v:{vol}"]
    code, _, err = run(daemon, "--name", source, "-v", f"{vol}:/shared", "-v", "/anon", "busybox", "sh", "-c",
                       "echo one > /shared/f; echo two > /anon/g")
    assert code == 0, err
    code, out, err = run(daemon, "--rm", "--volumes-from", source, "busybox", "cat", "/shared/f", "/anon/g")
    assert (code, out) == (0, "one\ntwo\n"), err
    code, out, err = run(daemon, "--rm", "--volumes-from", f"{source}:ro", "busybox", "sh", "-c",
                         "cat /shared/f; touch /shared/nope")
    assert code != 0 and out == "one\n" and "Read-only file system" in err
    missing = daemon.cli("run", "--rm", "--volumes-from", unique("ghost"), "busybox", "true")
    assert missing.returncode == 125 and "No such container" in missing.stderr


# -- image volumes, symlinks ------------------------------------------------------------------------------

def test_image_volume_is_copied_up(daemon: Daemon, busybox_tar: Path, tmp_path: Path, cleanup: list[str]) -> None:
    ref = image_with(daemon, busybox_tar, tmp_path,
                     [entry("data", tarfile.DIRTYPE, mode=0o750, uid=1000, gid=1000),
                      entry("data/seed", data=b"seeded\n", mode=0o640, uid=1000, gid=1001)],
                     ["VOLUME /data"])
    name = unique("seeded")
    cleanup.append(f"c:{name}")
    try:
        code, out, err = run(daemon, "--name", name, ref, "sh", "-c",
                             "cat /data/seed; stat -c '%u:%g %a' /data /data/seed; echo more > /data/new")
        assert code == 0, err
        assert out.splitlines() == ["seeded", "1000:1000 750", "1000:1001 640"]
        mount = inspect(daemon, name)["Mounts"][0]
        assert mount["Type"] == "volume" and mount["Destination"] == "/data" and len(mount["Name"]) == 64
        assert sorted(os.listdir(mount["Source"])) == ["new", "seed"]
        daemon.docker("start", name, check=True)  # not empty any more: nothing is copied over its data
        assert daemon.docker("wait", name, check=True).stdout == "0\n"
        assert (Path(mount["Source"]) / "new").read_text() == "more\n"
        daemon.cli("rm", "-v", name, check=True)
        assert mount["Name"] not in volume_names(daemon)
    finally:
        daemon.cli("rmi", ref)


def test_symlink_at_destination_stays_inside_rootfs(daemon: Daemon, busybox_tar: Path, tmp_path: Path,
                                                    cleanup: list[str]) -> None:
    outside = tmp_path / "outside"
    ref = image_with(daemon, busybox_tar, tmp_path, [entry("escape", tarfile.SYMTYPE, link=str(outside)),
                                                     entry("up", tarfile.SYMTYPE, link="/")], [])
    host = tmp_path / "src"
    host.mkdir()
    (host / "marker").write_text("m\n")
    try:
        code, out, err = run(daemon, "--rm", "-v", f"{host}:/escape", "--tmpfs", "/up/tmp/x", ref, "sh", "-c",
                             f"cat {outside}/marker; grep -c ' /tmp/x ' /proc/mounts")
        assert (code, out) == (0, "m\n1\n"), err
        assert not outside.exists()
        assert not [m for m in mounts_under(tmp_path)]
    finally:
        daemon.cli("rmi", ref)


# -- Docker's CLI and docker-py -------------------------------------------------------------------------------

def test_docker_cli_volumes(daemon: Daemon, tmp_path: Path, cleanup: list[str]) -> None:
    vol = unique("dockercli")
    cleanup.append(f"v:{vol}")
    assert daemon.docker("volume", "create", vol, check=True).stdout.strip() == vol
    ls = daemon.docker("volume", "ls", "--filter", f"name={vol}", check=True).stdout.splitlines()
    assert ls[0].split() == ["DRIVER", "VOLUME", "NAME"] and ls[1].split() == ["local", vol]
    out = daemon.docker("run", "--rm", "-v", f"{vol}:/v", "-v", f"{tmp_path}:/h", "busybox", "sh", "-c",
                        "echo docker > /v/f; echo host > /h/f; cat /v/f", check=True, timeout=60).stdout
    assert out == "docker\n" and (tmp_path / "f").read_text() == "host\n"
    result = daemon.docker("volume", "inspect", "--format", "{{.Driver}} {{.Scope}}", vol, check=True)
    assert result.stdout == "local local\n"
    assert daemon.docker("volume", "rm", vol, check=True).stdout.strip() == vol


def test_docker_py_volumes(daemon: Daemon, cleanup: list[str]) -> None:
    client = daemon.client()
    vol = unique("dockerpy")
    cleanup.append(f"v:{vol}")
    created = client.volumes.create(name=vol, labels={"k": "v"})
    assert created.name == vol and created.attrs["Labels"] == {"k": "v"}
    assert vol in [v.name for v in client.volumes.list()]
    assert client.volumes.get(vol).attrs["Mountpoint"].endswith(f"/volumes/{vol}/_data")
    output = client.containers.run("busybox", ["sh", "-c", "echo py > /d/f; cat /d/f"], remove=True,
                                   volumes={vol: {"bind": "/d", "mode": "rw"}})
    assert output == b"py\n"
    anon = client.volumes.create()
    cleanup.append(f"v:{anon.name}")
    report = client.volumes.prune(filters={"label": ["com.docker.volume.anonymous"]})
    assert anon.name in (report["VolumesDeleted"] or []) and vol not in (report["VolumesDeleted"] or [])
    client.volumes.get(vol).remove()
    assert vol not in [v.name for v in client.volumes.list()]


# -- restart ------------------------------------------------------------------------------------------------------

def test_mounts_survive_daemon_restart(fresh_daemon: Daemon, tmp_path: Path) -> None:
    vol, name = unique("durable"), unique("again")
    fresh_daemon.cli("run", "--name", name, "-v", f"{vol}:/d", "-v", f"{tmp_path}:/h", "busybox", "sh", "-c",
                     "echo 1 >> /d/log; cat /d/log", check=True, timeout=60)
    fresh_daemon.stop()
    fresh_daemon.start()
    fresh_daemon.docker("start", name, check=True, timeout=60)
    assert fresh_daemon.docker("wait", name, check=True).stdout == "0\n"
    mountpoint = fresh_daemon.cli("volume", "inspect", "--format", "{{.Mountpoint}}", vol, check=True).stdout.strip()
    assert Path(mountpoint, "log").read_text() == "1\n1\n"
    mounts = {m["Destination"]: m for m in json.loads(fresh_daemon.cli("inspect", name, check=True).stdout)[0]["Mounts"]}
    assert mounts["/d"]["Name"] == vol and mounts["/h"]["Source"] == str(tmp_path)
    assert vol in fresh_daemon.cli("volume", "ls", "-q", check=True).stdout.split()


def test_local_driver_options(daemon: Daemon, tmp_path: Path, cleanup: list[str]) -> None:
    tmpfs_vol, bind_vol = unique("tmpfsvol"), unique("bindvol")
    cleanup += [f"v:{tmpfs_vol}", f"v:{bind_vol}"]
    daemon.cli("volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=1m", tmpfs_vol, check=True)
    daemon.cli("volume", "create", "-o", "type=none", "-o", "o=bind", "-o", f"device={tmp_path}", bind_vol,
               check=True)
    code, out, err = run(daemon, "--rm", "-v", f"{tmpfs_vol}:/t", "-v", f"{bind_vol}:/b", "busybox", "sh", "-c",
                         "grep ' /t ' /proc/mounts; echo via-volume > /b/f")
    assert code == 0, err
    assert out.split()[2] == "tmpfs" and "size=1024k" in out
    assert (tmp_path / "f").read_text() == "via-volume\n"
    refused = daemon.cli("volume", "create", "-o", "type=nfs", "-o", "device=:/export", unique("nfs"))
    assert refused.returncode == 1 and "supports type=tmpfs and type=none,o=bind,device=<dir> only" in refused.stderr
