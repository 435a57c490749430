"""Dockerfile builds, side by side: dockyard, Docker's classic builder (and BuildKit when buildx is
installed) on a private dockerd, and Podman (buildah inside).

The build is the issue's small one: ``FROM busybox``, ``RUN echo hi > /a``, ``COPY`` of a 10 MB
file, ``ENV``, ``WORKDIR``. Each engine gets its own temporary root and the same offline busybox
image; ``RUN`` steps use ``--network none`` everywhere. Per engine: *uncached* is
``build --no-cache`` (every step executed), *cached* is ``build`` again after a first build (every
step answered by the cache). The CLI's wall time of each, median over ``-n`` runs (default 1), with
ratios to dockyard's; results go to ``bench/results/build-<timestamp>.json``. Targets: uncached
under 300 ms, cached under 50 ms. Run as root: ``.venv/bin/python bench/build_bench.py [-n 5]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run_bench import DOCKER, DOCKYARD, REPO, Bench, ping, podman_setup, stop_process, wait_for  # noqa: E402

DOCKERFILE = """FROM busybox
RUN echo hi > /a
COPY big /big
ENV GREETING=hello
WORKDIR /work
"""


def build_times(argv: list[str], context: Path, n: int, env: dict[str, str]) -> tuple[list[float], list[float]]:
    """(uncached samples, cached samples) of ``argv + [context]``."""
    def once(extra: list[str]) -> float:
        t0 = time.perf_counter()
        result = subprocess.run([*argv, *extra, str(context)], env=env, capture_output=True)
        elapsed = time.perf_counter() - t0
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed: {result.stderr.decode()[-400:]}{result.stdout.decode()[-400:]}")
        return elapsed

    once([])  # warm-up (and the cache the cached runs use)
    uncached = [once(["--no-cache"]) for _ in range(n)]
    once([])
    cached = [once([]) for _ in range(n)]
    return uncached, cached


def dockyard_cli() -> list[str]:
    """The installed ``dockyard`` script, else this checkout's CLI module (a worktree has no venv)."""
    return [DOCKYARD] if os.path.exists(DOCKYARD) else [sys.executable, "-m", "dockyard.cli.main"]


class BuildBench(Bench):
    def __init__(self, n: int, daemon_repo: Path = REPO) -> None:
        super().__init__(n)
        self.daemon_repo = daemon_repo
        self.context = self.tmp / "context"
        self.context.mkdir()
        (self.context / "Dockerfile").write_text(DOCKERFILE)
        (self.context / "big").write_bytes(os.urandom(10 * 1024 * 1024))

    def both(self, name: str, argv: list[str], env: dict[str, str], note: str = "") -> None:
        try:
            uncached, cached = build_times(argv, self.context, self.n, env)
        except RuntimeError as exc:
            self.record(f"{name} uncached", None, str(exc)[-300:])
            return
        self.record(f"{name} uncached", uncached, note)
        self.record(f"{name} cached", cached, note)

    def dockyard(self) -> None:
        root, sock = self.tmp / "dockyard", self.tmp / "dockyard.sock"
        proc = subprocess.Popen([sys.executable, "-m", "dockyard.daemon.main", "--root", str(root), "-H",
                                 f"unix://{sock}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True, cwd=self.daemon_repo)
        self.cleanups.append(lambda: stop_process(proc))
        wait_for(lambda: ping(sock), "dockyard daemon")
        env = {**os.environ, "DOCKYARD_HOST": f"unix://{sock}", "DOCKER_HOST": f"unix://{sock}",
               "PYTHONPATH": str(REPO)}
        with self.tar.open("rb") as f:
            subprocess.run([*dockyard_cli(), "import", "-", "busybox:latest"], stdin=f, check=True, env=env,
                           capture_output=True)
        self.both("dockyard", [*dockyard_cli(), "build", "--network", "none", "-t", "bench:1"], env)
        self.both("docker CLI (classic) -> dockyard", [DOCKER, "build", "--network", "none", "-t", "bench:1"],
                  {**env, "DOCKER_BUILDKIT": "0"})

    def dockerd(self) -> None:
        if not shutil.which("dockerd"):
            self.record("docker classic uncached", None, "dockerd not installed")
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
            self.record("docker classic uncached", None, str(exc))
            return
        env = {**os.environ, "DOCKER_HOST": f"unix://{sock}"}
        with self.tar.open("rb") as f:
            subprocess.run([DOCKER, "import", "-", "busybox:latest"], stdin=f, check=True, env=env, capture_output=True)
        argv = [DOCKER, "build", "--network", "none", "-t", "bench:1"]
        self.both("docker classic (dockerd)", argv, {**env, "DOCKER_BUILDKIT": "0"})
        buildx = subprocess.run([DOCKER, "buildx", "version"], env=env, capture_output=True)
        if buildx.returncode == 0:
            self.both("docker buildkit (dockerd)", argv, {**env, "DOCKER_BUILDKIT": "1"})
        else:
            self.record("docker buildkit uncached", None, "buildx not installed")

    def podman(self) -> None:
        if not shutil.which("podman"):
            self.record("podman uncached", None, "podman not installed")
            return
        base, env = podman_setup(self.tmp / "podman")
        with self.tar.open("rb") as f:
            r = subprocess.run([*base, "import", "-", "busybox:latest"], stdin=f, env=env, capture_output=True)
        if r.returncode != 0:
            self.record("podman uncached", None, "import failed: " + r.stderr.decode()[-200:])
            return
        self.cleanups.append(lambda: subprocess.run([*base, "system", "reset", "-f"], env=env, capture_output=True))
        self.both("podman (buildah)", [*base, "build", "--layers", "--network", "none", "-t", "bench:1"], env,
                  "runc, ulimits pinned below the hard limits")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=1, help="runs per engine and kind")
    parser.add_argument("--daemon-repo", type=Path, default=REPO,
                        help="the checkout whose dockyard daemon to run (default: this one)")
    parser.add_argument("--only-dockyard", action="store_true", help="leave out dockerd and Podman")
    args = parser.parse_args()
    bench = BuildBench(args.n, args.daemon_repo.resolve())
    try:
        for step in (bench.dockyard,) if args.only_dockyard else (bench.dockyard, bench.dockerd, bench.podman):
            try:
                step()
            except Exception as exc:
                print(f"{step.__name__}: {exc}", file=sys.stderr)
    finally:
        bench.close()
    for kind in ("uncached", "cached"):
        base = bench.results.get(f"dockyard {kind}", {}).get("median_ms")
        if not base:
            continue
        print(f"\n{kind}: ratio to dockyard (higher = slower than dockyard):")
        for name, result in bench.results.items():
            if name.endswith(" " + kind) and result.get("median_ms"):
                print(f"  {name:<42} {float(result['median_ms']) / float(base):5.2f}x")  # type: ignore[arg-type]
    out = REPO / "bench" / "results"
    out.mkdir(exist_ok=True)
    path = out / f"build-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(bench.results, indent=2))
    print(f"\nwritten to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
