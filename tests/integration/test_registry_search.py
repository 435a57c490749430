"""``dockyard search`` / ``GET /images/search`` against a v1 search index served on 127.0.0.1 by the
test (plain HTTP: 127.0.0.0/8 is an insecure registry by default), through our CLI, Docker's CLI and
docker-py; and the errors: an index that does not answer, a v2-only registry, bad limits and filters."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.integration.daemon_harness import Daemon, free_port

pytestmark = pytest.mark.root

RESULTS = [
    {"name": "busybox", "description": "Busybox base image with a description long enough to be cut",
     "star_count": 3200, "is_official": True, "is_automated": False},
    {"name": "someone/busybox-tools", "description": "tools", "star_count": 12, "is_official": False,
     "is_automated": True},
    {"name": "other/busybox", "description": "", "star_count": 0, "is_official": False, "is_automated": False},
]


class Index:
    """A v1 search index: ``GET /v1/search?q=&n=`` answers RESULTS whose name holds ``q``."""

    def __init__(self) -> None:
        self.queries: list[dict[str, list[str]]] = []
        index = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                url = urlsplit(self.path)
                if url.path != "/v1/search":
                    self.send_error(404)
                    return
                query = parse_qs(url.query)
                index.queries.append(query)
                q = query.get("q", [""])[0]
                found = [r for r in RESULTS if q in r["name"]]
                body = json.dumps({"num_results": len(found), "query": q, "results": found}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture()
def index() -> Iterator[Index]:
    i = Index()
    try:
        yield i
    finally:
        i.close()


def test_our_cli_searches_the_index_the_term_names(daemon: Daemon, index: Index) -> None:
    out = daemon.cli("search", f"{index.host}/busy", check=True).stdout.splitlines()
    assert out[0].split() == ["NAME", "DESCRIPTION", "STARS", "OFFICIAL"]
    assert out[1].split()[0] == "busybox" and "[OK]" in out[1] and "3200" in out[1]
    assert "Busybox base image with a description long e…" in out[1]  # cut at 45 characters, as Docker
    assert [line.split()[0] for line in out[1:]] == ["busybox", "someone/busybox-tools", "other/busybox"]
    assert index.queries[-1] == {"q": ["busy"], "n": ["25"]}  # the remote term, the daemon's default limit

    full = daemon.cli("search", "--no-trunc", f"{index.host}/busy", check=True).stdout
    assert RESULTS[0]["description"] in full
    starred = daemon.cli("search", "-f", "stars=10", "--format", "{{.Name}}:{{.StarCount}}",
                         f"{index.host}/busy", check=True).stdout.split()
    assert starred == ["busybox:3200", "someone/busybox-tools:12"]
    official = daemon.cli("search", "-f", "is-official=true", "--format", "{{.Name}}", f"{index.host}/busy",
                          check=True).stdout.split()
    assert official == ["busybox"]
    limited = daemon.cli("search", "--limit", "1", "--format", "{{.Name}}", f"{index.host}/busy",
                         check=True).stdout.split()
    assert limited == ["busybox"] and index.queries[-1]["n"] == ["1"]


def test_docker_cli_and_docker_py_search_through_our_daemon(daemon: Daemon, index: Index) -> None:
    result = daemon.docker("search", "--format", "{{.Name}} {{.StarCount}}", f"{index.host}/busybox", check=True)
    assert result.stdout.splitlines() == ["busybox 3200", "someone/busybox-tools 12", "other/busybox 0"]
    client = daemon.client()
    try:
        found = client.api.search(f"{index.host}/tools")
    finally:
        client.close()
    assert found == [RESULTS[1]]


def test_search_errors_are_clear(daemon: Daemon) -> None:
    gone = daemon.cli("search", f"127.0.0.1:{free_port()}/busybox")
    assert gone.returncode != 0 and "Traceback" not in gone.stderr
    assert "Error response from daemon" in gone.stderr and "127.0.0.1" in gone.stderr
    for bad, message in ((["--limit", "101"], "limit 101 is outside the range of [1, 100]"),
                         (["-f", "stars=many"], "invalid filter 'stars=many'"),
                         (["-f", "colour=red"], "invalid filter 'colour'")):
        result = daemon.cli("search", *bad, f"127.0.0.1:{free_port()}/busybox")
        assert result.returncode != 0 and message in result.stderr, result.stderr


def test_a_v2_only_registry_has_no_search(daemon: Daemon, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.integration.registry_harness import DockyardRegistry

    registry = DockyardRegistry(tmp_path / "registry")
    try:
        result = daemon.cli("search", f"{registry.host}/busybox")
    finally:
        registry.close()
    assert result.returncode != 0 and "Traceback" not in result.stderr
    # The registry's own answer to /v1/search (a 404 with the spec's NAME_UNKNOWN), as dockerd relays it.
    assert result.stderr.startswith("Error response from daemon: name unknown"), result.stderr
