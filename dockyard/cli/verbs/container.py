"""``dockyard container <verb>``: Docker's management command; each subcommand is the top-level verb.

``container ls``/``list``/``ps`` are ``ps``, ``container rm``/``remove`` are ``rm``, ``container
inspect`` inspects containers only; the others (``start``, ``exec``, ``prune``…) map one to one.
The target verb's module is imported only when its subcommand runs.
"""

from __future__ import annotations

from dockyard.cli.failure import CliFailure

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from dockyard.cli.flags import FlagSet, Parsed
    from dockyard.cli.invocation import Invocation

ALIASES = {"ls": "ps", "list": "ps", "ps": "ps", "remove": "rm"}
"""``container X`` -> the top-level verb it is."""

SUBCOMMANDS = ("attach", "create", "exec", "inspect", "kill", "logs", "ls", "list", "port", "prune", "ps",
               "remove", "rename", "restart", "rm", "run", "start", "stop", "top", "wait")


def target(verb: str) -> str:
    """The top-level verb behind ``container <sub>`` (``prune`` is ``container prune`` itself)."""
    sub = verb.partition(" ")[2]
    return ALIASES.get(sub, sub)


class _Flags(dict):  # type: ignore[type-arg]
    """The FLAGS table ``main._load`` reads: each subcommand's flags, from its module, on demand."""

    def __missing__(self, verb: str) -> FlagSet:
        name = target(verb)
        if not name:
            from dockyard.cli.flags import FlagSet

            return FlagSet([])
        if name == "prune":
            from dockyard.cli.verbs.container_prune import FLAGS as prune_flags

            return prune_flags
        module = _module(name)
        flags: Any = module.FLAGS
        return flags[name] if isinstance(flags, dict) else flags


def _module(name: str) -> Any:
    from dockyard.cli.commands import VERBS

    verb = VERBS.get(name)
    if verb is None:
        raise CliFailure(f"dockyard: unknown command: dockyard container {name}", 1)
    return __import__(verb.module, fromlist=["main"])


FLAGS = _Flags()


def main(invocation: Invocation, verb: str, parsed: Parsed) -> int:
    name = target(verb)
    if not name:
        import sys

        from dockyard.cli.commands import VERBS

        subs = sorted(v for v in VERBS if v.startswith("container "))
        width = max(len(v) for v in subs) - len("container ") + 2
        sys.stdout.write("\nUsage:  dockyard container COMMAND\n\nManage containers\n\nCommands:\n")
        sys.stdout.write("".join(f"  {v[len('container '):].ljust(width)}{VERBS[v].summary}\n" for v in subs))
        sys.stdout.write("\nRun 'dockyard container COMMAND --help' for more information on a command.\n")
        return 0
    if name == "prune":
        from dockyard.cli.verbs import container_prune

        return container_prune.main(invocation, verb, parsed)
    if name == "inspect" and not parsed.values.get("type"):
        parsed.values["type"] = "container"
    # run and create name the verb as typed in their usage lines (``container create [OPTIONS] …``)
    return int(_module(name).main(invocation, verb if name in ("run", "create") else name, parsed))
