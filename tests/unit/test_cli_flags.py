"""Docker-style flag parsing and the CLI's command-line errors (no daemon needed)."""

from __future__ import annotations

import pytest

from dockyard.cli import main as cli_main
from dockyard.cli.failure import FlagError, HelpRequested
from dockyard.cli.verbs import lifecycle, ps, run


def parse_run(*argv: str):  # type: ignore[no-untyped-def]
    return run.FLAGS.parse(list(argv))


def test_combined_short_bools_and_values() -> None:
    parsed = parse_run("-dit", "--name=x", "-e=A=1", "-eB=2", "-e", "C", "busybox", "sh", "-c", "echo -e")
    assert parsed["detach"] and parsed["interactive"] and parsed["tty"]
    assert parsed["name"] == "x"
    assert parsed["env"] == ["A=1", "B=2", "C"]
    assert parsed.args == ["busybox", "sh", "-c", "echo -e"]


def test_run_stops_at_image_name() -> None:
    parsed = parse_run("--rm", "busybox", "--rm", "-it")
    assert parsed["rm"] and not parsed["tty"]
    assert parsed.args == ["busybox", "--rm", "-it"]


def test_bool_with_explicit_value_and_alias() -> None:
    parsed = parse_run("--rm=false", "-d=true", "--net", "host", "busybox")
    assert parsed["rm"] is False and parsed["detach"] is True
    assert parsed["network"] == ["host"]  # repeatable, as in Docker 28


def test_entrypoint_empty_is_changed() -> None:
    parsed = parse_run("--entrypoint", "", "busybox")
    assert "entrypoint" in parsed.changed and parsed["entrypoint"] == ""


def test_run_h_is_hostname_not_help() -> None:
    assert parse_run("-h", "box", "busybox")["hostname"] == "box"
    with pytest.raises(HelpRequested):
        parse_run("--help")


def test_interspersed_flags_for_other_verbs() -> None:
    parsed = lifecycle.FLAGS["rm"].parse(["a", "-f", "b", "--", "-c"])
    assert parsed["force"] and parsed.args == ["a", "b", "-c"]


@pytest.mark.parametrize(("argv", "message"), [
    (["--foo"], "unknown flag: --foo"),
    (["-z"], "unknown shorthand flag: 'z' in -z"),
    (["-dz"], "unknown shorthand flag: 'z' in -dz"),
    (["--name"], "flag needs an argument: --name"),
    (["-e"], "flag needs an argument: 'e' in -e"),
    (["--rm=maybe"], 'invalid argument "maybe" for "--rm" flag: strconv.ParseBool: parsing "maybe": invalid syntax'),
])
def test_flag_errors(argv: list[str], message: str) -> None:
    with pytest.raises(FlagError) as caught:
        parse_run(*argv)
    assert caught.value.message == message
    assert caught.value.status == 125


def test_int_error_names_both_spellings() -> None:
    with pytest.raises(FlagError) as caught:
        ps.FLAGS.parse(["--last", "x"])
    assert caught.value.message == ('invalid argument "x" for "-n, --last" flag: '
                                    'strconv.ParseInt: parsing "x": invalid syntax')


def test_main_unknown_flag_exit_125(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main.main(["run", "--foo", "busybox"]) == 125
    err = capsys.readouterr().err
    assert err == ("unknown flag: --foo\n\nUsage:  dockyard run [OPTIONS] IMAGE [COMMAND] [ARG...]\n\n"
                   "Run 'dockyard run --help' for more information\n")


def test_main_unknown_verb_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main.main(["foo"]) == 1
    assert capsys.readouterr().err.startswith("dockyard: unknown command: dockyard foo\n")


@pytest.mark.parametrize(("argv", "first_line", "hint"), [
    (["stop"], "dockyard: 'dockyard stop' requires at least 1 argument", "See"),
    (["tag", "a"], "dockyard: 'dockyard tag' requires 2 arguments", "Run"),
    (["ps", "x"], "dockyard: 'dockyard ps' accepts no arguments", "Run"),
    (["images", "a", "b"], "dockyard: 'dockyard images' requires at most 1 argument", "Run"),
])
def test_main_arity_errors(argv: list[str], first_line: str, hint: str,
                           capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main.main(argv) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[0] == first_line
    assert err.rstrip().endswith(f"{hint} 'dockyard {argv[0]} --help' for more information")


def test_main_verb_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main.main(["rm", "--help"]) == 0
    out = capsys.readouterr().out
    assert "Usage:  dockyard rm [OPTIONS] CONTAINER [CONTAINER...]" in out
    assert "  -f, --force" in out


def test_main_top_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main.main(["--help"]) == 0
    assert "Usage:  dockyard [OPTIONS] COMMAND" in capsys.readouterr().out
    assert cli_main.main(["--version"]) == 0
    assert capsys.readouterr().out == "dockyard version 0.1.0\n"


def test_explicit_host_does_not_autostart(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    host = f"unix://{tmp_path}/none.sock"
    assert cli_main.main(["-H", host, "ps"]) == 1
    assert capsys.readouterr().err == (f"Cannot connect to the dockyard daemon at {host}. "
                                       "Is the dockyard daemon running?\n")


def test_env_host_does_not_autostart(tmp_path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    host = f"unix://{tmp_path}/none.sock"
    monkeypatch.setenv("DOCKYARD_HOST", host)
    assert cli_main.main(["run", "busybox"]) == 1
    assert "Cannot connect to the dockyard daemon at " + host in capsys.readouterr().err


def test_env_resolution(monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("FROM_ENV", "v")
    monkeypatch.delenv("UNSET_ONE", raising=False)
    assert run.resolve_env("A=1") == "A=1"
    assert run.resolve_env("FROM_ENV") == "FROM_ENV=v"
    assert run.resolve_env("UNSET_ONE") == "UNSET_ONE"
    env_file = tmp_path / "env"
    env_file.write_text("# comment\n\nX=1\n  Y=two words\nFROM_ENV\n")
    assert run.read_env_file(str(env_file)) == ["X=1", "Y=two words", "FROM_ENV=v"]


def test_create_body() -> None:
    parsed = parse_run("-i", "--rm", "--entrypoint", "", "-l", "a=b", "-l", "c", "-u", "nobody",
                       "-w", "/tmp", "-h", "hn", "busybox", "echo", "hi")
    attach = run.attached_streams(parsed)
    assert attach == {"stdin", "stdout", "stderr"}
    body = run.create_body(parsed, "busybox", ["echo", "hi"], attach, None)
    assert body["Entrypoint"] == [""]
    assert body["Cmd"] == ["echo", "hi"]
    assert body["Labels"] == {"a": "b", "c": ""}
    assert body["OpenStdin"] and body["StdinOnce"] and body["AttachStdin"]
    assert body["HostConfig"] == {"NetworkMode": "default", "AutoRemove": True, "PortBindings": {},
                                  "PublishAllPorts": False, "Dns": [], "DnsSearch": [], "DnsOptions": []}
    assert body["NetworkingConfig"] == {"EndpointsConfig": {"default": {}}}
    assert (body["User"], body["WorkingDir"], body["Hostname"]) == ("nobody", "/tmp", "hn")
    detached = parse_run("-d", "busybox")
    body = run.create_body(detached, "busybox", [], run.attached_streams(detached), None)
    assert body["Cmd"] is None and body["Entrypoint"] is None
    assert not (body["AttachStdout"] or body["StdinOnce"])


@pytest.mark.parametrize(("message", "status"), [
    ('exec: "nosuch": executable file not found in $PATH', 127),
    ("open /x: no such file or directory", 127),
    ('exec: "/etc/passwd": permission denied', 126),
    ("something else", 125),
])
def test_start_error_status(message: str, status: int) -> None:
    assert run.start_error_status(message) == status
