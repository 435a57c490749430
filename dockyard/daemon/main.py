"""``dockyard daemon``: start the engine and serve the Docker Engine API.

The daemon holds a lock on its root so two daemons never share one; it logs to stderr and to
``<root>/daemon.log``; on SIGTERM/SIGINT it stops serving and leaves containers running (their
shims don't need it), to find them again at the next start.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import fcntl
import logging
import os
import signal
import socket
import sys
import uuid
from pathlib import Path

from dockyard import blocking
from dockyard.daemon import listeners
from dockyard.daemon.config import DaemonConfig, load_config
from dockyard.daemon.tls_transport import start_tls_server
from dockyard.errors import DockyardError

log = logging.getLogger("dockyard.daemon")
_M_TRIM_THRESHOLD = -1  # mallopt(3)'s parameter numbers (glibc's malloc.h)
_M_MMAP_THRESHOLD = -3


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="dockyard daemon", description="Serve the Docker Engine API.")
    p.add_argument("--root", "--data-root", dest="data_root", help="root of persisted state (default /var/lib/dockyard)")
    p.add_argument("-H", "--host", dest="hosts", action="append", help="unix:///path or tcp://127.0.0.1:PORT to listen on")
    p.add_argument("--config-file", help="daemon.json (default /etc/dockyard/daemon.json)")
    p.add_argument("-l", "--log-level", dest="log_level", help="debug, info, warn, error, fatal")
    p.add_argument("-D", "--debug", action="store_true", default=None, help="debug logging")
    p.add_argument("-p", "--pidfile", help="write the daemon's pid here")
    p.add_argument("--tls", nargs="?", const=True, type=_flag_bool, help="use TLS on tcp hosts; implies --tlsverify")
    p.add_argument("--tlsverify", nargs="?", const=True, type=_flag_bool,
                   help="use TLS and require client certificates signed by --tlscacert")
    p.add_argument("--tlscacert", help="trust client certs signed only by this CA")
    p.add_argument("--tlscert", help="the server's TLS certificate file")
    p.add_argument("--tlskey", help="the server's TLS key file")
    p.add_argument("-G", "--group", help='group for the unix sockets (default "docker" when it exists)')
    p.add_argument("--registry-mirror", dest="registry_mirrors", action="append",
                   help="preferred Docker registry mirror (repeatable)")
    p.add_argument("--insecure-registry", dest="insecure_registries", action="append",
                   help="registry (host[:port] or CIDR) reached without verified TLS (repeatable)")
    p.add_argument("--max-concurrent-downloads", type=int, help="layers downloaded at once per pull (default 3)")
    p.add_argument("--max-concurrent-uploads", type=int, help="layers uploaded at once per push (default 5)")
    return p.parse_args(argv)


def _flag_bool(text: str) -> bool:
    """pflag's boolean spellings, for ``--tls=false``."""
    if text in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if text in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean value {text!r}")


def setup_logging(root: Path, level: str) -> None:
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    handlers.append(logging.FileHandler(root / "daemon.log"))
    for h in handlers:
        h.setFormatter(fmt)
    logging.basicConfig(level={"warn": "WARNING", "fatal": "CRITICAL"}.get(level, level.upper()), handlers=handlers, force=True)


def lock_root(root: Path) -> int:
    fd = os.open(root / "daemon.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        other = os.pread(fd, 32, 0).decode().strip()
        raise DockyardError(f"a dockyard daemon (pid {other or '?'}) is already running with root {root}") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def daemon_id(root: Path) -> str:
    path = root / "engine-id"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        value = str(uuid.uuid4())
        path.write_text(value + "\n")
        return value


def _socket_answers(path: str) -> bool:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(0.5)
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


async def serve(cfg: DaemonConfig) -> None:
    from dockyard.api.app import build_app
    from dockyard.api.http import Connections
    from dockyard.containers.service import ContainerService
    from dockyard.images.service import ImageService
    from dockyard.networks.dns import EmbeddedDns
    from dockyard.networks.dns_wiring import wire
    from dockyard.runtime import spawner

    tls_context = cfg.tls.server_context()  # bad certificate files or group: fail before anything starts
    gid = listeners.socket_gid(cfg.group) if any(not h.startswith("tcp://") for h in cfg.hosts) else None
    root = cfg.root
    images = ImageService(root)
    cfg.network.host_id = cfg.network.host_id or daemon_id(root)  # IPv6 subnets come from it, as dockerd's
    containers = ContainerService(root, images, log_defaults=cfg.log_opts, log_driver=cfg.log_driver,
                                  network_options=cfg.network)
    # The embedded DNS server (127.0.0.11 in containers on user networks), after the recovery that
    # registered the names of the containers still running.
    resolv_path = Path(os.environ.get("DOCKYARD_HOST_RESOLV_CONF") or "/etc/resolv.conf")
    containers.networking.host_resolv_path = resolv_path
    spawner.default.start()  # the small process containers are forked from (runtime/spawner.py)
    containers.recover()
    dns_wiring = await blocking.run(wire, EmbeddedDns(host_resolv_conf=resolv_path), containers.networks,
                                    containers.networking.dns_settings)
    containers.networking.released.append(dns_wiring.forget)
    connections = Connections(build_app(root, containers, images, daemon_id(root), cfg.registry))
    on_connection = connections.serve

    servers = []
    sockets: list[str] = []
    for host in cfg.hosts:
        if host.startswith("tcp://"):
            address = listeners.parse_tcp(host)
            if not cfg.tls.authenticates:
                listeners.warn_unauthenticated(host)
            if tls_context is None:
                servers.append(await asyncio.start_server(on_connection, address.host, address.port, limit=1 << 20))
            else:
                servers.append(await start_tls_server(on_connection, address.host, address.port, tls_context,
                                                      limit=1 << 20))
            log.info("API listening on %s%s", host, " (TLS, client certificates required)" if cfg.tls.authenticates
                     else " (TLS)" if tls_context else "")
            continue
        path = host[len("unix://"):] if host.startswith("unix://") else host
        if os.path.exists(path):
            if _socket_answers(path):
                raise DockyardError(f"another daemon is already listening on {host}")
            os.unlink(path)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        old_umask = os.umask(0o117)
        try:
            servers.append(await asyncio.start_unix_server(on_connection, path, limit=1 << 20))
        finally:
            os.umask(old_umask)
        listeners.own_socket(path, gid)
        sockets.append(path)
        log.info("API listening on %s", host)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("dockyard daemon ready (root %s)", root)
    await stop.wait()
    log.info("shutting down; containers keep running")
    for server in servers:
        server.close()
    await connections.close()
    for server in servers:
        await server.wait_closed()
    await containers.close()
    await blocking.run(dns_wiring.close)
    await blocking.drain_records()
    spawner.default.close()
    for path in sockets:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def keep_freed_memory() -> None:
    """Have glibc's malloc keep freed memory for reuse instead of handing it back at once.

    The daemon streams layers through threads in pieces of 64 KiB to 1 MiB. With glibc's default
    (dynamic) thresholds such pieces are mapped and unmapped, or trimmed off the top of a thread's
    arena, and the next one faults its pages in again: ~14,000 page faults and ~0.06 s of system
    time per 100 MB pulled. A fixed mmap threshold of 4 MiB and trim threshold of 16 MiB keep those
    pages (at most 16 MiB an arena held beyond what is in use). ``MALLOC_*_`` variables still win.
    """
    if any(name in os.environ for name in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")):
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return  # not glibc
    mallopt(_M_TRIM_THRESHOLD, 16 << 20)
    mallopt(_M_MMAP_THRESHOLD, 4 << 20)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    flags = {"data-root": args.data_root, "hosts": args.hosts, "log-level": args.log_level,
             "debug": args.debug, "pidfile": args.pidfile, "tls": args.tls, "tlsverify": args.tlsverify,
             "tlscacert": args.tlscacert, "tlscert": args.tlscert, "tlskey": args.tlskey, "group": args.group,
             "registry-mirrors": args.registry_mirrors, "insecure-registries": args.insecure_registries,
             "max-concurrent-downloads": args.max_concurrent_downloads,
             "max-concurrent-uploads": args.max_concurrent_uploads}
    try:
        config = load_config(flags, Path(args.config_file) if args.config_file else None)
    except DockyardError as exc:
        print(f"dockyard daemon: {exc.message}", file=sys.stderr)
        return 1
    if os.geteuid() != 0:
        print("dockyard daemon: the daemon needs root (namespaces, mounts, overlayfs)", file=sys.stderr)
        return 1
    config.root.mkdir(parents=True, exist_ok=True, mode=0o711)
    keep_freed_memory()
    setup_logging(config.root, "debug" if config.debug else config.log_level)
    try:
        lock = lock_root(config.root)
    except DockyardError as exc:
        log.error("%s", exc.message)
        return 1
    if config.pidfile:
        config.pidfile.write_text(f"{os.getpid()}\n")
    try:
        asyncio.run(serve(config))
    except DockyardError as exc:
        log.error("%s", exc.message)
        return 1
    finally:
        if config.pidfile:
            config.pidfile.unlink(missing_ok=True)
        os.close(lock)
    return 0


if __name__ == "__main__":
    sys.exit(main())
