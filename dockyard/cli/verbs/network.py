"""``dockyard network create|ls|inspect|rm|prune|connect|disconnect``: the ``/networks`` routes,
sent and printed as Docker 28's CLI sends and prints them (``cli/command/network``).

Terms: an *IPAM config* is one subnet of a network with its optional ``IPRange``, ``Gateway`` and
``AuxiliaryAddresses``; ``create`` groups ``--subnet``/``--ip-range``/``--gateway``/``--aux-address``
into them and refuses what Docker's CLI refuses before asking the daemon.
"""

from __future__ import annotations

import sys

from dockyard.cli import jsoncodec
from dockyard.cli.failure import CliFailure, DaemonError
from dockyard.cli.flags import Flag, FlagSet
from dockyard.cli.options.networking import parse_cidr, parse_ip, validate_link

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from dockyard.cli.flags import Parsed
    from dockyard.cli.invocation import Invocation


def validate_filter(value: str) -> str:
    """Docker's ``FilterOpt.Set``: ``name=value`` (the name lower-cased, both trimmed); ``""`` is ignored."""
    if value == "":
        return value
    if "=" not in value:
        raise ValueError("bad format of filter (expected name=value)")
    name, _, val = value.partition("=")
    return f"{name.strip().lower()}={val.strip()}"


def validate_label(value: str) -> str:
    """Docker's ``ValidateLabel``: a non-empty key without blanks."""
    key = value.partition("=")[0].lstrip(" \t")
    if not key:
        raise ValueError(f"invalid label '{value}': empty name")
    if " " in key or "\t" in key:
        raise ValueError(f"label '{key}' contains whitespaces")
    return value


_FORMAT_HELP = "Format output using a custom template"
_LS = FlagSet([
    Flag("filter", "f", "list", 'Provide filter values (e.g. "driver=bridge")', type_name="filter",
         validator=validate_filter),
    Flag("format", "", "string", _FORMAT_HELP),
    Flag("no-trunc", "", "bool", "Do not truncate the output"),
    Flag("quiet", "q", "bool", "Only display network IDs"),
])
_RM = FlagSet([Flag("force", "f", "bool", "Do not error if the network does not exist")])
FLAGS = {
    "network": FlagSet([]),
    "network create": FlagSet([
        Flag("attachable", "", "bool", "Enable manual container attachment"),
        Flag("aux-address", "", "list", "Auxiliary IPv4 or IPv6 addresses used by Network driver",
             type_name="map"),
        Flag("config-from", "", "string", "The network from which to copy the configuration"),
        Flag("config-only", "", "bool", "Create a configuration only network"),
        Flag("driver", "d", "string", "Driver to manage the Network", default="bridge"),
        Flag("gateway", "", "strings", "IPv4 or IPv6 Gateway for the master subnet"),
        Flag("ingress", "", "bool", "Create swarm routing-mesh network"),
        Flag("internal", "", "bool", "Restrict external access to the network"),
        Flag("ip-range", "", "strings", "Allocate container ip from a sub-range"),
        Flag("ipam-driver", "", "string", "IP Address Management Driver", default="default"),
        Flag("ipam-opt", "", "list", "Set IPAM driver specific options", type_name="map"),
        Flag("ipv4", "", "bool", "Enable or disable IPv4 address assignment", default=True),
        Flag("ipv6", "", "bool", "Enable or disable IPv6 address assignment"),
        Flag("label", "", "list", "Set metadata on a network", validator=validate_label),
        Flag("opt", "o", "list", "Set driver specific options", type_name="map"),
        Flag("scope", "", "string", "Control the network's scope"),
        Flag("subnet", "", "strings", "Subnet in CIDR format that represents a network segment"),
    ]),
    "network ls": _LS,
    "network list": _LS,
    "network inspect": FlagSet([
        Flag("format", "f", "string", _FORMAT_HELP),
        Flag("verbose", "v", "bool", "Verbose output for diagnostics"),
    ]),
    "network rm": _RM,
    "network remove": _RM,
    "network prune": FlagSet([
        Flag("filter", "", "list", 'Provide filter values (e.g. "until=<timestamp>")', type_name="filter",
             validator=validate_filter),
        Flag("force", "f", "bool", "Do not prompt for confirmation"),
    ]),
    "network connect": FlagSet([
        Flag("alias", "", "strings", "Add network-scoped alias for the container"),
        Flag("driver-opt", "", "strings", "driver options for the network"),
        Flag("gw-priority", "", "int", "Highest gw-priority provides the default gateway. Accepts positive "
             "and negative values.", default=0),
        Flag("ip", "", "string", 'IPv4 address (e.g., "172.30.100.104")'),
        Flag("ip6", "", "string", 'IPv6 address (e.g., "2001:db8::33")'),
        Flag("link", "", "list", "Add link to another container", validator=validate_link),
        Flag("link-local-ip", "", "strings", "Add a link-local address for the container"),
    ]),
    "network disconnect": FlagSet([Flag("force", "f", "bool", "Force the container to disconnect from a network")]),
}

SUBCOMMANDS = """Usage:  dockyard network COMMAND

Manage networks

Commands:
  connect     Connect a container to a network
  create      Create a network
  disconnect  Disconnect a container from a network
  inspect     Display detailed information on one or more networks
  ls          List networks
  prune       Remove all unused networks
  rm          Remove one or more networks

Run 'dockyard network COMMAND --help' for more information on a command.
"""
DEFAULT_FORMAT = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"
RAW_FORMAT = "network_id: {{.ID}}\\nname: {{.Name}}\\ndriver: {{.Driver}}\\nscope: {{.Scope}}\\n"
HEADERS = {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE", "IPv4": "IPV4",
           "IPv6": "IPV6", "Internal": "INTERNAL", "Labels": "LABELS", "CreatedAt": "CREATED AT"}
PRUNE_WARNING = ("WARNING! This will remove all custom networks not used by at least one container.\n"
                 "Are you sure you want to continue? [y/N] ")


def network_id(ref: str) -> str:
    """Docker's client ``trimID``: the reference without blanks, refused when empty; escaped for a URL path."""
    from dockyard.cli.client import quote

    ref = ref.strip()
    if not ref:
        raise CliFailure("invalid network name or ID: value is empty", 1)
    return quote(ref)


def key_value_map(values: list[str]) -> dict[str, str]:
    """Docker's ``MapOpts``: ``k=v`` (a bare ``k`` maps to ``""``), the last one for a key winning."""
    out: dict[str, str] = {}
    for value in values:
        key, _, val = value.partition("=")
        out[key] = val
    return out


# -- create -----------------------------------------------------------------------------------------

def _subnet_matches(subnet: str, data: str) -> bool:
    """Docker's ``subnetMatches``: whether the CIDR ``subnet`` holds ``data`` (an address or a CIDR)."""
    import ipaddress

    try:
        network = parse_cidr(subnet)
    except ValueError as error:
        raise CliFailure(f"invalid subnet: {error}", 1) from None
    if "/" in data:  # Go's ParseCIDR of the data: its address part, host bits and all
        try:
            parse_cidr(data)
        except ValueError as error:
            raise CliFailure(str(error), 1) from None
        address = ipaddress.ip_address(parse_ip(data.partition("/")[0]) or "")
    else:
        text = parse_ip(data)
        if text is None:
            return False
        address = ipaddress.ip_address(text)
    return address.version == network.version and address in network


def ipam_configs(parsed: Parsed) -> list[dict[str, Any]]:
    """Docker's ``createIPAMConfig``: one config per ``--subnet``, each range/gateway/aux address in
    the subnet that holds it."""
    subnets, ranges, gateways = parsed["subnet"], parsed["ip-range"], parsed["gateway"]
    if len(subnets) < len(ranges) or len(subnets) < len(gateways):
        raise CliFailure("every ip-range or gateway must have a corresponding subnet", 1)
    configs: dict[str, dict[str, Any]] = {}
    for subnet in subnets:
        for known in configs:
            if _subnet_matches(subnet, known) or _subnet_matches(known, subnet):
                raise CliFailure("multiple overlapping subnet configuration is not supported", 1)
        configs[subnet] = {"Subnet": subnet, "AuxiliaryAddresses": {}}
    for field, values, what in (("IPRange", ranges, "range"), ("Gateway", gateways, "gateway")):
        for value in values:
            matched = False
            for subnet in subnets:
                if field == "IPRange":
                    try:
                        parse_cidr(value)
                    except ValueError as error:
                        raise CliFailure(str(error), 1) from None
                if not _subnet_matches(subnet, value):
                    continue
                if configs[subnet].get(field):
                    plural = "ranges" if field == "IPRange" else "gateways"
                    preposition = "on" if field == "IPRange" else "for"
                    raise CliFailure(f"cannot configure multiple {plural} ({value}, {configs[subnet][field]}) "
                                     f"{preposition} the same subnet ({subnet})", 1)
                configs[subnet][field] = value
                matched = True
            if not matched:
                raise CliFailure(f"no matching subnet for {what} {value}", 1)
    for key, address in key_value_map(parsed["aux-address"]).items():
        matched = False
        for subnet in subnets:
            if _subnet_matches(subnet, address):
                configs[subnet]["AuxiliaryAddresses"][key] = address
                matched = True
        if not matched:
            raise CliFailure(f"no matching subnet for aux-address {address}", 1)
    out = []
    for config in configs.values():
        shaped = {"Subnet": config["Subnet"]}
        for field in ("IPRange", "Gateway"):
            if config.get(field):
                shaped[field] = config[field]
        if config["AuxiliaryAddresses"]:
            shaped["AuxiliaryAddresses"] = config["AuxiliaryAddresses"]
        out.append(shaped)
    return out


def create_request(parsed: Parsed, name: str) -> dict[str, Any]:
    """The body of ``POST /networks/create`` (Docker's ``network.CreateRequest``)."""
    body: dict[str, Any] = {
        "Name": name,
        "Driver": parsed["driver"],
        "Scope": parsed["scope"] or "",
        "Internal": parsed["internal"],
        "Attachable": parsed["attachable"],
        "Ingress": parsed["ingress"],
        "ConfigOnly": parsed["config-only"],
        "ConfigFrom": {"Network": parsed["config-from"]} if parsed["config-from"] else None,
        "IPAM": {"Driver": parsed["ipam-driver"], "Config": ipam_configs(parsed),
                 "Options": key_value_map(parsed["ipam-opt"])},
        "Options": key_value_map(parsed["opt"]),
        "Labels": key_value_map(parsed["label"]),
    }
    if "ipv4" in parsed.changed:
        body["EnableIPv4"] = parsed["ipv4"]
    if "ipv6" in parsed.changed:
        body["EnableIPv6"] = parsed["ipv6"]
    return body


def _create(invocation: Invocation, parsed: Parsed) -> int:
    body = create_request(parsed, parsed.args[0])
    api = invocation.api
    if _older(api.negotiate(), "1.44"):
        body["CheckDuplicate"] = True  # what Docker's client adds for daemons before API 1.44
    answer = api.json("POST", "/networks/create", body=body) or {}
    sys.stdout.write(f"{answer.get('Id', '')}\n")
    return 0


def _older(version: str, than: str) -> bool:
    def key(text: str) -> tuple[int, ...]:
        return tuple(int(part) if part.isdigit() else 0 for part in text.split("."))

    return key(version) < key(than)


# -- ls ---------------------------------------------------------------------------------------------

def go_time_text(rfc3339: str) -> str:
    """Go's ``time.Time.String()`` of an RFC 3339 timestamp from the daemon (what ``CreatedAt`` shows)."""
    if not rfc3339 or "T" not in rfc3339:
        return "0001-01-01 00:00:00 +0000 UTC"
    day, _, rest = rfc3339.partition("T")
    zone = "Z"
    for marker in ("Z", "+", "-"):
        if marker in rest:
            at = rest.index(marker)
            rest, zone = rest[:at], rest[at:]
            break
    clock, _, fraction = rest.partition(".")
    fraction = fraction.rstrip("0")
    text = f"{day} {clock}" + (f".{fraction}" if fraction else "")
    if zone in ("Z", "+00:00", "-00:00"):
        return f"{text} +0000 UTC"
    offset = zone.replace(":", "")
    return f"{text} {offset} {offset}"


class NetworkRow(dict):  # type: ignore[type-arg]
    """One ``network ls`` row: Docker's fields, plus the ``Label`` method templates may call."""

    def __init__(self, network: dict[str, Any], trunc: bool) -> None:
        labels = network.get("Labels") or {}
        ident = str(network.get("Id") or "")
        super().__init__(
            CreatedAt=go_time_text(str(network.get("Created") or "")),
            Driver=network.get("Driver") or "",
            ID=ident[:12] if trunc else ident,
            IPv4="true" if network.get("EnableIPv4") else "false",
            IPv6="true" if network.get("EnableIPv6") else "false",
            Internal="true" if network.get("Internal") else "false",
            Labels=",".join(f"{k}={v}" for k, v in sorted(labels.items())),
            Name=network.get("Name") or "",
            Scope=network.get("Scope") or "",
        )
        self.methods = {"Label": lambda name: str(labels.get(name, ""))}


def _ls(invocation: Invocation, parsed: Parsed) -> int:
    from dockyard.cli.listing import natural_sorted, render

    params = [("filters", filters_json(parsed["filter"]))] if any(parsed["filter"]) else []
    networks = natural_sorted(invocation.api.json("GET", "/networks", params) or [],
                              key=lambda n: str(n.get("Name") or ""))
    quiet = parsed["quiet"]
    format_text = parsed["format"] or (not quiet and configured_format("networksFormat")) or "table"
    if format_text == "table":
        format_text = "{{.ID}}" if quiet else DEFAULT_FORMAT
    elif format_text == "raw":
        format_text = "network_id: {{.ID}}" if quiet else RAW_FORMAT
    elif format_text == "json":
        format_text = "{{json .}}"
    rows: list[dict[str, Any]] = [NetworkRow(n, not parsed["no-trunc"]) for n in networks]
    try:
        sys.stdout.write(render(format_text, rows, HEADERS))
    except CliFailure as failure:
        # Docker's network ls words every template failure as a parsing error; its rows are Go
        # structs, which have fields rather than keys.
        text = failure.message.partition(": ")[2]
        missing = 'map has no entry for key "'
        if missing in text:
            field = text.partition(missing)[2].rstrip('"')
            text = text.partition(missing)[0] + f"can't evaluate field {field} in type *network.networkContext"
        raise CliFailure(f"template parsing error: {text}", 1) from None
    return 0


def configured_format(key: str) -> str:
    """A default ``--format`` from Docker's ``config.json`` (``$DOCKER_CONFIG``, else ``~/.docker``),
    such as ``networksFormat``; ``""`` when there is none or the file cannot be read."""
    import os

    directory = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    try:
        with open(os.path.join(directory, "config.json"), encoding="utf-8") as handle:
            config = jsoncodec.loads(handle.read() or "{}")
    except (OSError, ValueError):
        return ""
    value = config.get(key) if isinstance(config, dict) else None
    return value if isinstance(value, str) else ""


def filters_json(values: list[str]) -> str:
    """Validated ``name=value`` filters as the API's ``filters`` JSON (names sorted, as Go's encoder does)."""
    filters: dict[str, dict[str, bool]] = {}
    for value in values:
        if not value:
            continue
        name, _, val = value.partition("=")
        filters.setdefault(name, {})[val] = True
    return jsoncodec.dumps({name: dict(sorted(filters[name].items())) for name in sorted(filters)})


# -- inspect ----------------------------------------------------------------------------------------

def inspect_all(names: list[str], format_text: str, fetch: Any, typed: Any = None) -> int:
    """Docker's generic ``inspect.Inspect``: the objects as an indented JSON array (``json``: one
    compact line), or each through the template; errors on stderr after the output, exit 1.

    ``typed`` gives the Go-typed view a template runs against first; when that fails (a field the
    Go type lacks), the template runs on the raw JSON, as Docker's ``tryRawInspectFallback`` does."""
    from dockyard.cli.template import Template, TemplateError, prepare

    template = None
    if format_text and format_text != "json":
        try:
            template = Template(prepare(format_text)[1])
        except TemplateError as error:
            raise CliFailure(f"template parsing error: {error}", 64) from None
    found: list[Any] = []
    errors: list[str] = []
    rendered: list[str] = []
    for name in names:
        try:
            item = fetch(name)
        except CliFailure as failure:
            if failure.message.startswith("Cannot connect"):
                raise
            errors.append(failure.message)
            continue
        if template is None:
            found.append(item)
            continue
        try:
            rendered.append(template.execute(typed(item) if typed else item) + "\n")
            continue
        except TemplateError as error:
            if typed is None:
                errors.append(f"template parsing error: {error}")
                continue
        try:
            rendered.append(template.execute(item) + "\n")
        except TemplateError as error:
            errors.append(f"template parsing error: {error}")
    if template is not None:
        sys.stdout.write("".join(rendered) or "\n")
    elif not found:
        sys.stdout.write("[]\n")
    elif format_text == "json":
        sys.stdout.write(jsoncodec.dumps(found) + "\n")
    else:
        sys.stdout.write(jsoncodec.dumps(found, "    ") + "\n")
    sys.stdout.flush()
    for message in errors:
        sys.stderr.write(message + "\n")
    return 1 if errors else 0


def _inspect(invocation: Invocation, parsed: Parsed) -> int:
    params = [("verbose", "true")] if parsed["verbose"] else []

    def fetch(name: str) -> Any:
        return invocation.api.json("GET", f"/networks/{network_id(name)}", params)

    return inspect_all(parsed.args, parsed["format"] or "", fetch, typed_network)


_ENDPOINT = (("Name", "Name", ""), ("EndpointID", "EndpointID", ""), ("MacAddress", "MacAddress", ""),
             ("IPv4Address", "IPv4Address", ""), ("IPv6Address", "IPv6Address", ""))


def typed_network(raw: Any) -> Any:
    """A network's inspect JSON as the Go ``network.Inspect`` Docker's templates run against:
    structs print as ``{…}``, ``Created`` as Go's ``time.Time``, absent maps as ``map[]``."""
    from dockyard.cli.template import GoStruct, GoText, NilMap, NilSlice

    if not isinstance(raw, dict):
        return raw
    ipam_config = (("Subnet", "Subnet", ""), ("IPRange", "IPRange", ""), ("Gateway", "Gateway", ""),
                   ("AuxAddress", "AuxiliaryAddresses", NilMap()))
    data = dict(raw)
    ipam = data.get("IPAM")
    if isinstance(ipam, dict):
        ipam = dict(ipam)
        ipam["Config"] = [GoStruct(c, ipam_config) if isinstance(c, dict) else c for c in ipam.get("Config") or []]
        data["IPAM"] = GoStruct(ipam, (("Driver", "Driver", ""), ("Options", "Options", NilMap()),
                                       ("Config", "Config", NilSlice())))
    if isinstance(data.get("ConfigFrom"), dict):
        data["ConfigFrom"] = GoStruct(data["ConfigFrom"], (("Network", "Network", ""),))
    if isinstance(data.get("Containers"), dict):
        data["Containers"] = {k: GoStruct(v, _ENDPOINT) if isinstance(v, dict) else v
                              for k, v in data["Containers"].items()}
    if isinstance(data.get("Created"), str):
        data["Created"] = GoText(data["Created"], go_time_text(data["Created"]))
    return GoStruct(data, (
        ("Name", "Name", ""), ("ID", "Id", ""), ("Created", "Created", GoText("", go_time_text(""))),
        ("Scope", "Scope", ""), ("Driver", "Driver", ""), ("EnableIPv4", "EnableIPv4", False),
        ("EnableIPv6", "EnableIPv6", False), ("IPAM", "IPAM", None), ("Internal", "Internal", False),
        ("Attachable", "Attachable", False), ("Ingress", "Ingress", False), ("ConfigFrom", "ConfigFrom", None),
        ("ConfigOnly", "ConfigOnly", False), ("Containers", "Containers", NilMap()),
        ("Options", "Options", NilMap()), ("Labels", "Labels", NilMap()), ("Peers", "Peers", NilSlice()),
        ("Services", "Services", NilMap()),
    ))


# -- rm, prune --------------------------------------------------------------------------------------

def _rm(invocation: Invocation, parsed: Parsed) -> int:
    api = invocation.api
    failed = False
    for name in parsed.args:
        try:
            network = api.json("GET", f"/networks/{network_id(name)}")
        except CliFailure as failure:
            if failure.message.startswith("Cannot connect"):
                raise
            network = None
        if network and network.get("Ingress") and not confirm(
                "WARNING! Before removing the routing-mesh network, make sure all the nodes in your swarm run "
                "the same docker engine version. Otherwise, removal may not be effective and functionality of "
                "newly create ingress networks will be impaired.\nAre you sure you want to continue? [y/N] "):
            continue
        try:
            api.request("DELETE", f"/networks/{network_id(name)}").read()
        except CliFailure as failure:
            if failure.message.startswith("Cannot connect"):
                raise
            if parsed["force"] and isinstance(failure, DaemonError) and failure.status_code == 404:
                continue
            sys.stdout.flush()
            sys.stderr.write(failure.message + "\n")
            failed = True
            continue
        sys.stdout.write(name + "\n")
        sys.stdout.flush()
    if failed:
        raise CliFailure("exit status 1", 1)
    return 0


def confirm(prompt: str) -> bool:
    """Docker's ``prompt.Confirm``: ask on stdout, read one line of stdin; ``y``/``Y`` says yes."""
    sys.stdout.write(prompt)
    sys.stdout.flush()
    answer = sys.stdin.readline()
    return answer.strip() in ("y", "Y")


def _prune(invocation: Invocation, parsed: Parsed) -> int:
    if not parsed["force"] and not confirm(PRUNE_WARNING):
        return 0
    params = [("filters", filters_json(parsed["filter"]))] if any(parsed["filter"]) else []
    report = invocation.api.json("POST", "/networks/prune", params) or {}
    deleted = report.get("NetworksDeleted") or []
    if deleted:
        sys.stdout.write("Deleted Networks:\n" + "".join(name + "\n" for name in deleted) + "\n")
    return 0


# -- connect, disconnect ----------------------------------------------------------------------------

def _driver_opts(values: list[str]) -> dict[str, str]:
    """Docker's ``convertDriverOpt`` for ``network connect --driver-opt k=v``."""
    out = {}
    for value in values:
        key, sep, val = value.partition("=")
        key = key.strip()
        if not sep or not key:
            raise CliFailure("invalid key/value pair format in driver options", 1)
        out[key] = val.strip()
    return out


def _connect(invocation: Invocation, parsed: Parsed) -> int:
    network, container = parsed.args
    endpoint = {
        "IPAMConfig": {"IPv4Address": parsed["ip"] or "", "IPv6Address": parsed["ip6"] or "",
                       "LinkLocalIPs": list(parsed["link-local-ip"])},
        "Links": list(parsed["link"]) or None,
        "Aliases": list(parsed["alias"]),
        "DriverOpts": _driver_opts(parsed["driver-opt"]),
        "GwPriority": parsed["gw-priority"],
    }
    network, container = network_id(network), container_id(container)
    invocation.api.request("POST", f"/networks/{network}/connect",
                           body={"Container": container, "EndpointConfig": endpoint}).read()
    return 0


def container_id(ref: str) -> str:
    ref = ref.strip()
    if not ref:
        raise CliFailure("invalid container name or ID: value is empty", 1)
    return ref


def _disconnect(invocation: Invocation, parsed: Parsed) -> int:
    network, container = network_id(parsed.args[0]), container_id(parsed.args[1])
    invocation.api.request("POST", f"/networks/{network}/disconnect",
                           body={"Container": container, "Force": parsed["force"]}).read()
    return 0


def main(invocation: Invocation, verb: str, parsed: Parsed) -> int:
    sub = verb.partition(" ")[2]
    if not sub:
        sys.stderr.write(SUBCOMMANDS)
        return 0
    handler = {"create": _create, "ls": _ls, "list": _ls, "inspect": _inspect, "rm": _rm, "remove": _rm,
               "prune": _prune, "connect": _connect, "disconnect": _disconnect}[sub]
    return handler(invocation, parsed)

