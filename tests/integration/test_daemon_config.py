"""The daemon's flags and daemon.json: tcp hosts, data-root, one daemon per root (needs root)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import docker
import pytest

from tests.integration.daemon_harness import free_port, terminate

pytestmark = pytest.mark.root


def start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:  # the daemon has its own copy of the fd
        return subprocess.Popen([sys.executable, "-m", "dockyard.daemon.main", *args], stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)


def test_config_file_with_unix_and_tcp_hosts(tmp_path: Path) -> None:
    port = free_port()
    sock = tmp_path / "d.sock"
    config = tmp_path / "daemon.json"
    config.write_text(json.dumps({"data-root": str(tmp_path / "root"), "log-level": "debug",
                                  "hosts": [f"unix://{sock}", f"tcp://127.0.0.1:{port}"], "tls": False}))
    proc = start(["--config-file", str(config)], tmp_path / "log")
    try:
        deadline = time.monotonic() + 20
        while not sock.exists():
            assert proc.poll() is None, (tmp_path / "log").read_text()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        over_tcp = docker.DockerClient(base_url=f"tcp://127.0.0.1:{port}", version="auto")
        over_unix = docker.DockerClient(base_url=f"unix://{sock}", version="auto")
        try:
            assert over_tcp.ping() and over_unix.ping()
            assert over_tcp.info()["DockerRootDir"] == str(tmp_path / "root")
        finally:
            over_tcp.close()
            over_unix.close()
        assert oct(os.stat(sock).st_mode & 0o777) == "0o660"
        assert (tmp_path / "root" / "daemon.log").read_text().count("API listening on") == 2
        # A second daemon on the same root is refused, and the first keeps serving.
        second = start(["--root", str(tmp_path / "root"), "-H", f"unix://{tmp_path / 'other.sock'}"], tmp_path / "log2")
        assert second.wait(20) == 1
        assert "is already running with root" in (tmp_path / "log2").read_text()
        assert proc.poll() is None
    finally:
        terminate(proc)
    assert not sock.exists()


def test_unknown_key_is_an_error(tmp_path: Path) -> None:
    config = tmp_path / "daemon.json"
    config.write_text(json.dumps({"data-root": str(tmp_path / "root"), "no-such-option": True}))
    proc = start(["--config-file", str(config), "-H", f"unix://{tmp_path / 'd.sock'}"], tmp_path / "log")
    assert proc.wait(20) == 1
    assert "the following directives don't match any configuration option: no-such-option" in (tmp_path / "log").read_text()
