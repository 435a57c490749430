"""Exec instances: ``docker exec``'s create, start (attached or detached), resize and inspect.

Terms:
- *exec instance*: one process run inside a running container, created by
  ``POST /containers/{id}/exec`` (nothing runs yet) and run by ``POST /exec/{id}/start``. Its ID
  is 64 hex chars; its shim keeps state in ``containers/<cid>/exec/<exec id>/`` (see
  ``runtime/exec.py``), where ``exec.json`` holds the instance so that a restarted daemon still
  knows its exit code.
- The exec's output is not logged (as in Docker); an attached start relays it to the client,
  a detached one drops it.
- After a daemon restart, an exec that was running is only watched for its exit record: its
  output stream is gone with the old daemon's connection.
- *TTY*: whether the process gets a terminal is fixed at create (``Tty``); the start request's
  ``Tty`` only says how the output travels (raw, or in stdout/stderr frames), as in dockerd.
- *detach keys*: with a TTY, typing ``DetachKeys`` (default ctrl-p,ctrl-q; see ``detachkeys``) on
  an attached start ends the connection and leaves the process running (event ``exec_detach``);
  a TTY exec's stdin is not closed when the client closes its side (Docker closes it only without TTY).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import secrets
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dockyard import blocking
from dockyard.containers import detachkeys
from dockyard.containers import security as security_rules
from dockyard.containers.record import Container
from dockyard.containers.service import ContainerService, open_shim, resize_terminal
from dockyard.errors import Conflict, DockyardError, InvalidParameter, NotFound
from dockyard.runtime import shim as shimproto
from dockyard.runtime.exec import ExecSpec, init_cgroups, spawn_exec
from dockyard.runtime.spawn import reap
from dockyard.runtime.spec import ProcessSpec
from dockyard.runtime.syscalls import pidfd_open

log = logging.getLogger("dockyard.exec")

EXEC_DIR = "exec"
RECORD = "exec.json"
SHIM_EXIT_GRACE = 10.0
"""Seconds a removal waits for the exec shims of a dead container to exit."""
OCI_PREFIX = "OCI runtime exec failed: exec failed: unable to start container process: "


@dataclass
class ExecInstance:
    id: str
    container_id: str
    cmd: list[str]
    env: list[str] = field(default_factory=list)
    working_dir: str = ""
    user: str = ""
    tty: bool = False
    privileged: bool = False
    attach_stdin: bool = False
    attach_stdout: bool = False
    attach_stderr: bool = False
    detach_keys: str = ""
    console_size: list[int] | None = None
    running: bool = False
    started: bool = False
    exit_code: int | None = None
    pid: int = 0
    shim_pid: int = 0
    state_dir: str = ""

    def save(self, snapshot: str | None = None) -> None:
        """Write ``exec.json`` atomically (``snapshot``: the record as JSON, taken on the event loop
        when a worker thread writes it); the directory must exist (it never re-creates the directory
        of a container removed meanwhile)."""
        directory = Path(self.state_dir)
        tmp = directory / (RECORD + ".tmp")
        tmp.write_text(json.dumps(asdict(self)) if snapshot is None else snapshot)
        os.replace(tmp, directory / RECORD)

    def save_soon(self) -> None:
        """Queue the write of the record as it is now on the record writer (``blocking.write_soon``)."""
        blocking.write_soon(f"exec {self.id[:12]}", self.save, json.dumps(asdict(self)))

    def to_docker(self) -> dict[str, Any]:
        """Docker's ``GET /exec/{id}/json`` answer."""
        return {
            "ID": self.id,
            "Running": self.running,
            "ExitCode": self.exit_code,
            "ProcessConfig": {"tty": self.tty, "entrypoint": self.cmd[0] if self.cmd else "",
                              "arguments": self.cmd[1:], "privileged": self.privileged,
                              **({"user": self.user} if self.user else {})},
            "OpenStdin": self.attach_stdin,
            "OpenStderr": self.attach_stderr,
            "OpenStdout": self.attach_stdout,
            "CanRemove": False,
            "ContainerID": self.container_id,
            # dockerd keeps the parsed keys as bytes, which Go's JSON writes in base64 ("ctrl-x,y" → "GHk=")
            "DetachKeys": base64.b64encode(detachkeys.parse(self.detach_keys)).decode() if self.detach_keys else "",
            "Pid": self.pid,
        }

    @property
    def command_text(self) -> str:
        """dockerd's text in exec events: the entrypoint, a space, the arguments ("sh " for ``sh``)."""
        return self.cmd[0] + " " + " ".join(self.cmd[1:])


FIELDS = ("AttachStdin", "AttachStdout", "AttachStderr", "ConsoleSize", "DetachKeys", "Tty", "Env", "Cmd",
          "Privileged", "User", "WorkingDir")


def _bool(body: dict[str, Any], key: str) -> bool:
    return bool(body.get(key))


def canonical_fields(body: dict[str, Any]) -> dict[str, Any]:
    """The exec create body with its field names matched as Go's JSON decoder matches them
    (case-insensitively): docker-py, for one, sends ``detachKeys``."""
    names = {name.lower(): name for name in FIELDS}
    return {names.get(key.lower(), key): value for key, value in body.items()}


class ExecService:
    """Exec instances of the containers of one :class:`ContainerService`."""

    def __init__(self, containers: ContainerService) -> None:
        self.containers = containers
        self._execs: dict[str, ExecInstance] = {}
        self._pidfds: dict[str, int] = {}
        self._ended: dict[str, asyncio.Event] = {}  # exec ID → set when its watched shim exits
        containers.inspect_hooks.append(self._inspect_hook)
        containers.before_remove.append(self._await_shims)

    # -- lookup --------------------------------------------------------------------------------
    def get(self, exec_id: str) -> ExecInstance:
        e = self._execs.get(exec_id)
        if e is not None:
            try:
                self.containers.get(e.container_id)
                return e
            except NotFound:
                self.forget_container(e.container_id)
        raise NotFound(f"No such exec instance: {exec_id}")

    def _inspect_hook(self, c: Container, answer: dict[str, Any]) -> None:
        ids = [e.id for e in self._execs.values() if e.container_id == c.id]
        answer["ExecIDs"] = ids or None

    # -- recovery --------------------------------------------------------------------------------
    def recover(self) -> None:
        """Load every ``exec.json``; watch shims still running, take exit codes of the others."""
        for cdir in sorted(self.containers.root.iterdir()):
            edir = cdir / EXEC_DIR
            if not edir.is_dir():
                continue
            for directory in sorted(edir.iterdir()):
                try:
                    e = ExecInstance(**json.loads((directory / RECORD).read_text()))
                except (OSError, ValueError, TypeError):
                    shutil.rmtree(directory, ignore_errors=True)
                    continue
                self._execs[e.id] = e
                if e.running:
                    if not self._watch(e):
                        self._finish(e)

    # -- create ----------------------------------------------------------------------------------
    async def create(self, ref: str, body: Any) -> ExecInstance:
        if not isinstance(body, dict):
            raise InvalidParameter("invalid JSON: the exec request must be an object")
        body = canonical_fields(body)
        c = self.containers.get(ref)
        cmd = body.get("Cmd")
        if isinstance(cmd, str):
            cmd = [cmd]
        if not cmd or not isinstance(cmd, list):
            raise InvalidParameter("No exec command specified")
        self._check_running(c)
        env = body.get("Env") or []
        if not isinstance(env, list) or not all(isinstance(x, str) for x in env):
            raise InvalidParameter("invalid Env: expected a list of strings")
        for item in env:
            if not item.partition("=")[0]:
                raise InvalidParameter(f"invalid environment variable: {item}")
        keys = str(body.get("DetachKeys") or "")
        if keys:
            try:
                detachkeys.parse(keys)
            except InvalidParameter:
                raise DockyardError(f"Invalid escape keys ({keys}) provided") from None  # dockerd's 500
        console = body.get("ConsoleSize")
        if console is not None and (not isinstance(console, list) or len(console) != 2):
            raise InvalidParameter("invalid ConsoleSize: expected [height, width]")
        eid = secrets.token_hex(32)
        e = ExecInstance(
            id=eid, container_id=c.id, cmd=[str(x) for x in cmd], env=list(env),
            working_dir=str(body.get("WorkingDir") or ""), user=str(body.get("User") or ""),
            tty=_bool(body, "Tty"), privileged=_bool(body, "Privileged"),
            attach_stdin=_bool(body, "AttachStdin"), attach_stdout=_bool(body, "AttachStdout"),
            attach_stderr=_bool(body, "AttachStderr"), detach_keys=keys,
            console_size=[int(x) for x in console] if console else None,
            state_dir=str(c.dir / EXEC_DIR / eid),
        )
        async with self.containers.serializer.operation(c.id, "exec"):  # never into a directory being removed
            self._check_running(c)  # again: it may have stopped while this waited for its turn
            await blocking.run(self._write_new, e)
        self._execs[eid] = e
        self.containers.event(c, "exec_create: " + e.command_text, execID=eid)
        return e

    @staticmethod
    def _write_new(e: ExecInstance) -> None:
        Path(e.state_dir).mkdir(parents=True, mode=0o700)
        e.save()

    @staticmethod
    def _check_running(c: Container) -> None:
        if c.state.status == "paused":
            raise Conflict(f"Container {c.id} is paused, unpause the container before exec")
        if c.state.status == "restarting":
            raise Conflict(f"Container {c.id} is restarting, wait until the container is running")
        if not c.state.running:
            raise Conflict(f"Container {c.id} is not running")

    def inspect(self, exec_id: str) -> dict[str, Any]:
        return self.get(exec_id).to_docker()

    # -- start -----------------------------------------------------------------------------------
    async def _spawn(self, e: ExecInstance) -> Any:
        """Spawn the exec's shim and process (held before execve), through the container's
        serializer: no removal deletes the directory the new shim is given."""
        c = self.containers.get(e.container_id)
        async with self.containers.serializer.operation(c.id, "exec"):
            return await self._spawn_held(c, e)

    async def _spawn_held(self, c: Container, e: ExecInstance) -> Any:
        if e.running:
            raise Conflict(f"Error: Exec command {e.id} is already running")
        if e.started:
            raise Conflict(f"Error: Exec command {e.id} has already run")
        self._check_running(c)
        # as the container's process: legacy links' variables, then its Env (later entries win)
        env = [*((c.net or {}).get("link_env") or []), *(c.config.get("Env") or [])]
        keys = {item.partition("=")[0] for item in e.env}
        env = [item for item in env if item.partition("=")[0] not in keys] + e.env
        spec = ExecSpec(
            container_id=c.id, exec_id=e.id, init_pid=c.state.pid, state_dir=Path(e.state_dir),
            process=ProcessSpec(args=e.cmd, env=env, cwd=e.working_dir or c.config.get("WorkingDir") or "/",
                                user=e.user or c.config.get("User") or "", tty=e.tty, open_stdin=e.attach_stdin),
            hostname=c.config.get("Hostname") or "",
            cgroup_procs=init_cgroups(c.state.pid),
            security=self._security(c, e),
        )
        e.started = True
        try:
            spawned = await asyncio.to_thread(spawn_exec, spec)
        except (DockyardError, OSError) as exc:  # OSError: the init died under the spawn (a pipe broke)
            e.exit_code = 126
            e.save_soon()
            reason = exc.message if isinstance(exc, DockyardError) else f"the container's init is gone: {exc}"
            raise DockyardError(OCI_PREFIX + reason + ": unknown") from exc
        e.running = True
        e.pid = spawned.pid
        e.shim_pid = spawned.shim_pid
        e.save_soon()
        self._watch(e)
        self.containers.event(c, "exec_start: " + e.command_text, execID=e.id)
        return spawned

    @staticmethod
    def _security(c: Container, e: ExecInstance) -> Any:
        """The container's confinement; with ``Privileged``, as a privileged container's (all caps,
        no seccomp)."""
        host_config = dict(c.host_config)
        if e.privileged:
            host_config["Privileged"] = True
        return security_rules.security_spec(host_config)

    async def _go(self, e: ExecInstance, spawned: Any) -> str | None:
        """Release the process; Docker's error text when its execve failed."""
        if e.console_size and e.tty:
            with contextlib.suppress(DockyardError, OSError):
                await self.resize(e.id, e.console_size[0], e.console_size[1])
        try:
            await asyncio.to_thread(spawned.go)
        except DockyardError as exc:
            e.exit_code = exc.exit_code if exc.exit_code is not None else 126
            return OCI_PREFIX + exc.message + ": unknown"
        return None

    async def start_detached(self, exec_id: str) -> None:
        e = self.get(exec_id)
        spawned = await self._spawn(e)
        error = await self._go(e, spawned)
        if error is not None:
            raise DockyardError(error)

    async def prepare(self, exec_id: str) -> ExecInstance:
        """Checks before the stream is hijacked, so their errors are HTTP errors."""
        e = self.get(exec_id)
        c = self.containers.get(e.container_id)
        if e.running:
            raise Conflict(f"Error: Exec command {e.id} is already running")
        if e.started:
            raise Conflict(f"Error: Exec command {e.id} has already run")
        self._check_running(c)
        return e

    async def start_attached(self, e: ExecInstance, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                             buffered: bytes, *, raw: bool, head_read: asyncio.Future[None] | None = None) -> None:
        """Serve one hijacked exec start: run the process, relay its I/O until it ends or the
        client types the detach keys. ``raw``: the start request's ``Tty`` (output unframed).
        Nothing is written to the client before ``head_read`` is done (see ``dockyard.api.http``)."""
        try:
            try:
                spawned = await self._spawn(e)
            except DockyardError as exc:
                if head_read is not None:
                    await head_read
                writer.write(self._frame(raw, (exc.message + "\r\n").encode()))
                await writer.drain()
                return
            try:
                shim_reader, shim_writer = await open_shim(Path(e.state_dir))
            except OSError:
                await asyncio.to_thread(spawned.abort)
                raise
            wanted = {1} if e.tty else {k for k, on in ((1, e.attach_stdout), (2, e.attach_stderr)) if on}
            out = asyncio.create_task(ContainerService._pump_output(shim_reader, writer, wanted, raw, head_read))
            scanner = detachkeys.Scanner(detachkeys.parse(e.detach_keys or detachkeys.DEFAULT)) if e.tty else None
            inp = (asyncio.create_task(ContainerService.pump_input(reader, shim_writer, buffered, scanner,
                                                                   close_on_eof=not e.tty))
                   if e.attach_stdin else None)
            error = await self._go(e, spawned)
            try:
                if error is not None:
                    if head_read is not None:
                        await head_read
                    writer.write(self._frame(raw, (error + "\r\n").encode()))
                if inp is None:
                    await out
                else:
                    done, _ = await asyncio.wait({out, inp}, return_when=asyncio.FIRST_COMPLETED)
                    if out not in done and inp.exception() is None and inp.result() == "eof":
                        await out  # stdin ended: keep delivering output until the process exits
                    elif out not in done and inp.exception() is None:
                        self.containers.event(self.containers.get(e.container_id), "exec_detach", execID=e.id)
            finally:
                for task in (out, inp):
                    if task is not None and not task.done():
                        task.cancel()
                        with contextlib.suppress(BaseException):
                            await task
                shim_writer.close()
            # The shim wrote the exit record before closing our connection: take the code now,
            # so the client's next GET /exec/{id}/json already has it.
            if shimproto.read_exit_record(Path(e.state_dir)) is not None:
                self._finish(e)
            with contextlib.suppress(ConnectionError):
                await writer.drain()
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    @staticmethod
    def _frame(raw: bool, data: bytes) -> bytes:
        return data if raw else shimproto.encode_frame(1, data)

    async def resize(self, exec_id: str, height: int, width: int) -> None:
        e = self.get(exec_id)
        # As Docker: a resize sent right after start waits (up to 10 s) for the process to exist.
        deadline = asyncio.get_running_loop().time() + 10
        while not e.running and e.exit_code is None:
            if asyncio.get_running_loop().time() > deadline:
                raise DockyardError("timeout waiting for exec session ready")
            await asyncio.sleep(0.01)
        if not e.running:
            raise Conflict(f"Exec {e.id} is not running")
        if not e.tty:
            return
        try:
            await resize_terminal(Path(e.state_dir), height, width)
        except OSError as exc:
            raise Conflict(f"cannot resize exec {e.id[:12]}: {exc}") from exc

    # -- exit --------------------------------------------------------------------------------------
    def _watch(self, e: ExecInstance) -> bool:
        """Watch the exec's shim; False when it is already gone."""
        try:
            cmdline = Path(f"/proc/{e.shim_pid}/cmdline").read_bytes()
            if e.state_dir.encode() not in cmdline:
                return False
            fd = pidfd_open(e.shim_pid)
        except OSError:
            return False
        self._pidfds[e.id] = fd
        self._ended[e.id] = asyncio.Event()
        asyncio.get_running_loop().add_reader(fd, self._on_shim_exit, e, fd)
        return True

    def _on_shim_exit(self, e: ExecInstance, fd: int) -> None:
        asyncio.get_running_loop().remove_reader(fd)
        os.close(fd)
        self._pidfds.pop(e.id, None)
        reap(e.shim_pid)
        self._finish(e)
        ended = self._ended.pop(e.id, None)
        if ended is not None:
            ended.set()

    async def _await_shims(self, c: Container) -> None:
        """Before ``c``'s directory is removed: its exec shims write their exit records into it
        until they exit, which they do soon after the container's init (their pid namespace's)."""
        ended = [self._ended[e.id] for e in self._execs.values() if e.container_id == c.id and e.id in self._ended]
        if ended:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*(event.wait() for event in ended)), SHIM_EXIT_GRACE)

    def _take_exit_record(self, e: ExecInstance) -> None:
        record = shimproto.read_exit_record(Path(e.state_dir))
        if record is not None:
            e.exit_code = record.exit_code

    def _finish(self, e: ExecInstance) -> None:
        """Record the exit (once: both the stream's end and the shim's pidfd call this)."""
        was_running = e.running
        if not was_running and e.exit_code is not None:
            return
        self._take_exit_record(e)
        if e.exit_code is None:
            e.exit_code = 126 if not was_running else 255
        e.running = False
        e.pid = 0
        e.save_soon()
        try:
            c = self.containers.get(e.container_id)
        except DockyardError:
            return
        if was_running:
            self.containers.event(c, "exec_die", execID=e.id, exitCode=str(e.exit_code))

    def forget_container(self, container_id: str) -> None:
        for eid in [k for k, e in self._execs.items() if e.container_id == container_id]:
            self._execs.pop(eid, None)

    def close(self) -> None:
        loop = asyncio.get_event_loop()
        for fd in self._pidfds.values():
            loop.remove_reader(fd)
            os.close(fd)
        self._pidfds.clear()
