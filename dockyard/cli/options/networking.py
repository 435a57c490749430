"""`run`/`create` flags of the networking group: see `dockyard.cli.options`.

Built as Docker 28's CLI builds them (``cli/command/container/opts.go`` and go-connections' ``nat``):

- ``-p/--publish`` → ``Config.ExposedPorts`` and ``HostConfig.PortBindings``. A *port spec* is
  ``[ip:][hostPort:]containerPort[/proto]``: ports and ranges (``8000-8010:80-90``), an IPv6 host
  address in brackets (``[::1]:8080:80``) or bare (``::1:8080:80``), ``tcp``/``udp``/``sctp``; or
  the long form ``published=8080,target=80,protocol=udp,mode=host`` (other keys are ignored, as
  Docker's CLI ignores them). ``-P/--publish-all`` and ``--expose PORT[-END][/proto]``.
- ``--network/--net`` (repeatable; the first is ``HostConfig.NetworkMode``), plain (``name``,
  ``container:<name>``) or advanced (``name=n,alias=a,ip=…,ip6=…,mac-address=…,link-local-ip=…,
  driver-opt=k=v,gw-priority=N``) → one ``NetworkingConfig.EndpointsConfig`` entry per network;
  ``--network-alias``, ``--ip``, ``--ip6``, ``--mac-address``, ``--link-local-ip`` and (on a
  user-defined network) ``--link`` go to the first network's endpoint.
- ``--link name[:alias]`` → ``HostConfig.Links``; ``--dns``, ``--dns-search``, ``--dns-option``,
  ``--add-host host:ip`` / ``host=ip`` (``host-gateway`` allowed) → ``HostConfig``;
  ``-h/--hostname``, ``--domainname`` → ``Config``.

Bad values fail as Docker's do: while flags are parsed (the *validators*: pflag's ``invalid argument
… for "--dns" flag`` and the usage), or afterwards as an :class:`OptionError` that ``run``/``create``
print as ``dockyard: <message>`` with exit status 125.
"""

from __future__ import annotations

from dockyard.cli.flags import Flag, go_quote

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from dockyard.cli.flags import Parsed


class OptionError(ValueError):
    """A command line that parsed but makes no valid create request (Docker's ``parse`` errors)."""


# -- values as Go's net package reads them -----------------------------------------------------

def parse_ip(text: str) -> str | None:
    """Go's ``net.ParseIP(text).String()``, or ``None`` when ``text`` is no IP address."""
    import ipaddress

    if "%" in text:  # Go's ParseIP takes no IPv6 zone
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)  # Go prints an IPv4-in-IPv6 address as IPv4
    return str(address)


def parse_cidr(text: str) -> Any:
    """Go's ``net.ParseCIDR``: the network (host bits allowed in ``text``); ``ValueError`` with
    Go's message otherwise."""
    import ipaddress

    address, slash, bits = text.partition("/")
    if not slash or not bits.isdigit() or parse_ip(address) is None or "%" in text:
        raise ValueError(f"invalid CIDR address: {text}")
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ValueError(f"invalid CIDR address: {text}") from None


def is_mac_address(text: str) -> bool:
    """Go's ``net.ParseMAC``: 6, 8 or 20 bytes as ``xx:xx…``, ``xx-xx…`` or ``xxxx.xxxx…``."""
    hexdigits = "0123456789abcdefABCDEF"
    if len(text) < 14:
        return False
    if text[2] in ":-":
        sep = text[2]
        if (len(text) + 1) % 3 != 0:
            return False
        groups = text.split(sep)
        width = 2
    elif text[4] == ".":
        if (len(text) + 1) % 5 != 0:
            return False
        groups = text.split(".")
        width = 4
    else:
        return False
    if len(groups) * width // 2 not in (6, 8, 20):
        return False
    return all(len(g) == width and all(c in hexdigits for c in g) for g in groups)


# -- validators run while flags are parsed (Docker's ListOpts validators) -----------------------

def validate_ip_address(value: str) -> str:
    """``--dns``: Docker's ``ValidateIPAddress`` (spaces trimmed, the address in Go's canonical form)."""
    found = parse_ip(value.strip(" \t\n\r\v\f"))
    if found is None:
        raise ValueError(f"IP address is not correctly formatted: {value}")
    return found


def validate_dns_search(value: str) -> str:
    """``--dns-search``: Docker's ``ValidateDNSSearch`` (``.`` alone, or a domain; its final dot dropped)."""
    import re

    value = value.strip(" ")
    if value == ".":
        return value
    label = r"(:?[a-zA-Z0-9]|(:?[a-zA-Z0-9][a-zA-Z0-9\-]*[a-zA-Z0-9]))"
    found = re.match(rf"(:?{label}(:?\.{label})*)\.?[\t\n\f\r ]*\Z", value)
    if not re.search("[a-zA-Z]", value) or found is None or len(found.group(1)) >= 255:
        raise ValueError(f"{value} is not a valid domain")
    return found.group(1)


def validate_extra_host(value: str) -> str:
    """``--add-host``: ``host:ip`` or ``host=ip`` (IPv6 may be in brackets; ``host-gateway`` allowed),
    sent as ``host:ip`` — Docker's ``ValidateExtraHost``."""
    name, sep, address = value.partition("=")
    if not sep:
        name, sep, address = value.partition(":")
    if not sep or not name or ":" in name:
        raise ValueError(f"bad format for add-host: {go_quote(value)}")
    if address != "host-gateway":
        if len(address) > 2 and address[0] == "[" and address[-1] == "]":
            address = address[1:-1]
        try:
            validate_ip_address(address)
        except ValueError:
            raise ValueError(f"invalid IP address in add-host: {go_quote(address)}") from None
    return f"{name}:{address}"


def validate_link(value: str) -> str:
    """``--link name[:alias]``: Docker's ``ValidateLink``."""
    if value == "":
        raise ValueError("empty string specified for links")
    if len(value.split(":", 2)) > 2:
        raise ValueError(f"bad format for links: {value}")
    return value


def _driver_opt(text: str) -> tuple[str, str]:
    key, sep, value = text.lower().partition("=")
    if not sep or not key:
        raise ValueError("invalid key value pair format in driver options")
    return key.strip(), value.strip()


def parse_network_flag(value: str) -> dict[str, Any]:
    """One ``--network`` value as Docker's ``NetworkOpt.Set`` reads it: a *target* (name, ``host``,
    ``container:x``…) and, in the advanced ``key=value,…`` form, the endpoint's options."""
    attachment: dict[str, Any] = {"Target": value, "Aliases": [], "DriverOpts": {}, "Links": [],
                                  "IPv4Address": "", "IPv6Address": "", "LinkLocalIPs": [],
                                  "MacAddress": "", "GwPriority": 0}
    if "=" not in value:
        return attachment
    import re

    from dockyard.cli.flags import read_csv_record

    if not re.search(r"\w+=\w+(,\w+=\w+)*", value, re.ASCII):
        return attachment
    attachment["Target"] = ""
    for field in read_csv_record(value):
        key, sep, val = field.lower().partition("=")
        if not sep or not key:
            raise ValueError(f"invalid field {field}")
        key, val = key.strip(), val.strip()
        if key == "name":
            attachment["Target"] = val
        elif key == "alias":
            attachment["Aliases"].append(val)
        elif key == "ip":
            attachment["IPv4Address"] = val
        elif key == "ip6":
            attachment["IPv6Address"] = val
        elif key == "mac-address":
            attachment["MacAddress"] = val
        elif key == "link-local-ip":
            attachment["LinkLocalIPs"].append(val)
        elif key == "driver-opt":
            opt_key, opt_value = _driver_opt(val)
            attachment["DriverOpts"][opt_key] = opt_value
        elif key == "gw-priority":
            attachment["GwPriority"] = go_atoi(val, "gw-priority")
        else:
            raise ValueError(f"invalid field key {key}")
    if not attachment["Target"]:
        raise ValueError("network name/id is not specified")
    return attachment


def go_atoi(text: str, what: str) -> int:
    """Go's ``strconv.Atoi`` (64-bit), failing as Docker's ``invalid <what> (<text>): <reason>``."""
    digits = text[1:] if text[:1] in "+-" else text
    if not digits or not digits.isascii() or not digits.isdigit():
        raise ValueError(f"invalid {what} ({text}): invalid syntax")
    number = int(text)
    if not -(2 ** 63) <= number < 2 ** 63:
        raise ValueError(f"invalid {what} ({text}): value out of range")
    return number


def _validate_network(value: str) -> str:
    parse_network_flag(value)
    return value


FLAGS: list[Flag] = [
    Flag("add-host", "", "list", "Add a custom host-to-IP mapping (host:ip)", validator=validate_extra_host),
    Flag("dns", "", "list", "Set custom DNS servers", validator=validate_ip_address),
    Flag("dns-option", "", "list", "Set DNS options"),
    Flag("dns-search", "", "list", "Set custom DNS search domains", validator=validate_dns_search),
    Flag("domainname", "", "string", "Container NIS domain name"),
    Flag("expose", "", "list", "Expose a port or a range of ports"),
    Flag("hostname", "h", "string", "Container host name"),
    Flag("ip", "", "string", "IPv4 address (e.g., 172.30.100.104)"),
    Flag("ip6", "", "string", "IPv6 address (e.g., 2001:db8::33)"),
    Flag("link", "", "list", "Add link to another container", validator=validate_link),
    Flag("link-local-ip", "", "list", "Container IPv4/IPv6 link-local addresses"),
    Flag("mac-address", "", "string", "Container MAC address (e.g., 92:d0:c6:0a:29:33)"),
    Flag("network", "", "list", "Connect a container to a network", type_name="network",
         validator=_validate_network),
    Flag("network-alias", "", "list", "Add network-scoped alias for the container"),
    Flag("publish", "p", "list", "Publish a container's port(s) to the host"),
    Flag("publish-all", "P", "bool", "Publish all exposed ports to random ports"),
]
ALIASES = {"net": "network", "net-alias": "network-alias", "dns-opt": "dns-option"}


# -- ports ----------------------------------------------------------------------------------------

def parse_port_number(text: str) -> int:
    """Go's ``strconv.ParseUint(text, 10, 16)``; ``ValueError`` carries Go's message."""
    if not text or not text.isascii() or not text.isdigit():
        raise ValueError(f'strconv.ParseUint: parsing "{text}": invalid syntax')
    number = int(text)
    if number > 65535:
        raise ValueError(f'strconv.ParseUint: parsing "{text}": value out of range')
    return number


def parse_port_range(text: str) -> tuple[int, int]:
    """go-connections' ``ParsePortRange``: ``80`` or ``8000-8010`` (parts past a second ``-`` ignored)."""
    if text == "":
        raise ValueError("empty string specified for ports")
    if "-" not in text:
        port = parse_port_number(text)
        return port, port
    parts = text.split("-")
    start, end = parse_port_number(parts[0]), parse_port_number(parts[1])
    if end < start:
        raise ValueError(f"invalid range specified for port: {text}")
    return start, end


def split_proto_port(text: str) -> tuple[str, str]:
    """go-connections' ``SplitProtoPort``: ``80/udp`` → (``udp``, ``80``); no proto means ``tcp``."""
    parts = text.split("/")
    if not text or not parts[0]:
        return "", ""
    if len(parts) == 1:
        return "tcp", text
    if not parts[1]:
        return "tcp", parts[0]
    return parts[1], parts[0]


def port_key(proto: str, port: str) -> str:
    """go-connections' ``NewPort``: ``80/tcp`` or ``80-90/tcp``."""
    start, end = parse_port_range(port)
    return f"{start}/{proto}" if start == end else f"{start}-{end}/{proto}"


def standard_notation(spec: str) -> str:
    """Docker's ``convertToStandardNotation``: the long ``published=…,target=…`` form as a port spec."""
    if "=" not in spec:
        return spec
    params = {"protocol": "tcp"}
    for param in spec.split(","):
        key, sep, value = param.partition("=")
        if not sep or not key:
            raise OptionError(f"invalid publish opts format (should be name=value but got '{param}')")
        params[key] = value
    return f"{params.get('published', '')}:{params.get('target', '')}/{params['protocol']}"


def parse_port_spec(spec: str) -> list[tuple[str, dict[str, str]]]:
    """go-connections' ``ParsePortSpec``: (port key, ``{"HostIp", "HostPort"}``) for each port of ``spec``."""
    parts = spec.split(":")
    container_port = parts[-1]
    if len(parts) == 1:
        host_ip, host_port = "", ""
    elif len(parts) == 2:
        host_ip, host_port = "", parts[0]
    elif len(parts) == 3:
        host_ip, host_port = parts[0], parts[1]
    else:
        host_ip, host_port = ":".join(parts[:-2]), parts[-2]
    proto, container_port = split_proto_port(container_port)
    if host_ip.startswith("["):
        problem, host_ip = _bracketed_host(host_ip)
        if problem:
            raise OptionError(f"invalid IP address [{problem}")
    if host_ip and parse_ip(host_ip) is None:
        raise OptionError(f"invalid IP address: {host_ip}")
    if container_port == "":
        raise OptionError(f"no port specified: {spec}<empty>")
    try:
        start, end = parse_port_range(container_port)
    except ValueError:
        raise OptionError(f"invalid containerPort: {container_port}") from None
    host_start = host_end = 0
    if host_port:
        try:
            host_start, host_end = parse_port_range(host_port)
        except ValueError:
            raise OptionError(f"invalid hostPort: {host_port}") from None
    if host_port and end - start != host_end - host_start and end != start:
        raise OptionError(f"invalid ranges specified for container and host Ports: {container_port} and {host_port}")
    if proto.lower() not in ("tcp", "udp", "sctp"):
        raise OptionError(f"invalid proto: {proto}")
    mappings = []
    for offset in range(end - start + 1):
        published = str(host_start + offset) if host_port else ""
        if start == end and host_start != host_end:
            published = f"{published}-{host_end}"  # one container port, a range to pick a host port from
        mappings.append((port_key(proto.lower(), str(start + offset)), {"HostIp": host_ip, "HostPort": published}))
    return mappings


def _bracketed_host(ip: str) -> tuple[str, str]:
    """Go's ``net.SplitHostPort(ip + ":")`` for a host in brackets: ("", host), or (what Docker
    prints after ``invalid IP address [``, "")."""
    hostport = ip + ":"
    last_colon = hostport.rfind(":")
    end = hostport.find("]")

    def failure(reason: str) -> tuple[str, str]:
        return f"{ip[1:]}: address {hostport}: {reason}", ""

    if end < 0:
        return failure("missing ']' in address")
    if end + 1 == len(hostport):
        return failure("missing port in address")
    if end + 1 != last_colon:
        return failure("too many colons" if hostport[end + 1] == ":" else "missing port in address")
    if "[" in hostport[1:]:
        return failure("unexpected '[' in address")
    if "]" in hostport[end + 1:]:
        return failure("unexpected ']' in address")
    return "", hostport[1:end]


def parse_ports(publish: list[str], expose: list[str]) -> tuple[dict[str, Any], dict[str, list[dict[str, str]]]]:
    """``-p`` and ``--expose`` values → (``ExposedPorts``, ``PortBindings``), in Docker's order of checks."""
    exposed: dict[str, Any] = {}
    bindings: dict[str, list[dict[str, str]]] = {}
    for spec in [standard_notation(value) for value in publish]:
        for key, binding in parse_port_spec(spec):
            exposed.setdefault(key, {})
            bindings.setdefault(key, []).append(binding)
    for value in expose:
        if ":" in value:
            raise OptionError(f"invalid port format for --expose: {value}")
        proto, port = split_proto_port(value)
        try:
            start, end = parse_port_range(port)
        except ValueError as error:
            raise OptionError(f"invalid range format for --expose: {value}, error: {error}") from None
        for number in range(start, end + 1):
            exposed.setdefault(port_key(proto, str(number)), {})
    return exposed, bindings


# -- networks and endpoints ---------------------------------------------------------------------

def is_user_defined(mode: str) -> bool:
    """Docker's ``NetworkMode.IsUserDefined``: not ``default``, ``bridge``, ``host``, ``none``, ``container:…``."""
    return mode not in ("default", "bridge", "host", "none") and not mode.startswith("container:")


def _apply_container_options(attachment: dict[str, Any], parsed: Parsed) -> None:
    """Docker's ``applyContainerOptions``: the single-network flags onto the first network."""
    conflicts = (
        ("Aliases", "network-alias", "--network-alias and per-network alias"),
        ("Links", "link", "--link and per-network links"),
        ("IPv4Address", "ip", "--ip and per-network IPv4 address"),
        ("IPv6Address", "ip6", "--ip6 and per-network IPv6 address"),
        ("MacAddress", "mac-address", "--mac-address and per-network MAC address"),
        ("LinkLocalIPs", "link-local-ip", "--link-local-ip and per-network link-local IP addresses"),
    )
    for field, flag, words in conflicts:
        if attachment[field] and parsed[flag]:
            raise OptionError(f"conflicting options: cannot specify both {words}")
    if parsed["network-alias"]:
        attachment["Aliases"] = list(parsed["network-alias"])
    if is_user_defined(attachment["Target"]) and parsed["link"]:
        attachment["Links"] = list(parsed["link"])
    for field, flag in (("IPv4Address", "ip"), ("IPv6Address", "ip6"), ("MacAddress", "mac-address")):
        if parsed[flag]:
            attachment[field] = parsed[flag]
    if parsed["link-local-ip"]:
        attachment["LinkLocalIPs"] = list(parsed["link-local-ip"])


def endpoint_settings(attachment: dict[str, Any]) -> dict[str, Any]:
    """Docker's ``parseNetworkAttachmentOpt``: the ``EndpointSettings`` for one network (zero fields left out)."""
    target = attachment["Target"]
    if not target.strip():
        raise OptionError("no name set for network")
    if not is_user_defined(target):
        if attachment["Aliases"]:
            raise OptionError("network-scoped aliases are only supported for user-defined networks")
        if attachment["Links"]:
            raise OptionError("links are only supported for user-defined networks")
    settings: dict[str, Any] = {}
    if attachment["GwPriority"]:
        settings["GwPriority"] = attachment["GwPriority"]
    if attachment["Aliases"]:
        settings["Aliases"] = list(attachment["Aliases"])
    if attachment["DriverOpts"]:
        settings["DriverOpts"] = dict(attachment["DriverOpts"])
    if attachment["Links"]:
        settings["Links"] = list(attachment["Links"])
    if attachment["IPv4Address"] or attachment["IPv6Address"] or attachment["LinkLocalIPs"]:
        ipam: dict[str, Any] = {}
        for field in ("IPv4Address", "IPv6Address"):
            if attachment[field]:
                ipam[field] = attachment[field]
        if attachment["LinkLocalIPs"]:
            ipam["LinkLocalIPs"] = list(attachment["LinkLocalIPs"])
        settings["IPAMConfig"] = ipam
    if attachment["MacAddress"]:
        if not is_mac_address(attachment["MacAddress"].strip()):
            raise OptionError(f"{attachment['MacAddress']} is not a valid mac address")
        settings["MacAddress"] = attachment["MacAddress"]
    return settings


def endpoints_config(parsed: Parsed) -> dict[str, dict[str, Any]]:
    """Docker's ``parseNetworkOpts``: ``NetworkingConfig.EndpointsConfig`` for the ``--network`` flags."""
    attachments = [parse_network_flag(value) for value in parsed["network"]]
    endpoints: dict[str, dict[str, Any]] = {}
    if not attachments:
        default = parse_network_flag("default")
        _apply_container_options(default, parsed)
        endpoints["default"] = endpoint_settings(default)
    user_defined = other = False
    for index, attachment in enumerate(attachments):
        if is_user_defined(attachment["Target"]):
            user_defined = True
        else:
            other = True
        if index == 0:
            _apply_container_options(attachment, parsed)
        settings = endpoint_settings(attachment)
        if attachment["Target"] in endpoints:
            raise OptionError(f'network "{attachment["Target"]}" is specified multiple times')
        if index == 0 and len(attachments) == 1 and not settings:
            continue  # one network, nothing to say about it: the daemon makes the endpoint anyway
        endpoints[attachment["Target"]] = settings
    if user_defined and other:
        raise OptionError("conflicting options: cannot attach both user-defined and non-user-defined network-modes")
    return endpoints


def network_mode(parsed: Parsed) -> str:
    """``HostConfig.NetworkMode``: the first ``--network`` target, else ``default``."""
    if not parsed["network"]:
        return "default"
    return str(parse_network_flag(parsed["network"][0])["Target"])


def localhost_dns_warning(dns: list[str]) -> str | None:
    """Docker's CLI warning for a loopback ``--dns`` server (printed after the create)."""
    if not dns:
        return None
    import ipaddress

    for server in dns:
        try:
            address = ipaddress.ip_address(server)
        except ValueError:
            continue
        if address.is_loopback:
            return f"Localhost DNS ({address}) may fail in containers."
    return None


def apply_ports(parsed: Parsed, body: dict[str, Any]) -> None:
    """The MAC address check and the published/exposed ports, where Docker's ``parse`` does them."""
    if parsed["mac-address"] and not is_mac_address(parsed["mac-address"].strip()):
        raise OptionError(f"{parsed['mac-address']} is not a valid mac address")
    exposed, bindings = parse_ports(parsed["publish"], parsed["expose"])
    if exposed:
        body["ExposedPorts"] = exposed
    body.setdefault("HostConfig", {})["PortBindings"] = bindings


def apply(parsed: Parsed, body: dict[str, Any]) -> None:
    """Fill the create body's other networking fields (after :func:`apply_ports`); raises
    :class:`OptionError` as Docker's ``parse`` fails."""
    host_config = body.setdefault("HostConfig", {})
    body["Hostname"] = parsed["hostname"] or ""
    body["Domainname"] = parsed["domainname"] or ""
    host_config["NetworkMode"] = network_mode(parsed)
    host_config["PublishAllPorts"] = parsed["publish-all"]
    if parsed["link"]:
        host_config["Links"] = list(parsed["link"])
    host_config["Dns"] = list(parsed["dns"])
    host_config["DnsSearch"] = list(parsed["dns-search"])
    host_config["DnsOptions"] = list(parsed["dns-option"])
    if parsed["add-host"]:
        host_config["ExtraHosts"] = list(parsed["add-host"])
    body["NetworkingConfig"] = {"EndpointsConfig": endpoints_config(parsed)}
