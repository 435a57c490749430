"""Image load throughput: ``dockyard load`` vs ``docker load`` vs ``podman load`` of one archive
holding a ~100 MB layer, and our layer extraction vs ``tar -x`` of the same layer.

The layer is made locally: files of pseudo-random words (compressible, like real text and
binaries mixed). The archive is Docker's format (``manifest.json`` + ``blobs/sha256``). Each
engine gets a private root; each load runs into an empty store. Results (seconds, MB/s, ratios
to dockyard) are printed and written to ``bench/results/load-<timestamp>.json``.
Each figure is the median of three rounds. Run as root: ``.venv/bin/python bench/load_bench.py [--mb 100]``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dockyard.snapshots import SnapshotStore  # noqa: E402
from tests.integration.daemon_harness import DOCKER, Daemon  # noqa: E402
from tests.integration.test_cli_against_dockerd import _start_dockerd, _unmount_under  # noqa: E402

WORDS = [("".join(random.Random(i).choice("abcdefghijklmnopqrstuvwxyz") for _ in range(1 + i % 9))).encode()
         for i in range(4096)]


def make_layer(path: Path, megabytes: int) -> None:
    """A layer tar of ~``megabytes`` MB: 1 MB files of pseudo-random words, in a few directories."""
    rng = random.Random(42)
    with tarfile.open(path, "w") as tar:
        for i in range(megabytes):
            words = []
            size = 0
            while size < 1 << 20:
                word = WORDS[rng.randrange(len(WORDS))]
                words.append(word)
                size += len(word) + 1
            data = b" ".join(words)[: 1 << 20]
            info = tarfile.TarInfo(f"data/d{i % 10}/f{i}.txt")
            info.size, info.mtime, info.mode = len(data), 1_700_000_000, 0o644
            tar.addfile(info, io.BytesIO(data))


def make_archive(layer: Path, archive: Path, tag: str) -> None:
    diff_id = "sha256:" + hashlib.sha256(layer.read_bytes()).hexdigest()
    config = json.dumps({"architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
                         "config": {"Cmd": ["sh"]}, "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                         "history": [{"created": "2024-01-01T00:00:00Z", "comment": "bench"}]}).encode()
    config_hex = hashlib.sha256(config).hexdigest()
    manifest = json.dumps([{"Config": f"blobs/sha256/{config_hex}", "RepoTags": [tag],
                            "Layers": [f"blobs/sha256/{diff_id[7:]}"]}]).encode()
    with tarfile.open(archive, "w") as tar:
        tar.add(layer, arcname=f"blobs/sha256/{diff_id[7:]}")
        for name, data in ((f"blobs/sha256/{config_hex}", config), ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    os.sync()
    start = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, env=env, timeout=600)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{argv[:3]} failed: {result.stderr.decode(errors='replace')[-500:]}")
    return elapsed


ROUNDS = 3
TAG = "bench/load:latest"


def median_of_loads(load: list[str], remove: list[str], env: dict[str, str] | None = None) -> float:
    """Median seconds of ``load`` into an empty store, ``remove`` (the image) run between rounds."""
    times = []
    for _ in range(ROUNDS):
        times.append(timed(load, env))
        subprocess.run(remove, capture_output=True, env=env, check=True, timeout=120)
    return statistics.median(times)


def bench_dockyard(work: Path, archive: Path) -> float:
    daemon = Daemon(work / "dockyard")
    cli = [sys.executable, "-m", "dockyard.cli.main"]
    try:
        return median_of_loads([*cli, "load", "-q", "-i", str(archive)], [*cli, "rmi", TAG], daemon.env())
    finally:
        daemon.close()


def bench_docker(work: Path, archive: Path) -> float | str:
    root = work / "dockerd"
    root.mkdir()
    process, failure = _start_dockerd(root, [])
    try:
        if failure:
            return "dockerd did not start"
        docker = [DOCKER, "-H", f"unix://{root}/docker.sock"]
        return median_of_loads([*docker, "load", "-q", "-i", str(archive)], [*docker, "rmi", TAG])
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        _unmount_under(root)
        shutil.rmtree(root, ignore_errors=True)


def bench_podman(work: Path, archive: Path) -> float | str:
    if shutil.which("podman") is None:
        return "podman not installed"
    root = work / "podman"
    try:
        podman = ["podman", "--root", str(root / "root"), "--runroot", str(root / "run"), "--storage-driver", "overlay"]
        return median_of_loads([*podman, "load", "-q", "-i", str(archive)], [*podman, "rmi", TAG])
    finally:
        subprocess.run(["podman", "--root", str(root / "root"), "--runroot", str(root / "run"),
                        "system", "reset", "-f"], capture_output=True)
        _unmount_under(root)
        shutil.rmtree(root, ignore_errors=True)


def bench_extraction(work: Path, layer: Path, rounds: int = 3) -> tuple[float, float]:
    """Median (our unpack seconds, ``tar -x`` seconds) of the same layer, alternating, after a
    ``sync`` each time so that neither pays for the other's writeback."""
    ours, theirs = [], []
    for i in range(rounds):
        store = SnapshotStore(work / f"snapshots-{i}")
        os.sync()
        start = time.perf_counter()
        with open(layer, "rb") as f:
            store.unpack(None, f)
        ours.append(time.perf_counter() - start)
        target = work / f"tar-x-{i}"
        target.mkdir()
        os.sync()
        theirs.append(timed(["tar", "-x", "-f", str(layer), "-C", str(target)]))
        shutil.rmtree(work / f"snapshots-{i}")
        shutil.rmtree(target)
    return statistics.median(ours), statistics.median(theirs)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=100)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="load-bench-"))
    try:
        layer, archive = work / "layer.tar", work / "image.tar"
        make_layer(layer, args.mb)
        make_archive(layer, archive, TAG)
        megabytes = layer.stat().st_size / 1e6
        results: dict[str, float | str] = {"layer_mb": round(megabytes, 1)}
        results["dockyard_load_s"] = bench_dockyard(work, archive)
        results["docker_load_s"] = bench_docker(work, archive)
        results["podman_load_s"] = bench_podman(work, archive)
        ours, tar_x = bench_extraction(work, layer)
        results["dockyard_extract_mb_s"] = megabytes / ours
        results["tar_x_mb_s"] = megabytes / tar_x
        base = float(results["dockyard_load_s"])
        for engine in ("docker", "podman"):
            value = results[f"{engine}_load_s"]
            if isinstance(value, float):
                results[f"{engine}_vs_dockyard"] = value / base
        results["extract_vs_tar_x"] = float(results["dockyard_extract_mb_s"]) / float(results["tar_x_mb_s"])
        for key, value in results.items():
            print(f"{key:24} {value:.3f}" if isinstance(value, float) else f"{key:24} {value}")
        out = REPO / "bench" / "results" / f"load-{time.strftime('%Y%m%d-%H%M%S')}.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(results, indent=1) + "\n")
        print(f"written to {out}")
    finally:
        _unmount_under(work)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
