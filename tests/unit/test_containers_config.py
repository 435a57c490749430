"""Docker's rules for merging a create request with the image's config (no root)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dockyard.containers.clock import human_duration
from dockyard.containers.config import build_config, build_host_config
from dockyard.containers.logs import LogOptions, frame, read_entries, render, select
from dockyard.containers.names import generate_name, validate_name
from dockyard.daemon.config import load_config
from dockyard.errors import InvalidParameter
from dockyard.formats import timestamps

IMAGE = {"Env": ["PATH=/bin", "A=image"], "Cmd": ["sh"], "Entrypoint": None, "WorkingDir": "/srv",
         "User": "nobody", "Labels": {"from": "image"}, "StopSignal": "SIGQUIT"}


def test_cmd_falls_back_to_the_image() -> None:
    c = build_config({"Image": "x"}, IMAGE)
    assert c["Cmd"] == ["sh"] and c["Entrypoint"] is None
    assert c["WorkingDir"] == "/srv" and c["User"] == "nobody" and c["StopSignal"] == "SIGQUIT"


def test_entrypoint_override_drops_image_cmd() -> None:
    c = build_config({"Image": "x", "Entrypoint": ["echo"]}, IMAGE)
    assert c["Entrypoint"] == ["echo"] and c["Cmd"] is None


def test_empty_entrypoint_resets_it() -> None:
    image = {**IMAGE, "Entrypoint": ["/init"]}
    c = build_config({"Image": "x", "Entrypoint": [""], "Cmd": ["ls"]}, image)
    assert c["Entrypoint"] is None and c["Cmd"] == ["ls"]


def test_string_cmd_from_old_clients() -> None:
    assert build_config({"Image": "x", "Cmd": "date"}, IMAGE)["Cmd"] == ["date"]


def test_env_merges_by_key_and_labels_merge() -> None:
    c = build_config({"Image": "x", "Env": ["A=mine", "B=2"], "Labels": {"k": "v"}}, IMAGE)
    assert c["Env"] == ["PATH=/bin", "A=mine", "B=2"]
    assert c["Labels"] == {"from": "image", "k": "v"}


def test_default_path_added_when_the_image_has_none() -> None:
    c = build_config({"Image": "x", "Cmd": ["true"]}, {})
    assert c["Env"][0].startswith("PATH=/usr/local/sbin:")


def test_no_command_is_an_error() -> None:
    with pytest.raises(InvalidParameter, match="No command specified"):
        build_config({"Image": "x"}, {})


def test_host_config_refuses_what_it_would_ignore() -> None:
    assert build_host_config({"NetworkMode": "none", "Binds": None, "Privileged": False})["NetworkMode"] == "none"
    with pytest.raises(InvalidParameter, match="StorageOpt"):  # Binds are handled now (containers/mounts.py)
        build_host_config({"StorageOpt": {"size": "1G"}})
    # Restart policies and log drivers are handled now (containers/restart.py, containers/logdrivers.py).
    with pytest.raises(InvalidParameter, match="unknown policy 'sometimes'"):
        build_host_config({"RestartPolicy": {"Name": "sometimes"}})
    assert build_host_config({"RestartPolicy": {"Name": "always"}})["RestartPolicy"] == \
        {"Name": "always", "MaximumRetryCount": 0}


def test_names() -> None:
    assert validate_name("/web-1") == "web-1"
    with pytest.raises(InvalidParameter, match=r"Invalid container name \(a b\)"):
        validate_name("a b")
    name = generate_name(set())
    assert "_" in name and validate_name(name) == name


def test_human_durations() -> None:
    assert [human_duration(s) for s in (0.5, 1, 5, 61, 300, 3600, 7200)] == [
        "Less than a second", "1 second", "5 seconds", "About a minute", "5 minutes", "About an hour", "2 hours"]


def test_log_selection_tail_streams_and_timestamps(tmp_path: Path) -> None:
    log = tmp_path / "c-json.log"
    rotated = tmp_path / "c-json.log.1"
    rotated.write_text(json.dumps({"log": "old\n", "stream": "stdout", "time": timestamps.format_ns(1_000_000_000)}) + "\n")
    lines = [("a\n", "stdout", 2), ("b\n", "stderr", 3), ("c\n", "stdout", 4)]
    log.write_text("".join(json.dumps({"log": t, "stream": s, "time": timestamps.format_ns(n * 1_000_000_000)}) + "\n"
                           for t, s, n in lines) + '{"log": "torn')
    everything = [e.data for e in select(read_entries(log), LogOptions())]
    assert everything == [b"old\n", b"a\n", b"b\n", b"c\n"]
    assert [e.data for e in select(read_entries(log), LogOptions(tail=2))] == [b"b\n", b"c\n"]
    assert [e.data for e in select(read_entries(log), LogOptions(tail=0))] == []
    assert [e.data for e in select(read_entries(log), LogOptions(stderr=False))] == [b"old\n", b"a\n", b"c\n"]
    assert [e.data for e in select(read_entries(log), LogOptions(since=2.5, until=3.5))] == [b"b\n"]
    entry = next(iter(select(read_entries(log), LogOptions(stdout=False))))
    assert render(entry, LogOptions(), tty=False) == frame(2, b"b\n") == b"\x02\x00\x00\x00\x00\x00\x00\x02b\n"
    assert render(entry, LogOptions(timestamps=True), tty=True) == b"1970-01-01T00:00:03.000000000Z b\n"


def test_daemon_config_file(tmp_path: Path) -> None:
    f = tmp_path / "daemon.json"
    f.write_text(json.dumps({"data-root": str(tmp_path / "r"), "log-level": "debug"}))
    config = load_config({"hosts": ["unix:///tmp/x.sock"]}, f)
    assert config.root == tmp_path / "r" and config.hosts == ["unix:///tmp/x.sock"] and config.log_level == "debug"
    f.write_text(json.dumps({"bogus": 1}))
    with pytest.raises(InvalidParameter, match="don't match any configuration option: bogus"):
        load_config({}, f)
    f.write_text(json.dumps({"data-root": "/a"}))
    with pytest.raises(InvalidParameter, match="specified both as a flag and in the configuration file"):
        load_config({"data-root": "/b"}, f)
    with pytest.raises(InvalidParameter, match="no such file"):
        load_config({}, tmp_path / "missing.json")
