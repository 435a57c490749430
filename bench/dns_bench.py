"""What the embedded DNS server costs: attach/detach (on a container's start and stop path), and the
latency of a query answered from the view and of one forwarded to an upstream on the host's loopback,
beside that upstream asked directly.

Each attachment is a pinned namespace of its own (``netns.create`` under a temporary directory); the
upstream is a small dnspython-based server of the bench's own on a random 127.x address, port 53.
Queries are made from inside a namespace, one at a time, by dnspython. Results go to
``bench/results/dns-<timestamp>.json``. Run as root: ``.venv/bin/python bench/dns_bench.py [-n 200]``.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import dns.message  # noqa: E402
import dns.query  # noqa: E402

from dockyard.networks import netns  # noqa: E402
from dockyard.networks.dns import EmbeddedDns  # noqa: E402
from dockyard.networks.dns_names import NameTable  # noqa: E402
from tests.fake_dns import FakeUpstream  # noqa: E402


def median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 3)


def timed(fn: Callable[[], object], count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=200, help="queries per kind")
    parser.add_argument("--namespaces", type=int, default=20)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="dns-bench-", dir="/tmp"))
    spaces = [work / f"ns{i}" for i in range(args.namespaces)]
    upstream = None
    server = None
    made: list[Path] = []
    try:
        for path in spaces:
            netns.create(path)
            made.append(path)
        for _ in range(20):
            try:
                upstream = FakeUpstream(f"127.{random.randint(60, 250)}.{random.randint(0, 255)}.7", 53)
                break
            except OSError:
                continue
        assert upstream is not None
        host_file = work / "resolv.conf"
        host_file.write_text(f"nameserver {upstream.address}\n")
        table = NameTable()
        table.set("bench", "c0", name="web", addresses=["10.99.0.2"])
        view = table.view(lambda: ["bench"])
        server = EmbeddedDns(host_resolv_conf=host_file)
        server.attach("warm-up", spaces[0], view)
        server.detach("warm-up")

        attach: list[float] = []
        detach: list[float] = []
        for _ in range(3):
            for i, path in enumerate(spaces):
                attach += timed(lambda i=i, path=path: server.attach(f"c{i}", path, view), 1)  # type: ignore[misc]
            for i in range(len(spaces)):
                detach += timed(lambda i=i: server.detach(f"c{i}"), 1)  # type: ignore[misc]

        server.attach("q", spaces[0], view)
        local = dns.message.make_query("web", "A")
        remote = dns.message.make_query("example.com", "A")

        def ask(q: dns.message.Message, where: str) -> Callable[[], object]:
            return lambda: dns.query.udp(q, where, timeout=2)

        def inside(fn: Callable[[], object]) -> list[float]:
            return netns.run_in(spaces[0], lambda: timed(fn, args.n))

        inside(ask(local, "127.0.0.11"))  # warm-up
        results = {
            "attach_ms_median": median_ms(attach), "attach_ms_max": round(max(attach) * 1000, 3),
            "detach_ms_median": median_ms(detach), "detach_ms_max": round(max(detach) * 1000, 3),
            "query_local_ms_median": median_ms(inside(ask(local, "127.0.0.11"))),
            "query_forwarded_ms_median": median_ms(inside(ask(remote, "127.0.0.11"))),
            "upstream_direct_ms_median": median_ms(timed(ask(remote, upstream.address), args.n)),
        }
    finally:
        if server is not None:
            server.close()
        if upstream is not None:
            upstream.close()
        for path in made:
            netns.remove(path)
        for leftover in sorted(work.iterdir(), reverse=True):
            leftover.unlink()
        work.rmdir()
    print(json.dumps(results, indent=2))
    out = REPO / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / f"dns-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
