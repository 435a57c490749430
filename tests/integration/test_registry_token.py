"""The Bearer token flow against a real ``docker-registry`` in token-auth mode, with a token server of
the tests' own (token_server.py: RS256 JWTs, per-repository scopes): skopeo pushes with credentials,
dockyard logs in, pulls, runs and pushes; anonymous and wrong credentials are refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.daemon_harness import Daemon
from tests.integration.registry_harness import Registry, run_output
from tests.integration.token_server import SERVICE, TokenServer

pytestmark = [pytest.mark.root]


@pytest.fixture()
def token_registry(tmp_path: Path) -> Iterator[tuple[Registry, TokenServer]]:
    tokens = TokenServer(tmp_path / "tokens", {"dave": "pw3"})
    try:
        reg = Registry(tmp_path / "reg", auth=tokens.registry_auth_config())
        try:
            yield reg, tokens
        finally:
            reg.close()
    finally:
        tokens.close()


def test_token_auth_pull_and_push(token_registry: tuple[Registry, TokenServer], daemon: Daemon,
                                  tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    reg, tokens = token_registry
    daemon.cli("save", "-o", str(tmp_path / "bb.tar"), "busybox:latest", check=True)
    reg.skopeo_copy(f"docker-archive:{tmp_path / 'bb.tar'}", "dave/bb:1", creds="dave:pw3")
    d = Daemon(tmp_path_factory.mktemp("dockyard-token"))
    try:
        ref = f"{reg.host}/dave/bb:1"
        anonymous = d.cli("pull", ref, timeout=60)
        assert anonymous.returncode != 0 and "pull access denied" in anonymous.stderr, anonymous.stderr
        wrong = d.cli("login", "-u", "dave", "--password-stdin", reg.host, input="nope\n", timeout=60)
        assert wrong.returncode != 0 and "incorrect username or password" in wrong.stderr, wrong.stderr
        d.cli("login", "-u", "dave", "--password-stdin", reg.host, input="pw3\n", timeout=60, check=True)
        tokens.issued.clear()
        pulled = d.cli("pull", ref, timeout=120)
        assert pulled.returncode == 0, pulled.stderr
        assert {tuple(t["scopes"]) for t in tokens.issued} == {("repository:dave/bb:pull",)}
        assert all(t["user"] == "dave" and t["service"] == SERVICE for t in tokens.issued)
        assert len(tokens.issued) == 1  # one token served every request of the pull
        assert run_output(d, ref, "echo", "token auth") == "token auth\n"
        pushed_ref = f"{reg.host}/dave/pushed:1"
        d.cli("tag", ref, pushed_ref, check=True)
        pushed = d.cli("push", pushed_ref, timeout=120)
        assert pushed.returncode == 0, pushed.stdout + pushed.stderr
        assert any("repository:dave/pushed:pull,push" in t["scopes"] for t in tokens.issued)
    finally:
        d.close()
