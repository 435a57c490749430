"""``dockyard``: the command-line entry point.

Global flags come before the verb (``dockyard -H unix:///x.sock ps``); the verb's module is looked
up in ``commands.VERBS`` and imported only then, so ``dockyard version`` pays for nothing else.
Each verb module provides ``FLAGS`` (a ``FlagSet``, or a dict of them by verb for modules serving
several verbs) and ``main(invocation, verb, parsed) -> exit status``.
"""

from __future__ import annotations

import os
import sys

from dockyard.cli.commands import VERBS, Verb
from dockyard.cli.failure import ArgCountError, CliFailure, FlagError, HelpRequested
from dockyard.cli.flags import Flag, FlagSet

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

    from dockyard.cli.tls import TLSSettings

VERSION = "0.1.0"

GLOBAL_FLAGS = FlagSet([
    Flag("host", "H", "string", "Daemon socket to connect to", type_name="string"),
    Flag("debug", "D", "bool", "Enable debug mode"),
    Flag("log-level", "l", "string", 'Set the logging level ("debug", "info", "warn", "error", "fatal")'),
    Flag("tls", "", "bool", "Use TLS; implied by --tlsverify"),
    Flag("tlscacert", "", "string", "Trust certs signed only by this CA (default $DOCKER_CERT_PATH/ca.pem)"),
    Flag("tlscert", "", "string", "Path to TLS certificate file (default $DOCKER_CERT_PATH/cert.pem)"),
    Flag("tlskey", "", "string", "Path to TLS key file (default $DOCKER_CERT_PATH/key.pem)"),
    Flag("tlsverify", "", "bool", "Use TLS and verify the remote"),
    Flag("version", "v", "bool", "Print version information and quit"),
], interspersed=False)


def _err(text: str) -> None:
    sys.stderr.write(text if text.endswith("\n") else text + "\n")
    sys.stderr.flush()


def top_help() -> str:
    width = max(len(name) for name in VERBS if " " not in name) + 2
    lines = ["", "Usage:  dockyard [OPTIONS] COMMAND", "",
             "A Docker-compatible container engine", "", "Commands:"]
    lines += [f"  {name.ljust(width)}{verb.summary}" for name, verb in VERBS.items() if " " not in name]
    lines += ["", "Global Options:", GLOBAL_FLAGS.options_help(), "",
              "Run 'dockyard COMMAND --help' for more information on a command.", ""]
    return "\n".join(lines)


def verb_help(verb: Verb, flags: FlagSet) -> str:
    lines = ["", f"Usage:  dockyard {verb.usage}", "", verb.summary]
    options = flags.options_help()
    if options:
        lines += ["", "Options:", options]
    return "\n".join(lines) + "\n"


def _load(verb: Verb) -> tuple[object, FlagSet | None]:
    module = __import__(verb.module, fromlist=["main"])
    flags = getattr(module, "FLAGS", None)
    if isinstance(flags, dict):
        flags = flags[verb.name]
    return module, flags


def run_verb(name: str, argv: list[str], host: str | None, debug: bool = False, tls: TLSSettings | None = None) -> int:
    """Parse ``argv`` for verb ``name`` and run it; return the exit status (``tls``: for tcp hosts)."""
    from dockyard.cli.engine_api import choose_host
    from dockyard.cli.invocation import Invocation

    verb = VERBS[name]
    module, flags = _load(verb)
    if flags is None:  # the verb takes its arguments raw (``daemon``)
        return int(module.main(None, name, argv))  # type: ignore[attr-defined]
    try:
        parsed = flags.parse(argv)
        problem = verb.arity_error(len(parsed.args))
        if problem is not None:
            raise ArgCountError(f"dockyard: {problem[0]}", problem[1])
    except HelpRequested:
        subcommands = getattr(module, "SUBCOMMANDS", None)
        if " " not in name and isinstance(subcommands, str):  # a management command: its subcommands
            sys.stdout.write(subcommands.lstrip("\n"))
            return 0
        sys.stdout.write(verb_help(verb, flags))
        return 0
    except FlagError as error:
        _err(f"{error.message}\n\nUsage:  dockyard {verb.usage}\n\n"
             f"Run 'dockyard {verb.canonical} --help' for more information")
        return error.status
    except ArgCountError as error:
        _err(f"{error.message}\n\nUsage:  dockyard {verb.usage}\n\n"
             f"{error.hint} 'dockyard {verb.canonical} --help' for more information")
        return error.status
    resolved, explicit = choose_host(host)
    return int(module.main(Invocation(resolved, explicit, debug, tls), name, parsed))  # type: ignore[attr-defined]


# Verbs that run a server in this process: their threads and exit handlers need the interpreter's
# orderly shutdown.
SERVING_VERBS = frozenset({"daemon", "registry"})


def exit_now(status: int) -> NoReturn:
    """End the process at once with ``status``, stdout and stderr flushed first. A client command
    holds nothing the interpreter's orderly shutdown is needed for (its threads are daemon threads,
    it registers no exit handlers), and that shutdown — every module and object torn down — costs
    the command milliseconds at its very end (~2–4 ms after ``run --rm``'s answer)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BrokenPipeError:  # whoever read our output went away, as in ``main``
            status = 141
        except (OSError, ValueError):
            pass
    os._exit(status)


def main(argv: list[str] | None = None) -> int:
    """Run ``dockyard`` with ``argv`` (default ``sys.argv[1:]``); exit statuses follow Docker's.

    From the command line (``argv`` None) a client verb ends the process itself (:func:`exit_now`)."""
    args = sys.argv[1:] if argv is None else argv
    status, verb = _main(args)
    if argv is None and verb.partition(" ")[0] not in SERVING_VERBS:
        exit_now(status)
    return status


def _main(args: list[str]) -> tuple[int, str]:
    """``main``'s work: the exit status, and the verb that ran (``""`` when none did)."""
    verb = ""
    try:
        try:
            parsed = GLOBAL_FLAGS.parse(args)
        except HelpRequested:
            sys.stdout.write(top_help())
            return 0, verb
        except FlagError as error:
            _err(f"{error.message}\nSee 'dockyard --help'.")
            return 125, verb
        if parsed["version"]:
            sys.stdout.write(f"dockyard version {VERSION}\n")
            return 0, verb
        if not parsed.args:
            sys.stdout.write(top_help())
            return 0, verb
        name, rest = parsed.args[0], parsed.args[1:]
        if name == "help":
            if rest and rest[0] in VERBS:
                return run_verb(rest[0], ["--help"], None), verb
            sys.stdout.write(top_help())
            return 0, verb
        if rest and f"{name} {rest[0]}" in VERBS:  # a verb group's subcommand: ``volume ls``
            name, rest = f"{name} {rest[0]}", rest[1:]
        elif rest and not rest[0].startswith("-") and any(v.startswith(name + " ") for v in VERBS):
            # a management command given a subcommand it lacks (``network bogus``), worded as Docker's
            usage = "volume COMMAND" if name == "volume" else name
            _err(f"dockyard: unknown command: dockyard {name} {rest[0]}\n\nUsage:  dockyard {usage}\n\n"
                 f"Run 'dockyard {name} --help' for more information")
            return 1, verb
        if name not in VERBS:
            _err(f"dockyard: unknown command: dockyard {name}\n\nRun 'dockyard --help' for more information")
            return 1, verb
        tls = None
        if parsed.changed & {"tls", "tlsverify"} or "DOCKER_TLS_VERIFY" in os.environ or "DOCKER_TLS" in os.environ:
            from dockyard.cli import tls as tls_config

            tls = tls_config.settings(parsed.values, parsed.changed)
        verb = name
        return run_verb(name, rest, parsed["host"], parsed["debug"], tls), verb
    except CliFailure as failure:
        if failure.message:
            _err(failure.message)
        return failure.status, verb
    except KeyboardInterrupt:
        return 130, verb
    except BrokenPipeError:
        # Whoever read our output went away (``dockyard ps | head -1``): leave quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141, verb


if __name__ == "__main__":
    sys.exit(main())
