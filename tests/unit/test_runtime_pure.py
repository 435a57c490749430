"""Pure parts of the runtime: frames, exit records, env defaults, path resolution, exec lookup."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from dockyard.errors import DockyardError, InvalidParameter
from dockyard.runtime.rootfs import overlay_options, resolve_in_root
from dockyard.runtime.shim import FRAME, ExitRecord, decode_frames, encode_frame, read_exit_record
from dockyard.runtime.spawn import _lookup
from dockyard.runtime.spec import DEFAULT_PATH, ContainerSpec, ProcessSpec, container_env


def test_frame_layout_is_stdcopy() -> None:
    assert encode_frame(1, b"hi") == b"\x01\x00\x00\x00\x00\x00\x00\x02hi"
    assert encode_frame(2, b"") == b"\x02\x00\x00\x00\x00\x00\x00\x00"
    assert FRAME.size == 8
    big = encode_frame(0, b"x" * 70000)
    assert big[4:8] == (70000).to_bytes(4, "big")


def test_decode_frames_keeps_the_incomplete_rest() -> None:
    data = encode_frame(1, b"out") + encode_frame(2, b"err") + encode_frame(1, b"partial")[:10]
    frames, rest = decode_frames(data)
    assert frames == [(1, b"out"), (2, b"err")]
    assert rest == encode_frame(1, b"partial")[:10]
    frames, rest = decode_frames(rest + encode_frame(1, b"partial")[10:])
    assert frames == [(1, b"partial")] and rest == b""


def test_exit_record(tmp_path: Path) -> None:
    assert read_exit_record(tmp_path) is None
    (tmp_path / "exit").write_text(json.dumps({"exit_code": 137, "signal": 9, "finished_at": "T"}))
    assert read_exit_record(tmp_path) == ExitRecord(137, 9, "T")
    (tmp_path / "exit").write_text("{not json")
    with pytest.raises(DockyardError, match="corrupt exit record"):
        read_exit_record(tmp_path)


def test_container_env_adds_docker_defaults() -> None:
    proc = ProcessSpec(args=["sh"], env=["A=1", "HOME=/custom"], cwd="", user="", tty=True, open_stdin=False)
    assert container_env(proc, "box", "/root") == [
        "A=1", "HOME=/custom", f"PATH={DEFAULT_PATH}", "HOSTNAME=box", "TERM=xterm"]
    proc.tty = False
    proc.env = ["PATH=/x"]
    assert container_env(proc, "box", "/home") == ["PATH=/x", "HOSTNAME=box", "HOME=/home"]


def test_resolve_in_root_never_leaves_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "real").mkdir()
    os.symlink("/../../../../etc/shadow", root / "etc" / "abs-escape")
    os.symlink("../../../../../tmp", root / "etc" / "rel-escape")
    os.symlink("/real", root / "link")
    os.symlink("loop", root / "loop")
    r = str(root)
    assert resolve_in_root(r, "/etc/abs-escape") == f"{r}/etc/shadow"
    assert resolve_in_root(r, "/etc/rel-escape/x") == f"{r}/tmp/x"
    assert resolve_in_root(r, "/link/new/file") == f"{r}/real/new/file"
    assert resolve_in_root(r, "../../..") == r
    assert resolve_in_root(r, "/missing/../etc") == f"{r}/etc"
    with pytest.raises(OSError, match="too many levels"):
        resolve_in_root(r, "/loop")


def _spec(tmp: Path, lowers: list[Path]) -> ContainerSpec:
    proc = ProcessSpec(args=["true"], env=[], cwd="", user="", tty=False, open_stdin=False)
    return ContainerSpec(id="0" * 64, state_dir=tmp, lowerdirs=lowers, upperdir=tmp / "c" / "upper",
                         workdir=tmp / "c" / "work", rootfs=tmp / "c" / "merged", hostname="h",
                         network="none", process=proc, log_path=tmp / "log")


def test_overlay_options_short_and_long(tmp_path: Path) -> None:
    data, base = overlay_options(_spec(tmp_path, [tmp_path / "l2", tmp_path / "l1"]))
    assert base is None
    assert data == (f"lowerdir={tmp_path}/l2:{tmp_path}/l1,upperdir={tmp_path}/c/upper,"
                    f"workdir={tmp_path}/c/work")
    many = [tmp_path / "layers" / (f"{i:064x}") for i in range(50)]
    data, base = overlay_options(_spec(tmp_path, many))
    assert base == str(tmp_path) and len(data) < 4096
    assert data.startswith(f"lowerdir=layers/{0:064x}:layers/{1:064x}:")


def test_lookup_follows_gos_lookpath(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "tool").write_text("#!/bin/sh\n")
    (bindir / "tool").chmod(0o755)
    (bindir / "plain").write_text("")
    (bindir / "plain").chmod(0o644)
    env = [f"PATH=/nonexistent:{bindir}"]
    assert _lookup("tool", env) == f"{bindir}/tool"
    with pytest.raises(InvalidParameter) as info:
        _lookup("plain", env)
    assert (info.value.message, info.value.exit_code) == (
        'exec: "plain": executable file not found in $PATH', 127)
    with pytest.raises(InvalidParameter) as info:
        _lookup(f"{bindir}/nope", env)
    assert info.value.exit_code == 127 and "no such file or directory" in info.value.message
    with pytest.raises(InvalidParameter) as info:
        _lookup(f"{bindir}/plain", env)
    assert (info.value.message, info.value.exit_code) == (f'exec: "{bindir}/plain": permission denied', 126)
    with pytest.raises(InvalidParameter) as info:
        _lookup(str(bindir), env)
    assert info.value.exit_code == 126
