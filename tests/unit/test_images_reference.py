"""Reference parsing and normalisation, checked against Docker's behaviour and messages."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockyard.errors import InvalidParameter
from dockyard.images.reference import (
    IdReference,
    familiar,
    familiar_match,
    is_id_prefix,
    normalize,
    parse_any,
    parse_normalized,
    path_match,
)

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(("given", "normalised", "shown"), [
    ("busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36"),
    ("library/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("docker.io/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("index.docker.io/library/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("user/app:v1", "docker.io/user/app:v1", "user/app:v1"),
    ("docker.io/user/app", "docker.io/user/app:latest", "user/app:latest"),
    ("docker.io/library/a/b", "docker.io/library/a/b:latest", "library/a/b:latest"),
    ("localhost/x", "localhost/x:latest", "localhost/x:latest"),
    ("localhost:5000/x", "localhost:5000/x:latest", "localhost:5000/x:latest"),
    ("registry.example.com/a/b", "registry.example.com/a/b:latest", "registry.example.com/a/b:latest"),
    (f"registry.example.com/a/b@{DIGEST}", f"registry.example.com/a/b@{DIGEST}", f"registry.example.com/a/b@{DIGEST}"),
    (f"busybox:1@{DIGEST}", f"docker.io/library/busybox:1@{DIGEST}", f"busybox:1@{DIGEST}"),
    ("[::1]:5000/img:tag", "[::1]:5000/img:tag", "[::1]:5000/img:tag"),
    ("Foo/bar", "Foo/bar:latest", "Foo/bar:latest"),  # an uppercase first component is a domain
    ("a-b__c/e---f.g:T_a.g-1", "docker.io/a-b__c/e---f.g:T_a.g-1", "a-b__c/e---f.g:T_a.g-1"),
    ("sha256:abc", "docker.io/library/sha256:abc", "sha256:abc"),
])
def test_normalise_and_familiar(given: str, normalised: str, shown: str) -> None:
    assert normalize(given) == normalised
    assert familiar(normalised) == shown
    assert normalize(shown) == normalised


@pytest.mark.parametrize(("given", "message"), [
    ("Busybox", "invalid reference format: repository name (library/Busybox) must be lowercase"),
    ("user/App", "invalid reference format: repository name (user/App) must be lowercase"),
    ("", "invalid reference format"),
    ("busybox:", "invalid reference format"),
    (":tag", "invalid reference format"),
    ("bad image", "invalid reference format"),
    ("busybox@sha256:abc", "invalid reference format"),
    ("-busybox", "invalid reference format"),
    ("busybox:" + "t" * 129, "invalid reference format"),
    ("a" * 64, f"invalid repository name ({'a' * 64}), cannot specify 64-byte hexadecimal strings"),
    ("busybox@sha256:" + "A" * 64, "invalid checksum digest format"),
    ("busybox@sha256:" + "a" * 32, "invalid checksum digest length"),
    ("busybox@md5:" + "a" * 32, "unsupported digest algorithm"),
    ("x/" + "a" * 256, "repository name must not be more than 255 characters"),
])
def test_invalid_references(given: str, message: str) -> None:
    with pytest.raises(InvalidParameter) as e:
        normalize(given)
    assert e.value.message == message


def test_parse_any_ids() -> None:
    assert parse_any("a" * 64) == IdReference("sha256:" + "a" * 64)
    assert parse_any(DIGEST) == IdReference(DIGEST)
    ref = parse_any("0123abcd")
    assert not isinstance(ref, IdReference) and ref.familiar() == "0123abcd"
    assert is_id_prefix(DIGEST, "aaa") and is_id_prefix(DIGEST, "sha256:aa") and not is_id_prefix(DIGEST, "b")


def test_glob_matching_like_go_path_match() -> None:
    assert path_match("busy*", "busybox:latest")
    assert not path_match("*", "user/app")  # * never crosses a slash
    assert path_match("*/*", "user/app") and path_match("b?sybox", "busybox")
    assert path_match("[a-c]usybox", "busybox") and path_match("[^x]usybox", "busybox")
    ref = parse_normalized("busybox:latest")
    assert familiar_match("busybox", ref) and familiar_match("busybox:lat*", ref)
    assert not familiar_match("docker.io/*", ref)
    with pytest.raises(InvalidParameter, match="syntax error in pattern"):
        path_match("[", "x")


_component = st.from_regex(r"[a-z0-9]{1,5}(?:[._-][a-z0-9]{1,5}){0,2}", fullmatch=True)
_tag = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,10}", fullmatch=True)


@given(parts=st.lists(_component, min_size=1, max_size=3), tag=st.one_of(st.none(), _tag))
def test_round_trip_familiar_and_normalised(parts: list[str], tag: str | None) -> None:
    name = "/".join(parts) + (f":{tag}" if tag else "")
    canonical = normalize(name)
    assert normalize(familiar(canonical)) == canonical
    assert normalize(canonical) == canonical
    assert canonical.endswith(f":{tag or 'latest'}")


@given(st.text(max_size=40))
def test_parser_never_crashes(text: str) -> None:
    try:
        parse_any(text)
    except InvalidParameter:
        pass
