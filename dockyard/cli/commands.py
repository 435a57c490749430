"""The verb table: each verb's module (imported only when the verb runs), usage line and summary.

*Arity* is Docker's rule for positional arguments: ``min_args`` and ``max_args`` (``-1``: no limit).
"""

from __future__ import annotations


class Verb:
    """One ``dockyard`` verb."""

    __slots__ = ("name", "module", "usage", "summary", "min_args", "max_args")

    def __init__(self, name: str, module: str, usage: str, summary: str,
                 min_args: int = 0, max_args: int = -1) -> None:
        self.name = name
        self.module = module
        self.usage = usage
        self.summary = summary
        self.min_args = min_args
        self.max_args = max_args

    def arity_error(self, count: int) -> tuple[str, str] | None:
        """Docker's complaint about ``count`` positional arguments and its hint word, or ``None``."""
        quoted = f"'dockyard {self.name}'"
        low, high = self.min_args, self.max_args
        if high == 0 and count > 0:
            return f"{quoted} accepts no arguments", "Run"
        if low == high and count != low:
            noun = "argument" if low == 1 else "arguments"
            return f"{quoted} requires {low} {noun}", "Run"
        if count < low:
            noun = "argument" if low == 1 else "arguments"
            return f"{quoted} requires at least {low} {noun}", "See"
        if high >= 0 and count > high:
            noun = "argument" if high == 1 else "arguments"
            return f"{quoted} requires at most {high} {noun}", "Run"
        return None


_V = "dockyard.cli.verbs."

VERBS: dict[str, Verb] = {v.name: v for v in (
    Verb("run", _V + "run", "run [OPTIONS] IMAGE [COMMAND] [ARG...]",
         "Create and run a new container from an image", 1),
    Verb("ps", _V + "ps", "ps [OPTIONS]", "List containers", 0, 0),
    Verb("logs", _V + "logs", "logs [OPTIONS] CONTAINER", "Fetch the logs of a container", 1, 1),
    Verb("stop", _V + "lifecycle", "stop [OPTIONS] CONTAINER [CONTAINER...]",
         "Stop one or more running containers", 1),
    Verb("kill", _V + "lifecycle", "kill [OPTIONS] CONTAINER [CONTAINER...]",
         "Kill one or more running containers", 1),
    Verb("rm", _V + "lifecycle", "rm [OPTIONS] CONTAINER [CONTAINER...]",
         "Remove one or more containers", 1),
    Verb("wait", _V + "lifecycle", "wait CONTAINER [CONTAINER...]",
         "Block until one or more containers stop, then print their exit codes", 1),
    Verb("inspect", _V + "inspect", "inspect [OPTIONS] NAME|ID [NAME|ID...]",
         "Return low-level information on Docker objects", 1),
    Verb("images", _V + "images", "images [OPTIONS] [REPOSITORY[:TAG]]", "List images", 0, 1),
    Verb("rmi", _V + "rmi", "rmi [OPTIONS] IMAGE [IMAGE...]", "Remove one or more images", 1),
    Verb("tag", _V + "tag", "tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
         "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE", 2, 2),
    Verb("import", _V + "image_import", "import [OPTIONS] file|- [REPOSITORY[:TAG]]",
         "Import the contents from a tarball to create a filesystem image", 1, 2),
    Verb("version", _V + "version", "version [OPTIONS]", "Show the dockyard version information", 0, 0),
    Verb("info", _V + "info", "info [OPTIONS]", "Display system-wide information", 0, 0),
    Verb("daemon", _V + "daemon", "daemon [OPTIONS]", "Run the dockyard daemon"),
)}
