"""Where the daemon listens: dockerd's TLS rules, the refusal of plain TCP, tcp hosts without a port,
the socket group; and the CLI's TLS settings as Docker's CLI reads them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from dockyard.cli import tls as cli_tls
from dockyard.daemon.config import load_config
from dockyard.daemon.listeners import TLSOptions, parse_tcp, socket_gid
from dockyard.daemon.main import parse_args
from dockyard.errors import InvalidParameter

CERTS = {"tlscacert": "/c/ca.pem", "tlscert": "/c/cert.pem", "tlskey": "/c/key.pem"}


def flags(argv: list[str]) -> dict[str, object]:
    a = parse_args(argv)
    return {"hosts": a.hosts, "tls": a.tls, "tlsverify": a.tlsverify, "tlscacert": a.tlscacert,
            "tlscert": a.tlscert, "tlskey": a.tlskey, "group": a.group, "debug": a.debug}


@pytest.fixture()
def empty(tmp_path: Path) -> Path:
    """An empty daemon.json (so the machine's /etc/dockyard/daemon.json plays no part)."""
    f = tmp_path / "empty.json"
    f.write_text("{}")
    return f


def test_plain_tcp_is_refused_without_an_explicit_tls_false(empty: Path) -> None:
    with pytest.raises(InvalidParameter, match="refusing to listen on tcp://0.0.0.0:2399 without TLS.*--tls=false"):
        load_config(flags(["-H", "tcp://0.0.0.0:2399"]), empty)
    config = load_config(flags(["-H", "tcp://127.0.0.1:2399", "--tls=false"]), empty)
    assert config.tls.tls is False and not config.tls.authenticates
    # --tlsverify=false is an explicit choice too (TLS without client certificates).
    config = load_config(flags(["-H", "tcp://127.0.0.1:2399", "--tlsverify=false", "--tlscert=/c", "--tlskey=/k"]),
                         empty)
    assert config.tls.tls is True and config.tls.verify is False and not config.tls.authenticates
    # A unix socket alone needs nothing.
    assert load_config(flags(["-H", "unix:///tmp/x.sock"]), empty).tls.tls is None


def test_tls_rules_follow_dockerd() -> None:
    assert TLSOptions.resolve(True, None, *CERTS.values()).authenticates  # --tls implies --tlsverify
    assert TLSOptions.resolve(None, True, *CERTS.values()).authenticates
    assert TLSOptions.resolve(False, True, *CERTS.values()).tls is True  # any tlsverify turns TLS on
    with pytest.raises(InvalidParameter, match="--tlscert and --tlskey are required"):
        TLSOptions.resolve(True, None, "/c/ca.pem", None, None)
    with pytest.raises(InvalidParameter, match="needs --tlscacert"):
        TLSOptions.resolve(None, True, None, "/c/cert.pem", "/c/key.pem")
    with pytest.raises(InvalidParameter, match="invalid TLS configuration"):
        TLSOptions.resolve(None, True, *CERTS.values()).server_context()  # files that do not exist


def test_tls_keys_in_daemon_json(tmp_path: Path) -> None:
    f = tmp_path / "daemon.json"
    f.write_text(json.dumps({"hosts": ["tcp://127.0.0.1:2376"], "tlsverify": True, "group": "staff", **CERTS}))
    config = load_config(flags([]), f)
    assert config.tls.authenticates and config.tls.ca == Path("/c/ca.pem") and config.group == "staff"
    # An explicit --tls=false on the command line conflicts with the file's tls, as in dockerd.
    f.write_text(json.dumps({"tls": True}))
    with pytest.raises(InvalidParameter, match="specified both as a flag and in the configuration file: tls"):
        load_config(flags(["--tls=false"]), f)
    f.write_text(json.dumps({"tls": "yes"}))
    with pytest.raises(InvalidParameter, match="tls: expected true or false"):
        load_config(flags([]), f)


def test_tcp_host_needs_a_port(empty: Path) -> None:
    for host in ("tcp://127.0.0.1", "tcp://[::1]", "tcp://127.0.0.1:", "tcp://127.0.0.1:x", "tcp://h:70000"):
        with pytest.raises(InvalidParameter, match=re.escape(f"invalid host: {host}:")):
            parse_tcp(host)
    assert parse_tcp("tcp://[::1]:2376").host == "::1"
    assert parse_tcp("tcp://:2376").host == "0.0.0.0"
    with pytest.raises(InvalidParameter, match="a tcp host needs a port"):
        load_config(flags(["-H", "tcp://127.0.0.1", "--tls=false"]), empty)


def test_socket_group() -> None:
    assert socket_gid("0") == 0 and socket_gid("root") == 0
    with pytest.raises(InvalidParameter, match="group no-such-group-here not found"):
        socket_gid("no-such-group-here")


def test_cli_tls_settings_as_docker_reads_them(tmp_path: Path) -> None:
    values = {"tls": False, "tlsverify": False, "tlscacert": None, "tlscert": None, "tlskey": None}
    assert cli_tls.settings(values, set(), {}) is None
    (tmp_path / "cert.pem").write_text("x")
    (tmp_path / "key.pem").write_text("x")
    got = cli_tls.settings(values, set(), {"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(tmp_path)})
    assert got is not None and got.verify
    assert (got.ca, got.cert, got.key) == (str(tmp_path / "ca.pem"), str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"))
    # --tlsverify=false still means TLS, without checking the daemon; a missing default client cert is not sent.
    got = cli_tls.settings(values, {"tlsverify"}, {"DOCKER_CERT_PATH": str(tmp_path / "none")})
    assert got is not None and not got.verify and got.cert == "" and got.key == ""
