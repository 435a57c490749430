"""Container start latency, side by side: dockyard, Docker's CLI on dockyard, dockerd, Podman, crun.

Each engine gets its own temporary root, imports the same offline busybox rootfs, and runs
``run --rm --network none busybox true`` N times; the medians are printed with their ratio to
dockyard's, and written to ``bench/results/start-<timestamp>.json``. Each engine also runs its default
bridge (``run --rm busybox true``: namespace, veth, address, firewall rules), taking turns with ``none``
so both see the same machine; dockyard again with ``--bridge-load`` containers running on the bridge.

dockyard's daemon runs on the host (its bridge and nft table go when it stops). dockerd and Podman
change the host when they set up a bridge (iptables rules, ``docker0``/``cni-podman0``, sysctls), so
each runs inside a network namespace of its own that the bench pins and removes; the host's addresses,
routes and nft ruleset are compared before and after, and the bench fails if they changed. Engines
that are not installed are reported as such. Run as root: ``.venv/bin/python bench/run_bench.py [-n 20]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from host_network import changes, host_network_state  # noqa: E402

from dockyard.images.busybox_rootfs import write_busybox_rootfs_tar  # noqa: E402
from dockyard.networks import netns  # noqa: E402
from dockyard.networks.naming import Naming  # noqa: E402

DOCKYARD = os.environ.get("DOCKYARD_BENCH_CLI", "")  # default: a launcher as install.sh puts on PATH
DOCKER = "/usr/local/bin/docker" if os.path.exists("/usr/local/bin/docker") else "docker"


def ping(path: Path) -> bool:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(1)
    try:
        s.connect(str(path))
        s.sendall(b"GET /_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
        return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False
    finally:
        s.close()


def wait_for(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not come up")
        time.sleep(0.1)


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def remove_networks(root: Path) -> None:
    """The bridges, veths and nft table a dockyard daemon on ``root`` made (they outlive its stop)."""
    from dockyard.networks.firewall import Firewall
    from dockyard.networks.naming import Naming

    naming = Naming(root)
    for pin in sorted((naming.run_dir / "netns").glob("*")):
        subprocess.run(["umount", "-l", str(pin)], capture_output=True)
    shutil.rmtree(naming.run_dir, ignore_errors=True)
    links = json.loads(subprocess.run(["ip", "-j", "link"], capture_output=True, text=True).stdout or "[]")
    for link in links:
        if naming.owns(link.get("ifname", "")):
            subprocess.run(["ip", "link", "del", link["ifname"]], capture_output=True)
    firewall = Firewall(naming.table)
    try:
        firewall.reset()
    finally:
        firewall.close()


def write_launcher(path: Path) -> str:
    """The ``dockyard`` command as install.sh installs it (``python -IS``: no site scan, the CLI needs
    only the stdlib and this checkout), so the bench times what users run."""
    path.write_text(f"#!{sys.executable} -IS\nimport sys\nsys.path.insert(0, {str(REPO)!r})\n"
                    "from dockyard.cli.main import main\nsys.exit(main())\n")
    path.chmod(0o755)
    return str(path)


def timed(argv: list[str], n: int, env: dict[str, str] | None = None) -> list[float]:
    subprocess.run(argv, check=True, env=env, capture_output=True)  # warm-up
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        samples.append(time.perf_counter() - t0)
    return samples


def podman_setup(directory: Path, net: Path | None = None) -> tuple[list[str], dict[str, str]]:
    """Podman's argv and environment on a private root, as this machine needs it.

    Without CAP_SYS_RESOURCE the OCI runtime may not set rlimits to the hard limits podman asks
    for by default, so containers.conf pins them lower; crun refuses this machine's v1/v2 hybrid
    cgroups, so podman runs runc. With ``net`` (a pinned network namespace) every podman command runs
    in it, and its default network (CNI's bridge, ``cni-podman0``) is read from a copy of the system's
    that keeps its address leases under ``directory``, not in /var/lib/cni."""
    directory.mkdir(parents=True, exist_ok=True)
    conf = directory / "containers.conf"
    network = ""
    if net is not None:
        networks = directory / "cni"
        networks.mkdir(exist_ok=True)
        source = Path("/etc/cni/net.d/87-podman-bridge.conflist")
        conflist: dict[str, Any] = json.loads(source.read_text() if source.exists() else json.dumps(_PODMAN_DEFAULT_CNI))
        for plugin in conflist["plugins"]:
            if "ipam" in plugin:
                plugin["ipam"]["dataDir"] = str(directory / "cni-leases")
        (networks / "87-podman-bridge.conflist").write_text(json.dumps(conflist, indent=2))
        network = f'[network]\nnetwork_backend = "cni"\nnetwork_config_dir = "{networks}"\n'
    conf.write_text('[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]\n'
                    '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "none"\n' + network)
    argv = ["podman", "--root", str(directory / "root"), "--runroot", str(directory / "run"),
            "--storage-driver", "overlay", "--runtime", "runc"]
    if net is not None:
        argv = ["nsenter", f"--net={net}", *argv, "--tmpdir", str(directory / "tmp")]
    return argv, {**os.environ, "CONTAINERS_CONF": str(conf)}


# Podman's default network as Debian's podman installs it, for a machine without the file.
_PODMAN_DEFAULT_CNI: dict[str, Any] = {
    "cniVersion": "0.4.0", "name": "podman",
    "plugins": [
        {"type": "bridge", "bridge": "cni-podman0", "isGateway": True, "ipMasq": True, "hairpinMode": True,
         "ipam": {"type": "host-local", "routes": [{"dst": "0.0.0.0/0"}],
                  "ranges": [[{"subnet": "10.88.0.0/16", "gateway": "10.88.0.1"}]]}},
        {"type": "portmap", "capabilities": {"portMappings": True}},
        {"type": "firewall"},
        {"type": "tuning"},
    ],
}


def taking_turns(first: list[str], second: list[str], n: int, env: dict[str, str] | None = None) -> tuple[list[float], list[float]]:
    """``first`` and ``second`` timed five runs at a time in turn, about ``n`` runs each, so both see the
    same machine."""
    a: list[float] = []
    b: list[float] = []
    for _ in range(max(1, n // 5)):
        a += timed(first, 5, env)
        b += timed(second, 5, env)
    return a, b


class Bench:
    def __init__(self, n: int, bridge_load: int = 0) -> None:
        self.n = n
        self.bridge_load = bridge_load
        self.tmp = Path(tempfile.mkdtemp(prefix="dockyard-bench-"))
        self.tar = self.tmp / "busybox.tar"
        with self.tar.open("wb") as f:
            write_busybox_rootfs_tar(f)
        self.results: dict[str, dict[str, object]] = {}
        self.cleanups: list[Callable[[], object]] = []
        self.dockyard_root = self.tmp / "dockyard"
        self.cli = DOCKYARD or write_launcher(self.tmp / "dockyard-cli")

    def pinned_netns(self, name: str) -> Path:
        """A new network namespace of the bench's, pinned under its temporary root (removed at the
        end; whatever links and firewall rules an engine made in it go with it)."""
        (self.tmp / "netns").mkdir(exist_ok=True)
        path = self.tmp / "netns" / name
        netns.create(path)
        self.cleanups.append(lambda: netns.remove(path))
        return path

    def median(self, name: str) -> float | None:
        """The median of ``name``'s runs in ms, or None when it was not measured."""
        value = self.results.get(name, {}).get("median_ms")
        return float(value) if isinstance(value, (int, float)) else None

    def record(self, name: str, samples: list[float] | None, note: str = "") -> None:
        if samples is None:
            self.results[name] = {"median_ms": None, "note": note}
            print(f"{name:<38} {'-':>9}   {note}", flush=True)
            return
        med = statistics.median(samples) * 1000
        self.results[name] = {"median_ms": round(med, 2), "min_ms": round(min(samples) * 1000, 2),
                              "samples": len(samples), "note": note}
        print(f"{name:<38} {med:9.1f} ms  (min {min(samples) * 1000:.1f})  {note}", flush=True)

    def dockyard(self) -> None:
        root, sock = self.dockyard_root, self.tmp / "dockyard.sock"
        proc = subprocess.Popen([sys.executable, "-m", "dockyard.daemon.main", "--root", str(root), "-H", f"unix://{sock}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, cwd=REPO)
        self.cleanups.append(lambda: remove_networks(root))
        self.cleanups.append(lambda: stop_process(proc))
        wait_for(lambda: ping(sock), "dockyard daemon")
        env = {**os.environ, "DOCKYARD_HOST": f"unix://{sock}", "DOCKER_HOST": f"unix://{sock}"}
        with self.tar.open("rb") as f:
            subprocess.run([self.cli, "import", "-", "busybox:latest"], stdin=f, check=True, env=env, capture_output=True)
        none_argv = [self.cli, "run", "--rm", "--network", "none", "busybox", "true"]
        bridge_argv = [self.cli, "run", "--rm", "busybox", "true"]
        none_samples, bridge_samples = taking_turns(none_argv, bridge_argv, self.n, env)
        self.record("dockyard run --rm --network none", none_samples)
        self.record("dockyard run --rm (default bridge)", bridge_samples)
        if self.bridge_load:
            for _ in range(self.bridge_load):
                subprocess.run([self.cli, "run", "-d", "busybox", "sleep", "3600"], check=True, env=env,
                               capture_output=True)
            self.record(f"  ... with {self.bridge_load} on the bridge", timed(bridge_argv, self.n, env))
            ids = subprocess.run([self.cli, "ps", "-q"], env=env, capture_output=True, text=True).stdout.split()
            subprocess.run([self.cli, "rm", "-f", *ids], env=env, capture_output=True, timeout=600)
        self.record("docker CLI -> dockyard", timed([DOCKER, "run", "--rm", "--network", "none", "busybox", "true"], self.n, env))
        self.record("dockyard version (CLI round trip)", timed([self.cli, "version"], self.n, env))

    def dockerd(self) -> None:
        """A private dockerd in a network namespace of its own, with its default bridge (``docker0``)
        and ``--iptables=true``; on its own data root, socket and a short exec root (containerd's
        sockets live under it and must fit 107 bytes)."""
        if not shutil.which("dockerd"):
            self.record("docker (dockerd)", None, "dockerd not installed")
            return
        net = self.pinned_netns("docker")
        d = self.tmp / "docker"
        d.mkdir()
        exec_root = Path(tempfile.mkdtemp(prefix="dyd-", dir="/tmp"))

        def remove_exec_root() -> None:
            subprocess.run(["umount", "-R", "-l", str(exec_root)], capture_output=True)
            shutil.rmtree(exec_root, ignore_errors=True)

        self.cleanups.append(remove_exec_root)
        sock = d / "docker.sock"
        log = (d / "dockerd.log").open("wb")
        proc = subprocess.Popen(["nsenter", f"--net={net}", "dockerd", "--data-root", str(d / "data"),
                                 "--exec-root", str(exec_root), "-H", f"unix://{sock}", "--pidfile", str(d / "pid"),
                                 "--iptables=true", "--ip6tables=false"],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        log.close()

        def stop() -> None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(10)

        self.cleanups.append(stop)
        try:
            wait_for(lambda: proc.poll() is None and ping(sock), "dockerd", 60)
        except RuntimeError as exc:
            tail = (d / "dockerd.log").read_text(errors="replace")[-300:]
            self.record("docker (dockerd)", None, f"{exc}: {tail}")
            return
        env = {**os.environ, "DOCKER_HOST": f"unix://{sock}"}
        with self.tar.open("rb") as f:
            subprocess.run([DOCKER, "import", "-", "busybox:latest"], stdin=f, check=True, env=env, capture_output=True)
        note = "dockerd in a network namespace of its own"
        try:
            none_samples, bridge_samples = taking_turns([DOCKER, "run", "--rm", "--network", "none", "busybox", "true"],
                                                        [DOCKER, "run", "--rm", "busybox", "true"], self.n, env)
        except subprocess.CalledProcessError as exc:
            self.record("docker (dockerd)", None, f"run failed: {(exc.stderr or b'').decode()[-200:]}")
            return
        self.record("docker (dockerd)", none_samples, note)
        self.record("docker run --rm (default bridge)", bridge_samples, note + ", docker0, iptables")

    def podman(self) -> None:
        """Podman (runc) with every command in a network namespace of the bench's, where its CNI
        default network makes ``cni-podman0`` and its iptables rules."""
        if not shutil.which("podman"):
            self.record("podman", None, "podman not installed")
            return
        net = self.pinned_netns("podman")
        base, env = podman_setup(self.tmp / "podman", net)
        with self.tar.open("rb") as f:
            r = subprocess.run([*base, "import", "-", "busybox:latest"], stdin=f, env=env, capture_output=True)
        if r.returncode != 0:
            self.record("podman", None, "import failed: " + r.stderr.decode()[-200:])
            return
        self.cleanups.append(lambda: subprocess.run([*base, "system", "reset", "-f"], env=env, capture_output=True))
        note = "runc, ulimits pinned below the hard limits, in a network namespace of its own"
        try:
            none_samples, bridge_samples = taking_turns(
                [*base, "run", "--rm", "--network", "none", "busybox:latest", "true"],
                [*base, "run", "--rm", "busybox:latest", "true"], self.n, env)
        except subprocess.CalledProcessError as exc:
            self.record("podman", None, f"run failed: {(exc.stderr or b'').decode()[-300:]}")
            return
        self.record("podman", none_samples, note)
        self.record("podman run --rm (default bridge)", bridge_samples, note + ", cni-podman0, iptables")

    def crun(self) -> None:
        if not shutil.which("crun"):
            self.record("crun (bare)", None, "crun not installed")
            return
        bundle = self.tmp / "crun-bundle"
        (bundle / "rootfs").mkdir(parents=True)
        subprocess.run(["tar", "-xf", str(self.tar), "-C", str(bundle / "rootfs")], check=True)
        subprocess.run(["crun", "spec"], cwd=bundle, check=True)
        spec = json.loads((bundle / "config.json").read_text())
        spec["process"]["terminal"] = False
        spec["process"]["args"] = ["true"]
        spec["process"]["rlimits"] = []
        (bundle / "config.json").write_text(json.dumps(spec))
        # crun refuses this machine's v1/v2 hybrid cgroups; measure it without cgroups rather than
        # change the host's cgroup mounts.
        argv = ["crun", "--cgroup-manager=disabled", "--root", str(self.tmp / "crun-state"), "run",
                "--bundle", str(bundle), "bench"]
        try:
            self.record("crun (bare)", timed(argv, self.n))
        except subprocess.CalledProcessError as exc:
            self.record("crun (bare)", None, f"failed: {(exc.stderr or b'').decode()[-200:]}")

    def close(self) -> None:
        for cleanup in reversed(self.cleanups):
            try:
                cleanup()
            except Exception as exc:  # keep cleaning up
                print(f"cleanup: {exc}", file=sys.stderr)
        subprocess.run(["umount", "-R", "-l", str(self.tmp)], capture_output=True)
        shutil.rmtree(self.tmp, ignore_errors=True)


# Made by Podman when missing: /run/netns holds its containers' pinned namespaces (it bind-mounts the
# directory on itself to make it a shared mount point), CNI keeps its results cache in /var/lib/cni.
PEER_DIRS = (Path("/run/netns"), Path("/var/lib/cni/results"), Path("/var/lib/cni"))


def is_mount_point(path: Path) -> bool:
    """Whether something is mounted on ``path`` (a bind mount of a directory on itself too, which
    os.path.ismount does not see: same device)."""
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == str(path) for line in f)


def remove_made_dirs(directories: list[Path]) -> None:
    """Remove the directories the bench's peers made (they did not exist before), if empty: a mount
    point is unmounted first (only while it is empty: nothing is pinned in it)."""
    for directory in directories:
        if not directory.exists():
            continue
        try:
            while is_mount_point(directory) and not any(directory.iterdir()):
                subprocess.run(["umount", str(directory)], check=True, capture_output=True)
            directory.rmdir()
        except (OSError, subprocess.CalledProcessError) as exc:
            print(f"cleanup: {directory} left: {exc}", file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=20, help="runs per engine")
    parser.add_argument("--bridge-load", type=int, default=0,
                        help="measure the bridge path again with this many containers running on it")
    parser.add_argument("--only-dockyard", action="store_true", help="leave out dockerd, Podman and crun")
    args = parser.parse_args()
    bench = Bench(args.n, args.bridge_load)
    naming = Naming(bench.dockyard_root)
    before = host_network_state(naming.owns, naming.table)
    made_dirs = [p for p in PEER_DIRS if not p.exists()]
    try:
        for step in (bench.dockyard,) if args.only_dockyard else (bench.dockyard, bench.dockerd, bench.podman, bench.crun):
            try:
                step()
            except Exception as exc:
                print(f"{step.__name__}: {exc}", file=sys.stderr)
    finally:
        bench.close()
        remove_made_dirs(made_dirs)
    base = bench.median("dockyard run --rm --network none")
    if base:
        print("\nratio to dockyard's --network none (higher = slower than dockyard):")
        for name in bench.results:
            med = bench.median(name)
            if med:
                print(f"  {name:<38} {med / base:5.2f}x")
    bridge = bench.median("dockyard run --rm (default bridge)")
    if bridge:
        print("\nthe default bridge, ratio to dockyard's (and to the engine's own --network none):")
        for name, none_name in (("dockyard run --rm (default bridge)", "dockyard run --rm --network none"),
                                ("docker run --rm (default bridge)", "docker (dockerd)"),
                                ("podman run --rm (default bridge)", "podman")):
            med, own = bench.median(name), bench.median(none_name)
            if med and own:
                print(f"  {name:<38} {med / bridge:5.2f}x  (+{med - own:.1f} ms, {med / own:.2f}x its none)")
        load = bench.median(f"  ... with {args.bridge_load} on the bridge")
        if load:
            print(f"  with {args.bridge_load} containers on dockyard's bridge: {load / bridge:.2f}x of the first")
    after = host_network_state(naming.owns, naming.table)
    out = REPO / "bench" / "results"
    out.mkdir(exist_ok=True)
    path = out / f"start-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(bench.results, indent=2))
    print(f"\nwritten to {path}")
    changed = changes(before, after)
    if changed:
        print("\nTHE BENCH CHANGED THE HOST'S NETWORK STATE:", *changed, sep="\n  ", file=sys.stderr)
        return 1
    print("the host's addresses, routes and nft ruleset are as before")
    return 0


if __name__ == "__main__":
    sys.exit(main())
