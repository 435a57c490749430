"""The CLI's networking pieces on their own (no Docker CLI needed): port specs, endpoints, validators,
Docker's natural order, Go's CSV and time printing, typed inspect values. Expected values are what
Docker 28's CLI produced for the same input (``test_network_cli_vs_docker.py`` checks them live)."""

from __future__ import annotations

from typing import Any

import pytest

from dockyard.cli.failure import CliFailure, FlagError
from dockyard.cli.flags import read_csv_record
from dockyard.cli.listing import natural_sorted
from dockyard.cli.options import networking
from dockyard.cli.options.networking import OptionError, parse_ports
from dockyard.cli.template import Template
from dockyard.cli.verbs import network
from dockyard.cli.verbs.run import FLAGS as RUN_FLAGS


def bindings(*specs: str) -> dict[str, Any]:
    return parse_ports(list(specs), [])[1]


@pytest.mark.parametrize(("spec", "expected"), [
    ("8080:80", {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}),
    ("127.0.0.1::80", {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}),
    ("8000-8001:80", {"80/tcp": [{"HostIp": "", "HostPort": "8000-8001"}]}),
    ("8000-8001:80-81/udp", {"80/udp": [{"HostIp": "", "HostPort": "8000"}],
                             "81/udp": [{"HostIp": "", "HostPort": "8001"}]}),
    ("[::1]:8080:80", {"80/tcp": [{"HostIp": "::1", "HostPort": "8080"}]}),
    ("::1:8080:80", {"80/tcp": [{"HostIp": "::1", "HostPort": "8080"}]}),
    ("80/TCP", {"80/tcp": [{"HostIp": "", "HostPort": ""}]}),
    ("published=8080,target=80,protocol=udp,mode=host", {"80/udp": [{"HostIp": "", "HostPort": "8080"}]}),
    ("80:0", {"0/tcp": [{"HostIp": "", "HostPort": "80"}]}),
])
def test_port_specs(spec: str, expected: dict[str, Any]) -> None:
    assert bindings(spec) == expected


@pytest.mark.parametrize(("spec", "message"), [
    ("8000-8002:80-81", "invalid ranges specified for container and host Ports: 80-81 and 8000-8002"),
    ("8080:80/http", "invalid proto: http"),
    ("published=8080", "no port specified: 8080:/tcp<empty>"),
    ("foo", "invalid containerPort: foo"),
    ("70000:80", "invalid hostPort: 70000"),
    ("1.2.3:80:80", "invalid IP address: 1.2.3"),
    ("target=80,,published=1", "invalid publish opts format (should be name=value but got '')"),
])
def test_bad_port_specs(spec: str, message: str) -> None:
    with pytest.raises(OptionError) as caught:
        bindings(spec)
    assert str(caught.value) == message


def test_expose_merges_into_exposed_ports() -> None:
    exposed, _ = parse_ports(["80"], ["80", "90-91/udp", "1-2-3", "80/http"])
    assert exposed == {"80/tcp": {}, "90/udp": {}, "91/udp": {}, "1/tcp": {}, "2/tcp": {}, "80/http": {}}
    with pytest.raises(OptionError, match="invalid range format for --expose: 90-80, error: invalid range"):
        parse_ports([], ["90-80"])


def endpoints(*argv: str) -> dict[str, Any]:
    return networking.endpoints_config(RUN_FLAGS.parse([*argv, "busybox"]))


def test_endpoints_follow_dockers_rules() -> None:
    assert endpoints() == {"default": {}}
    assert endpoints("--network", "appnet") == {}
    assert endpoints("--net", "appnet", "--network-alias", "a", "--ip", "10.0.0.9") == {
        "appnet": {"Aliases": ["a"], "IPAMConfig": {"IPv4Address": "10.0.0.9"}}}
    assert endpoints("--network", "name=a,alias=X", "--network", "b") == {"a": {"Aliases": ["x"]}, "b": {}}
    assert endpoints("--link", "web:w", "--network", "n") == {"n": {"Links": ["web:w"]}}
    assert endpoints("--link", "web:w") == {"default": {}}  # a legacy link on the default bridge


@pytest.mark.parametrize(("argv", "message"), [
    (["--network-alias", "a"], "network-scoped aliases are only supported for user-defined networks"),
    (["--network", "a", "--network", "a"], 'network "a" is specified multiple times'),
    (["--network", "a", "--network", "host"],
     "conflicting options: cannot attach both user-defined and non-user-defined network-modes"),
    (["--network", "name=a,ip=1.2.3.4", "--ip", "1.2.3.5"],
     "conflicting options: cannot specify both --ip and per-network IPv4 address"),
    (["--network", " "], "no name set for network"),
])
def test_endpoint_errors(argv: list[str], message: str) -> None:
    with pytest.raises(OptionError) as caught:
        endpoints(*argv)
    assert str(caught.value) == message


@pytest.mark.parametrize(("argv", "message"), [
    (["--dns", "nope"], 'invalid argument "nope" for "--dns" flag: IP address is not correctly formatted: nope'),
    (["--add-host", "nocolon"], 'invalid argument "nocolon" for "--add-host" flag: bad format for add-host: '
                                '"nocolon"'),
    (["--link", "a:b:c"], 'invalid argument "a:b:c" for "--link" flag: bad format for links: a:b:c'),
    (["--net", "name=a,foo=bar"], 'invalid argument "name=a,foo=bar" for "--net" flag: invalid field key foo'),
    (["--dns-search", "-bad"], 'invalid argument "-bad" for "--dns-search" flag: -bad is not a valid domain'),
])
def test_flag_validators(argv: list[str], message: str) -> None:
    with pytest.raises(FlagError) as caught:
        RUN_FLAGS.parse([*argv, "busybox"])
    assert caught.value.message == message


def test_validators_normalise_as_docker() -> None:
    parsed = RUN_FLAGS.parse(["--dns", " 1.1.1.1 ", "--dns", "::ffff:1.2.3.4", "--dns-search", "foo.com. ",
                              "--add-host", "d=[::2]", "--add-host", "c:host-gateway", "busybox"])
    assert parsed["dns"] == ["1.1.1.1", "1.2.3.4"]
    assert parsed["dns-search"] == ["foo.com"]
    assert parsed["add-host"] == ["d:::2", "c:host-gateway"]
    assert networking.localhost_dns_warning(["8.8.8.8", "127.0.0.53"]) == \
        "Localhost DNS (127.0.0.53) may fail in containers."


@pytest.mark.parametrize(("text", "valid"), [
    ("02:42:ac:11:00:02", True), ("02-42-ac-11-00-02", True), ("0242.ac11.0002", True),
    ("02:42:ac:11:00:02:00:01", True), ("zz", False), ("02:42:ac:11:00", False), ("02:42:ac:11:00:0g", False),
])
def test_mac_addresses(text: str, valid: bool) -> None:
    assert networking.is_mac_address(text) is valid


def test_natural_order() -> None:
    assert natural_sorted(["net10", "net9", "Net1", "net09", "a", "9", "80/tcp -> :1", "443/tcp -> :2"]) == [
        "9", "80/tcp -> :1", "443/tcp -> :2", "Net1", "a", "net9", "net09", "net10"]


def test_csv_records_as_go_reads_them() -> None:
    assert read_csv_record("") == []
    assert read_csv_record('a,"b,c",d,') == ["a", "b,c", "d", ""]
    assert read_csv_record('"say ""hi"""') == ['say "hi"']
    with pytest.raises(ValueError, match='column 14: bare " in non-quoted-field'):
        read_csv_record('name=a,alias="x,y"')


@pytest.mark.parametrize(("stamp", "printed"), [
    ("2026-12-01T10:00:00.123456789Z", "2026-12-01 10:00:00.123456789 +0000 UTC"),
    ("2026-11-30T09:00:00.5Z", "2026-11-30 09:00:00.5 +0000 UTC"),
    ("2026-12-02T11:22:33.000000001+01:00", "2026-12-02 11:22:33.000000001 +0100 +0100"),
    ("2026-12-04T23:59:59.999-07:00", "2026-12-04 23:59:59.999 -0700 -0700"),
    ("", "0001-01-01 00:00:00 +0000 UTC"),
])
def test_go_time_printing(stamp: str, printed: str) -> None:
    assert network.go_time_text(stamp) == printed


def test_typed_inspect_values_print_as_go_structs() -> None:
    raw = {"Name": "n", "Id": "abc", "Created": "2026-11-30T09:00:00.5Z", "Labels": None,
           "IPAM": {"Driver": "default", "Options": None, "Config": [{"Subnet": "10.0.0.0/24", "Gateway": "10.0.0.1"}]}}
    typed = network.typed_network(raw)
    text = Template("{{.IPAM.Config}} {{.Labels}} {{json .Labels}} {{.Created}} {{.ID}} {{json .IPAM.Config}}")
    assert text.execute(typed) == ('[{10.0.0.0/24  10.0.0.1 map[]}] map[] null 2026-11-30 09:00:00.5 +0000 UTC abc '
                                   '[{"Subnet":"10.0.0.0/24","Gateway":"10.0.0.1"}]')


def test_ipam_configs_are_checked_before_the_daemon_is_asked() -> None:
    flags = network.FLAGS["network create"]
    parsed = flags.parse(["--subnet", "10.0.0.0/8,fd00::/64", "--gateway", "fd00::1", "--ip-range", "10.1.0.0/16",
                          "--aux-address", "h=10.0.0.5", "n"])
    assert network.ipam_configs(parsed) == [
        {"Subnet": "10.0.0.0/8", "IPRange": "10.1.0.0/16", "AuxiliaryAddresses": {"h": "10.0.0.5"}},
        {"Subnet": "fd00::/64", "Gateway": "fd00::1"}]
    for argv, message in ((["--subnet", "10.0.0.0/8", "--subnet", "10.1.0.0/16"],
                           "multiple overlapping subnet configuration is not supported"),
                          (["--gateway", "10.0.0.1"], "every ip-range or gateway must have a corresponding subnet"),
                          (["--subnet", "10.0.0.0/8", "--gateway", "11.0.0.1"], "no matching subnet for gateway 11.0.0.1")):
        with pytest.raises(CliFailure) as caught:
            network.ipam_configs(flags.parse([*argv, "n"]))
        assert caught.value.message == message


def test_create_without_networking_flags_imports_no_address_parsers(tmp_path: Any) -> None:
    """``ipaddress`` (and the regexes of the validators) load only when a flag needs them."""
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "dockyard.cli.main", "-H",
                          f"unix://{tmp_path}/none.sock", "create", "-p", "8080:80", "--network", "appnet", "busybox"],
                         capture_output=True, text=True, cwd=repo, timeout=60)
    modules = {line.split("|")[-1].strip() for line in out.stderr.splitlines() if "|" in line}
    assert "dockyard.cli.options.networking" in modules  # the command line was parsed
    assert "Cannot connect" in out.stderr  # and got as far as asking the daemon
    assert "ipaddress" not in modules
