"""``--change`` lines applied to an image config, with Docker's error messages."""

from __future__ import annotations

import pytest

from dockyard.errors import InvalidParameter
from dockyard.images.changes import apply_changes, empty_container_config, expand


def apply(*lines: str) -> dict:  # type: ignore[type-arg]
    return apply_changes(None, list(lines))


def test_no_changes_is_the_empty_config() -> None:
    assert apply() == empty_container_config()


@pytest.mark.parametrize(("line", "field", "value"), [
    ('CMD ["/bin/sh", "-c", "echo hi"]', "Cmd", ["/bin/sh", "-c", "echo hi"]),
    ("CMD echo hi", "Cmd", ["/bin/sh", "-c", "echo hi"]),
    ('ENTRYPOINT ["top", "-b"]', "Entrypoint", ["top", "-b"]),
    ("ENTRYPOINT top -b", "Entrypoint", ["/bin/sh", "-c", "top -b"]),
    ("ENV A=1 B=two", "Env", ["A=1", "B=two"]),
    ("ENV GREETING hello world", "Env", ["GREETING=hello world"]),
    ('ENV Q="a b" R=\'c d\' S=e\\ f', "Env", ["Q=a b", "R=c d", "S=e f"]),
    ("EXPOSE 80 53/udp 8000-8001", "ExposedPorts", {"80/tcp": {}, "53/udp": {}, "8000/tcp": {}, "8001/tcp": {}}),
    ('LABEL a=b "c d"="e f"', "Labels", {"a": "b", "c d": "e f"}),
    ("USER nobody:nogroup", "User", "nobody:nogroup"),
    ("WORKDIR /srv/app", "WorkingDir", "/srv/app"),
    ('VOLUME ["/data", "/logs"]', "Volumes", {"/data": {}, "/logs": {}}),
    ("VOLUME /a /b", "Volumes", {"/a": {}, "/b": {}}),
    ("STOPSIGNAL SIGUSR1", "StopSignal", "SIGUSR1"),
    ("STOPSIGNAL 9", "StopSignal", "9"),
    ("ONBUILD RUN echo hi", "OnBuild", ["RUN echo hi"]),
    ("HEALTHCHECK NONE", "Healthcheck", {"Test": ["NONE"]}),
    ("HEALTHCHECK --interval=1m30s --retries=3 CMD curl -f http://x/",
     "Healthcheck", {"Test": ["CMD-SHELL", "curl -f http://x/"], "Interval": 90_000_000_000, "Retries": 3}),
    ('HEALTHCHECK CMD ["true"]', "Healthcheck", {"Test": ["CMD", "true"]}),
    ("cmd lower case", "Cmd", ["/bin/sh", "-c", "lower case"]),
])
def test_each_instruction(line: str, field: str, value: object) -> None:
    assert apply(line)[field] == value


def test_env_expansion_and_order() -> None:
    cfg = apply("ENV A=1", "ENV B=$A-${A}-${NOPE:-dflt}-${A:+set} C=$B", "WORKDIR /x/$A", "WORKDIR rel/..//y")
    assert cfg["Env"] == ["A=1", "B=1-1-dflt-set", "C="]  # one ENV line sees the env from before it
    assert cfg["WorkingDir"] == "/x/1/y"
    assert apply("ENV A=1", "ENV A=2")["Env"] == ["A=2"]


def test_entrypoint_resets_cmd_unless_cmd_given_in_the_same_changes() -> None:
    base = {**empty_container_config(), "Cmd": ["sh"]}
    assert apply_changes(base, ['ENTRYPOINT ["x"]'])["Cmd"] is None
    assert apply_changes(base, ['CMD ["y"]', 'ENTRYPOINT ["x"]'])["Cmd"] == ["y"]
    assert base["Cmd"] == ["sh"]  # the input is not modified


def test_multiline_and_comments() -> None:
    cfg = apply("# a comment\nENV A=1 \\\n  B=2", "")
    assert cfg["Env"] == ["A=1", "B=2"]


@pytest.mark.parametrize(("line", "message"), [
    ("FOO bar", "FOO is not a valid change command"),
    ("RUN echo hi", "RUN is not a valid change command"),
    ("FROM busybox", "FROM is not a valid change command"),
    ("ENV", "ENV requires at least one argument"),
    ("ENV ONLYKEY", "ENV must have two arguments"),
    ("ENV a=1 b", 'Syntax error - can\'t find = in "b". Must be of the form: name=value'),
    ("ENV =x", "ENV names can not be blank"),
    ("LABEL", "LABEL requires at least one argument"),
    ("EXPOSE", "EXPOSE requires at least one argument"),
    ("EXPOSE http", "invalid containerPort: http"),
    ("EXPOSE 80/foo", "invalid proto: foo"),
    ("USER", "USER requires exactly one argument"),
    ("WORKDIR", "WORKDIR requires exactly one argument"),
    ("VOLUME", "VOLUME requires at least one argument"),
    ("STOPSIGNAL SIGNOPE", "invalid signal: SIGNOPE"),
    ("STOPSIGNAL 0", "invalid signal: 0"),
    ("ONBUILD ONBUILD RUN x", "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
    ("ONBUILD FROM x", "FROM isn't allowed as an ONBUILD trigger"),
    ("HEALTHCHECK", "HEALTHCHECK requires at least one argument"),
    ("HEALTHCHECK FOO x", 'Unknown type "FOO" in HEALTHCHECK (try CMD)'),
    ("HEALTHCHECK CMD", "Missing command after HEALTHCHECK CMD"),
    ("HEALTHCHECK --retries=0 CMD x", "--retries must be at least 1 (not 0)"),
    ("HEALTHCHECK --bogus=1 CMD x", "unknown flag: bogus"),
    ("CMD --x y", "unknown flag: x"),
])
def test_errors_have_dockers_wording(line: str, message: str) -> None:
    with pytest.raises(InvalidParameter) as e:
        apply(line)
    assert e.value.message == message


def test_a_bad_line_applies_nothing() -> None:
    with pytest.raises(InvalidParameter):
        apply("ENV A=1", "FOO")


def test_expand() -> None:
    assert expand("'$A'\"$A\"\\$A", {"A": "x"}) == "$Ax$A"
