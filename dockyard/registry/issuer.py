"""Bearer tokens from an *external issuer*: a token server other than this registry (docker_auth,
Harbor's core, GitLab, distribution's own token server), as distribution's ``auth.token`` config.

Terms:
- *issuer config* (the ``auth.token`` object of the config file): ``realm`` (the issuer's token URL,
  sent in the 401 challenge), ``service`` (this registry's name, the tokens' audience), ``issuer``
  (the ``iss`` the tokens carry) and ``rootcertbundle`` (a PEM file of certificates, and optionally
  public keys, the tokens' signatures are checked against).
- *token*: a JWT signed RS256/384/512 or ES256/384/512 (PS too for RSA keys). Its signing key is
  found by its header: ``x5c`` (a certificate chain whose leaf signed it; the chain must lead, by
  signatures checked link by link, to a certificate of the bundle) or ``kid`` (the *libtrust key ID*
  of a key in the bundle: the sha256 of its DER SubjectPublicKeyInfo cut to 240 bits, base32,
  in 12 groups of 4 joined by ``:``, as distribution and Docker's token servers name keys).
- *claims*: ``iss`` must be the issuer, ``aud`` (a string or a list) must name the service, ``exp``
  and ``nbf`` hold with a minute's leeway; ``access`` is the grant list
  (``[{"type": "repository", "name": …, "actions": [...]}]``).
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

LEEWAY = 60
MAX_CHAIN = 5
_RSA_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]
_EC_ALGORITHMS = ["ES256", "ES384", "ES512"]

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


def libtrust_key_id(key: PublicKey) -> str:
    """The libtrust key ID of ``key`` (see the module docstring)."""
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(encoded[i:i + 4] for i in range(0, len(encoded), 4))


@dataclass
class ExternalIssuer:
    """Verifies the tokens of one external issuer against its certificate bundle."""

    realm: str
    service: str
    issuer: str
    roots: list[x509.Certificate]
    keys: dict[str, PublicKey]  # libtrust key ID -> key, for every certificate and key of the bundle

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ExternalIssuer:
        missing = [k for k in ("realm", "service", "issuer", "rootcertbundle") if not config.get(k)]
        if missing:
            raise ValueError(f"auth.token needs {', '.join(missing)}")
        pem = Path(config["rootcertbundle"]).read_bytes()
        roots = x509.load_pem_x509_certificates(pem) if b"CERTIFICATE-----" in pem else []
        keys: dict[str, PublicKey] = {}
        for cert in roots:
            key = cert.public_key()
            if isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
                keys[libtrust_key_id(key)] = key
        for block in pem.split(b"-----END PUBLIC KEY-----")[:-1]:
            loaded = serialization.load_pem_public_key(block[block.index(b"-----BEGIN PUBLIC KEY-----"):]
                                                       + b"-----END PUBLIC KEY-----\n")
            if isinstance(loaded, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
                keys[libtrust_key_id(loaded)] = loaded
        if not keys:
            raise ValueError(f"{config['rootcertbundle']}: no RSA or EC certificate or public key")
        return cls(str(config["realm"]), str(config["service"]), str(config["issuer"]), roots, keys)

    def verify(self, token: str) -> dict[str, Any] | None:
        """The claims of a valid token of this issuer for this service, else None."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            return None
        key = self._signing_key(header)
        if key is None:
            return None
        algorithms = _RSA_ALGORITHMS if isinstance(key, rsa.RSAPublicKey) else _EC_ALGORITHMS
        try:
            claims: dict[str, Any] = jwt.decode(token, key, algorithms=algorithms, audience=self.service,
                                                issuer=self.issuer, leeway=LEEWAY,
                                                options={"require": ["exp", "iss", "aud"]})
        except jwt.PyJWTError:
            return None
        return claims

    def _signing_key(self, header: dict[str, Any]) -> PublicKey | None:
        chain = header.get("x5c")
        if isinstance(chain, list) and chain:
            return self._chain_key(chain)
        kid = header.get("kid")
        return self.keys.get(kid) if isinstance(kid, str) else None

    def _chain_key(self, chain: list[Any]) -> PublicKey | None:
        """The leaf's key when the ``x5c`` chain leads to a bundle certificate, else None."""
        try:
            certs = [x509.load_der_x509_certificate(base64.b64decode(c, validate=True)) for c in chain[:MAX_CHAIN]]
        except (ValueError, TypeError, binascii.Error):
            return None
        now = datetime.datetime.now(datetime.UTC)
        if any(not (c.not_valid_before_utc <= now <= c.not_valid_after_utc) for c in certs):
            return None
        current = certs[0]
        candidates = certs[1:] + self.roots
        for _ in range(MAX_CHAIN + 1):
            if any(current == root for root in self.roots):
                key = certs[0].public_key()
                return key if isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey) else None
            parent = next((c for c in candidates if c.subject == current.issuer and c != current
                           and _issued_by(current, c)), None)
            if parent is None:
                return None
            current = parent
        return None

    def challenge_base(self) -> str:
        return f'Bearer realm="{self.realm}",service="{self.service}"'


def _issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True
