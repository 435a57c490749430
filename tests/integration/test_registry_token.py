"""The Bearer token flow against a real ``docker-registry`` in token-auth mode, and against our own
registry server trusting the same external issuer, with a token server of the tests' own
(token_server.py: RS256 JWTs with ``x5c``, per-repository scopes): skopeo pushes with credentials,
dockyard logs in, pulls, runs and pushes; anonymous and wrong credentials are refused. Tokens found by
their libtrust ``kid`` (ES256) are accepted by both registries alike."""

from __future__ import annotations

import datetime
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dockyard.registry.issuer import libtrust_key_id
from tests.integration.daemon_harness import Daemon
from tests.integration.registry_harness import DockyardRegistry, Registry, run_output
from tests.integration.token_server import ISSUER, SERVICE, TokenServer

pytestmark = [pytest.mark.root]


@pytest.fixture(params=["distribution", "dockyard"])
def token_registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Registry, TokenServer]]:
    """Distribution's registry, or ours (``dockyard registry serve``), trusting the tests' token server."""
    tokens = TokenServer(tmp_path / "tokens", {"dave": "pw3"})
    try:
        if request.param == "distribution":
            reg = Registry(tmp_path / "reg", auth=tokens.registry_auth_config())
        else:
            reg = DockyardRegistry(tmp_path / "reg", auth={"token": {
                "realm": tokens.realm, "service": SERVICE, "issuer": ISSUER, "rootcertbundle": str(tokens.cert)}})
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


def test_kid_tokens_are_trusted_as_distribution_trusts_them(tmp_path: Path) -> None:
    """An ES256 token naming its key by libtrust ``kid`` (no ``x5c``): distribution and our server both
    let it list a repository it grants (404 NAME_UNKNOWN: past auth), both refuse a forged one (401)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kid signer")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(hours=1)).sign(key, hashes.SHA256()))
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    realm = "http://127.0.0.1:9/token"
    distribution = Registry(tmp_path / "distribution", auth=(
        f"auth:\n  token:\n    realm: {realm}\n    service: {SERVICE}\n    issuer: {ISSUER}\n"
        f"    rootcertbundle: {bundle}\n"))
    try:
        ours = DockyardRegistry(tmp_path / "ours", auth={"token": {
            "realm": realm, "service": SERVICE, "issuer": ISSUER, "rootcertbundle": str(bundle)}})
        try:
            claims = {"iss": ISSUER, "aud": SERVICE, "sub": "erin", "exp": int(time.time()) + 300,
                      "nbf": int(time.time()) - 10, "iat": int(time.time()), "jti": "1",
                      "access": [{"type": "repository", "name": "team/app", "actions": ["pull"]}]}
            kid = libtrust_key_id(key.public_key())
            good = jwt.encode(claims, key, "ES256", headers={"kid": kid})
            forged = jwt.encode(claims, ec.generate_private_key(ec.SECP256R1()), "ES256", headers={"kid": kid})
            for reg in (distribution, ours):
                url = f"http://{reg.host}/v2/team/app/tags/list"
                passed = requests.get(url, headers={"Authorization": f"Bearer {good}"}, timeout=10)
                assert passed.status_code == 404 and passed.json()["errors"][0]["code"] == "NAME_UNKNOWN", \
                    (type(reg).__name__, passed.status_code, passed.text)
                refused = requests.get(url, headers={"Authorization": f"Bearer {forged}"}, timeout=10)
                assert refused.status_code == 401, (type(reg).__name__, refused.text)
                assert f'realm="{realm}",service="{SERVICE}"' in refused.headers["WWW-Authenticate"]
        finally:
            ours.close()
    finally:
        distribution.close()
