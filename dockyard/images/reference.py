"""Image references, parsed and normalised exactly as Docker does.

Terms:

- A *reference* names an image in a repository: ``[domain/]path[:tag][@digest]``.
- The *normalised* (canonical) form spells everything out: ``busybox`` is
  ``docker.io/library/busybox:latest``; ``user/app:v1`` is ``docker.io/user/app:v1``.
- The *familiar* form is what Docker shows: ``docker.io/`` and, for official images,
  ``library/`` are dropped: ``busybox:latest``, ``user/app:v1``, ``localhost:5000/x:latest``.
- An *image ID* is the digest of the image config, ``sha256:<64 hex>``; users may give it
  bare, with ``sha256:``, or as any unique prefix of its hex.

The grammar and error messages follow github.com/distribution/reference, which Docker uses
(``ParseNormalizedNamed``, ``ParseAnyReference``, ``FamiliarString``, ``FamiliarMatch``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from dockyard.errors import InvalidParameter

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
LOCALHOST = "localhost"
NAME_TOTAL_LENGTH_MAX = 255

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = _ALNUM + r"(?:" + _SEPARATOR + _ALNUM + r")*"
_REMOTE_NAME = _PATH_COMPONENT + r"(?:/" + _PATH_COMPONENT + r")*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = _DOMAIN_COMPONENT + r"(?:\." + _DOMAIN_COMPONENT + r")*"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN_AND_PORT = r"(?:" + _DOMAIN_NAME + r"|" + _IPV6 + r")(?::[0-9]+)?"
_NAME = r"(?:" + _DOMAIN_AND_PORT + r"/)?" + _REMOTE_NAME
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}"

REFERENCE_RE = re.compile(r"(" + _NAME + r")(?::(" + _TAG + r"))?(?:@(" + _DIGEST + r"))?")
DOMAIN_AND_PORT_RE = re.compile(_DOMAIN_AND_PORT)
ANCHORED_NAME_RE = re.compile(r"(?:(" + _DOMAIN_AND_PORT + r")/)?(" + _REMOTE_NAME + r")")
TAG_RE = re.compile(_TAG)
IDENTIFIER_RE = re.compile(r"[a-f0-9]{64}")
ID_PREFIX_RE = re.compile(r"(?:sha256:)?[a-f0-9]{1,64}")

# go-digest: the algorithms Docker registers, and the hex length of each.
_DIGEST_SIZES = {"sha256": 32, "sha384": 48, "sha512": 64}


def _invalid(message: str) -> InvalidParameter:
    return InvalidParameter(message)


@dataclass(frozen=True)
class Reference:
    """A parsed, named reference. ``domain`` is empty only for references parsed un-normalised."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """The repository: ``domain/path``."""
        return f"{self.domain}/{self.path}" if self.domain else self.path

    def __str__(self) -> str:
        out = self.name
        if self.tag is not None:
            out += ":" + self.tag
        if self.digest is not None:
            out += "@" + self.digest
        return out

    @property
    def is_canonical(self) -> bool:
        """Whether it pins a digest (Docker's ``reference.Canonical``)."""
        return self.digest is not None

    @property
    def is_name_only(self) -> bool:
        return self.tag is None and self.digest is None

    def tag_name_only(self) -> Reference:
        """Add the ``latest`` tag when neither tag nor digest is given (``TagNameOnly``)."""
        return replace(self, tag=DEFAULT_TAG) if self.is_name_only else self

    def with_tag(self, tag: str) -> Reference:
        if TAG_RE.fullmatch(tag) is None:
            raise _invalid("invalid tag format")
        return replace(self, tag=tag)

    def trimmed(self) -> Reference:
        """The repository alone, without tag or digest."""
        return Reference(self.domain, self.path)

    def familiar_name(self) -> str:
        """The repository as Docker shows it: ``busybox``, ``user/app``, ``localhost:5000/x``."""
        domain, path = self.domain, self.path
        if domain == DEFAULT_DOMAIN:
            domain = ""
            if path.startswith(OFFICIAL_REPO_PREFIX):
                rest = path[len(OFFICIAL_REPO_PREFIX):]
                if "/" not in rest:
                    path = rest
        return f"{domain}/{path}" if domain else path

    def familiar(self) -> str:
        """The whole reference as Docker shows it (``FamiliarString``)."""
        out = self.familiar_name()
        if self.tag is not None:
            out += ":" + self.tag
        if self.digest is not None:
            out += "@" + self.digest
        return out


def validate_digest_reference(value: str) -> str:
    """Check a digest as go-digest does; raise InvalidParameter with its message."""
    i = value.find(":")
    if i <= 0 or i + 1 == len(value):
        raise _invalid("invalid checksum digest format")
    algorithm, encoded = value[:i], value[i + 1:]
    size = _DIGEST_SIZES.get(algorithm)
    if size is None:
        if re.fullmatch(_DIGEST, value) is None:
            raise _invalid("invalid checksum digest format")
        raise _invalid("unsupported digest algorithm")
    if len(encoded) != size * 2:
        raise _invalid("invalid checksum digest length")
    if re.fullmatch(r"[a-f0-9]+", encoded) is None:
        raise _invalid("invalid checksum digest format")
    return value


def parse(s: str) -> Reference:
    """Parse without normalising (``reference.Parse``); the result must have a name."""
    if s == "":
        raise _invalid("repository name must have at least one component")
    m = REFERENCE_RE.fullmatch(s)
    if m is None:
        lower = s.lower()
        if lower != s and REFERENCE_RE.fullmatch(lower) is not None:
            raise _invalid("repository name must be lowercase")
        raise _invalid("invalid reference format")
    name, tag, digest = m.group(1), m.group(2), m.group(3)
    nm = ANCHORED_NAME_RE.fullmatch(name)
    assert nm is not None
    domain, path = nm.group(1) or "", nm.group(2)
    if len(path) > NAME_TOTAL_LENGTH_MAX:
        raise _invalid(f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters")
    if digest is not None:
        validate_digest_reference(digest)
    return Reference(domain, path, tag, digest)


def split_docker_domain(name: str) -> tuple[str, str]:
    """Split a familiar name into domain and remote name, as Docker does (``splitDockerDomain``)."""
    if "/" not in name:
        return DEFAULT_DOMAIN, OFFICIAL_REPO_PREFIX + name
    maybe_domain, maybe_remote = name.split("/", 1)
    if maybe_domain == LOCALHOST:
        domain, remote = maybe_domain, maybe_remote
    elif maybe_domain == LEGACY_DEFAULT_DOMAIN:
        domain, remote = DEFAULT_DOMAIN, maybe_remote
    elif "." in maybe_domain or ":" in maybe_domain:
        domain, remote = maybe_domain, maybe_remote
    elif maybe_domain.lower() != maybe_domain:
        domain, remote = maybe_domain, maybe_remote
    else:
        domain, remote = DEFAULT_DOMAIN, name
    if domain == DEFAULT_DOMAIN and "/" not in remote:
        remote = OFFICIAL_REPO_PREFIX + remote
    return domain, remote


def parse_normalized(s: str) -> Reference:
    """Parse a reference as a user writes it into its normalised form (``ParseNormalizedNamed``).

    The tag is *not* defaulted; use :meth:`Reference.tag_name_only` or :func:`normalize`.
    """
    if IDENTIFIER_RE.fullmatch(s):
        raise _invalid(f"invalid repository name ({s}), cannot specify 64-byte hexadecimal strings")
    domain, remainder = split_docker_domain(s)
    remote = remainder.split(":", 1)[0]
    if remote.lower() != remote:
        raise _invalid(f"invalid reference format: repository name ({remote}) must be lowercase")
    return parse(f"{domain}/{remainder}")


def normalize(s: str) -> str:
    """The normalised string of a reference, tag defaulted: ``busybox`` → ``docker.io/library/busybox:latest``."""
    return str(parse_normalized(s).tag_name_only())


def familiar(name: str) -> str:
    """The familiar form of a reference string, normalised or not: ``busybox:latest``, ``user/app:v1``."""
    return parse_normalized(name).familiar()


@dataclass(frozen=True)
class IdReference:
    """A reference that is an image ID (full, as given by ``ParseAnyReference``)."""

    digest: str


def parse_any(s: str) -> Reference | IdReference:
    """A bare 64-hex ID or a full digest becomes an :class:`IdReference`; else a named reference.

    Mirrors ``ParseAnyReference``. Note that a short ID prefix (``0123abcd``) parses as a *name*;
    callers look names up first and then try the string as an ID prefix, as Docker does.
    """
    if IDENTIFIER_RE.fullmatch(s):
        return IdReference("sha256:" + s)
    try:
        return IdReference(validate_digest_reference(s))
    except InvalidParameter:
        return parse_normalized(s)


def is_id_prefix(image_id: str, candidate: str) -> bool:
    """Whether ``candidate`` names ``image_id`` as an ID: a prefix of it with or without ``sha256:``."""
    if not candidate:
        return False
    if image_id.startswith(candidate):
        return True
    _, _, hexpart = image_id.partition(":")
    return hexpart.startswith(candidate)


def looks_like_id_prefix(s: str) -> bool:
    """Whether ``s`` could be an image ID or ID prefix (hex, optionally after ``sha256:``)."""
    return ID_PREFIX_RE.fullmatch(s) is not None


def repo_tag_reference(repo: str, tag: str = "") -> Reference:
    """``repo`` plus ``tag`` (default ``latest``) as a tagged normalised reference, as ``docker tag`` takes them."""
    ref = parse_normalized(repo)
    if ref.is_canonical:
        raise _invalid("cannot tag a digest reference")  # never reached through Docker's CLI
    if tag:
        return ref.with_tag(tag)
    return ref.tag_name_only()


# -- glob matching (Go's path.Match), for the "reference" filter ---------------------------------

def _glob_regex(pattern: str) -> re.Pattern[str]:
    out = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\":
            i += 1
            if i >= n:
                raise _invalid("syntax error in pattern")
            out.append(re.escape(pattern[i]))
        elif c == "[":
            j = i + 1
            negate = j < n and pattern[j] == "^"
            if negate:
                j += 1
            parts = []
            first = True
            while True:
                if j >= n:
                    raise _invalid("syntax error in pattern")
                if pattern[j] == "]" and not first:
                    break
                first = False
                lo = pattern[j]
                if lo == "\\":
                    j += 1
                    if j >= n:
                        raise _invalid("syntax error in pattern")
                    lo = pattern[j]
                elif lo in "-]":
                    raise _invalid("syntax error in pattern")
                j += 1
                if j < n and pattern[j] == "-":
                    j += 1
                    if j >= n:
                        raise _invalid("syntax error in pattern")
                    hi = pattern[j]
                    if hi == "\\":
                        j += 1
                        if j >= n:
                            raise _invalid("syntax error in pattern")
                        hi = pattern[j]
                    elif hi == "]":
                        raise _invalid("syntax error in pattern")
                    j += 1
                    parts.append(f"{re.escape(lo)}-{re.escape(hi)}")
                else:
                    parts.append(re.escape(lo))
            body = "".join(parts)
            out.append(f"[^/{body}]" if negate else f"(?![/])[{body}]")
            i = j
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def path_match(pattern: str, name: str) -> bool:
    """Go's ``path.Match``: ``*`` and ``?`` never match ``/``; ``[^...]`` negates."""
    return _glob_regex(pattern).fullmatch(name) is not None


def familiar_match(pattern: str, ref: Reference) -> bool:
    """Docker's ``FamiliarMatch``: the pattern against the familiar string, then the familiar name."""
    if path_match(pattern, ref.familiar()):
        return True
    return path_match(pattern, ref.familiar_name())
