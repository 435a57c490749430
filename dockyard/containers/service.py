"""The containers service: create, start, attach, wait, logs, stop, kill, remove, list.

It lives in the daemon's event loop. Terms:
- *live state*: what only a running daemon holds for a container (the shim's pidfd, the
  futures of clients waiting for it); everything durable is in the record (``record.py``).
- *shim*: the per-container C process that is the container's parent (see ``runtime``). The
  daemon watches it with a pidfd; when it exits, the container has exited and the shim has
  written the exit record.
- *start waiters*: attach requests that arrived before the container started. ``start``
  spawns the container held at its last step, lets every waiting attach connect to the shim,
  and only then releases it, so ``docker run`` sees all of its output.
- *serializer*: every operation that changes a container runs through its serializer
  (``serializer.py``), one at a time; blocking filesystem work (the writable layer, ``rmtree``,
  durable commits) runs on the daemon's pool (``dockyard/blocking.py``), never on the event loop.
- *removal failure*: when a removal cannot delete the container's files, the container is left
  ``dead`` with the error in ``State.Error``, and ``wait?condition=removed`` answers with that
  error (as Docker's ``SetRemovalError``); a later ``rm`` tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import secrets
import shutil
import signal as signals
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard import blocking
from dockyard import filters as docker_filters
from dockyard.containers import cgroup_control, detachkeys, logdrivers
from dockyard.containers import logs as logfiles
from dockyard.containers import mounts as mountpoints
from dockyard.containers import resources as resource_rules
from dockyard.containers import security as security_rules
from dockyard.containers.config import build_config, build_host_config
from dockyard.containers.events import EventBus
from dockyard.containers.health import HealthMonitor
from dockyard.containers.health_probe import run_probe
from dockyard.containers.inspect_defaults import fill_host_config
from dockyard.containers.names import generate_name, validate_name
from dockyard.containers.networking import ContainerNetworking, network_of_mode
from dockyard.containers.record import Container, State
from dockyard.containers.restart import RestartScheduler
from dockyard.containers.serializer import Serializer
from dockyard.errors import Conflict, DockyardError, InvalidParameter, NotFound, NotModified
from dockyard.formats import timestamps
from dockyard.formats.signals import parse_signal
from dockyard.images.service import ImageService
from dockyard.metadata import leases
from dockyard.networks.service import NetworkOptions, NetworkService
from dockyard.runtime import shim as shimproto
from dockyard.runtime.spawn import reap, spawn
from dockyard.runtime.spec import ContainerSpec, ProcessSpec
from dockyard.runtime.syscalls import pidfd_open
from dockyard.volumes.service import VolumeService

log = logging.getLogger("dockyard.containers")

DEFAULT_STOP_TIMEOUT = 10
DEFAULT_LOG_MAX_SIZE = "10m"
DEFAULT_LOG_MAX_FILE = "3"


@dataclass
class Live:
    """In-memory state of one container for this daemon's lifetime."""

    pidfd: int = -1
    starting: bool = False
    start_failed: DockyardError | None = None
    start_waiters: list[asyncio.Future[asyncio.Future[None] | None]] = field(default_factory=list)
    exit_waiters: list[asyncio.Future[int]] = field(default_factory=list)
    remove_waiters: list[asyncio.Future[int]] = field(default_factory=list)


async def open_shim(state_dir: Path) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to a shim's attach socket.

    The path can exceed the 108 bytes a unix socket address holds, so connect through
    ``/proc/self/fd/<dir fd>/attach.sock``, which is short whatever the root is."""
    dirfd = os.open(state_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(sock, f"/proc/self/fd/{dirfd}/{shimproto.SOCKET_NAME}")
        except BaseException:
            sock.close()
            raise
    finally:
        os.close(dirfd)
    return await asyncio.open_unix_connection(sock=sock)


RESIZE_ANSWER_TIMEOUT = 2.0  # seconds; a shim built before the "resized" answer never sends it


async def resize_terminal(state_dir: Path, height: int, width: int) -> None:
    """Set the terminal size of the shim in ``state_dir`` and return once it is set (the shim
    answers with a "resized" frame), so that what the process runs next sees the new size."""
    reader, writer = await open_shim(state_dir)
    try:
        writer.write(shimproto.encode_frame(shimproto.RESIZE, height.to_bytes(2, "big") + width.to_bytes(2, "big")))
        await writer.drain()

        async def answered() -> None:
            while True:  # output frames broadcast meanwhile are skipped
                kind, size = shimproto.FRAME.unpack(await reader.readexactly(shimproto.FRAME.size))
                await reader.readexactly(size)
                if kind == shimproto.RESIZED:
                    return

        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            await asyncio.wait_for(answered(), RESIZE_ANSWER_TIMEOUT)
    finally:
        writer.close()


class ContainerService:
    """Every container verb, over records in ``root/containers`` and the image service."""

    def __init__(self, root: Path, images: ImageService, log_defaults: dict[str, str] | None = None,
                 log_driver: str = "json-file", network_options: NetworkOptions | None = None) -> None:
        self.root = root / "containers"
        # The daemon's log-driver and log-opts (daemon.json); see logdrivers.resolve.
        self.log_driver = log_driver or "json-file"
        self.log_defaults = dict(log_defaults or {})
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.images = images
        self._containers: dict[str, Container] = {}
        self._live: dict[str, Live] = {}
        self._reserved_names: set[str] = set()  # names of containers being created
        self.serializer = Serializer(lambda cid: cid in self._containers)
        # Awaited before a removal deletes a container's files (the exec service waits there
        # for the container's exec shims, which write into its directory until they exit).
        self.before_remove: list[Callable[[Container], Awaitable[None]]] = []
        self.volumes = VolumeService(root)
        self.events = EventBus()
        # Networks (records, bridges, nft) and each container's endpoints: networks/, containers/networking.py
        self.networks = NetworkService(root, self._network_event, network_options)
        self.networking = ContainerNetworking(self.networks, self.get)
        self.restarts = RestartScheduler(self._start_by_policy)
        self.health = HealthMonitor(run_probe, self._on_health_probe)
        # Functions that add to a container's inspect answer (e.g. ExecIDs from the exec service).
        self.inspect_hooks: list[Callable[[Container, dict[str, Any]], None]] = [fill_host_config]
        # Work started from exit handling (auto-remove), held until done: asyncio keeps only weak
        # references to tasks.
        self._tasks: set[asyncio.Task[None]] = set()

    def event(self, c: Container, action: str, **extra: str) -> None:
        """Publish a container event with Docker's attributes: labels, image, name, then ``extra``."""
        attributes = {str(k): str(v) for k, v in (c.config.get("Labels") or {}).items()}
        attributes.update(image=c.image, name=c.name, **extra)
        self.events.publish("container", action, c.id, attributes)

    def _network_event(self, action: str, network_id: str, attributes: dict[str, str]) -> None:
        self.events.publish("network", action, network_id, attributes)

    # -- lookup ------------------------------------------------------------------------
    def live(self, c: Container) -> Live:
        return self._live.setdefault(c.id, Live())

    def get(self, ref: str) -> Container:
        """By full ID, by name (with or without ``/``), or by a unique ID prefix."""
        if not ref:
            raise NotFound("No such container: ")
        c = self._containers.get(ref)
        if c is not None:
            return c
        name = ref.lstrip("/")
        for c in self._containers.values():
            if c.name == name:
                return c
        if re.fullmatch(r"[0-9a-f]+", ref):
            found = [c for c in self._containers.values() if c.id.startswith(ref)]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise InvalidParameter(f"multiple IDs found with provided prefix: {ref}")
        raise NotFound(f"No such container: {ref}")

    def image_in_use(self, image_id: str) -> str | None:
        for c in self._containers.values():
            if c.image_id == image_id:
                return c.id
        return None

    def volume_users(self, name: str) -> list[str]:
        """The IDs of the containers whose mounts use volume ``name`` (the volume service asks)."""
        return [c.id for c in self._containers.values() if name in mountpoints.volume_names(c.mounts)]

    def image_running(self, image_id: str) -> str | None:
        for c in self._containers.values():
            if c.image_id == image_id and c.state.running:
                return c.id
        return None

    # -- recovery at daemon start -----------------------------------------------------------
    def recover(self) -> None:
        """Load every record; re-attach to running shims, collect exits that happened meanwhile."""
        stored = Container.stored_ids(self.root)  # those with a record (dockyard.metadata)
        self.networks.start()  # the bridges and nft table back before any container is looked at
        for directory in sorted(self.root.iterdir()):
            if directory.name not in stored:
                log.warning("removing incomplete container dir %s", directory)
                shutil.rmtree(directory, ignore_errors=True)
                continue
            try:
                c = Container.load(directory)
            except (ValueError, TypeError, OSError) as exc:
                log.error("cannot load container record %s: %s", directory, exc)
                continue
            self._containers[c.id] = c
            if c.state.status == "removing":
                self._finish_remove(c)
                continue
            if c.state.running:
                if self._shim_alive(c):
                    self._watch(c)
                    self.health.start(c, resume=True)
                    log.info("container %s still running (shim %d)", c.id[:12], c.state.shim_pid)
                else:
                    self._record_exit(c)
                    if c.host_config.get("AutoRemove"):
                        self._finish_remove(c, volumes=True)
        # What containers that died meanwhile left: endpoints, ports, namespaces, veths.
        self.networks.cleanup({c.id for c in self._containers.values() if c.state.running})
        for c in self._containers.values():
            if c.state.running:
                self.networking.recovered(c)
        self.restarts.boot(list(self._containers.values()))

    def _shim_alive(self, c: Container) -> bool:
        try:
            cmdline = Path(f"/proc/{c.state.shim_pid}/cmdline").read_bytes()
        except OSError:
            return False
        return c.id.encode() in cmdline

    # -- create ------------------------------------------------------------------------------
    async def create(self, name: str | None, body: dict[str, Any]) -> tuple[Container, list[str]]:
        if not isinstance(body, dict):
            raise InvalidParameter("invalid JSON: the create request must be an object")
        image_ref = body.get("Image") or ""
        if not image_ref:
            raise InvalidParameter("no image specified" if not body.get("Cmd") else "No command specified")
        cgroup_control.prime_join()  # a start usually follows a create within milliseconds
        image = self.images.resolve(image_ref)
        config = build_config(body, image.config.get("config") or {})  # the image's container config
        host_config = build_host_config(body.get("HostConfig"))
        security_rules.check_request(config, host_config)
        resource_warnings = resource_rules.validate(host_config, resource_rules.Machine.probe())
        resource_rules.validate_devices(host_config)
        image_volumes = (image.config.get("config") or {}).get("Volumes") or {}  # the OCI config's "config"
        mounts = mountpoints.plan(host_config, config, image_volumes, self.get)
        endpoints = self.networking.plan(config, host_config, body.get("NetworkingConfig"),
                                         str(body.get("MacAddress") or ""))
        mode = str(host_config["NetworkMode"])
        if host_config.get("Links") and network_of_mode(mode) not in (None, "bridge"):
            # dockerd registers legacy links on the default bridge only: on a user network they are
            # the endpoint's Links (DNS aliases), and inspect's HostConfig.Links is null
            host_config["Links"] = None
        network_warnings = []
        if mode == "host" and host_config.get("PortBindings"):
            network_warnings.append("Published ports are discarded when using host network mode")
        host_config["LogConfig"] = logdrivers.resolve(host_config["LogConfig"], self.log_driver, self.log_defaults)
        if name:
            name = validate_name(name)
            self.check_name_free(name)
        else:
            name = generate_name({c.name for c in self._containers.values()} | self._reserved_names)
        if host_config.get("Links"):  # legacy links (on the default bridge): kept in dockerd's form
            host_config["Links"] = self.networking.legacy_links(host_config["Links"], name)
        cid = secrets.token_hex(32)
        while cid in self._containers or cid[:12].isdigit():
            cid = secrets.token_hex(32)
        if not config["Hostname"]:
            uts_host = host_config.get("UTSMode") == "host"
            if mode.startswith("container:"):
                try:
                    config["Hostname"] = self.get(mode.partition(":")[2]).config["Hostname"]
                except NotFound:  # the start says so
                    config["Hostname"] = cid[:12]
            else:
                config["Hostname"] = socket.gethostname() if mode == "host" or uts_host else cid[:12]
        argv = [*(config["Entrypoint"] or []), *(config["Cmd"] or [])]
        c = Container(id=cid, name=name, created=timestamps.now(), image=image_ref, image_id=image.id,
                      path=argv[0], args=argv[1:], config=config, host_config=host_config,
                      state_dir=str(self.root / cid), endpoints_config=endpoints)
        c.mounts = mounts
        self._reserved_names.add(name)
        try:
            async with self.serializer.operation(cid, "create", new=True):
                # Shielded: a create whose request goes away still ends with the container known.
                await asyncio.shield(self._create_files(c, image))
        finally:
            self._reserved_names.discard(name)
        return c, network_warnings + resource_warnings

    def check_name_free(self, name: str) -> None:
        """Docker's Conflict when ``name`` belongs to a container (or one being created)."""
        owner = next((other.id for other in self._containers.values() if other.name == name), None)
        if owner is None and name in self._reserved_names:
            owner = "(being created)"
        if owner is not None:
            raise Conflict(f'Conflict. The container name "/{name}" is already in use by container '
                           f'"{owner}". You have to remove (or rename) that container to be able '
                           "to reuse that name.")

    async def _create_files(self, c: Container, image: Any) -> None:
        """The container's directory, writable layer and record, then the container is known;
        nothing left on failure."""
        with leases.hold(self.images.metadata, "create"):  # the collector keeps the new dirs until the record exists
            try:
                await mountpoints.create_volumes(c.mounts, self.volumes)
                await blocking.run(self._write_new, c, image)
            except BaseException:
                await self.volumes.remove_anonymous(mountpoints.volume_names(c.mounts, anonymous_only=True),
                                                    lambda _: [])
                await blocking.run(self._discard_new, c)
                raise
        self._containers[c.id] = c
        self.event(c, "create")

    def _write_new(self, c: Container, image: Any) -> None:
        c.dir.mkdir(mode=0o700)
        self.images.prepare_container(c.id, image)
        c.save()

    def _discard_new(self, c: Container) -> None:
        with contextlib.suppress(Exception):
            self.images.remove_container_layer(c.id)
        shutil.rmtree(c.dir, ignore_errors=True)

    # -- start -------------------------------------------------------------------------------
    async def _start_by_policy(self, ref: str, by_policy: bool) -> None:
        await self.start(ref, by_policy=by_policy)

    async def start(self, ref: str, by_policy: bool = False) -> None:
        """Start ``ref``; ``by_policy``: a restart by its restart policy (see ``restart.py``).
        As dockerd, a container with ``AutoRemove`` that fails to start is removed (``docker run
        --rm`` waits for that); a failure once its process ran is removed by the exit path."""
        c = self.get(ref)
        try:
            async with self.serializer.operation(c.id, "start"):
                await self._start(c, by_policy)
        except DockyardError:
            live = self._live.get(c.id)
            if (c.host_config.get("AutoRemove") and c.id in self._containers and not c.state.running
                    and c.state.status == "created" and (live is None or live.start_failed is None)):
                await self._auto_remove(c)
            raise

    async def _start(self, c: Container, by_policy: bool) -> None:
        live = self.live(c)
        if by_policy and c.state.status != "restarting":
            return  # stopped or removed meanwhile
        if c.state.running and not by_policy:
            raise NotModified("container already started")
        if c.state.status in ("removing", "dead"):
            raise Conflict(f"cannot start a container that is {c.state.status}")
        if not by_policy:
            self.restarts.on_user_start(c)
        image = self.images.resolve(c.image_id)
        cgroup_control.prime_join()
        live.starting = True
        live.start_failed = None
        try:
            spec, network_finish = await blocking.run(self._prepare_start, c, image)
        except BaseException:
            live.starting = False
            raise
        # The cgroup (~1–2 ms of mkdirs and limits) is made while the runtime forks the init, and
        # the endpoints while it builds the container (both take milliseconds of kernel time); the
        # init joins the cgroup once both it and the cgroup exist, and runs (go) once all is done.
        cgroup_made = blocking.submit(cgroup_control.prepare, c, spec.devices)
        network_ready = asyncio.ensure_future(blocking.run(network_finish or (lambda: None)))
        # A failure from here until the process runs gives the network back (an exit does it later).

        def join_cgroup(pid: int) -> None:
            # Before go(), so everything the container runs inherits it; during spawn(), so the
            # kernel's wait on the first cgroup.procs write overlaps the rootfs set-up.
            cgroup = cgroup_made.result()  # its DockyardError (nothing left of the cgroup) fails the start
            try:
                cgroup.join(pid)
            except OSError as err:
                raise DockyardError(f"cannot join the cgroup of container {c.id[:12]}: {err}") from err

        try:
            spawned = await asyncio.to_thread(spawn, spec, on_init=join_cgroup)
        except BaseException as spawn_error:
            live.starting = False
            network_error, _ = await asyncio.gather(network_ready, asyncio.wrap_future(cgroup_made),
                                                    return_exceptions=True)
            await blocking.run(cgroup_control.discard, c.id)
            await blocking.run(self.networking.stop, c)
            if isinstance(network_error, DockyardError):
                # The endpoints failed first (a port already allocated…) and took the namespace the
                # init was joining with them: theirs is the error to report.
                raise network_error from spawn_error
            raise
        try:
            await network_ready
        except BaseException:
            live.starting = False
            await asyncio.to_thread(spawned.abort)
            await blocking.run(cgroup_control.discard, c.id)
            await blocking.run(self.networking.stop, c)
            raise
        # FinishedAt stays that of the last run (dockerd's SetRunning), so a restart shows when it stopped.
        c.state = State(status="running", pid=spawned.pid, shim_pid=spawned.shim_pid,
                        started_at=timestamps.now(), exit_code=0, finished_at=c.state.finished_at)
        # The record is queued before the shim is watched, so the record of an exit lands after it;
        # it is written while the container is released and awaited once it runs (dockerd, too,
        # checkpoints a container after its task started).
        saved = blocking.write_queued(c.save, c.snapshot())
        self._watch(c)
        self.health.start(c)
        self.event(c, "start")
        # Let attach requests that came before start connect, then release the container.
        waiters, live.start_waiters = live.start_waiters, []
        connected: list[asyncio.Future[None]] = []
        loop = asyncio.get_running_loop()
        for waiter in waiters:
            if not waiter.done():
                done: asyncio.Future[None] = loop.create_future()
                waiter.set_result(done)
                connected.append(done)
        if connected:
            await asyncio.wait(connected, timeout=5)
        live.starting = False
        await self._apply_console_size(c)
        try:
            await asyncio.to_thread(spawned.go)
        except DockyardError as exc:
            live.start_failed = exc
            c.state.error = exc.message
            c.save_soon()
            raise
        finally:
            try:
                await saved
            except Exception as err:  # the container runs: as dockerd, log that its record is stale
                log.error("cannot store the record of container %s: %s", c.id[:12], err)

    async def _apply_console_size(self, c: Container) -> None:
        """Give a tty container the size its client asked for at create (``HostConfig.ConsoleSize``,
        ``[height, width]``) before it runs, as Docker does: a shell's first ``stty size`` is right."""
        size = c.host_config.get("ConsoleSize") or [0, 0]
        if not c.tty or len(size) != 2 or not all(isinstance(x, int) and x > 0 for x in size):
            return
        with contextlib.suppress(DockyardError, OSError):
            await self.resize(c.id, size[0], size[1])

    def _prepare_start(self, c: Container, image: Any) -> tuple[ContainerSpec, Callable[[], None] | None]:
        """The blocking half of a start, on the pool: the writable layer, /etc files and the
        runtime's spec (the cgroup is made beside the fork: see ``_start``)."""
        lowerdirs, upper, work, rootfs = self.images.prepare_container(c.id, image)
        network, etc_files, finish = self.networking.start(c)
        try:
            return self._runtime_spec(c, lowerdirs, upper, work, rootfs, network, etc_files), finish
        except BaseException:
            self.networking.stop(c)
            raise

    def _runtime_spec(self, c: Container, lowerdirs: list[Path], upper: Path, work: Path, rootfs: Path, network: str,
                      etc_files: dict[str, Path]) -> ContainerSpec:
        logging = logdrivers.settings(c.host_config["LogConfig"]["Type"] or "json-file",
                                      c.host_config["LogConfig"]["Config"])
        spec = ContainerSpec(
            id=c.id, state_dir=c.dir, lowerdirs=[Path(p) for p in lowerdirs], upperdir=Path(upper),
            workdir=Path(work), rootfs=Path(rootfs), hostname=c.config["Hostname"], network=network,
            # legacy links' variables first: the container's own Env wins over them, as in Docker
            process=ProcessSpec(args=[c.path, *c.args], env=[*c.net.get("link_env", []), *c.config["Env"]],
                                cwd=c.config["WorkingDir"],
                                user=c.config["User"], tty=c.tty, open_stdin=c.config["OpenStdin"]),
            log_path=c.log_path if logging.enabled else Path(os.devnull),
            log_max_size=logging.max_size,
            log_max_file=logging.max_file,
            log_compress=logging.compress,
            etc_files=etc_files,
            mounts=mountpoints.runtime_mounts(c.mounts, self.volumes),
            devices=resource_rules.device_nodes(c.host_config),
            oom_score_adj=c.host_config.get("OomScoreAdj") or 0,
            security=security_rules.security_spec(c.host_config),  # caps, seccomp, masks, --init…
        )
        for stale in (c.dir / "exit", c.attach_socket):
            stale.unlink(missing_ok=True)
        return spec

    # -- exit handling ---------------------------------------------------------------------------
    def _watch(self, c: Container) -> None:
        live = self.live(c)
        try:
            fd = pidfd_open(c.state.shim_pid)
        except OSError:
            self._on_exit(c)
            return
        live.pidfd = fd
        asyncio.get_running_loop().add_reader(fd, self._on_shim_exit, c, fd)

    def _on_shim_exit(self, c: Container, fd: int) -> None:
        asyncio.get_running_loop().remove_reader(fd)
        os.close(fd)
        self.live(c).pidfd = -1
        reap(c.state.shim_pid)
        self._on_exit(c)

    def collect_if_gone(self, c: Container) -> bool:
        """Whether ``c`` is not running (any more). A running or paused container whose shim is
        gone (or that has no process at all) has its exit recorded here and now, from the shim's
        exit record if there is one, rather than waiting for a pidfd event that may never come."""
        if not c.state.running:
            return True
        if c.state.status == "restarting" or (c.state.pid > 0 and self._shim_alive(c)):
            return False
        live = self.live(c)
        if live.pidfd >= 0:
            asyncio.get_running_loop().remove_reader(live.pidfd)
            os.close(live.pidfd)
            live.pidfd = -1
            reap(c.state.shim_pid)
        log.warning("container %s has no process left: recording its exit", c.id[:12])
        self._on_exit(c)
        return True

    @contextlib.asynccontextmanager
    async def paused(self, c: Container) -> AsyncIterator[None]:
        """Keep ``c`` paused (if it runs) while the body runs, as Docker's commit does. Neither
        pausing nor unpausing fails the body: a container that exits meanwhile has its exit
        recorded and is not unpaused (its cgroup is gone)."""
        paused = False
        if c.state.status == "running":
            try:
                await cgroup_control.pause(c)
                paused = True
            except DockyardError as err:
                log.warning("%s is not paused: %s", c.id[:12], err.message)
        try:
            yield
        finally:
            if paused and not self.collect_if_gone(c) and c.state.status == "paused":
                try:
                    await cgroup_control.unpause(c)
                except DockyardError as err:
                    log.warning("cannot unpause %s: %s", c.id[:12], err.message)
                    self.collect_if_gone(c)

    def _record_exit(self, c: Container) -> None:
        record = shimproto.read_exit_record(c.dir)
        if record is None:
            c.state.exit_code = 255 if c.state.exit_code == 0 else c.state.exit_code
            c.state.error = c.state.error or "the container's shim exited without recording an exit code"
            c.state.finished_at = timestamps.now()
        else:
            c.state.exit_code = record.exit_code
            c.state.finished_at = record.finished_at
        c.state.status = "exited"
        c.state.pid = 0
        try:
            self.networking.stop(c)  # its endpoints, ports and namespace (a few ms of netlink and nft)
        except Exception:
            log.exception("releasing the network of %s failed", c.id[:12])
        c.state.oom_killed = cgroup_control.finish(c.id)  # reads the OOM counter, removes the cgroup
        live = self._live.get(c.id)
        if live is not None and live.start_failed is not None:
            c.state.status = "created"  # as Docker: a process that never ran leaves the container created
            c.state.error = live.start_failed.message
        c.save_soon()

    def _on_health_probe(self, c: Container, changed: str) -> None:
        if c.id in self._containers:
            c.save_soon()
        if changed:
            self.event(c, f"health_status: {changed}")

    def _on_exit(self, c: Container) -> None:
        self.health.stop(c)
        self._record_exit(c)
        self.event(c, "die", exitCode=str(c.state.exit_code))
        self.restarts.on_exit(c)
        live = self.live(c)
        waiters, live.exit_waiters = live.exit_waiters, []
        for w in waiters:
            if not w.done():
                w.set_result(c.state.exit_code)
        if c.host_config.get("AutoRemove"):
            task = asyncio.get_running_loop().create_task(self._auto_remove(c))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _auto_remove(self, c: Container) -> None:
        try:
            await self.remove(c.id, force=True, volumes=True)
        except NotFound:
            pass
        except Exception as exc:
            log.exception("auto-remove of %s failed", c.id[:12])
            if c.id in self._containers and c.state.status != "dead":
                self._removal_failed(c, f"cannot remove container {c.id}: {exc}")

    # -- wait --------------------------------------------------------------------------------------
    async def wait(self, ref: str, condition: str = "not-running") -> dict[str, Any]:
        c = self.get(ref)
        live = self.live(c)
        loop = asyncio.get_running_loop()
        if condition not in ("not-running", "next-exit", "removed", ""):
            raise InvalidParameter(f"invalid condition: {condition!r}")
        if condition == "removed":
            fut: asyncio.Future[int] = loop.create_future()
            live.remove_waiters.append(fut)
            code = await fut
        elif condition in ("not-running", "") and not (c.state.running or live.starting):
            code = c.state.exit_code
        else:
            fut = loop.create_future()
            live.exit_waiters.append(fut)
            code = await fut
        error = c.state.error or None
        return {"StatusCode": code, "Error": {"Message": error} if error else None}

    # -- signals -------------------------------------------------------------------------------------
    async def kill(self, ref: str, signal: str | None = None) -> None:
        c = self.get(ref)
        sig = parse_signal(signal)
        async with self.serializer.operation(c.id, "kill"):
            if not c.state.running:
                raise Conflict(f"Cannot kill container: {ref}: Container {c.id} is not running")
            stop_signal = c.config.get("StopSignal")
            ends = sig == signals.SIGKILL or not stop_signal or parse_signal(stop_signal) == sig
            if self.restarts.on_user_stop(c, cancel=ends):
                return  # it was waiting to restart: there is no process to signal
            self._signal(c, sig)
            exited = self._exit_future(c)
        if sig == signals.SIGKILL:
            await self._wait_exit(c, exited, 10)

    def _signal(self, c: Container, sig: int) -> None:
        if c.state.pid <= 0:
            return  # restarting or never ran: os.kill(0, …) would hit the daemon's own group
        self.event(c, "kill", signal=str(sig))
        try:
            os.kill(c.state.pid, sig)
        except ProcessLookupError:
            pass
        if sig == signals.SIGKILL:
            cgroup_control.thaw_for_kill(c)  # a frozen process gets SIGKILL only once thawed

    def _exit_future(self, c: Container) -> asyncio.Future[int]:
        """Resolved when the current run of ``c`` exits: at once when it is not running, or when its
        processes are gone (``collect_if_gone`` records that exit). Taken inside an operation, so
        that the run waited for is the one just signalled."""
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        if self.collect_if_gone(c):
            fut.set_result(c.state.exit_code)
        else:
            self.live(c).exit_waiters.append(fut)
        return fut

    async def _wait_exit(self, c: Container, exited: asyncio.Future[int], timeout: float | None) -> bool:
        """Whether the run ``exited`` belongs to ended within ``timeout``; a container whose shim
        died without telling us counts as ended (its exit is recorded then)."""
        try:
            await asyncio.wait_for(asyncio.shield(exited), timeout)
            return True
        except TimeoutError:
            return self.collect_if_gone(c)

    async def stop(self, ref: str, timeout: int | None = None, signal: str | None = None) -> None:
        c = self.get(ref)
        async with self.serializer.operation(c.id, "stop"):
            if not c.state.running:
                raise NotModified("container already stopped")
            if self.restarts.on_user_stop(c):
                self.event(c, "stop")
                return  # it was waiting to restart: now it is simply stopped
            sig = parse_signal(signal or c.config.get("StopSignal"), default=signals.SIGTERM)
            if timeout is None:
                timeout = c.config.get("StopTimeout")
                timeout = DEFAULT_STOP_TIMEOUT if timeout is None else timeout
            self._signal(c, sig)
            exited = self._exit_future(c)
        # The grace period passes outside the serializer: a kill or rm -f may come meanwhile.
        if await self._wait_exit(c, exited, None if timeout < 0 else timeout):
            self.event(c, "stop")
            return
        log.info("container %s did not stop after %ss: killing it", c.id[:12], timeout)
        async with self.serializer.operation(c.id, "kill"):
            if not exited.done():
                self._signal(c, signals.SIGKILL)
        if not await self._wait_exit(c, exited, 30):
            raise DockyardError(f"cannot stop container: {ref}: it did not exit after SIGKILL")
        self.event(c, "stop")

    # -- remove ---------------------------------------------------------------------------------------
    async def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        c = self.get(ref)
        async with self.serializer.operation(c.id, "remove"):
            await self.remove_held(c, force, volumes)

    async def remove_held(self, c: Container, force: bool = False, volumes: bool = False) -> None:
        """Remove ``c``, whose serializer the caller holds (``remove``, ``prune``)."""
        if c.state.running:
            if not force:
                raise Conflict(f'cannot remove container "/{c.name}": container is {c.state.status}: stop the '
                               "container before removing or force remove")
            self.restarts.on_user_stop(c)  # a container waiting to restart is now simply exited
            self._signal(c, signals.SIGKILL)
            if not await self._wait_exit(c, self._exit_future(c), 30):
                raise DockyardError(f"cannot remove container \"/{c.name}\": could not kill it")
        c.state.status = "removing"
        with contextlib.suppress(OSError):
            await blocking.write(c.save, c.snapshot())
        for hook in self.before_remove:
            await hook(c)
        self.restarts.forget(c)
        try:
            await blocking.run(self._remove_files, c)
        except Exception as exc:  # the writable layer resisted (EPERM, still mounted…)
            message = f"unable to remove filesystem for {c.id}: {exc}"
            self._removal_failed(c, message)
            raise DockyardError(message) from exc
        self._forget(c)
        try:
            if volumes:  # rm -v, --rm: the container's anonymous volumes go too
                await self.volumes.remove_anonymous(mountpoints.volume_names(c.mounts, anonymous_only=True),
                                                    self.volume_users)
        finally:
            self._answer_removed(c)

    def _finish_remove(self, c: Container, volumes: bool = False) -> None:
        """A removal the daemon's previous run left half done (recovery, before serving)."""
        self.restarts.forget(c)
        try:
            self._remove_files(c)
        except Exception as exc:
            self._removal_failed(c, f"unable to remove filesystem for {c.id}: {exc}")
            return
        self._forget(c)
        if volumes:
            self.volumes.remove_anonymous_now(mountpoints.volume_names(c.mounts, anonymous_only=True),
                                              self.volume_users)
        self._answer_removed(c)

    def _remove_files(self, c: Container) -> None:
        """The blocking half of a removal (on the pool): the writable layer (it may refuse), the
        cgroup, the record, then the container's directory."""
        self.images.remove_container_layer(c.id)
        cgroup_control.discard(c.id)
        c.delete_record()
        shutil.rmtree(c.dir, ignore_errors=True)

    def _forget(self, c: Container) -> None:
        """After the files are gone: drop the container (its anonymous volumes are unused from now)."""
        if self._containers.pop(c.id, None) is not None:
            self.event(c, "destroy")

    def _answer_removed(self, c: Container) -> None:
        """Answer everyone waiting for the removal of ``c``."""
        live = self._live.pop(c.id, None)
        if live is not None:
            for w in live.remove_waiters + live.exit_waiters:
                if not w.done():
                    w.set_result(c.state.exit_code)
            for waiter in live.start_waiters:  # attach requests waiting for a start that won't come
                if not waiter.done():
                    waiter.set_result(None)

    def _removal_failed(self, c: Container, message: str) -> None:
        """The container stays, ``dead`` with the error; whoever waits for its removal gets the
        error now (Docker's SetRemovalError) instead of waiting forever."""
        log.error("removing container %s failed: %s", c.id[:12], message)
        c.state.status = "dead"
        c.state.error = message
        c.save_soon()
        live = self._live.get(c.id)
        if live is not None:
            waiters, live.remove_waiters = live.remove_waiters, []
            for w in waiters:
                if not w.done():
                    w.set_result(c.state.exit_code)

    # -- networks ----------------------------------------------------------------------------------
    async def connect_network(self, network: str, ref: str, endpoint: dict[str, Any] | None) -> None:
        """``POST /networks/{id}/connect``: see ``ContainerNetworking.connect``."""
        c = self.get(ref)
        async with self.serializer.operation(c.id, "update"):
            await blocking.run(self.networking.connect, c, network, endpoint or {})
            await blocking.write(c.save, c.snapshot())

    async def disconnect_network(self, network: str, ref: str, force: bool = False) -> None:
        c = self.get(ref)
        async with self.serializer.operation(c.id, "update"):
            await blocking.run(self.networking.disconnect, c, network, force)
            await blocking.write(c.save, c.snapshot())

    # -- list / inspect ---------------------------------------------------------------------------------
    def inspect(self, ref: str) -> dict[str, Any]:
        c = self.get(ref)
        answer = c.inspect(self.images.graph_driver(c.id))
        for hook in self.inspect_hooks:
            hook(c, answer)
        return answer

    def list(self, all: bool = False, limit: int = -1, filters: Any = None) -> list[dict[str, Any]]:
        wanted = docker_filters.normalize(filters)
        for key in wanted:
            if key not in ("status", "name", "id", "label", "exited", "ancestor", "before", "since", "health",
                           "network"):
                raise InvalidParameter(f"invalid filter '{key}'")
        for health in wanted.get("health", []):
            if health not in ("starting", "healthy", "unhealthy", "none"):
                raise InvalidParameter(f"Unrecognised filter value for health: {health}")
        for status in wanted.get("status", []):
            if status not in ("created", "restarting", "running", "removing", "paused", "exited", "dead"):
                raise InvalidParameter(f"invalid filter 'status={status}'")
        chosen = []
        for c in sorted(self._containers.values(), key=lambda c: c.created, reverse=True):
            if not all and not c.state.running and not wanted.get("status") and not wanted.get("exited"):
                continue
            if not self._matches(c, wanted):
                continue
            chosen.append(c.summary())
        if limit > 0:
            chosen = chosen[:limit]
        return chosen

    def _matches(self, c: Container, wanted: docker_filters.Filters) -> bool:
        if "status" in wanted and c.state.status not in wanted["status"]:
            return False
        if "health" in wanted and (c.state.health or {}).get("Status", "none") not in wanted["health"]:
            return False
        # before/since: created strictly before/after the container named (RFC 3339 compares as text)
        if any(c.created >= self.get(ref).created for ref in wanted.get("before", [])):
            return False
        if any(c.created <= self.get(ref).created for ref in wanted.get("since", [])):
            return False
        if "id" in wanted and not any(c.id.startswith(v) for v in wanted["id"]):
            return False
        if "name" in wanted and not any(re.search(v, c.name) for v in wanted["name"]):
            return False
        if "exited" in wanted and (c.state.status != "exited"
                                   or str(c.state.exit_code) not in wanted["exited"]):
            return False
        if "ancestor" in wanted and not any(self._is_ancestor(c, v) for v in wanted["ancestor"]):
            return False
        if "network" in wanted and not any(  # by name or ID, as dockerd
                v == name or (len(v) >= 1 and str(cfg.get("NetworkID") or "").startswith(v))
                for name, cfg in c.endpoints_config.items() for v in wanted["network"]):
            return False
        labels = c.config.get("Labels") or {}
        for item in wanted.get("label", []):
            key, eq, value = item.partition("=")
            if key not in labels or (eq and labels[key] != value):
                return False
        return True

    def _is_ancestor(self, c: Container, ref: str) -> bool:
        try:
            return self.images.resolve(ref).id == c.image_id
        except DockyardError:
            return False

    # -- logs -----------------------------------------------------------------------------------------------
    def logs(self, ref: str, opts: logfiles.LogOptions) -> tuple[Container, AsyncIterator[bytes]]:
        c = self.get(ref)
        if c.host_config["LogConfig"].get("Type") == "none":
            raise logdrivers.ReadingUnsupported(logdrivers.NO_READING)
        return c, self._stream_logs(c, opts)

    async def _stream_logs(self, c: Container, opts: logfiles.LogOptions) -> AsyncIterator[bytes]:
        """The log of ``c``; a follower ends as soon as the run it follows exits (it waits on an exit
        future besides polling the file)."""
        live = self.live(c)
        exited: asyncio.Future[int] | None = None
        if opts.follow and (c.state.running or live.starting):
            exited = asyncio.get_running_loop().create_future()
            live.exit_waiters.append(exited)
        try:
            async for chunk in logfiles.stream_logs(c.log_path, opts, c.tty,
                                                    lambda: c.state.running or self.live(c).starting,
                                                    exited=exited):
                yield chunk
        finally:
            if exited is not None and not exited.done():
                exited.cancel()
                with contextlib.suppress(ValueError):
                    live.exit_waiters.remove(exited)

    # -- attach -----------------------------------------------------------------------------------------------
    async def connect_shim(self, c: Container) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """A connection to the container's shim; waits for the next ``start`` when the container is
        not running (as Docker's attach does: ``docker start -a`` attaches first, then starts).

        Returns None when the container is removed before it starts again."""
        live = self.live(c)
        if live.starting or not c.state.running:
            waiter: asyncio.Future[asyncio.Future[None] | None] = asyncio.get_running_loop().create_future()
            live.start_waiters.append(waiter)
            connected = await waiter
            if connected is None:
                return None
            try:
                return await open_shim(c.dir)
            except OSError:
                return None
            finally:
                if not connected.done():
                    connected.set_result(None)
        if c.state.running:
            try:
                return await open_shim(c.dir)
            except OSError:
                return None
        return None

    async def attach(self, ref: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, buffered: bytes,
                     *, stdin: bool, stdout: bool, stderr: bool, logs: bool, stream: bool,
                     detach_keys: str = "", head_read: asyncio.Future[None] | None = None) -> None:
        """Serve one hijacked attach connection until the container exits, the client leaves, or
        the client types the detach keys (the container keeps running). Nothing is written to the
        client before ``head_read`` is done (see ``dockyard.api.http``)."""
        c = self.get(ref)
        scanner = detachkeys.Scanner(detachkeys.parse(detach_keys or detachkeys.DEFAULT))
        self.event(c, "attach")
        try:
            if logs:
                if head_read is not None:
                    await head_read
                opts = logfiles.LogOptions(stdout=stdout, stderr=stderr)
                async for entry in logfiles.read_log(c.log_path, opts):
                    writer.write(logfiles.render(entry, opts, c.tty))
                await writer.drain()
            if not stream:
                return
            conn = await self.connect_shim(c)
            if conn is None:
                return
            shim_reader, shim_writer = conn
            wanted = {1} if c.tty else {k for k, on in ((1, stdout), (2, stderr)) if on}
            out = asyncio.create_task(self._pump_output(shim_reader, writer, wanted, c.tty, head_read))
            inp = (asyncio.create_task(self.pump_input(reader, shim_writer, buffered, scanner,
                                                         close_on_eof=bool(c.config.get("StdinOnce"))))
                   if stdin else None)
            try:
                if inp is None:
                    await out
                else:
                    done, _ = await asyncio.wait({out, inp}, return_when=asyncio.FIRST_COMPLETED)
                    if out not in done and inp.exception() is None and inp.result() == "eof":
                        await out  # stdin ended: keep delivering output until the container exits
            finally:
                for task in (out, inp):
                    if task is not None and not task.done():
                        task.cancel()
                        with contextlib.suppress(BaseException):
                            await task
                shim_writer.close()
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    @staticmethod
    async def _pump_output(shim: asyncio.StreamReader, client: asyncio.StreamWriter, wanted: set[int],
                           tty: bool, head_read: asyncio.Future[None] | None = None) -> None:
        """The shim's frames of the ``wanted`` kinds → the client, once it has read the head."""
        while True:
            try:
                header = await shim.readexactly(8)
                kind, size = shimproto.FRAME.unpack(header)
                payload = await shim.readexactly(size)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            if kind not in wanted:
                continue
            if head_read is not None:
                await head_read
            client.write(payload if tty else header + payload)
            await client.drain()

    @staticmethod
    async def pump_input(client: asyncio.StreamReader, shim: asyncio.StreamWriter, buffered: bytes,
                         scanner: detachkeys.Scanner | None, *, close_on_eof: bool) -> str:
        """Client stdin → the shim (a container's or an exec's); "eof" when the client closed its
        side (then the process's stdin is closed too if ``close_on_eof``), "detach" when ``scanner``
        found the detach keys (they are not passed on)."""
        data = buffered
        while True:
            if data:
                detached = False
                if scanner is not None:
                    data, detached = scanner.feed(data)
                if data:
                    shim.write(shimproto.encode_frame(0, data))
                    await shim.drain()
                if detached:
                    return "detach"
            try:
                data = await client.read(65536)
            except ConnectionError:
                data = b""
            if not data:
                if close_on_eof:
                    shim.write(shimproto.encode_frame(1, b""))
                    with contextlib.suppress(ConnectionError):
                        await shim.drain()
                return "eof"

    async def resize(self, ref: str, height: int, width: int) -> None:
        c = self.get(ref)
        if not c.state.running:
            raise Conflict(f"Container {c.id} is not running")
        if not c.tty:
            return
        try:
            await resize_terminal(c.dir, height, width)
        except OSError as exc:
            raise Conflict(f"cannot resize container {c.id[:12]}: {exc}") from exc

    # -- daemon shutdown -------------------------------------------------------------------------------------
    async def close(self) -> None:
        """Stop watching shims and probing health, let auto-removals and restarts in progress
        finish; the containers keep running without the daemon."""
        loop = asyncio.get_running_loop()
        probes = self.health.close()
        for live in self._live.values():
            if live.pidfd >= 0:
                loop.remove_reader(live.pidfd)
                os.close(live.pidfd)
                live.pidfd = -1
        await asyncio.gather(*probes, *self._tasks, *self.restarts.close(), return_exceptions=True)
        await blocking.run(self.networks.close, True)

    def counts(self) -> dict[str, int]:
        states = [c.state.status for c in self._containers.values()]
        return {"Containers": len(states), "ContainersRunning": states.count("running"),
                "ContainersPaused": states.count("paused"),
                "ContainersStopped": len(states) - states.count("running") - states.count("paused")}
