"""The registry server's parts without a socket: names, storage, gc and the authorizer."""

from __future__ import annotations

import base64
import datetime
import json
import time
from pathlib import Path
from typing import Any

import bcrypt
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from dockyard.content import sha256_digest
from dockyard.errors import InvalidParameter
from dockyard.registry.auth import Authorizer, Need
from dockyard.registry.digests import digest_bytes, from_link_name, is_registry_digest
from dockyard.registry.errors import SpecError
from dockyard.registry.gc import collect
from dockyard.registry.issuer import libtrust_key_id
from dockyard.registry.limits import Limiter, Limits
from dockyard.registry.names import check_name, is_tag
from dockyard.registry.negotiation import accepted, check_accepted
from dockyard.registry.storage import RegistryStorage


@pytest.mark.parametrize("name", ["a", "library/busybox", "a.b_c__d---e/f0", "x/y/z"])
def test_valid_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "A", "a/../b", "../a", "a//b", "/a", "a/", "_a", "a_", "a/.b", "a" * 256,
                                  "a/_layers"])
def test_invalid_names(name: str) -> None:
    with pytest.raises(SpecError) as caught:
        check_name(name)
    assert caught.value.code == "NAME_INVALID" and caught.value.status == 400


def test_tags() -> None:
    assert is_tag("v1.0_rc-1") and is_tag("_x") and is_tag("a" * 128)
    assert not any(is_tag(t) for t in ("", ".hidden", "-x", "a/b", "a" * 129, ".tmp-123"))


def test_upload_verifies_and_links(tmp_path: Path) -> None:
    storage = RegistryStorage(tmp_path)
    upload = storage.start_upload("r")
    upload.data.write_bytes(b"hello")
    with pytest.raises(SpecError) as caught:
        storage.finish_upload("r", upload, sha256_digest(b"other"))
    assert caught.value.code == "DIGEST_INVALID"
    assert not storage.content.exists(sha256_digest(b"hello")) and not storage.blob_in_repo("r", sha256_digest(b"hello"))
    assert storage.finish_upload("r", upload, sha256_digest(b"hello")) == 5
    assert storage.blob_in_repo("r", sha256_digest(b"hello")) and not storage.blob_in_repo("s", sha256_digest(b"hello"))
    assert not upload.folder.exists()
    with pytest.raises(SpecError) as caught:
        storage.upload("other", storage.start_upload("r").uuid)  # a session belongs to its repository
    assert caught.value.code == "BLOB_UPLOAD_UNKNOWN"
    with pytest.raises(SpecError):
        storage.upload("r", "../../etc")


def _manifest(storage: RegistryStorage, repo: str, layer: bytes, subject: str | None = None) -> str:
    upload = storage.start_upload(repo)
    upload.data.write_bytes(layer)
    storage.finish_upload(repo, upload, sha256_digest(layer))
    body: dict[str, object] = {"schemaVersion": 2, "config": {"mediaType": "x", "digest": sha256_digest(layer),
                                                              "size": len(layer)}, "layers": []}
    data = json.dumps(body).encode()
    digest = storage.put_manifest(repo, data, "application/vnd.oci.image.manifest.v1+json")
    if subject is not None:
        storage.add_referrer(repo, subject, digest, b"{}")
    return digest


def test_manifests_tags_referrers_and_catalog(tmp_path: Path) -> None:
    storage = RegistryStorage(tmp_path)
    first = _manifest(storage, "a/b", b"one")
    second = _manifest(storage, "a/b", b"two", subject=first)
    storage.tag("a/b", "v1", first)
    storage.tag("a/b", "latest", first)
    storage.tag("a/b", "v2", second)
    _manifest(storage, "a/b/c", b"three")
    assert storage.catalog() == ["a/b", "a/b/c"]
    assert storage.tags("a/b") == ["latest", "v1", "v2"]
    assert list(storage.referrers("a/b", first)) == [b"{}"]
    storage.delete_manifest("a/b", first, None)
    assert storage.tags("a/b") == ["v2"] and storage.resolve_tag("a/b", "v1") is None
    storage.delete_manifest("a/b", second, first)
    assert list(storage.referrers("a/b", first)) == []
    assert not [p for p in tmp_path.rglob(".tmp-*")]


def test_gc_dry_run_then_sweep(tmp_path: Path) -> None:
    storage = RegistryStorage(tmp_path)
    kept = _manifest(storage, "keep", b"kept")
    dropped = _manifest(storage, "drop", b"dropped")
    storage.delete_manifest("drop", dropped, None)
    unreferenced = {dropped, sha256_digest(b"dropped")}
    dry = collect(storage, dry_run=True)
    assert set(dry.removed) == unreferenced and all(storage.content.exists(d) for d in unreferenced)
    real = collect(storage, dry_run=False)
    assert set(real.removed) == unreferenced and not any(storage.content.exists(d) for d in unreferenced)
    assert storage.content.exists(kept) and storage.blob_in_repo("keep", sha256_digest(b"kept"))
    assert storage.linked_blobs("drop") == []


def _authorizer(tmp_path: Path, mode: str) -> Authorizer:
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text("alice:" + bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode() + "\nmd5:$apr1$x$y\n")
    return Authorizer.from_config({"htpasswd": str(htpasswd), "mode": mode, "access": [
        {"account": "alice", "name": "alice/*", "actions": ["pull", "push"]},
        {"account": "*", "name": "pub/*", "actions": ["pull"]}]})


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_basic_accounts_and_rules(tmp_path: Path) -> None:
    auth = _authorizer(tmp_path, "basic")
    assert auth.account(_basic("alice", "pw")) == "alice"
    assert auth.account(_basic("alice", "nope")) is None
    assert auth.account(_basic("md5", "x")) is None  # only bcrypt hashes count
    assert auth.account("Basic !!!") is None
    assert auth.allowed("alice", Need("repository", "alice/x", ("pull", "push"))) == ("pull", "push")
    assert auth.allowed("alice", Need("repository", "pub/x", ("pull", "push"))) == ("pull",)
    assert auth.allowed("", Need("repository", "pub/x", ("pull",))) == ()
    with pytest.raises(SpecError) as caught:
        auth.check({"authorization": _basic("alice", "pw")}, [Need("repository", "bob/x", ("pull",))])
    assert caught.value.code == "DENIED"
    with pytest.raises(SpecError) as caught:
        auth.check({}, [])
    assert caught.value.status == 401 and caught.value.headers[0][0] == "WWW-Authenticate"


def test_tokens_expire_and_cannot_be_forged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    auth = _authorizer(tmp_path, "token")
    need = Need("repository", "alice/x", ("pull", "push"))
    token = auth.issue({"authorization": _basic("alice", "pw")}, [need.scope], "svc")["token"]
    auth.check({"authorization": f"Bearer {token}", "host": "h"}, [need])
    other = Authorizer(auth.htpasswd, "token")  # another server's secret
    with pytest.raises(SpecError):
        other.check({"authorization": f"Bearer {token}", "host": "h"}, [need])
    import dockyard.registry.auth as auth_module

    real_time = auth_module.time.time
    monkeypatch.setattr(auth_module.time, "time", lambda: real_time() + 3600)
    with pytest.raises(SpecError) as caught:
        auth.check({"authorization": f"Bearer {token}", "host": "h"}, [need])
    assert 'realm="http://h/token"' in caught.value.headers[0][1]


def test_accept_header_negotiation() -> None:
    oci = "application/vnd.oci.image.manifest.v1+json"
    assert accepted(None) is None and accepted("") is None and accepted("text/html, */*;q=0.1") is None
    assert accepted(f"{oci}; q=0.5, application/json;q=0, X/Y") == {oci, "x/y"}
    check_accepted(f"application/json, {oci}", oci, {})
    with pytest.raises(SpecError) as refused:
        check_accepted("application/vnd.docker.distribution.manifest.v2+json", oci, {"reference": "v1"})
    assert (refused.value.status, refused.value.code) == (404, "MANIFEST_UNKNOWN")


def test_limiter_concurrency_and_token_bucket() -> None:
    now = [100.0]
    limiter = Limiter(Limits.from_config({"concurrent_requests_per_client": 2, "requests_per_second": 0.5,
                                          "burst": 3}), clock=lambda: now[0])
    limiter.admit("a")
    limiter.admit("a")
    with pytest.raises(SpecError) as busy:
        limiter.admit("a")  # a third at once
    assert busy.value.status == 429 and busy.value.headers == [("Retry-After", "1")]
    limiter.admit("b")  # another client has its own counts
    limiter.release("a")
    limiter.admit("a")  # the third token of a's burst
    limiter.release("a")
    limiter.release("a")
    with pytest.raises(SpecError) as empty:
        limiter.admit("a")  # the bucket is empty: one token every 2 s
    assert empty.value.code == "TOOMANYREQUESTS" and empty.value.headers == [("Retry-After", "2")]
    now[0] += 2.0
    limiter.admit("a")
    assert Limits.from_config({"requests_per_second": 2.5}).burst == 3


def _cert(subject: str, key: Any, issuer: tuple[str, Any] | None = None, ca: bool = False) -> x509.Certificate:
    """A certificate for ``key`` named ``subject``, signed by ``issuer`` (name, private key) or by itself."""
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, signer = issuer if issuer is not None else (subject, key)
    return (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(signer, hashes.SHA256()))


def _pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def _der64(cert: x509.Certificate) -> str:
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


def test_external_issuer_tokens_by_kid_and_x5c(tmp_path: Path) -> None:
    """Tokens of an external issuer: ES256 found by libtrust ``kid``, RS256 by an ``x5c`` chain leading
    to the bundle's CA; wrong audience, issuer, expiry, key or chain are refused."""
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca = _cert("token CA", ca_key, ca=True)
    leaf_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    leaf = _cert("token signer", leaf_key, issuer=("token CA", ca_key))
    (tmp_path / "bundle.pem").write_bytes(_pem(_cert("ec signer", ec_key), ca))
    auth = Authorizer.from_config({"token": {"realm": "https://issuer.example/token", "service": "reg",
                                             "issuer": "the-issuer", "rootcertbundle": str(tmp_path / "bundle.pem")}})
    assert auth.external is not None and not auth.serves_tokens
    need = Need("repository", "team/app", ("pull", "push"))
    now = int(time.time())
    good = {"iss": "the-issuer", "aud": "reg", "sub": "carol", "exp": now + 300, "nbf": now - 5,
            "access": [{"type": "repository", "name": "team/app", "actions": ["pull", "push"]}]}

    def bearer(token: str) -> dict[str, str]:
        return {"authorization": f"Bearer {token}"}

    kid = libtrust_key_id(ec_key.public_key())
    assert len(kid) == 59 and kid.count(":") == 11
    auth.check(bearer(jwt.encode(good, ec_key, "ES256", headers={"kid": kid})), [need])
    auth.check(bearer(jwt.encode({**good, "aud": ["other", "reg"]}, leaf_key, "RS256",
                                 headers={"x5c": [_der64(leaf), _der64(ca)]})), [need])
    auth.check(bearer(jwt.encode(good, leaf_key, "RS256", headers={"x5c": [_der64(leaf)]})), [need])
    stranger = ec.generate_private_key(ec.SECP256R1())
    stranger_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    refused = [
        jwt.encode({**good, "aud": "elsewhere"}, ec_key, "ES256", headers={"kid": kid}),
        jwt.encode({**good, "iss": "someone"}, ec_key, "ES256", headers={"kid": kid}),
        jwt.encode({**good, "exp": now - 3600}, ec_key, "ES256", headers={"kid": kid}),
        jwt.encode(good, stranger, "ES256", headers={"kid": kid}),  # another key under the trusted kid
        jwt.encode(good, stranger, "ES256", headers={"kid": libtrust_key_id(stranger.public_key())}),
        jwt.encode(good, stranger_key, "RS256", headers={"x5c": [_der64(_cert("token signer", stranger_key))]}),
        jwt.encode(good, stranger_key, "RS256",  # a chain whose leaf the CA did not sign
                   headers={"x5c": [_der64(_cert("x", stranger_key, issuer=("token CA", stranger_key))), _der64(ca)]}),
        jwt.encode(good, "a shared secret the attacker chose itself", "HS256", headers={"kid": kid}),
    ]
    for token in refused:
        with pytest.raises(SpecError) as caught:
            auth.check(bearer(token), [need])
        assert caught.value.status == 401
        assert caught.value.headers == [("WWW-Authenticate", 'Bearer realm="https://issuer.example/token",'
                                         'service="reg",scope="repository:team/app:pull,push"')]
    pull_only = jwt.encode({**good, "access": [{"type": "repository", "name": "team/app", "actions": ["pull"]}]},
                           ec_key, "ES256", headers={"kid": kid})
    with pytest.raises(SpecError) as caught:
        auth.check(bearer(pull_only), [need])
    assert 'error="insufficient_scope"' in caught.value.headers[0][1]


def test_oauth2_password_and_refresh_grants(tmp_path: Path) -> None:
    auth = _authorizer(tmp_path, "token")
    scope = ["repository:alice/x:pull,push"]
    need = Need("repository", "alice/x", ("pull", "push"))
    answer = auth.grant({"grant_type": ["password"], "username": ["alice"], "password": ["pw"], "service": ["svc"],
                         "scope": scope, "client_id": ["docker"], "access_type": ["offline"]})
    assert answer["scope"] == "repository:alice/x:pull,push" and answer["access_token"] == answer["token"]
    auth.check({"authorization": f"Bearer {answer['access_token']}"}, [need])
    refresh = answer["refresh_token"]
    with pytest.raises(SpecError):  # a refresh token is no access token
        auth.check({"authorization": f"Bearer {refresh}"}, [need])
    again = auth.grant({"grant_type": ["refresh_token"], "refresh_token": [refresh], "service": ["svc"],
                        "scope": scope})
    auth.check({"authorization": f"Bearer {again['access_token']}"}, [need])
    assert again["refresh_token"] == refresh
    assert "refresh_token" not in auth.grant({"grant_type": ["password"], "username": ["alice"], "password": ["pw"]})
    for form in ({"grant_type": ["password"], "username": ["alice"], "password": ["nope"]},
                 {"grant_type": ["refresh_token"], "refresh_token": [answer["access_token"]]},
                 {"grant_type": ["refresh_token"], "refresh_token": ["x.y.z"]}):
        with pytest.raises(SpecError) as caught:
            auth.grant(form)
        assert caught.value.status == 401
    with pytest.raises(SpecError) as caught:
        auth.grant({"grant_type": ["client_credentials"]})
    assert caught.value.status == 400
    assert "refresh_token" in auth.issue({"authorization": _basic("alice", "pw")}, scope, "svc", offline=True)
    assert auth.htpasswd is not None
    auth.htpasswd.write_text("")  # alice leaves: her refresh token stops working
    with pytest.raises(SpecError):
        auth.grant({"grant_type": ["refresh_token"], "refresh_token": [refresh]})


def test_sha512_blobs_links_and_gc(tmp_path: Path) -> None:
    """sha512 blobs beside the sha256 store: verified uploads, links named by their 128 hex digits,
    manifests stored under a sha512 digest, and gc marking and sweeping them like the others."""
    storage = RegistryStorage(tmp_path)
    kept_blob, dropped_blob = b"kept by sha512", b"dropped by sha512"
    for blob in (kept_blob, dropped_blob):
        upload = storage.start_upload("r")
        upload.data.write_bytes(blob)
        with pytest.raises(SpecError):
            storage.finish_upload("r", upload, digest_bytes(b"other", "sha512"))
        upload = storage.start_upload("r")
        upload.data.write_bytes(blob)
        assert storage.finish_upload("r", upload, digest_bytes(blob, "sha512")) == len(blob)
    kept = digest_bytes(kept_blob, "sha512")
    assert storage.blob_in_repo("r", kept) and (tmp_path / "content/blobs/sha512" / kept[7:]).is_file()
    assert set(storage.linked_blobs("r")) == {kept, digest_bytes(dropped_blob, "sha512")}
    body = json.dumps({"schemaVersion": 2, "config": {"mediaType": "x", "digest": kept, "size": len(kept_blob)},
                       "layers": []}).encode()
    manifest = storage.put_manifest("r", body, "application/vnd.oci.image.manifest.v1+json", "sha512")
    assert manifest == digest_bytes(body, "sha512") and storage.revisions("r") == [manifest]
    assert storage.content.list() == sorted([kept, digest_bytes(dropped_blob, "sha512"), manifest])
    swept = collect(storage, dry_run=False)
    assert swept.removed == [digest_bytes(dropped_blob, "sha512")]
    assert storage.content.exists(kept) and storage.linked_blobs("r") == [kept]
    assert is_registry_digest(kept) and not is_registry_digest("sha512:" + "a" * 64)
    with pytest.raises(InvalidParameter):
        from_link_name("abc")
