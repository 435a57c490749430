"""What the metadata database costs: store size, ``images`` / ``ps -a`` latency, daemon start.

Runs the same workload against two trees, each daemon on its own temporary root:
- ``db``: this checkout (records in ``metadata.db``, SQLite WAL);
- ``json``: ``git archive <rev>`` of a revision from before the database (default ``9b58cd4``),
  whose services keep one JSON file per record.
Workload: ``--count`` images (tiny distinct one-layer imports, each tagged) and as many created
containers. Measured: the records' bytes on disk (the database and its WAL after a checkpoint; or
every JSON record file), the median wall time of ``dockyard images`` and ``dockyard ps -a`` (CLI,
``-n`` runs) and of ``GET /images/json`` and ``GET /containers/json?all=1`` (API), and the daemon's
start-up time with everything in place. Results go to ``bench/results/metadata-<timestamp>.json``.
Run as root: ``.venv/bin/python bench/metadata_bench.py [--count 200] [-n 9] [--rev REV]``.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost")
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def call(sock: str, method: str, path: str, body: bytes | None = None, ctype: str = "application/json") -> bytes:
    conn = UnixHTTP(sock)
    conn.request(method, path, body=body, headers={"Content-Type": ctype} if body is not None else {})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    if resp.status >= 300:
        raise RuntimeError(f"{method} {path}: {resp.status} {data[:200]!r}")
    return data


def tiny_tar(i: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = f"image {i}\n".encode()
        info = tarfile.TarInfo(f"file{i}")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class Daemon:
    def __init__(self, tree: Path, root: Path) -> None:
        self.tree, self.root = tree, root
        self.sock = str(root / "d.sock")
        self.proc: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": str(self.tree), "DOCKYARD_HOST": f"unix://{self.sock}"}

    def start(self) -> float:
        began = time.monotonic()
        self.proc = subprocess.Popen([sys.executable, "-m", "dockyard.daemon.main", "--root", str(self.root / "data"),
                                      "-H", f"unix://{self.sock}"], env=self.env(), cwd=self.tree,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        while True:
            try:
                call(self.sock, "GET", "/_ping")
                return time.monotonic() - began
            except (OSError, RuntimeError):
                if time.monotonic() - began > 60:
                    raise RuntimeError("daemon did not start") from None
                time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)
            self.proc = None

    def cli(self, *args: str) -> float:
        began = time.monotonic()
        subprocess.run([sys.executable, "-m", "dockyard.cli.main", *args], env=self.env(), cwd=self.tree,
                       check=True, capture_output=True)
        return time.monotonic() - began


def record_bytes(data: Path) -> dict[str, int]:
    """Bytes of the records: the database (after a checkpoint), or the JSON record files."""
    db = data / "metadata.db"
    if db.exists():
        conn = sqlite3.connect(db, isolation_level=None)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        return {"files": 1, "bytes": sum(p.stat().st_size for p in data.glob("metadata.db*"))}
    patterns = ["images/repositories.json", "images/images/*.json", "snapshots/layers/*/layer.json",
                "snapshots/containers/*/lower", "containers/*/config.json", "volumes/*/volume.json"]
    files = [p for pattern in patterns for p in data.glob(pattern)]
    return {"files": len(files), "bytes": sum(p.stat().st_size for p in files),
            "blocks_bytes": sum(p.stat().st_blocks * 512 for p in files)}


def measure(name: str, tree: Path, count: int, runs: int) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix=f"mdbench-{name}-"))
    d = Daemon(tree, work)
    try:
        d.start()
        began = time.monotonic()
        for i in range(count):
            call(d.sock, "POST", f"/images/create?fromSrc=-&repo=img{i}&tag=v1", tiny_tar(i), "application/x-tar")
        imports = time.monotonic() - began
        began = time.monotonic()
        for i in range(count):
            call(d.sock, "POST", f"/containers/create?name=c{i}", json.dumps({"Image": f"img{i}:v1", "Cmd": ["x"]}).encode())
        creates = time.monotonic() - began
        cli_images = statistics.median(d.cli("images") for _ in range(runs))
        cli_ps = statistics.median(d.cli("ps", "-a") for _ in range(runs))

        def api(path: str) -> float:
            began = time.monotonic()
            call(d.sock, "GET", path)
            return time.monotonic() - began

        api_images = statistics.median(api("/images/json") for _ in range(runs))
        api_ps = statistics.median(api("/containers/json?all=1") for _ in range(runs))
        d.stop()
        restart = d.start()
        d.stop()
        return {"imports_s": round(imports, 3), "creates_s": round(creates, 3), "cli_images_s": round(cli_images, 4),
                "cli_ps_a_s": round(cli_ps, 4), "api_images_s": round(api_images, 4), "api_ps_a_s": round(api_ps, 4),
                "daemon_start_s": round(restart, 3), "records": record_bytes(work / "data")}
    finally:
        d.stop()
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--count", type=int, default=200)
    p.add_argument("-n", type=int, default=9)
    # 9b58cd4: the last commit whose services all kept JSON records
    p.add_argument("--rev", default="9b58cd4", help="a revision from before the database")
    args = p.parse_args()
    before = Path(tempfile.mkdtemp(prefix="mdbench-tree-"))
    try:
        archive = subprocess.run(["git", "-C", str(REPO), "archive", args.rev], check=True, capture_output=True).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(before, filter="fully_trusted")
        for built in ("dockyard-shim", "dockyard-init"):  # build products, not in git
            if (REPO / "dockyard/runtime" / built).exists():
                shutil.copy2(REPO / "dockyard/runtime" / built, before / "dockyard/runtime" / built)
        results = {"count": args.count, "runs": args.n,
                   "json": measure("json", before, args.count, args.n),
                   "db": measure("db", REPO, args.count, args.n)}
    finally:
        shutil.rmtree(before, ignore_errors=True)
    out = REPO / "bench" / "results" / time.strftime("metadata-%Y%m%d-%H%M%S.json")
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
