"""`run`/`create` flags of the supervision group: see `dockyard.cli.options`.

- ``--restart no|always|on-failure[:N]|unless-stopped`` → ``HostConfig.RestartPolicy``;
  refused next to ``--rm`` with Docker 28's message.
- ``--log-driver`` / ``--log-opt k=v`` → ``HostConfig.LogConfig`` (the daemon validates the opts).
- ``--health-cmd`` … ``--no-healthcheck`` → ``Config.Healthcheck`` (durations in nanoseconds, as
  Docker's API wants them; ``--health-cmd`` runs through ``/bin/sh -c``: ``CMD-SHELL``).
"""

from __future__ import annotations

from dockyard.cli.failure import FlagError
from dockyard.cli.flags import Flag
from dockyard.cli.units import parse_go_duration

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from dockyard.cli.flags import Parsed

_DURATIONS = ("health-interval", "health-timeout", "health-start-period", "health-start-interval")

FLAGS: list[Flag] = [
    Flag("restart", "", "string", "Restart policy to apply when a container exits", default="no"),
    Flag("log-driver", "", "string", "Logging driver for the container"),
    Flag("log-opt", "", "list", "Log driver options"),
    Flag("health-cmd", "", "string", "Command to run to check health"),
    Flag("health-interval", "", "string", "Time between running the check (ms|s|m|h) (default 0s)",
         type_name="duration"),
    Flag("health-timeout", "", "string", "Maximum time to allow one check to run (ms|s|m|h) (default 0s)",
         type_name="duration"),
    Flag("health-start-period", "", "string", "Start period for the container to initialize before starting "
         "health-retries countdown (ms|s|m|h) (default 0s)", type_name="duration"),
    Flag("health-start-interval", "", "string", "Time between running the check during the start period "
         "(ms|s|m|h) (default 0s)", type_name="duration"),
    Flag("health-retries", "", "int", "Consecutive failures needed to report unhealthy", default=0),
    Flag("no-healthcheck", "", "bool", "Disable any container-specified HEALTHCHECK"),
]


def parse_restart(text: str) -> dict[str, Any]:
    """Docker's CLI parsing of ``--restart`` (the daemon checks the name and the count's range)."""
    name, colon, count = text.partition(":")
    if colon and not name:
        raise FlagError("invalid restart policy format: no policy provided before colon")
    retries = 0
    if count:
        try:
            retries = int(count)
        except ValueError:
            raise FlagError("invalid restart policy format: maximum retry count must be an integer") from None
    return {"Name": name, "MaximumRetryCount": retries}


def _nanoseconds(parsed: Parsed, name: str) -> int:
    raw = parsed[name]
    if not raw:
        return 0
    seconds = parse_go_duration(raw)
    if seconds is None:
        raise FlagError(f'invalid argument "{raw}" for "--{name}" flag: time: invalid duration "{raw}"')
    if seconds < 0:
        raise FlagError(f"--{name} cannot be negative")
    return int(round(seconds * 1e9))


def healthcheck(parsed: Parsed) -> dict[str, Any] | None:
    """``Config.Healthcheck`` from the flags, or None when none was given."""
    durations = {name: _nanoseconds(parsed, name) for name in _DURATIONS}
    retries = parsed["health-retries"] or 0
    given = bool(parsed["health-cmd"]) or any(durations.values()) or retries != 0
    if parsed["no-healthcheck"]:
        if given:
            raise FlagError("--no-healthcheck conflicts with --health-* options")
        return {"Test": ["NONE"]}
    if not given:
        return None
    if retries < 0:
        raise FlagError("--health-retries cannot be negative")
    return {
        "Test": ["CMD-SHELL", parsed["health-cmd"]] if parsed["health-cmd"] else None,
        "Interval": durations["health-interval"],
        "Timeout": durations["health-timeout"],
        "StartPeriod": durations["health-start-period"],
        "StartInterval": durations["health-start-interval"],
        "Retries": retries,
    }


def apply(parsed: Parsed, body: dict[str, Any]) -> None:
    """Fill the create body from this group's flags."""
    host = body.setdefault("HostConfig", {})
    if "restart" in parsed.changed:
        policy = parse_restart(parsed["restart"] or "no")
        if host.get("AutoRemove") and policy["Name"] not in ("", "no"):
            raise FlagError("conflicting options: cannot specify both --restart and --rm")
        host["RestartPolicy"] = policy
    driver = parsed["log-driver"] or ""
    opts: dict[str, str] = {}
    for item in parsed["log-opt"] or []:
        key, _, value = item.partition("=")
        opts[key] = value
    if driver == "none" and opts:
        raise FlagError("invalid logging opts for driver none")
    if driver or opts:
        host["LogConfig"] = {"Type": driver, "Config": opts}
    check = healthcheck(parsed)
    if check is not None:
        body["Healthcheck"] = check
