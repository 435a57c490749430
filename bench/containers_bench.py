"""Container verbs side by side: exec latency, 50 detached containers, per-container memory.

For dockyard, Docker (a private dockerd) and Podman, each on its own temporary root with the same
offline busybox image:
- ``exec``: median of ``exec C true`` into a running container;
- ``50 containers``: wall time to ``run -d`` 50 ``sleep`` containers, then ``rm -f`` them all;
- ``memory``: the resident memory of the per-container supervisor (dockyard's shim, Docker's
  containerd-shim-runc-v2, Podman's conmon), averaged over the 50 containers.
Results go to ``bench/results/containers-<timestamp>.json``. Run as root:
``.venv/bin/python bench/containers_bench.py [-n 20] [--count 50]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run_bench import DOCKER, DOCKYARD, REPO, Bench, ping, podman_setup, stop_process, wait_for  # noqa: E402


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def pids_named(names: tuple[str, ...]) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                comm = Path(f"/proc/{entry}/comm").read_text().strip()
            except OSError:
                continue
            if comm in names:
                found.append(int(entry))
    return found


class Engine:
    """One engine's CLI, how to reach it, and the name of its per-container supervisor."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], supervisor: tuple[str, ...]) -> None:
        self.name, self.argv, self.env, self.supervisor = name, argv, env, supervisor

    def run(self, *args: str, check: bool = True) -> str:
        out = subprocess.run([*self.argv, *args], env=self.env, capture_output=True, text=True)
        if check and out.returncode != 0:
            raise RuntimeError(f"{self.name} {' '.join(args)}: {out.stderr.strip()[-300:]}")
        return out.stdout

    def measure(self, n: int, count: int) -> dict[str, object]:
        result: dict[str, object] = {}
        cid = self.run("run", "-d", "--network", "none", "busybox:latest", "sleep", "600").strip()
        try:
            self.run("exec", cid, "true")  # warm-up
            samples = []
            for _ in range(n):
                t0 = time.perf_counter()
                self.run("exec", cid, "true")
                samples.append(time.perf_counter() - t0)
            result["exec_median_ms"] = round(statistics.median(samples) * 1000, 2)
        finally:
            self.run("rm", "-f", cid, check=False)
        before = set(pids_named(self.supervisor))
        t0 = time.perf_counter()
        ids = [self.run("run", "-d", "--network", "none", "busybox:latest", "sleep", "600").strip() for _ in range(count)]
        started = time.perf_counter() - t0
        supervisors = [p for p in pids_named(self.supervisor) if p not in before]
        memory = [rss_kib(p) for p in supervisors]
        t1 = time.perf_counter()
        self.run("rm", "-f", *ids)
        removed = time.perf_counter() - t1
        result.update({
            f"start_{count}_s": round(started, 2), f"rm_{count}_s": round(removed, 2),
            f"start_and_rm_{count}_s": round(started + removed, 2),
            "supervisors_seen": len(supervisors),
            "supervisor_rss_avg_kib": round(sum(memory) / len(memory)) if memory else None,
        })
        return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=20, help="exec samples")
    parser.add_argument("--count", type=int, default=50, help="detached containers")
    args = parser.parse_args()
    bench = Bench(1)
    results: dict[str, dict[str, object]] = {}
    try:
        # dockyard
        root, sock = bench.tmp / "dockyard", bench.tmp / "dockyard.sock"
        proc = subprocess.Popen([sys.executable, "-m", "dockyard.daemon.main", "--root", str(root), "-H", f"unix://{sock}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, cwd=REPO)
        bench.cleanups.append(lambda: stop_process(proc))
        wait_for(lambda: ping(sock), "dockyard daemon")
        env = {**os.environ, "DOCKYARD_HOST": f"unix://{sock}"}
        with bench.tar.open("rb") as f:
            subprocess.run([DOCKYARD, "import", "-", "busybox:latest"], stdin=f, check=True, env=env, capture_output=True)
        engines = [Engine("dockyard", [DOCKYARD], env, ("dockyard-shim",))]
        # dockerd
        if shutil.which("dockerd"):
            d = bench.tmp / "docker"
            dsock = d / "docker.sock"
            dproc = subprocess.Popen(["dockerd", "--data-root", str(d / "data"), "--exec-root", str(d / "exec"),
                                      "-H", f"unix://{dsock}", "--pidfile", str(d / "pid"), "--bridge=none",
                                      "--iptables=false", "--ip6tables=false"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            bench.cleanups.append(lambda: stop_process(dproc, 30))
            wait_for(lambda: ping(dsock), "dockerd", 60)
            denv = {**os.environ, "DOCKER_HOST": f"unix://{dsock}"}
            with bench.tar.open("rb") as f:
                subprocess.run([DOCKER, "import", "-", "busybox:latest"], stdin=f, check=True, env=denv, capture_output=True)
            engines.append(Engine("docker", [DOCKER], denv, ("containerd-shim", "containerd-shim-runc-v2")))
        if shutil.which("podman"):
            pargv, penv = podman_setup(bench.tmp / "podman")
            with bench.tar.open("rb") as f:
                subprocess.run([*pargv, "import", "-", "busybox:latest"], stdin=f, check=True, env=penv, capture_output=True)
            engines.append(Engine("podman", pargv, penv, ("conmon",)))
            bench.cleanups.append(lambda: subprocess.run([*pargv, "system", "reset", "-f"], env=penv, capture_output=True))
        for engine in engines:
            try:
                results[engine.name] = engine.measure(args.n, args.count)
            except Exception as exc:  # report and go on with the others
                results[engine.name] = {"error": str(exc)}
            print(engine.name, json.dumps(results[engine.name]), flush=True)
    finally:
        bench.close()
    base = results.get("dockyard", {})
    for key in ("exec_median_ms", f"start_and_rm_{args.count}_s", "supervisor_rss_avg_kib"):
        if isinstance(base.get(key), (int, float)) and base[key]:
            ratios = {name: round(float(r[key]) / float(base[key]), 2)  # type: ignore[arg-type]
                      for name, r in results.items() if isinstance(r.get(key), (int, float))}
            print(f"{key}: ratio to dockyard {ratios}")
    out = REPO / "bench" / "results"
    out.mkdir(exist_ok=True)
    path = out / f"containers-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
