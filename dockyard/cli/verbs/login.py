"""``dockyard login [-u USER] [-p PASS | --password-stdin] [SERVER]`` and ``dockyard logout [SERVER]``.

As Docker's CLI: the daemon checks the credentials (``POST /auth``), then the CLI keeps them in
``config.json`` or its credential helper (:mod:`dockyard.cli.registry_auth`). The server defaults
to Docker Hub (``https://index.docker.io/v1/``).
"""

from __future__ import annotations

import sys

from dockyard.cli import registry_auth, terminal
from dockyard.cli.failure import CliFailure
from dockyard.cli.flags import Flag, FlagSet

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dockyard.cli.flags import Parsed
    from dockyard.cli.invocation import Invocation

FLAGS = {
    "login": FlagSet([
        Flag("password", "p", "string", "Password"),
        Flag("password-stdin", "", "bool", "Take the password from stdin"),
        Flag("username", "u", "string", "Username"),
    ]),
    "logout": FlagSet([]),
}


def _prompt(text: str, secret: bool) -> str:
    if not terminal.is_terminal(0):
        raise CliFailure("Error: Cannot perform an interactive login from a non TTY device", 1)
    if secret:
        import getpass

        return getpass.getpass(text)
    sys.stdout.write(text)
    sys.stdout.flush()
    return sys.stdin.readline().rstrip("\n")


def main(invocation: Invocation, verb: str, parsed: Parsed) -> int:
    server = parsed.args[0] if parsed.args else registry_auth.INDEX_SERVER
    key = registry_auth.registry_key(server)
    if verb == "logout":
        try:
            removed = registry_auth.erase(key)
        except registry_auth.CredentialError as error:
            raise CliFailure(str(error), 1) from None
        sys.stdout.write(f"Removing login credentials for {key}\n" if removed else f"Not logged in to {key}\n")
        return 0
    username, password = parsed["username"], parsed["password"]
    if parsed["password-stdin"]:
        if password:
            raise CliFailure("--password and --password-stdin are mutually exclusive", 1)
        if not username:
            raise CliFailure("Must provide --username with --password-stdin", 1)
        password = sys.stdin.read().rstrip("\r\n")
    elif password:
        sys.stderr.write("WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n")
    if not username:
        username = _prompt("Username: ", secret=False).strip()
    if not username:
        raise CliFailure("Error: Non-null Username Required", 1)
    if not password:
        password = _prompt("Password: ", secret=True)
    if not password:
        raise CliFailure("Error: Password Required", 1)
    answer = invocation.api.json("POST", "/auth", body={"username": username, "password": password,
                                                        "serveraddress": key})
    try:
        where = registry_auth.store(key, username, password, str((answer or {}).get("IdentityToken") or ""))
    except registry_auth.CredentialError as error:
        raise CliFailure(f"Error saving credentials: {error}", 1) from None
    if where == registry_auth.config_path():
        sys.stderr.write(f"WARNING! Your password will be stored unencrypted in {where}.\n"
                         "Configure a credential helper to remove this warning. See\n"
                         "https://docs.docker.com/engine/reference/commandline/login/#credential-stores\n\n")
    sys.stdout.write("Login Succeeded\n")
    return 0
