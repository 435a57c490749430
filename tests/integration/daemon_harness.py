"""A real dockyard daemon on a temporary root and socket, for integration tests.

``Daemon`` starts ``dockyard daemon --root TMP -H unix://TMP/d.sock`` as a subprocess and knows how
to drive it with our CLI, Docker's CLI and docker-py. ``close`` removes every container, stops the
daemon, kills any shim still running for this root, unmounts anything left under the root and
deletes it — also when a test failed.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
# Docker's CLI as a client. Debian's docker.io (20.10) is what install.sh --test installs: no registry
# this project reaches ships a newer one. A 28.x client at /usr/local/bin/docker is used when the
# machine has it; DOCKER is the newest client present, so no test depends on a client being there that
# install.sh does not install. DOCKYARD_TEST_DOCKER_28 points the harness elsewhere (a missing path
# runs the suite as a fresh machine would).
DOCKER_28 = os.environ.get("DOCKYARD_TEST_DOCKER_28", "/usr/local/bin/docker")
DOCKER_20 = "/usr/bin/docker"
DOCKER = DOCKER_28 if os.access(DOCKER_28, os.X_OK) else DOCKER_20

# Where Docker's 20.10 CLI words a message otherwise than 28.x does (dockyard's CLI follows 28.x): each
# a rewrite of the 20.10 text into 28.x's. Tests that compare our CLI's output with Docker's pass Docker's
# through as_docker_28, so they compare like with like on a machine that has only Debian's client.
CLI_20_TO_28 = [
    # `run` of a missing command: 20.10 ends the daemon's error with "." (and may log the cancelled wait)
    (re.compile(r'^(docker: Error response from daemon: [^\n]*)\.\n'
                r'(?:time="[^"]*" level=error msg="error waiting for container: context canceled"\n)?$'),
     r"\1\n\nRun 'docker run --help' for more information\n"),
    # --rm with --restart
    (re.compile(r"^docker: Conflicting options: --restart and --rm\.\nSee 'docker run --help'\.\n$"),
     "docker: conflicting options: cannot specify both --restart and --rm\n\n"
     "Run 'docker run --help' for more information\n"),
    # a flag `run` does not know: 28.x shows the usage line
    (re.compile(r"^(unknown flag: \S+)\nSee 'docker run --help'\.\n$"),
     r"\1\n\nUsage:  docker run [OPTIONS] IMAGE [COMMAND] [ARG...]\n\nRun 'docker run --help' for more information\n"),
    # `save -o` into a missing directory
    (re.compile(r'invalid output path: directory "([^"]+)" does not exist\n'),
     r"invalid output path: stat \1: no such file or directory\n"),
    # `rmi` of an unknown name: 28.x shows the daemon's error (with the default tag)
    (re.compile(r"^Error: No such image: ([^:\s]+)\n$"), r"Error response from daemon: No such image: \1:latest\n"),
    # `ps --format '{{json .}}'`: 28.x has a Platform field (null without one)
    (re.compile(r'("Networks":"[^"]*",)("Ports":)'), r'\1"Platform":null,\2'),
]


def as_docker_28(text: str, client: str = DOCKER) -> str:
    """``text`` printed by Docker's CLI ``client``, in 28.x's words (unchanged when it is 28.x)."""
    if client == DOCKER_28:
        return text
    for pattern, replacement in CLI_20_TO_28:
        text = pattern.sub(replacement, text)
    return text


def ping(sock: Path) -> bool:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(1)
    try:
        s.connect(str(sock))
        s.sendall(b"GET /_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
        return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False
    finally:
        s.close()


def mounts_under(path: Path) -> list[str]:
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            target = line.split()[4].replace("\\040", " ")
            if target == str(path) or target.startswith(str(path) + "/"):
                found.append(target)
    return found


def processes_mentioning(text: str) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if text.encode() in cmdline:
            pids.append(int(entry))
    return pids


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def terminate(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM ``proc`` if it still runs; SIGKILL after 10 s."""
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def remove_network_leftovers(data_root: Path) -> None:
    """Delete the links (bridges, veths) and the nft table (with its iptables-nft rules) that a
    daemon on ``data_root`` made: networks outlive a daemon's stop by design."""
    import json

    from dockyard.networks.firewall import Firewall
    from dockyard.networks.naming import Naming

    naming = Naming(data_root)
    pins = naming.run_dir / "netns"
    for pin in sorted(pins.glob("*")) if pins.is_dir() else []:
        subprocess.run(["umount", "-l", str(pin)], capture_output=True, check=False)
    shutil.rmtree(naming.run_dir, ignore_errors=True)
    links = json.loads(subprocess.run(["ip", "-j", "link"], capture_output=True, text=True).stdout or "[]")
    for link in links:
        if naming.owns(link.get("ifname", "")):
            subprocess.run(["ip", "link", "del", link["ifname"]], capture_output=True, check=False)
    firewall = Firewall(naming.table)
    try:
        firewall.reset()
    finally:
        firewall.close()


# Every data root a test daemon of this session used (the host guard tells its links and tables from
# those of daemons other jobs on the machine run meanwhile).
DATA_ROOTS: list[Path] = []


class Daemon:
    """``prefix``: argv the daemon's command is appended to (e.g. a wrapper that mounts a cgroup2
    hierarchy at /sys/fs/cgroup in a mount namespace of the daemon's own); ``args``: extra daemon flags."""

    def __init__(self, root: Path, prefix: tuple[str, ...] = (), args: tuple[str, ...] = ()) -> None:
        self.root = root
        DATA_ROOTS.append(root / "data")
        self.prefix = prefix
        self.args = args
        self.sock = root / "d.sock"
        self.host = f"unix://{self.sock}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "daemon.stderr", "ab") as err:  # the daemon has its own copy of the fd
            self.proc = subprocess.Popen(
                [*self.prefix, sys.executable, "-m", "dockyard.daemon.main", "--root", str(self.root / "data"),
                 "-H", self.host, *self.args],
                stdout=err, stderr=err, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 20
        while not ping(self.sock):
            if self.proc.poll() is not None:
                raise RuntimeError("daemon exited:\n" + (self.root / "daemon.stderr").read_text())
            if time.monotonic() > deadline:
                raise RuntimeError("daemon did not answer:\n" + (self.root / "daemon.stderr").read_text())
            time.sleep(0.05)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        terminate(self.proc)
        self.proc = None

    def close(self) -> None:
        try:
            if self.proc is not None and self.proc.poll() is None:
                ids = self.cli("ps", "-aq", "--no-trunc", timeout=20).stdout.split()
                if ids:
                    self.cli("rm", "-f", *ids, timeout=60)
        finally:
            self.stop()
            for pid in processes_mentioning(str(self.root / "data")):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            for target in reversed(mounts_under(self.root)):
                subprocess.run(["umount", "-l", target], check=False)
            remove_network_leftovers(self.root / "data")
            shutil.rmtree(self.root, ignore_errors=True)

    # -- clients -------------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["DOCKYARD_HOST"] = self.host
        env["DOCKER_HOST"] = self.host
        env.pop("DOCKER_CONTEXT", None)
        env["DOCKER_CONFIG"] = str(self.root / "docker-config")
        return env

    def cli_argv(self) -> list[str]:
        """The command line of our CLI (run it with :meth:`env`)."""
        return [sys.executable, "-m", "dockyard.cli.main"]

    def cli(self, *args: str, input: bytes | str | None = None, timeout: float = 30,
            check: bool = False) -> subprocess.CompletedProcess[str]:
        """Run our CLI against this daemon."""
        return self._run([sys.executable, "-m", "dockyard.cli.main", *args], input, timeout, check)

    def docker(self, *args: str, client: str = DOCKER, input: bytes | str | None = None, timeout: float = 30,
               check: bool = False) -> subprocess.CompletedProcess[str]:
        """Run Docker's own CLI against this daemon."""
        return self._run([client, *args], input, timeout, check)

    def _run(self, argv: list[str], input: bytes | str | None, timeout: float,
             check: bool) -> subprocess.CompletedProcess[str]:
        data = input.decode() if isinstance(input, bytes) else input
        result = subprocess.run(argv, input=data, capture_output=True, text=True, env=self.env(),
                                timeout=timeout, stdin=None if data is not None else subprocess.DEVNULL)
        if check and result.returncode != 0:
            raise AssertionError(f"{argv} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
        return result

    def client(self) -> Any:
        import docker

        return docker.DockerClient(base_url=self.host, version="auto", timeout=60)

    def import_busybox(self, tar: Path, ref: str = "busybox:latest") -> str:
        """Import the busybox rootfs through the API (docker-py), with ``CMD ["sh"]``."""
        import docker

        api = docker.APIClient(base_url=self.host, version="auto", timeout=60)
        try:
            repo, _, tag = ref.rpartition(":")
            return str(api.import_image_from_data(tar.read_bytes(), repository=repo, tag=tag,
                                                  changes=['CMD ["sh"]']))
        finally:
            api.close()
