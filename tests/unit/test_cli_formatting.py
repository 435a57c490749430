"""Tables, durations, sizes, quoting, JSON, and the rows ``ps``/``images`` build."""

from __future__ import annotations

import pytest

from dockyard.cli import jsoncodec, units
from dockyard.cli.flags import go_quote
from dockyard.cli.listing import ellipsis, filters_param, render
from dockyard.cli.references import short_id, split_reference, with_default_tag
from dockyard.cli.tabwriter import align
from dockyard.cli.verbs import images, ps


def test_align_like_go_tabwriter() -> None:
    lines = align(["CONTAINER ID\tIMAGE\tNAMES", "abc\tbusybox\tx"])
    assert lines == ["CONTAINER ID   IMAGE     NAMES", "abc            busybox   x"]


@pytest.mark.parametrize(("seconds", "text"), [
    (0.5, "Less than a second"), (1, "1 second"), (5, "5 seconds"), (60, "About a minute"),
    (150, "2 minutes"), (3600, "About an hour"), (7200, "2 hours"), (3 * 86400, "3 days"),
    (20 * 86400, "2 weeks"), (90 * 86400, "3 months"), (3 * 365 * 86400, "3 years"),
])
def test_human_duration(seconds: float, text: str) -> None:
    assert units.human_duration(seconds) == text


@pytest.mark.parametrize(("size", "text"), [
    (0, "0B"), (999, "999B"), (1983000, "1.98MB"), (4260000, "4.26MB"), (1.2e9, "1.2GB"), (15500, "15.5kB"),
])
def test_human_size(size: float, text: str) -> None:
    assert units.human_size(size) == text


def test_bytes_size_and_times() -> None:
    assert units.bytes_size(25275711488) == "23.54GiB"
    assert units.parse_rfc3339("1970-01-02T00:00:01.5Z") == 86401.5
    assert units.parse_rfc3339("1970-01-01T01:00:00+01:00") == 0
    assert units.parse_go_duration("1h30m") == 5400
    assert units.parse_go_duration("nope") is None
    assert units.api_timestamp("10s", now=100.0) == "90.000000000"
    assert units.api_timestamp("1700000000") == "1700000000"


def test_quote_and_ellipsis() -> None:
    assert go_quote("sh -c 'exit 3'") == "\"sh -c 'exit 3'\""
    assert go_quote('a"b\\c\n') == '"a\\"b\\\\c\\n"'
    assert ellipsis("sleep 1000", 20) == "sleep 1000"
    assert ellipsis("sh -c 'echo hello world; sleep 5'", 20) == "sh -c 'echo hello w…"


def test_references() -> None:
    assert split_reference("localhost:5000/a/b:v1") == ("localhost:5000/a/b", "v1", "")
    assert split_reference("busybox@sha256:abc") == ("busybox", "", "sha256:abc")
    assert with_default_tag("busybox") == "busybox:latest"
    assert short_id("sha256:" + "a" * 64) == "a" * 12


def test_jsoncodec_round_trip_go_style() -> None:
    value = {"a": [1, 2.5, None, True], "s": "<é>", "e": {}, "l": []}
    assert jsoncodec.dumps(value) == '{"a":[1,2.5,null,true],"s":"\\u003cé\\u003e","e":{},"l":[]}'
    assert jsoncodec.loads(jsoncodec.dumps(value)) == value
    assert jsoncodec.dumps([{"a": 1}], "    ") == '[\n    {\n        "a": 1\n    }\n]'
    with pytest.raises(ValueError):
        jsoncodec.loads("{")
    with pytest.raises(ValueError):
        jsoncodec.loads("{} x")


def test_filters_param() -> None:
    # Go's encoder sorts map keys, and so does the CLI
    assert filters_param(["status=exited", "label=a=b"]) == '{"label":{"a=b":true},"status":{"exited":true}}'


CONTAINER = {"Id": "f" * 64, "Names": ["/web"], "Image": "busybox", "Command": "sh -c 'sleep 1000; echo done'",
             "Created": 1000, "Status": "Up 3 seconds", "State": "running", "Ports": [],
             "Labels": {"b": "2", "a": "1"}, "NetworkSettings": {"Networks": {"none": {}}}, "Mounts": []}


def test_ps_row_and_table() -> None:
    row = ps.container_row(CONTAINER, True, now=1005)
    assert row["ID"] == "f" * 12
    assert row["Command"] == '"sh -c \'sleep 1000; …"'
    assert row["RunningFor"] == "5 seconds ago"
    assert row["Labels"] == "a=1,b=2"
    out = render(ps.DEFAULT_FORMAT, [row], ps.HEADERS)
    header, line = out.splitlines()
    assert header == ("CONTAINER ID   IMAGE     COMMAND                  CREATED         STATUS         "
                      "PORTS     NAMES")
    assert line == ("ffffffffffff   busybox   \"sh -c 'sleep 1000; …\"   5 seconds ago   Up 3 seconds             web")
    assert render("{{.Names}}|{{.State}}", [row], ps.HEADERS) == "web|running\n"
    assert ps.container_row(CONTAINER, False, now=1005)["ID"] == "f" * 64


def test_images_rows() -> None:
    image = {"Id": "sha256:" + "1" * 64, "RepoTags": ["busybox:latest", "my/x:1"], "RepoDigests": [],
             "Created": 1000, "Size": 1983000}
    rows = images.image_rows(image, True, now=1030)
    assert [(r["Repository"], r["Tag"]) for r in rows] == [("busybox", "latest"), ("my/x", "1")]
    out = render(images.DEFAULT_FORMAT, rows[:1], images.HEADERS)
    assert out.splitlines() == ["REPOSITORY   TAG       IMAGE ID       CREATED          SIZE",
                                "busybox      latest    111111111111   30 seconds ago   1.98MB"]
    untagged = images.image_rows({"Id": "sha256:" + "2" * 64, "Created": 0, "Size": 0}, True, now=0)
    assert (untagged[0]["Repository"], untagged[0]["Tag"], untagged[0]["CreatedSince"]) == ("<none>", "<none>", "N/A")


def test_version_format_uses_go_field_names_and_a_bad_field_is_a_clean_failure() -> None:
    from dockyard.cli.failure import CliFailure
    from dockyard.cli.listing import template_failure
    from dockyard.cli.template import TemplateError, render_text
    from dockyard.cli.verbs.version import template_data

    data = template_data("1.47", {"ApiVersion": "1.47", "Version": "0.1.0", "MinAPIVersion": "1.24"})
    assert render_text("{{.Server.APIVersion}} {{.Client.APIVersion}} {{.Server.MinAPIVersion}}", data) == "1.47 1.47 1.24"
    try:
        render_text("{{.Server.Nope}}", data)
    except TemplateError as error:
        failure = template_failure(error)
    assert isinstance(failure, CliFailure)
    assert "failed to execute template" in str(failure)
