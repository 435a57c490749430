"""Registry pull and push, side by side: dockyard vs skopeo vs Docker (a private dockerd) vs Podman.

A local ``docker-registry`` (Debian's distribution 2.8) on 127.0.0.1 holds one image: busybox plus
a ~100 MB layer of incompressible random data, put there once by skopeo. Then, in rounds that
time each tool once in turn (so a change in the machine's load falls on all alike; median and min;
one untimed pull each first):
- pull: ``dockyard pull`` through a private dockyard daemon (download, verify, unpack; the image
  is removed between runs, so every run downloads and unpacks), ``skopeo copy`` to a ``dir:``
  (download only, no unpack), ``docker pull`` on a private dockerd (``rmi`` between runs);
- push of the same image, each run to a new empty registry (a new repository of the same registry
  is not enough: skopeo and Docker remember where a blob came from and mount it from there):
  ``dockyard push``, ``skopeo copy`` from a ``docker-archive:`` of it (uncompressed layers,
  compressed on the way like the engines do), ``docker push``.
- servers: the same image pushed by skopeo (from the ``docker-archive:``, each run to a new empty
  server) and pulled by skopeo (to a ``dir:``) against our server, ``dockyard registry serve``,
  and against Debian's ``docker-registry``, each on 127.0.0.1 with filesystem storage.
Each time is the CLI's wall time from start to end. Ratios are dockyard / peer (below 1: dockyard
is faster). Podman is measured if installed. ``--phases`` picks some of ``pull,push,servers``. Results go to ``bench/results/registry-<timestamp>.json``.
Run as root: ``.venv/bin/python bench/registry_bench.py [-n 3] [--mb 100]``.
"""

from __future__ import annotations

import argparse
import functools
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
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dockyard.images.busybox_rootfs import write_busybox_rootfs_tar  # noqa: E402
from tests.integration.daemon_harness import DOCKER_28, Daemon  # noqa: E402
from tests.integration.registry_harness import DockyardRegistry, Registry  # noqa: E402
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

    def record(self, name: str, times: list[float]) -> None:
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


@dataclass
class Engine:
    """One tool under test: ``pull`` (argv, None if it does not pull) and ``after_pull`` (untimed,
    removes what the pull made); ``push`` gives the argv that pushes to a target reference (after
    any untimed tagging), ``after_push`` removes the tag; ``before_pushes`` gets the image."""

    name: str
    pull: list[str] | None
    after_pull: Callable[[], object]
    push: Callable[[str], list[str]]
    after_push: Callable[[str], object]
    before_pushes: Callable[[], object] = lambda: None
    env: dict[str, str] | None = None


def untimed(argv: list[str], env: dict[str, str] | None = None) -> Callable[[], None]:
    return lambda: run(argv, env)


def dockyard_engine(stack: ExitStack, work: Path, ref: str) -> Engine:
    daemon = Daemon(work / "dockyard")
    stack.callback(daemon.close)
    env = daemon.env()

    def tag_and_push(target: str) -> list[str]:
        run([*DOCKYARD, "tag", ref, target], env)
        return [*DOCKYARD, "push", target]

    return Engine("dockyard", [*DOCKYARD, "pull", ref], untimed([*DOCKYARD, "rmi", ref], env), tag_and_push,
                  lambda target: run([*DOCKYARD, "rmi", target], env), untimed([*DOCKYARD, "pull", ref], env), env)


def skopeo_engine(work: Path, ref: str, archive: Path) -> Engine:
    target = work / "skopeo-dir"
    return Engine("skopeo", [*SKOPEO, f"docker://{ref}", f"dir:{target}"], lambda: shutil.rmtree(target),
                  lambda to: [*SKOPEO, f"docker-archive:{archive}", f"docker://{to}"], lambda to: None)


def docker_engine(stack: ExitStack, work: Path, ref: str) -> Engine | str:
    root = work / "dockerd"
    root.mkdir()
    process, failure = _start_dockerd(root, [])

    def stop() -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(30)
        _unmount_under(root)
        shutil.rmtree(root, ignore_errors=True)

    stack.callback(stop)
    if failure:
        return "dockerd did not start: " + failure[-200:]
    docker = [DOCKER_28, "-H", f"unix://{root}/docker.sock"]

    def tag_and_push(target: str) -> list[str]:
        run([*docker, "tag", ref, target])
        return [*docker, "push", target]

    return Engine("docker", [*docker, "pull", ref], untimed([*docker, "rmi", ref]), tag_and_push,
                  lambda target: run([*docker, "rmi", target]), untimed([*docker, "pull", ref]))


def podman_engine(stack: ExitStack, work: Path, ref: str) -> Engine | str:
    if shutil.which("podman") is None:
        return "podman not installed"
    root = work / "podman"
    podman = ["podman", "--root", str(root / "root"), "--runroot", str(root / "run"), "--storage-driver", "overlay"]

    def reset() -> None:
        subprocess.run([*podman, "system", "reset", "-f"], capture_output=True)
        _unmount_under(root)
        shutil.rmtree(root, ignore_errors=True)

    stack.callback(reset)
    return Engine("podman", [*podman, "pull", "--tls-verify=false", ref], untimed([*podman, "rmi", ref]),
                  lambda to: [*podman, "push", "--tls-verify=false", ref, f"docker://{to}"], lambda to: None,
                  untimed([*podman, "pull", "--tls-verify=false", ref]))


def measure(engines: list[Engine], n: int, phase: str, targets: PushTargets, results: Results) -> None:
    """``n`` rounds; each round times every engine once, in turn, so that a change in the machine's
    load falls on all of them alike."""
    times: dict[str, list[float]] = {e.name: [] for e in engines}
    failed: dict[str, str] = {}
    for _ in range(n):
        for engine in engines:
            if engine.name in failed:
                continue
            try:
                if phase == "pull":
                    assert engine.pull is not None
                    argv, after = engine.pull, engine.after_pull
                else:
                    target = targets.fresh()
                    argv, after = engine.push(target), functools.partial(engine.after_push, target)
                os.sync()
                start = time.perf_counter()
                run(argv, engine.env)
                times[engine.name].append(time.perf_counter() - start)
                after()
            except Exception as exc:  # report and go on with the others
                failed[engine.name] = f"failed: {exc}"
    for engine in engines:
        label = LABELS.get((engine.name, phase), f"{engine.name} {phase}")
        if engine.name in failed:
            results.skip(label, failed[engine.name])
        else:
            results.record(label, times[engine.name])


LABELS = {("skopeo", "pull"): "skopeo copy to dir: (download only)",
          ("skopeo", "push"): "skopeo push (docker-archive:)"}
SERVERS: dict[str, type[Registry]] = {"docker-registry": Registry, "dockyard registry": DockyardRegistry}


def measure_servers(stack: ExitStack, work: Path, archive: Path, n: int, results: Results) -> None:
    """skopeo's push and pull against each server kind, taking turns within each round (see the
    module docstring): pulls from one server of each kind holding the image, pushes to a new one."""
    holders: dict[str, Registry] = {}
    for i, (name, kind) in enumerate(SERVERS.items()):
        holders[name] = kind(work / f"serve-{i}")
        stack.callback(holders[name].close)
        holders[name].skopeo_copy(f"docker-archive:{archive}", IMAGE)
    target = work / "skopeo-serve-dir"
    pulls: dict[str, list[float]] = {name: [] for name in SERVERS}
    pushes: dict[str, list[float]] = {name: [] for name in SERVERS}
    for round_ in range(n + 1):  # round 0 warms up, untimed
        for i, (name, kind) in enumerate(SERVERS.items()):
            os.sync()
            start = time.perf_counter()
            run([*SKOPEO, f"docker://{holders[name].host}/{IMAGE}", f"dir:{target}"])
            elapsed = time.perf_counter() - start
            shutil.rmtree(target)
            if round_:
                pulls[name].append(elapsed)
            fresh = kind(work / f"serve-push-{i}-{round_}")
            try:
                os.sync()
                start = time.perf_counter()
                run([*SKOPEO, f"docker-archive:{archive}", f"docker://{fresh.host}/pushed/big:latest"])
                elapsed = time.perf_counter() - start
            finally:
                fresh.close()
            if round_:
                pushes[name].append(elapsed)
    for name in SERVERS:
        results.record(f"skopeo pull from {name}", pulls[name])
        results.record(f"skopeo push to {name}", pushes[name])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=3, help="runs per measurement")
    parser.add_argument("--mb", type=int, default=100, help="size of the random layer")
    parser.add_argument("--phases", default="pull,push,servers", help="some of pull,push,servers")
    parser.add_argument("--no-peers", action="store_true", help="pull and push: dockyard and skopeo only")
    args = parser.parse_args()
    phases = set(args.phases.split(","))
    work = Path(tempfile.mkdtemp(prefix="registry-bench-"))
    results = Results()
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, work, ignore_errors=True)
        stack.callback(_unmount_under, work)
        archive = make_archive(work, args.mb)
        registry = Registry(work / "registry")
        stack.callback(registry.close)
        targets = PushTargets(work)
        stack.callback(targets.close)
        registry.skopeo_copy(f"docker-archive:{archive}", IMAGE)
        ref = f"{registry.host}/{IMAGE}"
        if phases & {"pull", "push"}:
            engines = [dockyard_engine(stack, work, ref), skopeo_engine(work, ref, archive)]
            peers = () if args.no_peers else (("docker", docker_engine), ("podman", podman_engine))
            for name, make in peers:
                made = make(stack, work, ref)
                if isinstance(made, str):
                    results.skip(f"{name} pull", made)
                    results.skip(f"{name} push", made)
                else:
                    engines.append(made)
            for engine in engines:  # warm-up: one pull each, not timed
                run(engine.pull or [], engine.env)
                engine.after_pull()
            if "pull" in phases:
                measure(engines, args.n, "pull", targets, results)
            if "push" in phases:
                for engine in engines:
                    engine.before_pushes()
                measure(engines, args.n, "push", targets, results)
        if "servers" in phases:
            measure_servers(stack, work, archive, args.n, results)
    print("\nratios (dockyard / peer; below 1: dockyard is faster):")
    results.ratios("dockyard pull", ["skopeo copy to dir: (download only)", "docker pull", "podman pull"])
    results.ratios("dockyard push", ["skopeo push (docker-archive:)", "docker push", "podman push"])
    results.ratios("skopeo pull from dockyard registry", ["skopeo pull from docker-registry"])
    results.ratios("skopeo push to dockyard registry", ["skopeo push to docker-registry"])
    out = REPO / "bench" / "results" / f"registry-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"layer_mb": args.mb, **results.table}, indent=1) + "\n")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
