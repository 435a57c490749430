"""The Dockerfile parser: directives, continuations, comments, heredocs, exec vs shell form, every
instruction and flag, and Docker's errors with their lines (BuildKit's wording)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockyard.build.dockerfile import DockerfileError, parse
from dockyard.build.instructions import (
    Add,
    Arg,
    Cmd,
    Copy,
    Entrypoint,
    Env,
    Expose,
    Healthcheck,
    Label,
    Maintainer,
    Onbuild,
    Run,
    Shell,
    StopSignal,
    User,
    Volume,
    Workdir,
    parse_dockerfile,
    parse_trigger,
)
from dockyard.build.stages import StageScope, global_args, resolve_stages
from dockyard.errors import InvalidParameter


def only(text: str, index: int = 0) -> object:
    """The index-th instruction of the first stage of ``FROM scratch`` + text."""
    return parse_dockerfile("FROM scratch\n" + text).stages[0].instructions[index]


def test_directives_syntax_ignored_and_escape_backtick() -> None:
    text = "# syntax=docker/dockerfile:1\n# escape=`\nFROM scratch\nRUN dir c:\\ `\n  /w\n"
    parsed = parse(text)
    assert parsed.directives == {"syntax": "docker/dockerfile:1", "escape": "`"}
    assert parsed.escape == "`"
    assert parsed.nodes[1].args == ["dir c:\\   /w"]
    assert (parsed.nodes[1].line, parsed.nodes[1].end_line) == (4, 5)


def test_directive_after_an_instruction_is_a_comment() -> None:
    parsed = parse("FROM scratch\n# escape=`\nRUN a \\\n b\n")
    assert parsed.escape == "\\"
    assert parsed.nodes[1].args == ["a  b"]


def test_directive_after_other_comment_is_a_comment() -> None:
    assert parse("# hello\n# escape=`\nFROM scratch\n").escape == "\\"


def test_continuation_skips_comments_and_warns_on_empty_lines() -> None:
    parsed = parse("FROM scratch\nRUN echo a \\\n# inner comment\n\n  b \\\n  c\nUSER me\n")
    run = parsed.nodes[1]
    assert run.args == ["echo a   b   c"]
    assert (run.line, run.end_line) == (2, 6)
    assert parsed.nodes[2].line == 7
    assert parsed.warnings == ["Empty continuation line found in: RUN echo a   b   c"]


def test_comments_and_indentation() -> None:
    parsed = parse("  # comment\n\n   FROM scratch\n\tRUN echo # not a comment\n")
    assert [n.keyword for n in parsed.nodes] == ["FROM", "RUN"]
    assert parsed.nodes[1].args == ["echo # not a comment"]
    assert parsed.nodes[0].line == 3


def test_lines_end_at_newline_only() -> None:
    parsed = parse("FROM scratch\r\nLABEL a=\"x\u2028y\x1cz\"\r\nUSER me")
    assert [n.keyword for n in parsed.nodes] == ["FROM", "LABEL", "USER"]
    assert parsed.nodes[1].pairs == [("a", '"x\u2028y\x1cz"', True)]
    assert parsed.nodes[2].line == 3


def test_lowercase_keywords() -> None:
    inst = only("run echo hi")
    assert isinstance(inst, Run) and inst.keyword == "run"


def test_exec_and_shell_forms() -> None:
    run = only('RUN ["echo", "a b"]')
    assert isinstance(run, Run) and run.command.args == ["echo", "a b"] and not run.command.shell
    shell_form = only("RUN echo   hi")
    assert isinstance(shell_form, Run) and shell_form.command.args == ["echo   hi"] and shell_form.command.shell
    fallback = only("CMD [echo, hi]")  # not JSON: shell form, as Docker does
    assert isinstance(fallback, Cmd) and fallback.command.args == ["[echo, hi]"] and fallback.command.shell
    empty = only("CMD []")
    assert isinstance(empty, Cmd) and empty.command.args == [] and not empty.command.shell
    entry = only("ENTRYPOINT []")
    assert isinstance(entry, Entrypoint) and entry.command.args is None


def test_heredocs() -> None:
    df = parse_dockerfile("FROM scratch\nRUN <<EOF\necho $HOME\nEOF\n"
                          "RUN <<-'EOT' bash\n\techo one\n\tEOT\n"
                          "COPY <<A <<\"B\" /dir/\na $x\nA\nb $x\nB\nUSER me\n")
    run, run2, copy, user = df.stages[0].instructions
    assert isinstance(run, Run) and run.command.files[0].content == "echo $HOME\n"
    assert run.command.files[0].expand and (run.line, run.end_line) == (2, 4)
    assert isinstance(run2, Run) and run2.command.files[0].chomp and not run2.command.files[0].expand
    assert run2.command.files[0].body() == "echo one\n"
    assert isinstance(copy, Copy) and copy.sources == [] and copy.dest == "/dir/"
    assert [(c.name, c.content, c.expand) for c in copy.contents] == [("A", "a $x\n", True), ("B", "b $x\n", False)]
    assert isinstance(user, User) and user.line == 13


def test_heredoc_errors() -> None:
    with pytest.raises(DockerfileError) as err:
        parse("FROM scratch\nRUN <<EOF\necho\n")
    assert err.value.message == "unterminated heredoc" and err.value.line == 2
    with pytest.raises(DockerfileError) as err:
        parse_dockerfile("FROM scratch\nCOPY a <<EOF\nx\nEOF\n")
    assert err.value.message == "dockerfile parse error on line 2: COPY cannot accept a heredoc as a destination"


def test_json_form_never_reads_heredocs() -> None:
    run = only('RUN ["cat", "<<EOF"]\nUSER x', 0)
    assert isinstance(run, Run) and run.command.args == ["cat", "<<EOF"] and not run.command.files


def test_from_forms() -> None:
    df = parse_dockerfile("ARG TAG=1\nFROM --platform=linux/arm64 alpine:$TAG AS Build\nFROM build\nFROM scratch\n")
    assert [a.pairs for a in df.meta_args] == [[("TAG", "1")]]
    first, second, third = df.stages
    assert (first.base, first.name, first.platform) == ("alpine:$TAG", "build", "linux/arm64")
    assert (second.base, second.name, third.base) == ("build", "", "scratch")


def test_run_flags() -> None:
    run = only("RUN --network=none --security=insecure --mount=type=cache,target=/root/.cache,sharing=locked,"
               "id=pip --mount=type=secret,id=tok,required --mount=type=tmpfs,dst=/t,size=10m "
               "--mount=type=bind,from=b,source=/s,target=/d,rw make")
    assert isinstance(run, Run) and run.network == "none" and run.security == "insecure"
    cache, secret, tmpfs, bind = run.mounts
    assert (cache.type, cache.target, cache.sharing, cache.id, cache.readonly) == ("cache", "/root/.cache", "locked", "pip", False)
    assert (secret.type, secret.id, secret.required, secret.readonly) == ("secret", "tok", True, True)
    assert (tmpfs.type, tmpfs.target, tmpfs.size) == ("tmpfs", "/t", 10 * 1024 * 1024)
    assert (bind.from_, bind.source, bind.target, bind.readonly) == ("b", "/s", "/d", False)
    assert isinstance(only("RUN --network=host x"), Run)


def test_copy_and_add_flags() -> None:
    copy = only("COPY --from=build --chown=app:app --chmod=0755 --link --parents --exclude=*.md a* b/ /dst/")
    assert type(copy) is Copy
    assert (copy.from_, copy.chown, copy.chmod, copy.link, copy.parents) == ("build", "app:app", "0755", True, True)
    assert copy.sources == ["a*", "b/"] and copy.dest == "/dst/" and copy.exclude == ["*.md"]
    add = only("ADD --checksum=sha256:abc --keep-git-dir=true --unpack=false https://x/y.tgz /d")
    assert isinstance(add, Add) and add.keep_git_dir is True and add.unpack is False
    assert add.checksum == "sha256:abc"
    json_copy = only('COPY ["a b", "/c d/"]')
    assert isinstance(json_copy, Copy) and json_copy.sources == ["a b"] and json_copy.dest == "/c d/"


def test_key_value_instructions() -> None:
    env = only('ENV A=1 B="two words" C=three\\ words')
    assert isinstance(env, Env) and env.pairs == [("A", "1"), ("B", '"two words"'), ("C", "three\\ words")]
    legacy = only("ENV NAME the rest of the line")
    assert isinstance(legacy, Env) and legacy.pairs == [("NAME", "the rest of the line")]
    label = only('LABEL "com.example.x"="y" z=1')
    assert isinstance(label, Label) and label.pairs == [('"com.example.x"', '"y"'), ("z", "1")]
    arg = only("ARG A B=2 C=")
    assert isinstance(arg, Arg) and arg.pairs == [("A", None), ("B", "2"), ("C", "")]


def test_simple_instructions() -> None:
    text = ("WORKDIR /app dir\nUSER app:app\nEXPOSE 8080/tcp 53/udp\nVOLUME /data /logs\nVOLUME [\"/v\"]\n"
            "STOPSIGNAL SIGTERM\nSHELL [\"/bin/bash\", \"-c\"]\nMAINTAINER someone <a@b>\n")
    workdir, user, expose, volume, volume_json, stop, shell, maintainer = \
        parse_dockerfile("FROM scratch\n" + text).stages[0].instructions
    assert isinstance(workdir, Workdir) and workdir.path == "/app dir"
    assert isinstance(user, User) and user.user == "app:app"
    assert isinstance(expose, Expose) and expose.ports == ["53/udp", "8080/tcp"]
    assert isinstance(volume, Volume) and volume.paths == ["/data", "/logs"]
    assert isinstance(volume_json, Volume) and volume_json.paths == ["/v"]
    assert isinstance(stop, StopSignal) and stop.signal == "SIGTERM"
    assert isinstance(shell, Shell) and shell.shell == ["/bin/bash", "-c"]
    assert isinstance(maintainer, Maintainer) and maintainer.name == "someone <a@b>"


def test_healthcheck() -> None:
    hc = only("HEALTHCHECK --interval=1m30s --timeout=500ms --start-period=2s --start-interval=1s --retries=3 "
              "CMD curl -f http://localhost/")
    assert isinstance(hc, Healthcheck)
    assert hc.test == ["CMD-SHELL", "curl -f http://localhost/"]
    assert (hc.interval, hc.timeout, hc.start_period, hc.start_interval, hc.retries) == \
        (90 * 10**9, 5 * 10**8, 2 * 10**9, 10**9, 3)
    exec_form = only('HEALTHCHECK CMD ["true"]')
    assert isinstance(exec_form, Healthcheck) and exec_form.test == ["CMD", "true"]
    none = only("HEALTHCHECK NONE")
    assert isinstance(none, Healthcheck) and none.test == ["NONE"]


def test_onbuild() -> None:
    ob = only("ONBUILD COPY . /app")
    assert isinstance(ob, Onbuild) and ob.expression == "COPY . /app"
    assert isinstance(ob.trigger, Copy) and ob.trigger.sources == ["."]
    heredoc = only("ONBUILD RUN <<EOF\necho hi\nEOF")
    assert isinstance(heredoc, Onbuild) and heredoc.expression == "RUN <<EOF\necho hi\nEOF"
    assert isinstance(heredoc.trigger, Run) and heredoc.trigger.command.files[0].content == "echo hi\n"


def test_onbuild_triggers_parse_back_in_the_child_build() -> None:
    parent = parse_dockerfile("FROM scratch\nONBUILD RUN <<EOF\necho hi\nEOF\nONBUILD COPY --from=x a /b\n")
    expressions = [i.expression for i in parent.stages[0].instructions if isinstance(i, Onbuild)]
    run, copy = (parse_trigger(e, 7) for e in expressions)
    assert isinstance(run, Run) and run.command.files[0].content == "echo hi\n" and run.line == 7
    assert isinstance(copy, Copy) and copy.from_ == "x" and copy.sources == ["a"]
    with pytest.raises(DockerfileError) as err:
        parse_trigger("RUN a\nRUN b", 3)
    assert (err.value.message, err.value.line) == ("onbuild trigger should be a single expression", 3)
    with pytest.raises(DockerfileError) as err:
        parse_trigger("COPY a", 3)
    assert err.value.message.startswith("COPY requires at least two arguments") and err.value.line == 3


def test_lint_warnings() -> None:
    df = parse_dockerfile("FROM a AS x\nMAINTAINER me\nFROM b AS X\nFROM c AS scratch\n")
    assert df.warnings == [
        "MaintainerDeprecated: Maintainer instruction is deprecated in favor of using label (line 2)",
        'DuplicateStageName: Duplicate stage name "x", stage names should be unique (line 3)',
        'ReservedStageName: Stage name should not use the same name as reserved stage "scratch" (line 4)',
    ]


def test_stopsignal_and_arg_ignore_flags_as_docker_does() -> None:
    assert isinstance(only("STOPSIGNAL --x 9"), StopSignal)


# Errors found while reading lines (BuildKit's parser package) carry their line but not the
# "dockerfile parse error on line N:" prefix, which BuildKit adds to instruction errors only.
MALFORMED = [
    ("FROM scratch\nFOO bar\n", "dockerfile parse error on line 2: unknown instruction: FOO (did you mean FROM?)", 2),
    ("RUN echo\nFROM scratch\n", "no build stage in current context", 1),
    ("ARG A\n", None, 0),  # no stages: checked when stages are resolved
    ("", "file with no instructions", 0),
    ("# only a comment\n\n", "file with no instructions", 2),
    ("FROM\n", "dockerfile parse error on line 1: FROM requires either one or three arguments", 1),
    ("FROM a b\n", "dockerfile parse error on line 1: FROM requires either one or three arguments", 1),
    ("FROM a AS 1x\n", 'dockerfile parse error on line 1: invalid name for build stage: "1x", name can\'t start '
     "with a number or contain symbols", 1),
    ("FROM --bogus=1 a\n", "dockerfile parse error on line 1: unknown flag: --bogus", 1),
    ("FROM scratch\nCMD [\"a\", 1]\n", "when using JSON array syntax, arrays "
     "must be comprised of strings only", 2),
    ("FROM scratch\nCOPY a\n", "dockerfile parse error on line 2: COPY requires at least two arguments, but only "
     "one was provided. Destination could not be determined", 2),
    ("FROM scratch\nADD\n", "dockerfile parse error on line 2: ADD requires at least two arguments, but only one "
     "was provided. Destination could not be determined", 2),
    ("FROM scratch\nARG\n", "dockerfile parse error on line 2: ARG requires at least one argument", 2),
    ("FROM scratch\nARG =x\n", "dockerfile parse error on line 2: ARG names can not be blank", 2),
    ("FROM scratch\nENV\n", "dockerfile parse error on line 2: ENV requires at least one argument", 2),
    ("FROM scratch\nENV A\n", "ENV must have two arguments", 2),
    ("FROM scratch\nENV A=1 B\n", "Syntax error - can't find = in \"B\". "
     "Must be of the form: name=value", 2),
    ("FROM scratch\nENV =1\n", "dockerfile parse error on line 2: ENV names can not be blank", 2),
    ("FROM scratch\nLABEL\n", "dockerfile parse error on line 2: LABEL requires at least one argument", 2),
    ("FROM scratch\nWORKDIR\n", "dockerfile parse error on line 2: WORKDIR requires exactly one argument", 2),
    ("FROM scratch\nUSER\n", "dockerfile parse error on line 2: USER requires exactly one argument", 2),
    ("FROM scratch\nSTOPSIGNAL\n", "dockerfile parse error on line 2: STOPSIGNAL requires exactly one argument", 2),
    ("FROM scratch\nMAINTAINER\n", "dockerfile parse error on line 2: MAINTAINER requires exactly one argument", 2),
    ("FROM scratch\nEXPOSE\n", "dockerfile parse error on line 2: EXPOSE requires at least one argument", 2),
    ("FROM scratch\nVOLUME\n", "dockerfile parse error on line 2: VOLUME requires at least one argument", 2),
    ('FROM scratch\nVOLUME [""]\n', "dockerfile parse error on line 2: VOLUME specified can not be an empty string", 2),
    ("FROM scratch\nSHELL /bin/sh -c\n", "dockerfile parse error on line 2: SHELL requires the arguments to be in "
     "JSON form", 2),
    ("FROM scratch\nSHELL []\n", "dockerfile parse error on line 2: SHELL requires at least one argument", 2),
    ("FROM scratch\nONBUILD\n", "dockerfile parse error on line 2: ONBUILD requires at least one argument", 2),
    ("FROM scratch\nONBUILD ONBUILD RUN x\n", "dockerfile parse error on line 2: Chaining ONBUILD via `ONBUILD "
     "ONBUILD` isn't allowed", 2),
    ("FROM scratch\nONBUILD FROM x\n", "dockerfile parse error on line 2: FROM isn't allowed as an ONBUILD trigger", 2),
    ("FROM scratch\nONBUILD maintainer x\n", "dockerfile parse error on line 2: MAINTAINER isn't allowed as an "
     "ONBUILD trigger", 2),
    ("FROM scratch\nHEALTHCHECK\n", "dockerfile parse error on line 2: HEALTHCHECK requires at least one argument", 2),
    ("FROM scratch\nHEALTHCHECK NONE x\n", "dockerfile parse error on line 2: HEALTHCHECK NONE takes no arguments", 2),
    ("FROM scratch\nHEALTHCHECK CMD\n", "dockerfile parse error on line 2: Missing command after HEALTHCHECK CMD", 2),
    ("FROM scratch\nHEALTHCHECK TEST x\n", 'dockerfile parse error on line 2: Unknown type "TEST" in HEALTHCHECK '
     "(try CMD)", 2),
    ("FROM scratch\nHEALTHCHECK --retries=-1 CMD x\n", "dockerfile parse error on line 2: --retries cannot be "
     "negative (-1)", 2),
    ("FROM scratch\nHEALTHCHECK --interval=1ns CMD x\n", 'dockerfile parse error on line 2: Interval "interval" '
     "cannot be less than 1ms", 2),
    ("FROM scratch\nHEALTHCHECK --interval=soon CMD x\n", 'dockerfile parse error on line 2: time: invalid '
     'duration "soon"', 2),
    ("FROM scratch\nRUN --network=bridge x\n", 'dockerfile parse error on line 2: invalid network mode "bridge"', 2),
    ("FROM scratch\nRUN --network x\n", "dockerfile parse error on line 2: missing a value on flag: --network", 2),
    ("FROM scratch\nRUN --mount=type=nfs x\n", 'dockerfile parse error on line 2: unsupported mount type "nfs"', 2),
    ("FROM scratch\nRUN --mount=type=bind,bogus=1 x\n", "dockerfile parse error on line 2: unexpected key 'bogus' "
     "in 'bogus=1'", 2),
    ("FROM scratch\nRUN --mount=type=tmpfs,size=lots x\n", "dockerfile parse error on line 2: invalid value for "
     "size: lots", 2),
    ("FROM scratch\nRUN --mount=type=bind,size=1 x\n", "dockerfile parse error on line 2: unexpected key 'size' for "
     "mount type 'bind'", 2),
    ("FROM scratch\nRUN --mount=type=tmpfs,mode=0700 x\n", 'dockerfile parse error on line 2: mode not allowed for '
     '"tmpfs" type mounts', 2),
    ("FROM scratch\nRUN --mount=type=secret x\n", "dockerfile parse error on line 2: invalid secret mount. one of "
     "source, target required", 2),
    ("FROM scratch\nRUN --mount=type=bind,sharing=shared x\n", "dockerfile parse error on line 2: invalid cache "
     "sharing set for bind mount", 2),
    ("FROM scratch\nRUN --mount=type=cache,target=/x,foo x\n", "dockerfile parse error on line 2: invalid field 'foo' "
     "must be a key=value pair", 2),
    ("FROM scratch\nCOPY --link=maybe a b\n", "dockerfile parse error on line 2: expecting boolean value for flag "
     "--link, not: maybe", 2),
    ("FROM scratch\nCOPY --chown=a --chown=b a b\n", "dockerfile parse error on line 2: duplicate flag specified: "
     "--chown", 2),
    ("FROM scratch\nADD --from=x a b\n", "dockerfile parse error on line 2: unknown flag: --from", 2),
    ("FROM scratch\nUSER --x=1 a\n", "dockerfile parse error on line 2: unknown flag: --x", 2),
    ("# escape=x\nFROM scratch\n", "invalid escape token 'x' does not match ` or \\", 1),
    ("# escape=\\\n# escape=`\nFROM scratch\n", "only one escape parser directive can be used", 2),
    ("FROM scratch\nFORM x\n", "dockerfile parse error on line 2: unknown instruction: FORM (did you mean FROM?)", 2),
    ("FROM scratch\nrunn x\n", "dockerfile parse error on line 2: unknown instruction: runn (did you mean run?)", 2),
    ("FROM scratch\nCOPY --chmown=1 a b\n", "dockerfile parse error on line 2: unknown flag: --chmown (did you "
     "mean chown?)", 2),
    ("FROM scratch\nRUN --mount=type=cahce x\n", 'dockerfile parse error on line 2: unsupported mount type "cahce" '
     "(did you mean cache?)", 2),
    ("FROM scratch\nRUN --mount=type=cache,target=/x,sharing=lockd x\n", "dockerfile parse error on line 2: "
     'unsupported sharing value "lockd" (did you mean locked?)', 2),
    ("FROM scratch\nRUN --mount=type=cache,targt=/x x\n", "dockerfile parse error on line 2: unexpected key "
     "'targt' in 'targt=/x' (did you mean target?)", 2),
    ("FROM scratch\nRUN a\\\n  b\nXYZZY\n", "dockerfile parse error on line 4: unknown instruction: XYZZY", 4),
]


@pytest.mark.parametrize(("text", "message", "line"), MALFORMED)
def test_malformed(text: str, message: str | None, line: int) -> None:
    if message is None:
        assert parse_dockerfile(text).stages == []
        return
    with pytest.raises(DockerfileError) as err:
        parse_dockerfile(text, filename="app.Dockerfile")
    assert err.value.message == message
    assert err.value.line == line
    assert err.value.filename == "app.Dockerfile"
    assert err.value.location() == (f"app.Dockerfile:{line}" if line else "app.Dockerfile")


def test_error_names_the_instruction_and_span() -> None:
    with pytest.raises(DockerfileError) as err:
        parse_dockerfile("FROM scratch\ncopy \\\n  onlyone\n")
    assert err.value.instruction == "copy" and (err.value.line, err.value.end_line) == (2, 3)
    assert err.value.status == 400


KEYWORDS = ["FROM a", "RUN", "COPY", "ADD", "ENV", "ARG", "LABEL", "CMD", "ONBUILD", "HEALTHCHECK", "EXPOSE",
            "VOLUME", "SHELL", "USER", "WORKDIR", "STOPSIGNAL", "MAINTAINER", "# escape=`", "#"]


@given(st.lists(st.tuples(st.sampled_from(KEYWORDS), st.text(alphabet=" -=[]\"'\\`$<{}:#,abEOF\t\n"))))
def test_parser_never_crashes(lines: list[tuple[str, str]]) -> None:
    text = "\n".join(f"{keyword} {rest}" for keyword, rest in lines)
    try:
        df = parse_dockerfile(text)
        resolve_stages(df, global_args(df, {}))
        for stage in df.stages:
            scope = StageScope({}, {}, {})
            for instruction in stage.instructions:
                scope.apply(instruction)
    except InvalidParameter:
        pass
