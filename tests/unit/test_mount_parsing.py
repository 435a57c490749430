"""Parsing of -v, --mount, --tmpfs and volume names, with Docker's messages (no root needed)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from dockyard.cli.options.mounts import parse_mount as cli_parse_mount
from dockyard.cli.options.mounts import ram_in_bytes
from dockyard.containers import mounts
from dockyard.errors import Conflict, InvalidParameter, NotFound
from dockyard.runtime import syscalls as sc
from dockyard.runtime.mounts import split_options
from dockyard.volumes.service import ANONYMOUS_LABEL, VolumeService


def test_parse_bind_forms() -> None:
    named = mounts.parse_bind("data:/srv")
    assert (named["Type"], named["Name"], named["Mode"], named["RW"]) == ("volume", "data", "z", True)
    ro = mounts.parse_bind("/host/dir/:/x:ro,rslave")
    assert (ro["Type"], ro["Source"], ro["RW"], ro["Propagation"]) == ("bind", "/host/dir", False, "rslave")
    anon = mounts.parse_bind("/only")
    assert anon["Type"] == "volume" and anon["Anonymous"] and anon["Name"] == ""
    assert mounts.parse_bind("/h:/x")["Propagation"] == "rprivate"


@pytest.mark.parametrize("spec, message", [
    ("a:b:c:d", "invalid volume specification: 'a:b:c:d'"),
    ("data:relative", "mount path must be absolute"),
    ("/h:/x:bogus", "invalid mode: bogus"),
    ("/h:/x:ro,rw", "invalid mode: ro,rw"),
    ("bad/name:/x", 'includes invalid characters for a local volume name'),
    ("/h:/", "destination can't be '/'"),
])
def test_parse_bind_errors(spec: str, message: str) -> None:
    with pytest.raises(InvalidParameter) as caught:
        mounts.parse_bind(spec)
    assert message in caught.value.message


def test_parse_mount_api_validation(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameter, match='invalid mount config for type "bind": field Source must not be empty'):
        mounts.parse_mount({"Type": "bind", "Target": "/x"})
    with pytest.raises(InvalidParameter, match="bind source path does not exist: /no/such/dir"):
        mounts.parse_mount({"Type": "bind", "Source": "/no/such/dir", "Target": "/x"})
    with pytest.raises(InvalidParameter, match='type "tmpfs": field Source must not be specified'):
        mounts.parse_mount({"Type": "tmpfs", "Source": "x", "Target": "/x"})
    with pytest.raises(InvalidParameter, match='type "volume": field BindOptions must not be specified'):
        mounts.parse_mount({"Type": "volume", "Target": "/x", "BindOptions": {"Propagation": "shared"}})
    with pytest.raises(InvalidParameter, match='type "nfs": mount type unknown'):
        mounts.parse_mount({"Type": "nfs", "Target": "/x"})
    tmpfs = mounts.parse_mount({"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 3 << 20, "Mode": 0o1770}})
    assert tmpfs["Options"] == ["noexec", "nosuid", "nodev", "size=3m", "mode=1770"]
    bind = mounts.parse_mount({"Type": "bind", "Source": str(tmp_path), "Target": "/b", "ReadOnly": True})
    assert (bind["RW"], bind["Propagation"]) == (False, "rprivate")


def test_plan_precedence_and_duplicates() -> None:
    config: dict = {}
    planned = mounts.plan({"Binds": ["v1:/data"], "Tmpfs": {"/run": "size=1m"}}, config, {"/data": {}, "/img": {}},
                          lambda ref: (_ for _ in ()).throw(NotFound(ref)))
    by_dest = {m["Destination"]: m for m in planned}
    assert by_dest["/data"]["Name"] == "v1" and by_dest["/img"]["Anonymous"] and by_dest["/img"]["Origin"] == "image"
    assert by_dest["/run"]["Listed"] is False
    assert config["Volumes"] == {"/data": {}, "/img": {}}
    with pytest.raises(InvalidParameter, match="Duplicate mount point: /data"):
        mounts.plan({"Binds": ["v1:/data", "/h:/data"]}, {}, {}, lambda ref: None)
    with pytest.raises(NotFound, match="No such container: ghost"):
        mounts.plan({"VolumesFrom": ["ghost:ro"]}, {}, {}, lambda ref: (_ for _ in ()).throw(NotFound(ref)))


def test_cli_mount_flag() -> None:
    parsed = cli_parse_mount("type=volume,src=v,dst=/d,volume-opt=type=tmpfs,volume-label=a=b,ro")
    assert parsed == {"Type": "volume", "Source": "v", "Target": "/d", "ReadOnly": True,
                      "VolumeOptions": {"DriverConfig": {"Options": {"type": "tmpfs"}}, "Labels": {"a": "b"}}}
    assert cli_parse_mount("type=tmpfs,target=/t,tmpfs-size=64m,tmpfs-mode=1777")["TmpfsOptions"] == \
        {"SizeBytes": 64 << 20, "Mode": 0o1777}
    for text, message in [("type=bind,source=/x", "target is required"),
                          ("type=bind,target=/x,bogus=1", "unexpected key 'bogus' in 'bogus=1'"),
                          ("type=bind,target=/x,source", "invalid field 'source' must be a key=value pair"),
                          ("type=bind,target=/x,tmpfs-size=1m", "cannot mix 'tmpfs-*' options with mount type 'bind'"),
                          ("type=tmpfs,target=/x,tmpfs-size=lots", "invalid value for tmpfs-size: lots")]:
        with pytest.raises(ValueError) as caught:
            cli_parse_mount(text)
        assert str(caught.value) == message
    assert ram_in_bytes("1g") == 1 << 30 and ram_in_bytes("512KiB") == 512 << 10 and ram_in_bytes("x") is None


def test_split_options() -> None:
    flags, data = split_options(["noexec", "nosuid", "nodev", "exec", "size=1m", "mode=1777", "ro"])
    assert flags == sc.MS_NOSUID | sc.MS_NODEV | sc.MS_RDONLY
    assert data == "size=1m,mode=1777"


def test_volume_service(tmp_path: Path) -> None:
    service = VolumeService(tmp_path)
    users: dict[str, list[str]] = {}
    lookup = lambda n: users.get(n, [])  # noqa: E731

    async def scenario() -> None:
        named = await service.create("named", labels={"a": "1"})
        assert Path(named.mountpoint).is_dir() and await service.create("named") is named
        # Two creates of one name at once: one volume, the second waits for the first.
        twins = await asyncio.gather(service.create("twin"), service.create("twin"))
        assert twins[0] is twins[1]
        await service.remove("twin", lookup)
        anon = await service.create()
        assert len(anon.name) == 64 and anon.labels == {ANONYMOUS_LABEL: ""}
        with pytest.raises(InvalidParameter, match="supports type=tmpfs and type=none,o=bind,device=<dir> only"):
            await service.create("nfs", options={"type": "nfs", "device": ":/export"})
        with pytest.raises(NotFound, match="plugin \"other\" not found"):
            await service.create("x1", driver="other")
        users["named"] = ["c" * 64]
        with pytest.raises(Conflict, match=f"remove named: volume is in use - \\[{'c' * 64}\\]"):
            await service.remove("named", lookup)
        assert [v.name for v in service.select({"dangling": ["true"]}, lookup, ("dangling",))] == [anon.name]
        assert (await service.prune({}, lookup))["VolumesDeleted"] == [anon.name]
        users.clear()
        assert (await service.prune({}, lookup))["VolumesDeleted"] == []
        assert (await service.prune({"all": ["true"]}, lookup))["VolumesDeleted"] == ["named"]

    asyncio.run(scenario())
    reloaded = VolumeService(tmp_path)
    assert reloaded.listing({}, lookup) == {"Volumes": [], "Warnings": []}
