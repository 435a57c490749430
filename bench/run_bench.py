"""Container start latency, side by side: dockyard, Docker's CLI on dockyard, dockerd, Podman, crun.

Each engine gets its own temporary root, imports the same offline busybox rootfs, and runs
``run --rm --network none busybox true`` N times; the medians are printed with their ratio to
dockyard's, and written to ``bench/results/start-<timestamp>.json``. dockyard also runs the default
bridge (``run --rm busybox true``: namespace, veth, address, nft), taking turns with ``none`` so both
see the same machine, and again with ``--bridge-load`` containers running on the bridge. Engines that are not
installed are reported as such. Run as root: ``.venv/bin/python bench/run_bench.py [-n 20]``.
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dockyard.images.busybox_rootfs import write_busybox_rootfs_tar  # noqa: E402

DOCKYARD = os.environ.get("DOCKYARD_BENCH_CLI", str(REPO / ".venv" / "bin" / "dockyard"))
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


def timed(argv: list[str], n: int, env: dict[str, str] | None = None) -> list[float]:
    subprocess.run(argv, check=True, env=env, capture_output=True)  # warm-up
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        samples.append(time.perf_counter() - t0)
    return samples


def podman_setup(directory: Path) -> tuple[list[str], dict[str, str]]:
    """Podman's argv and environment on a private root, as this machine needs it.

    Without CAP_SYS_RESOURCE the OCI runtime may not set rlimits to the hard limits podman asks
    for by default, so containers.conf pins them lower; crun refuses this machine's v1/v2 hybrid
    cgroups, so podman runs runc."""
    directory.mkdir(parents=True, exist_ok=True)
    conf = directory / "containers.conf"
    conf.write_text('[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]\n'
                    '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "none"\n')
    argv = ["podman", "--root", str(directory / "root"), "--runroot", str(directory / "run"),
            "--storage-driver", "overlay", "--runtime", "runc"]
    return argv, {**os.environ, "CONTAINERS_CONF": str(conf)}


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
        root, sock = self.tmp / "dockyard", self.tmp / "dockyard.sock"
        proc = subprocess.Popen([sys.executable, "-m", "dockyard.daemon.main", "--root", str(root), "-H", f"unix://{sock}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, cwd=REPO)
        self.cleanups.append(lambda: remove_networks(root))
        self.cleanups.append(lambda: stop_process(proc))
        wait_for(lambda: ping(sock), "dockyard daemon")
        env = {**os.environ, "DOCKYARD_HOST": f"unix://{sock}", "DOCKER_HOST": f"unix://{sock}"}
        with self.tar.open("rb") as f:
            subprocess.run([DOCKYARD, "import", "-", "busybox:latest"], stdin=f, check=True, env=env, capture_output=True)
        none_argv = [DOCKYARD, "run", "--rm", "--network", "none", "busybox", "true"]
        bridge_argv = [DOCKYARD, "run", "--rm", "busybox", "true"]
        none_samples: list[float] = []
        bridge_samples: list[float] = []
        for _ in range(max(1, self.n // 5)):  # taking turns, five runs each
            none_samples += timed(none_argv, 5, env)
            bridge_samples += timed(bridge_argv, 5, env)
        self.record("dockyard run --rm --network none", none_samples)
        self.record("dockyard run --rm (default bridge)", bridge_samples)
        if self.bridge_load:
            for _ in range(self.bridge_load):
                subprocess.run([DOCKYARD, "run", "-d", "busybox", "sleep", "3600"], check=True, env=env,
                               capture_output=True)
            self.record(f"  ... with {self.bridge_load} on the bridge", timed(bridge_argv, self.n, env))
            ids = subprocess.run([DOCKYARD, "ps", "-q"], env=env, capture_output=True, text=True).stdout.split()
            subprocess.run([DOCKYARD, "rm", "-f", *ids], env=env, capture_output=True, timeout=600)
        self.record("docker CLI -> dockyard", timed([DOCKER, "run", "--rm", "--network", "none", "busybox", "true"], self.n, env))
        self.record("dockyard version (CLI round trip)", timed([DOCKYARD, "version"], self.n, env))

    def dockerd(self) -> None:
        if not shutil.which("dockerd"):
            self.record("docker (dockerd)", None, "dockerd not installed")
            return
        d = self.tmp / "docker"
        sock = d / "docker.sock"
        proc = subprocess.Popen(["dockerd", "--data-root", str(d / "data"), "--exec-root", str(d / "exec"),
                                 "-H", f"unix://{sock}", "--pidfile", str(d / "pid"), "--bridge=none",
                                 "--iptables=false", "--ip6tables=false"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

        def stop() -> None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)

        self.cleanups.append(stop)
        try:
            wait_for(lambda: ping(sock), "dockerd", 60)
        except RuntimeError as exc:
            self.record("docker (dockerd)", None, str(exc))
            return
        env = {**os.environ, "DOCKER_HOST": f"unix://{sock}"}
        with self.tar.open("rb") as f:
            subprocess.run([DOCKER, "import", "-", "busybox:latest"], stdin=f, check=True, env=env, capture_output=True)
        self.record("docker (dockerd)", timed([DOCKER, "run", "--rm", "--network", "none", "busybox", "true"], self.n, env))

    def podman(self) -> None:
        if not shutil.which("podman"):
            self.record("podman", None, "podman not installed")
            return
        base, env = podman_setup(self.tmp / "podman")
        with self.tar.open("rb") as f:
            r = subprocess.run([*base, "import", "-", "busybox:latest"], stdin=f, env=env, capture_output=True)
        if r.returncode != 0:
            self.record("podman", None, "import failed: " + r.stderr.decode()[-200:])
            return
        self.cleanups.append(lambda: subprocess.run([*base, "system", "reset", "-f"], env=env, capture_output=True))
        try:
            self.record("podman", timed([*base, "run", "--rm", "--network", "none", "busybox:latest", "true"], self.n, env),
                        "runc, ulimits pinned below the hard limits")
        except subprocess.CalledProcessError as exc:
            self.record("podman", None, f"run failed: {(exc.stderr or b'').decode()[-200:]}")

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=20, help="runs per engine")
    parser.add_argument("--bridge-load", type=int, default=0,
                        help="measure the bridge path again with this many containers running on it")
    parser.add_argument("--only-dockyard", action="store_true", help="leave out dockerd, Podman and crun")
    args = parser.parse_args()
    bench = Bench(args.n, args.bridge_load)
    try:
        for step in (bench.dockyard,) if args.only_dockyard else (bench.dockyard, bench.dockerd, bench.podman, bench.crun):
            try:
                step()
            except Exception as exc:
                print(f"{step.__name__}: {exc}", file=sys.stderr)
    finally:
        bench.close()
    base = bench.results.get("dockyard run --rm --network none", {}).get("median_ms")
    if base:
        print("\nratio to dockyard (higher = slower than dockyard):")
        for name, result in bench.results.items():
            if result.get("median_ms"):
                print(f"  {name:<38} {float(result['median_ms']) / float(base):5.2f}x")  # type: ignore[arg-type]
    out = REPO / "bench" / "results"
    out.mkdir(exist_ok=True)
    path = out / f"start-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(bench.results, indent=2))
    print(f"\nwritten to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
