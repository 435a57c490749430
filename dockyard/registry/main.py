"""``dockyard registry serve`` and ``dockyard registry gc``: the registry server's command line.

The *config file* (``--config``, JSON) may set ``addr``, ``root``, ``read_only``, ``tls``
(``{"certificate": PATH, "key": PATH}``: serve HTTPS) and ``auth`` (``{"htpasswd": PATH, "mode":
"basic"|"token", "realm": …, "access": [rules], "token": {external issuer}}``, see ``auth.py``),
``chunk_min_length`` (bytes: the ``OCI-Chunk-Min-Length`` of upload sessions, see ``app.py``) and
``limits`` (``{"concurrent_requests_per_client": N, "requests_per_second": R, "burst": B}``, see
``limits.py``); flags given on the command line win.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import ssl
import sys
from pathlib import Path
from typing import Any

from dockyard.registry.app import RegistryApp
from dockyard.registry.auth import Authorizer
from dockyard.registry.gc import collect
from dockyard.registry.http_server import Server
from dockyard.registry.limits import Limiter, Limits
from dockyard.registry.storage import RegistryStorage

DEFAULT_ADDR = "127.0.0.1:5000"


def _split_addr(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    if not host or not port.isdigit():
        raise SystemExit(f"invalid --addr {addr!r}: want HOST:PORT")
    return host.strip("[]"), int(port)


def _tls_context(config: dict[str, Any]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(config["certificate"], config["key"])
    return context


async def serve(app: RegistryApp, addr: str, tls: ssl.SSLContext | None = None) -> None:
    """Serve until SIGTERM or SIGINT. Prints ``listening on HOST:PORT`` once bound (port 0 picks one)."""
    host, port = _split_addr(addr)
    server = Server(app, [("Server", "dockyard-registry")])
    listener = await asyncio.start_server(server.connected, host, port, limit=1 << 20, ssl=tls)
    bound = listener.sockets[0].getsockname()
    print(f"listening on {bound[0]}:{bound[1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    listener.close()
    await server.close()
    await listener.wait_closed()


def _options(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="dockyard registry")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("serve", help="serve the OCI distribution API")
    run.add_argument("--addr", help=f"HOST:PORT to listen on (default {DEFAULT_ADDR})")
    run.add_argument("--root", help="the storage folder")
    run.add_argument("--config", help="a JSON config file (addr, root, read_only)")
    run.add_argument("--read-only", action="store_true", default=None, help="refuse every write")
    gc = sub.add_parser("gc", help="delete blobs no manifest references")
    gc.add_argument("--root", required=True, help="the storage folder")
    gc.add_argument("--dry-run", action="store_true", help="only report what would be deleted")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    options = _options(sys.argv[1:] if argv is None else argv)
    if options.command == "gc":
        result = collect(RegistryStorage(Path(options.root)), dry_run=options.dry_run)
        verb = "would delete" if options.dry_run else "deleted"
        for digest in result.removed:
            print(f"{verb} {digest}")
        print(f"{len(result.marked)} blobs marked, {len(result.removed)} {verb} ({result.freed_bytes} bytes)")
        return 0
    config: dict[str, Any] = {}
    if options.config:
        config = json.loads(Path(options.config).read_text())
    root = options.root or config.get("root")
    if not root:
        raise SystemExit("dockyard registry serve: --root (or root in --config) is required")
    addr = options.addr or config.get("addr") or DEFAULT_ADDR
    read_only = bool(options.read_only if options.read_only is not None else config.get("read_only", False))
    tls = _tls_context(config["tls"]) if config.get("tls") else None
    authorizer = Authorizer.from_config(config["auth"]) if config.get("auth") else None
    if authorizer is not None and tls is not None:
        authorizer.scheme = "https"
    limits = Limits.from_config(config.get("limits") or {})
    limiter = Limiter(limits) if limits.concurrent or limits.rate else None
    app = RegistryApp(RegistryStorage(Path(root)), read_only=read_only, authorizer=authorizer,
                      chunk_min_length=int(config.get("chunk_min_length", 0)), limiter=limiter)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(serve(app, addr, tls))
    return 0


if __name__ == "__main__":
    sys.exit(main())
