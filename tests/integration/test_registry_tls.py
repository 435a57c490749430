"""Registries over TLS: a ``docker-registry`` serving HTTPS with a certificate from a test CA.

127.0.0.0/8 is insecure by default (as in dockerd), so the daemon pulls from it over HTTPS without
verification; the client's verification itself is shown against the same registry with an endpoint
that must verify: it fails without the CA and succeeds with the CA in a certs.d directory.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.distribution.auth import Credentials, TokenCache
from dockyard.distribution.client import RepositoryClient, TLSFailure
from dockyard.distribution.endpoints import Endpoint
from tests.integration.daemon_harness import Daemon
from tests.integration.registry_harness import Registry, make_test_ca, run_output

pytestmark = [pytest.mark.root]


@pytest.fixture(scope="module")
def tls_registry(tmp_path_factory: pytest.TempPathFactory, daemon: Daemon) -> Iterator[tuple[Registry, Path]]:
    work = tmp_path_factory.mktemp("tls-registry")
    ca, crt, key = make_test_ca(work / "ca")
    reg = Registry(work / "reg", tls=(crt, key))
    try:
        daemon.cli("save", "-o", str(work / "bb.tar"), "busybox:latest", check=True)
        reg.skopeo_copy(f"docker-archive:{work / 'bb.tar'}", "tls/busybox:1")
        yield reg, ca
    finally:
        reg.close()
        shutil.rmtree(work, ignore_errors=True)


def test_client_verifies_with_certs_d(tls_registry: tuple[Registry, Path], tmp_path: Path) -> None:
    reg, ca = tls_registry
    certs_d = tmp_path / "certs.d"
    strict = Endpoint(f"https://{reg.host}", reg.host, verify_tls=True, certs_dir=certs_d)
    client = RepositoryClient(strict, "tls/busybox", Credentials(), TokenCache())
    with pytest.raises(TLSFailure, match="certificate verify failed"):
        client.request("GET", "/v2/tls/busybox/tags/list")
    (certs_d / reg.host).mkdir(parents=True)
    shutil.copy(ca, certs_d / reg.host / "ca.crt")
    with client.request("GET", "/v2/tls/busybox/tags/list") as response:
        assert b'"1"' in response.read()


def test_pull_from_a_tls_registry(tls_registry: tuple[Registry, Path], tmp_path_factory: pytest.TempPathFactory) -> None:
    reg, _ = tls_registry
    d = Daemon(tmp_path_factory.mktemp("dockyard-tls"))
    try:
        pulled = d.cli("pull", f"{reg.host}/tls/busybox:1", timeout=120)
        assert pulled.returncode == 0, pulled.stderr
        assert run_output(d, f"{reg.host}/tls/busybox:1", "echo", "over tls") == "over tls\n"
    finally:
        d.close()
