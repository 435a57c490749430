"""The verb table: each verb's module (imported only when the verb runs), usage line and summary.

*Arity* is Docker's rule for positional arguments: ``min_args`` and ``max_args`` (``-1``: no limit);
a *ranged* verb is one Docker declares with ``RequiresRangeArgs`` (one message for both bounds).
"""

from __future__ import annotations


class Verb:
    """One ``dockyard`` verb."""

    __slots__ = ("name", "module", "usage", "summary", "min_args", "max_args", "ranged", "canonical")

    def __init__(self, name: str, module: str, usage: str, summary: str,
                 min_args: int = 0, max_args: int = -1, ranged: bool = False, canonical: str = "") -> None:
        self.name = name
        self.canonical = canonical or name  # how Docker names an alias (``network list``) in messages
        self.module = module
        self.usage = usage
        self.summary = summary
        self.min_args = min_args
        self.max_args = max_args
        self.ranged = ranged

    def arity_error(self, count: int) -> tuple[str, str] | None:
        """Docker's complaint about ``count`` positional arguments and its hint word, or ``None``."""
        quoted = f"'dockyard {self.canonical}'"
        low, high = self.min_args, self.max_args
        if self.ranged and not low <= count <= high:
            return f"{quoted} requires at least {low} and at most {high} arguments", "Run"
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
    Verb("pull", _V + "pull", "pull [OPTIONS] NAME[:TAG|@DIGEST]", "Download an image from a registry", 1, 1),
    Verb("image pull", _V + "pull", "image pull [OPTIONS] NAME[:TAG|@DIGEST]", "Download an image from a registry",
         1, 1),
    Verb("push", _V + "push", "push [OPTIONS] NAME[:TAG]", "Upload an image to a registry", 1, 1),
    Verb("search", _V + "search", "search [OPTIONS] TERM", "Search registries for images", 1, 1),
    Verb("image push", _V + "push", "image push [OPTIONS] NAME[:TAG]", "Upload an image to a registry", 1, 1),
    Verb("login", _V + "login", "login [OPTIONS] [SERVER]",
         "Log in to a registry.\nIf no server is specified, the default is defined by the daemon.", 0, 1),
    Verb("logout", _V + "login", "logout [SERVER]",
         "Log out from a registry.\nIf no server is specified, the default is defined by the daemon.", 0, 1),
    Verb("import", _V + "image_import", "import [OPTIONS] file|- [REPOSITORY[:TAG]]",
         "Import the contents from a tarball to create a filesystem image", 1, 2),
    Verb("version", _V + "version", "version [OPTIONS]", "Show the dockyard version information", 0, 0),
    Verb("info", _V + "info", "info [OPTIONS]", "Display system-wide information", 0, 0),
    Verb("daemon", _V + "daemon", "daemon [OPTIONS]", "Run the dockyard daemon"),
    Verb("registry", _V + "registry", "registry serve|gc [OPTIONS]",
         "Run an OCI distribution registry (serve), or collect its unreferenced blobs (gc)"),
    Verb("cp", _V + "cp", "cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n\tdockyard cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH",
         "Copy files/folders between a container and the local filesystem", 2, 2),
    Verb("diff", _V + "container_fs", "diff CONTAINER", "Inspect changes to files or directories on a container's "
         "filesystem", 1, 1),
    Verb("export", _V + "container_fs", "export [OPTIONS] CONTAINER", "Export a container's filesystem as a tar "
         "archive", 1, 1),
    Verb("commit", _V + "container_fs", "commit [OPTIONS] CONTAINER [REPOSITORY[:TAG]]",
         "Create a new image from a container's changes", 1, 2, ranged=True),
    Verb("exec", _V + "exec", "exec [OPTIONS] CONTAINER COMMAND [ARG...]",
         "Execute a command in a running container", 2),
    Verb("create", _V + "create", "create [OPTIONS] IMAGE [COMMAND] [ARG...]", "Create a new container", 1),
    Verb("start", _V + "start", "start [OPTIONS] CONTAINER [CONTAINER...]", "Start one or more stopped containers", 1),
    Verb("restart", _V + "restart", "restart [OPTIONS] CONTAINER [CONTAINER...]", "Restart one or more containers", 1),
    Verb("rename", _V + "rename", "rename CONTAINER NEW_NAME", "Rename a container", 2, 2),
    Verb("attach", _V + "attach", "attach [OPTIONS] CONTAINER",
         "Attach local standard input, output, and error streams to a running container", 1, 1),
    Verb("top", _V + "top", "top CONTAINER [ps OPTIONS]", "Display the running processes of a container", 1),
    Verb("port", _V + "port", "port CONTAINER [PRIVATE_PORT[/PROTO]]",
         "List port mappings or a specific mapping for the container", 1, 2, ranged=True),
    Verb("events", _V + "events", "events [OPTIONS]", "Get real time events from the server", 0, 0),
    Verb("container", _V + "container", "container COMMAND", "Manage containers", 0, 0),
    Verb("container prune", _V + "container", "container prune [OPTIONS]", "Remove all stopped containers", 0, 0),
    Verb("stats", _V + "stats", "stats [OPTIONS] [CONTAINER...]",
         "Display a live stream of container(s) resource usage statistics"),
    Verb("update", _V + "update", "update [OPTIONS] CONTAINER [CONTAINER...]",
         "Update configuration of one or more containers", 1),
    Verb("pause", _V + "pause", "pause CONTAINER [CONTAINER...]", "Pause all processes within one or more containers",
         1),
    Verb("unpause", _V + "pause", "unpause CONTAINER [CONTAINER...]",
         "Unpause all processes within one or more containers", 1),
    Verb("save", _V + "image_archive", "save [OPTIONS] IMAGE [IMAGE...]",
         "Save one or more images to a tar archive (streamed to STDOUT by default)", 1),
    Verb("load", _V + "image_archive", "load [OPTIONS]", "Load an image from a tar archive or STDIN", 0, 0),
    Verb("history", _V + "history", "history [OPTIONS] IMAGE", "Show the history of an image", 1, 1),
    Verb("image save", _V + "image_archive", "image save [OPTIONS] IMAGE [IMAGE...]",
         "Save one or more images to a tar archive (streamed to STDOUT by default)", 1),
    Verb("image load", _V + "image_archive", "image load [OPTIONS]", "Load an image from a tar archive or STDIN",
         0, 0),
    Verb("image history", _V + "history", "image history [OPTIONS] IMAGE", "Show the history of an image", 1, 1),
    Verb("image prune", _V + "prune_and_usage", "image prune [OPTIONS]", "Remove unused images", 0, 0),
    Verb("system df", _V + "prune_and_usage", "system df [OPTIONS]", "Show docker disk usage", 0, 0),
    Verb("system prune", _V + "prune_and_usage", "system prune [OPTIONS]", "Remove unused data", 0, 0),
    Verb("build", _V + "build", "build [OPTIONS] PATH | URL | -", "Build an image from a Dockerfile", 1, 1),
    Verb("image build", _V + "build", "image build [OPTIONS] PATH | URL | -", "Build an image from a Dockerfile",
         1, 1),
    Verb("builder build", _V + "build", "builder build [OPTIONS] PATH | URL | -", "Build an image from a Dockerfile",
         1, 1),
    Verb("builder", _V + "prune_and_usage", "builder COMMAND", "Manage builds", 0, 0),
    Verb("builder prune", _V + "prune_and_usage", "builder prune", "Remove build cache", 0, 0),
    Verb("system check", _V + "store_check", "system check [OPTIONS]",
         "Check the store for orphans and inconsistencies (a dockyard extension)", 0, 0),
    Verb("volume", _V + "volume", "volume COMMAND", "Manage volumes", 0, 0),
    Verb("volume create", _V + "volume", "volume create [OPTIONS] [VOLUME]", "Create a volume", 0, 1),
    Verb("volume ls", _V + "volume", "volume ls [OPTIONS]", "List volumes", 0, 0),
    Verb("volume list", _V + "volume", "volume ls [OPTIONS]", "List volumes", 0, 0, canonical="volume ls"),
    Verb("volume inspect", _V + "volume", "volume inspect [OPTIONS] VOLUME [VOLUME...]",
         "Display detailed information on one or more volumes", 1),
    Verb("volume rm", _V + "volume", "volume rm [OPTIONS] VOLUME [VOLUME...]", "Remove one or more volumes", 1),
    Verb("volume remove", _V + "volume", "volume rm [OPTIONS] VOLUME [VOLUME...]", "Remove one or more volumes", 1,
         canonical="volume rm"),
    Verb("volume prune", _V + "volume", "volume prune [OPTIONS]", "Remove unused local volumes", 0, 0),
    Verb("network", _V + "network", "network COMMAND", "Manage networks", 0, 0),
    Verb("network create", _V + "network", "network create [OPTIONS] NETWORK", "Create a network", 1, 1),
    Verb("network ls", _V + "network", "network ls [OPTIONS]", "List networks", 0, 0),
    Verb("network list", _V + "network", "network ls [OPTIONS]", "List networks", 0, 0, canonical="network ls"),
    Verb("network inspect", _V + "network", "network inspect [OPTIONS] NETWORK [NETWORK...]",
         "Display detailed information on one or more networks", 1),
    Verb("network rm", _V + "network", "network rm NETWORK [NETWORK...]", "Remove one or more networks", 1),
    Verb("network remove", _V + "network", "network rm NETWORK [NETWORK...]", "Remove one or more networks", 1,
         canonical="network rm"),
    Verb("network prune", _V + "network", "network prune [OPTIONS]", "Remove all unused networks", 0, 0),
    Verb("network connect", _V + "network", "network connect [OPTIONS] NETWORK CONTAINER",
         "Connect a container to a network", 2, 2),
    Verb("network disconnect", _V + "network", "network disconnect [OPTIONS] NETWORK CONTAINER",
         "Disconnect a container from a network", 2, 2),
)}

# ``container <sub>``: Docker's management command, each subcommand the top-level verb it names.
for _sub, _name in (("attach", "attach"), ("create", "create"), ("exec", "exec"), ("inspect", "inspect"),
                    ("kill", "kill"), ("logs", "logs"), ("ls", "ps"), ("list", "ps"), ("ps", "ps"),
                    ("port", "port"), ("remove", "rm"), ("rename", "rename"), ("restart", "restart"),
                    ("rm", "rm"), ("run", "run"), ("start", "start"), ("stop", "stop"), ("top", "top"),
                    ("wait", "wait")):
    _top = VERBS[_name]
    _own = {"list": "ls", "ps": "ls", "remove": "rm"}.get(_sub, _sub)  # Docker's name for an alias
    VERBS[f"container {_sub}"] = Verb(f"container {_sub}", _V + "container", "container " + _top.usage.replace(
        _name, _own, 1), _top.summary, _top.min_args, _top.max_args, _top.ranged, canonical=f"container {_own}")
