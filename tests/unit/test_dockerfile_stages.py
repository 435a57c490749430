"""Stage graphs, --target pruning, global and per-stage ARGs, and which instructions Docker expands."""

from __future__ import annotations

import pytest

from dockyard.build.dockerfile import DockerfileError
from dockyard.build.instructions import (
    Arg,
    Copy,
    Env,
    Expose,
    Label,
    Run,
    User,
    Volume,
    Workdir,
    parse_dockerfile,
)
from dockyard.build.stages import (
    PROXY_ARGS,
    StageScope,
    global_args,
    platform_args,
    resolve_stages,
    stages_for_target,
    target_index,
)

MULTI = """\
ARG BASE=alpine
ARG TAG=3.19
FROM ${BASE}:${TAG} AS deps
RUN echo deps
FROM busybox AS tools
FROM deps AS build
RUN --mount=type=bind,from=tools,source=/bin/x,target=/x build
FROM scratch AS docs
COPY --from=0 /README /
FROM scratch
COPY --from=build /out /out
COPY --from=nginx:latest /etc/nginx /etc/nginx
"""


def resolved(text: str, build_args: dict[str, str] | None = None) -> list:
    df = parse_dockerfile(text)
    return resolve_stages(df, global_args(df, build_args or {}))


def test_bases_use_global_args_and_build_args_override() -> None:
    stages = resolved(MULTI)
    assert [s.base for s in stages] == ["alpine:3.19", "busybox", "deps", "scratch", "scratch"]
    assert [s.base_stage for s in stages] == [None, None, 0, None, None]
    assert resolved(MULTI, {"TAG": "edge"})[0].base == "alpine:edge"


def test_dependencies_and_image_sources() -> None:
    stages = resolved(MULTI)
    by_name = {s.stage.name or str(s.stage.index): s for s in stages}
    assert by_name["build"].deps == {0, 1}
    assert by_name["docs"].deps == {0}
    assert by_name["4"].deps == {2} and by_name["4"].image_sources == {"nginx:latest"}


def test_mount_from_a_later_stage_is_refused() -> None:
    with pytest.raises(DockerfileError) as err:
        resolved(MULTI.replace("FROM busybox AS tools\n", "") + "FROM busybox AS tools\n")
    assert err.value.message == ('cannot copy from stage "tools", it needs to be defined before current stage '
                                 '"build"')
    assert err.value.line == 6


def test_target_pruning() -> None:
    df = parse_dockerfile(MULTI)
    stages = resolve_stages(df, global_args(df, {}))
    assert stages_for_target(stages, target_index(df, None)) == [0, 1, 2, 4]
    assert stages_for_target(stages, target_index(df, "DOCS")) == [0, 3]
    assert stages_for_target(stages, target_index(df, "tools")) == [1]
    with pytest.raises(DockerfileError) as err:
        target_index(df, "nope")
    assert err.value.message == 'target stage "nope" could not be found'


STAGE_ERRORS = [
    ("FROM $NOPE\n", "base name ($NOPE) should not be blank", 1),
    ("ARG X\nFROM ${X}\n", "base name (${X}) should not be blank", 2),
    ("FROM --platform=$NONE scratch\n", "empty platform value from expression $NONE", 1),
    ("FROM ${A\n", "failed to process \"${A\": syntax error: missing '}'", 1),
    ("FROM scratch AS a\nCOPY --from=$X a b\n", "variable expansion is not supported for --from, define a new "
     "stage with FROM using ARG from global scope as a workaround", 2),
    ("FROM scratch\nCOPY --from=3 a b\n", "invalid stage index 3", 2),
    ("FROM scratch AS a\nCOPY --from=a x y\n", 'cannot copy from stage "a", it needs to be defined before current '
     'stage "a"', 2),
    ("ARG A\n", "dockerfile contains no stages to build", 0),
]


@pytest.mark.parametrize(("text", "message", "line"), STAGE_ERRORS)
def test_stage_errors(text: str, message: str, line: int) -> None:
    with pytest.raises(DockerfileError) as err:
        resolved(text)
    assert (err.value.message, err.value.line) == (message, line)


def test_automatic_platform_args_reach_from_only() -> None:
    df = parse_dockerfile("FROM --platform=$BUILDPLATFORM img-$TARGETARCH\nARG TARGETOS\nRUN x\n")
    args = global_args(df, {}, platform_args("linux/arm64/v8", "linux/amd64"))
    stage = resolve_stages(df, args)[0]
    assert (stage.base, stage.platform) == ("img-arm64", "linux/amd64")
    scope = StageScope({}, args, {})
    scope.apply(df.stages[0].instructions[0])
    assert scope.variables() == {"TARGETOS": "linux"}


def test_global_arg_needs_redeclaring_in_a_stage() -> None:
    df = parse_dockerfile("ARG V=1\nFROM scratch\nUSER $V\nARG V\nUSER $V\nARG V=2\nUSER $V\n")
    scope = StageScope({}, global_args(df, {}), {})
    users = [scope.apply(i) for i in df.stages[0].instructions]
    assert [u.user for u in users if isinstance(u, User)] == ["", "1", "2"]


def test_build_arg_overrides_default_only_where_declared() -> None:
    df = parse_dockerfile("FROM scratch\nUSER $V\nARG V=dflt\nUSER $V\n")
    scope = StageScope({}, {}, {"V": "given"})
    users = [scope.apply(i) for i in df.stages[0].instructions]
    assert [u.user for u in users if isinstance(u, User)] == ["", "given"]


def test_env_wins_over_arg_and_image_env_is_visible() -> None:
    df = parse_dockerfile("FROM scratch\nARG X=arg\nENV X=env\nWORKDIR /$X$HOME\n")
    scope = StageScope({"HOME": "/root"}, {}, {"X": "build"})
    out = [scope.apply(i) for i in df.stages[0].instructions]
    assert isinstance(out[2], Workdir) and out[2].path == "/env/root"


def test_one_env_line_sees_values_from_before_it() -> None:
    df = parse_dockerfile("FROM scratch\nENV A=old\nENV A=new B=$A C=\"${A} q\" D='$A'\n")
    scope = StageScope({}, {}, {})
    out = [scope.apply(i) for i in df.stages[0].instructions]
    assert isinstance(out[1], Env) and out[1].pairs == [("A", "new"), ("B", "old"), ("C", "old q"), ("D", "$A")]


def test_what_expands_and_what_does_not() -> None:
    text = ("FROM scratch\nARG D=/dst P=80 U=app M=/cache\nLABEL \"k-$U\"=\"v $U\"\nCOPY --chown=$U:$U --chmod=$P "
            "src-$U $D/\nEXPOSE $P/tcp\nVOLUME $D\nRUN --mount=type=cache,target=$M echo $U\n"
            "CMD [\"echo\", \"$U\"]\nUSER ${U:-x}\n")
    df = parse_dockerfile(text)
    scope = StageScope({}, {}, {})
    _arg, label, copy, expose, volume, run, cmd, user = [scope.apply(i) for i in df.stages[0].instructions]
    assert isinstance(label, Label) and label.pairs == [("k-app", "v app")]
    assert isinstance(copy, Copy) and (copy.chown, copy.chmod, copy.sources, copy.dest) == \
        ("app:app", "80", ["src-app"], "/dst/")
    assert isinstance(expose, Expose) and expose.ports == ["80/tcp"]
    assert isinstance(volume, Volume) and volume.paths == ["/dst"]
    assert isinstance(run, Run) and run.mounts[0].target == "/cache"
    assert run.command.args == ["echo $U"]  # the shell expands it, not the builder
    assert cmd == df.stages[0].instructions[6]
    assert isinstance(user, User) and user.user == "app"
    assert isinstance(_arg, Arg)


def test_expose_splits_expanded_words() -> None:
    df = parse_dockerfile("FROM scratch\nENV PORTS=\"80 443\"\nEXPOSE $PORTS\n")
    scope = StageScope({}, {}, {})
    out = [scope.apply(i) for i in df.stages[0].instructions]
    assert isinstance(out[1], Expose) and out[1].ports == ["80", "443"]


def test_volume_expanding_to_nothing_is_refused() -> None:
    df = parse_dockerfile("FROM scratch\nVOLUME $NOTHING\n")
    with pytest.raises(DockerfileError) as err:
        StageScope({}, {}, {}).apply(df.stages[0].instructions[0])
    assert err.value.message == "VOLUME specified can not be an empty string" and err.value.line == 2


def test_proxy_args_are_predefined() -> None:
    assert "HTTP_PROXY" in PROXY_ARGS and "no_proxy" in PROXY_ARGS and len(PROXY_ARGS) == 10
