"""Registry pull and push, side by side: dockyard vs skopeo vs Docker (a private dockerd) vs Podman.

A local ``docker-registry`` (Debian's distribution 2.8) on 127.0.0.1 holds one image: busybox plus
a ~100 MB layer of incompressible random data, put there once by skopeo. Then, each several times
(median and min):
- pull: ``dockyard pull`` through a private dockyard daemon (download, verify, unpack; the image
  is removed between runs, so every run downloads and unpacks), ``skopeo copy`` to a ``dir:``
  (download only, no unpack), ``docker pull`` on a private dockerd (``rmi`` between runs);
- push of the same image, each run to a new empty registry (a new repository of the same registry
  is not enough: skopeo and Docker remember where a blob came from and mount it from there):
  ``dockyard push``, ``skopeo copy`` from a ``docker-archive:`` of it (uncompressed layers,
  compressed on the way like the engines do), ``docker push``.
Each time is the CLI's wall time from start to end. Ratios are dockyard / peer (below 1: dockyard
is faster). Podman is measured if installed. Results go to ``bench/results/registry-<timestamp>.json``.
Run as root: ``.venv/bin/python bench/registry_bench.py [-n 3] [--mb 100]``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dockyard.images.busybox_rootfs import write_busybox_rootfs_tar  # noqa: E402
from tests.integration.daemon_harness import DOCKER_28, Daemon  # noqa: E402
from tests.integration.registry_harness import Registry  # noqa: E402
from tests.integration.test_cli_against_dockerd import _start_dockerd, _unmount_under  # noqa: E402

IMAGE = "bench/big:latest"
DOCKYARD = [sys.executable, "-m", "dockyard.cli.main"]
SKOPEO = ["skopeo", "copy", "--insecure-policy", "--src-tls-verify=false", "--dest-tls-verify=false"]


def make_archive(work: Path, megabytes: int) -> Path:
    """A Docker archive of busybox plus one layer holding ``megabytes`` MB of random bytes."""
    busybox, random_layer = work / "busybox-layer.tar", work / "random-layer.tar"
    with busybox.open("wb") as f:
        write_busybox_rootfs_tar(f)
    with tarfile.open(random_layer, "w") as tar:
        for i in range(megabytes // 10 or 1):
            data = os.urandom(10 << 20)
            info = tarfile.TarInfo(f"data/random-{i}.bin")
            info.size, info.mtime, info.mode = len(data), 1_700_000_000, 0o644
            tar.addfile(info, io.BytesIO(data))
    layers = [busybox, random_layer]
    diff_ids = ["sha256:" + hashlib.sha256(p.read_bytes()).hexdigest() for p in layers]
    config = json.dumps({"architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
                         "config": {"Cmd": ["sh"]}, "rootfs": {"type": "layers", "diff_ids": diff_ids},
                         "history": [{"created": "2024-01-01T00:00:00Z", "comment": "bench"}] * 2}).encode()
    config_hex = hashlib.sha256(config).hexdigest()
    manifest = json.dumps([{"Config": f"blobs/sha256/{config_hex}", "RepoTags": [IMAGE],
                            "Layers": [f"blobs/sha256/{d[7:]}" for d in diff_ids]}]).encode()
    archive = work / "image.tar"
    with tarfile.open(archive, "w") as tar:
        for path, diff_id in zip(layers, diff_ids, strict=True):
            tar.add(path, arcname=f"blobs/sha256/{diff_id[7:]}")
            path.unlink()
        for name, data in ((f"blobs/sha256/{config_hex}", config), ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return archive


def run(argv: list[str], env: dict[str, str] | None = None) -> None:
    result = subprocess.run(argv, capture_output=True, env=env, timeout=300, cwd=REPO)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])}: {result.stderr.decode(errors='replace')[-400:]}")


def samples(n: int, command: Callable[[int], list[str]], between: Callable[[int], object],
            env: dict[str, str] | None = None) -> list[float]:
    """``n`` wall times of ``command(i)``, ``between(i)`` run after each (not timed), after a sync."""
    times = []
    for i in range(n):
        os.sync()
        start = time.perf_counter()
        run(command(i), env)
        times.append(time.perf_counter() - start)
        between(i)
    return times


class PushTargets:
    """An empty registry for each push run: ``fresh`` stops the last one and starts another."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.count = 0
        self.registry: Registry | None = None

    def fresh(self) -> str:
        self.close()
        self.count += 1
        self.registry = Registry(self.work / f"push-registry-{self.count}")
        return f"{self.registry.host}/pushed/big:latest"

    def close(self) -> None:
        if self.registry is not None:
            self.registry.close()
            self.registry = None


class Results:
    def __init__(self) -> None:
        self.table: dict[str, dict[str, object]] = {}

    def record(self, name: str, measure: Callable[[], list[float]]) -> None:
        try:
            times = measure()
        except Exception as exc:  # report and go on with the others
            self.skip(name, f"failed: {exc}")
            return
        self.table[name] = {"median_s": round(statistics.median(times), 3), "min_s": round(min(times), 3),
                            "samples": [round(t, 3) for t in times]}
        print(f"{name:<34} {statistics.median(times):7.3f} s  (min {min(times):.3f})", flush=True)

    def skip(self, name: str, note: str) -> None:
        self.table[name] = {"median_s": None, "note": note}
        print(f"{name:<34} {'-':>7}    {note}", flush=True)

    def ratios(self, base: str, peers: list[str]) -> None:
        mine = self.table.get(base, {}).get("median_s")
        for peer in peers:
            theirs = self.table.get(peer, {}).get("median_s")
            if isinstance(mine, float) and isinstance(theirs, float):
                ratio = round(mine / theirs, 2)
                self.table[base][f"ratio_to {peer}"] = ratio
                print(f"  {base} / {peer}: {ratio:.2f}")


def bench_dockyard(work: Path, registry: Registry, targets: PushTargets, n: int, results: Results) -> None:
    daemon = Daemon(work / "dockyard")
    env = daemon.env()
    ref = f"{registry.host}/{IMAGE}"
    try:
        run([*DOCKYARD, "pull", ref], env)  # warm-up (and the image the pushes push)
        run([*DOCKYARD, "rmi", ref], env)
        results.record("dockyard pull", lambda: samples(
            n, lambda i: [*DOCKYARD, "pull", ref], lambda i: run([*DOCKYARD, "rmi", ref], env), env))
        run([*DOCKYARD, "pull", ref], env)

        pushed: list[str] = []

        def tagged(i: int) -> list[str]:
            pushed.append(targets.fresh())
            run([*DOCKYARD, "tag", ref, pushed[-1]], env)
            return [*DOCKYARD, "push", pushed[-1]]

        results.record("dockyard push", lambda: samples(n, tagged, lambda i: run([*DOCKYARD, "rmi", pushed[-1]], env), env))
    finally:
        daemon.close()


def bench_skopeo(work: Path, registry: Registry, targets: PushTargets, archive: Path, n: int,
                 results: Results) -> None:
    target = work / "skopeo-dir"
    results.record("skopeo copy to dir: (download only)", lambda: samples(
        n, lambda i: [*SKOPEO, f"docker://{registry.host}/{IMAGE}", f"dir:{target}"],
        lambda i: shutil.rmtree(target)))
    results.record("skopeo push (docker-archive:)", lambda: samples(
        n, lambda i: [*SKOPEO, f"docker-archive:{archive}", f"docker://{targets.fresh()}"], lambda i: None))


def bench_docker(work: Path, registry: Registry, targets: PushTargets, n: int, results: Results) -> None:
    root = work / "dockerd"
    root.mkdir()
    process, failure = _start_dockerd(root, [])
    try:
        if failure:
            results.skip("docker pull", "dockerd did not start: " + failure[-200:])
            results.skip("docker push", "dockerd did not start")
            return
        docker = [DOCKER_28, "-H", f"unix://{root}/docker.sock"]
        ref = f"{registry.host}/{IMAGE}"
        run([*docker, "pull", ref])  # warm-up
        run([*docker, "rmi", ref])
        results.record("docker pull", lambda: samples(
            n, lambda i: [*docker, "pull", ref], lambda i: run([*docker, "rmi", ref])))
        run([*docker, "pull", ref])

        pushed: list[str] = []

        def tagged(i: int) -> list[str]:
            pushed.append(targets.fresh())
            run([*docker, "tag", ref, pushed[-1]])
            return [*docker, "push", pushed[-1]]

        results.record("docker push", lambda: samples(n, tagged, lambda i: run([*docker, "rmi", pushed[-1]])))
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        _unmount_under(root)
        shutil.rmtree(root, ignore_errors=True)


def bench_podman(work: Path, registry: Registry, targets: PushTargets, n: int, results: Results) -> None:
    if shutil.which("podman") is None:
        results.skip("podman pull", "podman not installed")
        results.skip("podman push", "podman not installed")
        return
    root = work / "podman"
    podman = ["podman", "--root", str(root / "root"), "--runroot", str(root / "run"), "--storage-driver", "overlay"]
    ref = f"{registry.host}/{IMAGE}"
    try:
        results.record("podman pull", lambda: samples(
            n, lambda i: [*podman, "pull", "--tls-verify=false", ref], lambda i: run([*podman, "rmi", ref])))
        run([*podman, "pull", "--tls-verify=false", ref])
        results.record("podman push", lambda: samples(
            n, lambda i: [*podman, "push", "--tls-verify=false", ref, f"docker://{targets.fresh()}"],
            lambda i: None))
    finally:
        subprocess.run([*podman, "system", "reset", "-f"], capture_output=True)
        _unmount_under(root)
        shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=3, help="runs per measurement")
    parser.add_argument("--mb", type=int, default=100, help="size of the random layer")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="registry-bench-"))
    results = Results()
    registry: Registry | None = None
    targets = PushTargets(work)
    try:
        archive = make_archive(work, args.mb)
        registry = Registry(work / "registry")
        registry.skopeo_copy(f"docker-archive:{archive}", IMAGE)
        bench_dockyard(work, registry, targets, args.n, results)
        bench_skopeo(work, registry, targets, archive, args.n, results)
        bench_docker(work, registry, targets, args.n, results)
        bench_podman(work, registry, targets, args.n, results)
    finally:
        targets.close()
        if registry is not None:
            registry.close()
        _unmount_under(work)
        shutil.rmtree(work, ignore_errors=True)
    print("\nratios (dockyard / peer; below 1: dockyard is faster):")
    results.ratios("dockyard pull", ["skopeo copy to dir: (download only)", "docker pull", "podman pull"])
    results.ratios("dockyard push", ["skopeo push (docker-archive:)", "docker push", "podman push"])
    out = REPO / "bench" / "results" / f"registry-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"layer_mb": args.mb, **results.table}, indent=1) + "\n")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
