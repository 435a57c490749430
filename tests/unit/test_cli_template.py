"""The Go-template subset used by ``--format``."""

from __future__ import annotations

import pytest

from dockyard.cli.template import Template, TemplateError, go_string, prepare

DATA = {"Id": "abc", "State": {"ExitCode": 3, "Running": False},
        "Config": {"Labels": {"k": "v<", "a": "1"}, "Cmd": ["sh", "-c"], "Env": None},
        "NetworkSettings": {"IPAddress": "10.0.0.2"}, "Names": ["x", "y"]}


@pytest.mark.parametrize(("source", "expected"), [
    ("{{.State.ExitCode}}", "3"),
    ("{{.Id}}", "abc"),
    ("{{json .Config.Cmd}}", '["sh","-c"]'),
    ("{{json .Config.Labels}}", '{"k":"v\\u003c","a":"1"}'),
    ("{{.NetworkSettings.IPAddress}}", "10.0.0.2"),
    ('{{index .Config.Labels "k"}}', "v<"),
    ('{{index .Names 1}}', "y"),
    ('{{join .Names ","}}', "x,y"),
    ("{{upper .Id}} {{.Id | upper | lower}}", "ABC abc"),
    ("{{.State.Running}} {{.Config.Cmd}} {{.Config.Labels}}", "false [sh -c] map[a:1 k:v<]"),
    ("{{.Config.Env}}", "<no value>"),
    ("{{if .State.Running}}up{{else}}down{{end}}", "down"),
    ('{{if eq .Id "x"}}1{{else if .Names}}2{{else}}3{{end}}', "2"),
    ("{{range .Names}}<{{.}}>{{end}}", "<x><y>"),
    ("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}} {{end}}", "a=1 k=v< "),
    ("{{with .State}}{{.ExitCode}}{{end}}", "3"),
    ("a  {{- .Id -}}  b", "aabcb"),
    ('{{printf "%s:%d" .Id .State.ExitCode}}', "abc:3"),
    ("{{len .Names}} {{(index .Names 0) | upper}}", "2 X"),
    ("{{/* comment */}}plain", "plain"),
])
def test_render(source: str, expected: str) -> None:
    assert Template(source).execute(DATA) == expected


@pytest.mark.parametrize(("source", "parsing", "fragment"), [
    ("{{.Id", True, "unclosed action"),
    ("{{nope .Id}}", True, 'function "nope" not defined'),
    ("{{if .Id}}x", True, "unexpected EOF"),
    ("{{.Missing}}", False, 'map has no entry for key "Missing"'),
])
def test_errors(source: str, parsing: bool, fragment: str) -> None:
    with pytest.raises(TemplateError) as caught:
        Template(source).execute(DATA)
    assert caught.value.parsing is parsing
    assert fragment in str(caught.value)


def test_prepare_table_and_escapes() -> None:
    assert prepare("table {{.ID}}\\t{{.Names}}") == (True, "{{.ID}}\t{{.Names}}")
    assert prepare("{{.ID}}\\n") == (False, "{{.ID}}\n")


def test_go_string() -> None:
    assert go_string(3.0) == "3"
    assert go_string(True) == "true"
    assert go_string([1, None]) == "[1 <nil>]"
