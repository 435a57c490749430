"""The run-config changes and history comments of config-only steps (dockyard.build.steps)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.build.dockerfile import DockerfileError
from dockyard.build.instructions import parse_dockerfile
from dockyard.build.stages import StageScope
from dockyard.build.steps import (
    DEFAULT_PATH,
    ConfigStep,
    build_arg_env,
    expand_ports,
    go_list,
    nop_cmd,
    nop_cmd_string,
    run_created_by,
    stage_config,
    workdir_path,
)
from dockyard.errors import InvalidParameter


def comments(body: str, base: dict[str, object] | None = None) -> tuple[list[str], dict[str, object]]:
    """Apply every instruction after FROM; the comments and the final run config."""
    df = parse_dockerfile("FROM x\n" + body)
    config = stage_config(base)
    scope = StageScope({}, {}, {}, df.escape)
    step = ConfigStep(config)
    return [step.apply(scope.apply(i)) for i in df.stages[0].instructions], config


def test_stage_config_adds_path_only_when_missing() -> None:
    assert stage_config(None)["Env"] == ["PATH=" + DEFAULT_PATH]
    assert stage_config({"Env": ["PATH=/x", "A=1"]})["Env"] == ["PATH=/x", "A=1"]


def test_comments_as_the_classic_builder_writes_them() -> None:
    out, config = comments('ENV A=1 B="x y"\nLABEL k=v\nEXPOSE 80 53/udp\nVOLUME /a /b\nUSER u\n'
                           'STOPSIGNAL SIGKILL\nSHELL ["/bin/bash", "-c"]\nCMD echo hi\nENTRYPOINT ["e"]\n'
                           'ONBUILD RUN x\nARG N V=1\nMAINTAINER me\n'
                           'HEALTHCHECK --interval=1m30s --retries=3 CMD ["true"]\n')
    assert out == ["ENV A=1 B=x y", "LABEL k=v", "EXPOSE 53/udp 80", "VOLUME [/a /b]", "USER u",
                   "STOPSIGNAL SIGKILL", "SHELL [/bin/bash -c]", 'CMD ["/bin/bash" "-c" "echo hi"]',
                   'ENTRYPOINT ["e"]', "ONBUILD RUN x", "ARG N V=1", "MAINTAINER me",
                   'HEALTHCHECK &{["CMD" "true"] "1m30s" "0s" "0s" "0s" \'\\x03\'}']
    assert config["Env"] == ["PATH=" + DEFAULT_PATH, "A=1", "B=x y"]
    assert config["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert config["Cmd"] == ["/bin/bash", "-c", "echo hi"]  # CMD came first: ENTRYPOINT keeps it
    assert config["Healthcheck"] == {"Test": ["CMD", "true"], "Interval": 90_000_000_000, "Retries": 3}


def test_entrypoint_resets_cmd_unless_this_stage_set_one() -> None:
    _, config = comments('ENTRYPOINT ["e"]\n', {"Cmd": ["from-base"]})
    assert config["Cmd"] is None
    _, config = comments('ENTRYPOINT e\nHEALTHCHECK NONE\n', {"Cmd": ["from-base"]})
    assert config["Entrypoint"] == ["/bin/sh", "-c", "e"]
    assert config["Healthcheck"] == {"Test": ["NONE"]}


def test_env_replaces_in_place() -> None:
    _, config = comments("ENV PATH=/p A=1\nENV PATH=/q\n")
    assert config["Env"] == ["PATH=/q", "A=1"]


def test_bad_values_are_refused() -> None:
    with pytest.raises(DockerfileError, match="invalid signal"):
        comments("STOPSIGNAL NOPE\n")
    with pytest.raises(InvalidParameter):
        expand_ports("70000")
    assert expand_ports("8000-8002/UDP") == ["8000/udp", "8001/udp", "8002/udp"]


def test_command_records() -> None:
    config = stage_config({"Shell": ["/bin/bash", "-c"]})
    assert nop_cmd(config, "ENV a=b") == ["/bin/bash", "-c", "#(nop) ", "ENV a=b"]
    assert " ".join(nop_cmd_string(config, "WORKDIR /x")) == "/bin/bash -c #(nop) WORKDIR /x"
    env = build_arg_env({"B": "2", "A": "1", "SHADOW": "x"}, ["SHADOW=env"])
    assert env == ["A=1", "B=2"]
    assert run_created_by(["/bin/sh", "-c", "echo"], env) == ["|2", "A=1", "B=2", "/bin/sh", "-c", "echo"]
    assert run_created_by(["echo"], []) == ["echo"]
    assert go_list(['a"b', "c"]) == '["a\\"b" "c"]'


def test_workdir_paths() -> None:
    assert workdir_path("", "a/b") == "/a/b"
    assert workdir_path("/a", "../c/./d") == "/c/d"
    assert workdir_path("/a", "/abs/") == "/abs"


def test_a_healthcheck_replacing_another_gets_dockers_note() -> None:
    config = stage_config({"Healthcheck": {"Test": ["CMD-SHELL", "true"]}})
    step = ConfigStep(config)
    step.apply(parse_dockerfile("FROM x\nHEALTHCHECK CMD false\n").stages[0].instructions[0])
    assert step.note == "Note: overriding previous HEALTHCHECK: [CMD-SHELL true]\n"
    step = ConfigStep(stage_config({"Healthcheck": {"Test": ["NONE"]}}))
    step.apply(parse_dockerfile("FROM x\nHEALTHCHECK CMD false\n").stages[0].instructions[0])
    assert step.note == ""


def test_tree_checksum_follows_content_not_mtimes(tmp_path: Path) -> None:
    import os

    from dockyard.build.builder import tree_checksum

    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_text("one")
    os.symlink("f", tmp_path / "d" / "link")
    first = tree_checksum(str(tmp_path))
    os.utime(tmp_path / "d" / "f", (1, 1))
    assert tree_checksum(str(tmp_path)) == first
    (tmp_path / "d" / "f").write_text("two")
    second = tree_checksum(str(tmp_path))
    assert second != first
    os.chmod(tmp_path / "d" / "f", 0o600)
    assert tree_checksum(str(tmp_path)) != second
    assert tree_checksum(str(tmp_path / "d" / "f")) != tree_checksum(str(tmp_path / "d"))
