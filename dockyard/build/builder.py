"""The executor: a parsed Dockerfile built into images, step by step, as Docker's classic builder.

Terms:

- *step*: one instruction; each makes an image (its *step image*) whose parent is the previous
  step's, so ``docker history`` shows one entry per step. Config-only instructions (ENV, CMD, ...)
  add no layer (``empty_layer``, ``created_by`` ``/bin/sh -c #(nop)  ENV a=b``); RUN runs a real
  container (created, started and waited through the containers service, with ``run``'s
  isolation) and commits its writable layer; COPY/ADD and WORKDIR change the rootfs without a
  container (:mod:`dockyard.build.rootfs_step`: the parent's layers under a fresh upper dir).
- *cache*: before a step runs, its key (:func:`dockyard.build.cache.step_key`: parent image,
  ``created_by``, the build args that apply, COPY/ADD's content checksum) is looked up; a hit
  reuses the image (`` ---> Using cache``). Every step image made is recorded.
- *stages*: only those the target needs are built (:func:`stages_for_target`), in Dockerfile
  order, one after the other (as the classic builder; their steps are numbered over all of them).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import copy
import dataclasses
import hashlib
import os
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard import blocking
from dockyard.build import phases
from dockyard.build.cache import BuildCache, step_key
from dockyard.build.copying import CopyPlan, is_url, parse_chmod, plan_copy
from dockyard.build.dockerfile import parse_heredoc_marker
from dockyard.build.instructions import (
    Add,
    Arg,
    Copy,
    Dockerfile,
    Instruction,
    Label,
    Mount,
    Run,
    Workdir,
    parse_trigger,
)
from dockyard.build.known_digests import KnownDigests
from dockyard.build.rootfs_client import RootfsStep
from dockyard.build.stages import (
    PROXY_ARGS,
    ResolvedStage,
    StageScope,
    global_args,
    platform_args,
    resolve_stages,
    stages_for_target,
    target_index,
)
from dockyard.build.steps import (
    ConfigStep,
    build_arg_env,
    command_argv,
    nop_cmd,
    nop_cmd_string,
    run_created_by,
    stage_config,
    workdir_path,
)
from dockyard.build.stream import BuildStream, frames_to_text
from dockyard.containers.logs import LogOptions
from dockyard.containers.service import ContainerService
from dockyard.errors import DockyardError, InvalidParameter, NotFound
from dockyard.images.commit import BuildStep, commit_step
from dockyard.images.reference import Reference
from dockyard.images.service import Image, ImageService, host_arch, parse_platform, short_id

# (reference, platform, always) -> image ID: pulls through the distribution service
Pull = Callable[[str, str, bool], Awaitable[str]]


class RunFailed(DockyardError):
    """A RUN whose command exited non-zero; ``code`` is its exit status."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class BuildOptions:
    """What ``POST /build`` asks for (Docker's query parameters, parsed)."""

    dockerfile: Dockerfile
    context: Path
    tags: list[Reference] = field(default_factory=list)
    build_args: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    target: str = ""
    platform: str = ""
    network_mode: str = "default"
    remove: bool = True
    force_remove: bool = False
    no_cache: bool = False
    pull: bool = False
    # the context files' digests, taken as they were unpacked (COPY reads them instead of the files)
    context_digests: KnownDigests | None = None


class _StageOutput:
    """The output of stages built in parallel, kept in Dockerfile order: the *head* stage (the
    first unfinished one) writes to the stream; the others are buffered until they become head."""

    def __init__(self, stream: BuildStream, order: list[int]) -> None:
        self.stream = stream
        self.order = list(order)
        self.buffers: dict[int, list[str]] = {index: [] for index in order}
        self.finished: set[int] = set()

    def text(self, stage: int, text: str) -> None:
        if self.order and stage == self.order[0]:
            self.stream.text(text)
        else:
            self.buffers.setdefault(stage, []).append(text)

    def flush_all(self) -> None:
        """Everything still buffered, in stage order (a failed build shows what ran)."""
        for stage in self.order[1:]:
            for text in self.buffers.pop(stage, []):
                self.stream.text(text)
        self.order = []

    def done(self, stage: int) -> None:
        self.finished.add(stage)
        while self.order and self.order[0] in self.finished:
            self.order.pop(0)
            if self.order:
                for text in self.buffers.pop(self.order[0], []):
                    self.stream.text(text)


_current_stage: contextvars.ContextVar[int] = contextvars.ContextVar("build_stage", default=-1)


@dataclass
class _State:
    """A stage while it is built: the image of its last step and its run config."""

    image_id: str | None
    config: dict[str, Any]
    scope: StageScope
    cmd_set: bool = False
    author: str = ""


class Builder:
    """Builds one request; ``stream`` gets the messages, ``pull`` fetches missing base images."""

    def __init__(self, images: ImageService, containers: ContainerService, cache: BuildCache, pull: Pull,
                 options: BuildOptions, stream: BuildStream, build_dir: Path) -> None:
        self.images = images
        self.containers = containers
        self.cache = cache
        self.pull = pull
        self.opts = options
        self.out = stream
        self.dir = build_dir
        self.stage_images: dict[int, str | None] = {}
        self.step: dict[int, int] = {}  # stage -> the number of its next step
        self.total = 0
        self.output: _StageOutput | None = None
        self.declared: set[str] = set()
        self.prepared = False
        os_name, arch, variant = parse_platform(options.platform) if options.platform else ("linux", *host_arch())
        self.platform = (os_name, arch, variant)
        platform_text = "/".join(p for p in self.platform if p)
        self.automatic = platform_args(platform_text, "/".join(p for p in ("linux", *host_arch()) if p))

    def prepare(self) -> None:
        """Check what can be checked before any output (the global args, the stages, the target);
        errors here are the request's (HTTP 400), as dockerd answers before it streams."""
        df = self.opts.dockerfile
        self.args = global_args(df, self.opts.build_args, self.automatic)
        self.declared |= {key for arg in df.meta_args for key, _ in arg.pairs}
        self.resolved = resolve_stages(df, self.args)
        if self.opts.target and not any(s.name == self.opts.target.lower() for s in df.stages):
            raise InvalidParameter(f"failed to reach build target {self.opts.target} in Dockerfile")
        self.target = target_index(df, self.opts.target)
        self.order = stages_for_target(self.resolved, self.target)
        self.prepared = True

    async def build(self) -> str:
        """Build the target; returns its image ID (tagged as asked)."""
        if not self.prepared:
            self.prepare()
        resolved, target, order, args = self.resolved, self.target, self.order, self.args
        if self.opts.labels:
            stage = resolved[target].stage
            label = Label("LABEL", stage.line, stage.line,
                          "LABEL " + " ".join(f'"{k}"=\'{v}\'' for k, v in sorted(self.opts.labels.items())),
                          sorted(self.opts.labels.items()))
            resolved[target] = dataclasses.replace(
                resolved[target], stage=dataclasses.replace(stage, instructions=[*stage.instructions, label]))
        meta = self.opts.dockerfile.meta_args
        self.total = len(meta) + sum(1 + len(resolved[i].stage.instructions) for i in order)
        for number, arg in enumerate(meta, 1):  # steps of their own, with no image
            self.out.text(f"Step {number}/{self.total} : {arg.original.strip()}\n")
        number = len(meta) + 1
        for index in order:
            self.step[index] = number
            number += 1 + len(resolved[index].stage.instructions)
        await self._stages(resolved, order, args)
        image_id = self.stage_images[target]
        if image_id is None:
            raise InvalidParameter("No image was generated. Is your Dockerfile empty?")
        unused = sorted(set(self.opts.build_args) - self.declared - set(PROXY_ARGS))
        if unused:
            self.out.text(f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed\n")
        self.out.aux(image_id)
        self.out.text(f"Successfully built {short_id(image_id)}\n")
        if self.out.quiet:
            self.out.always(image_id + "\n")
        phases.mark("tag")
        for ref in self.opts.tags:
            await blocking.run(self.images.tag, image_id, ref.familiar_name(), ref.tag or "latest")
            self.containers.events.publish("image", "tag", image_id, {"name": ref.familiar()})
            self.out.text(f"Successfully tagged {ref.familiar()}\n")
        return image_id

    # -- stages --------------------------------------------------------------------------------

    def _text(self, text: str) -> None:
        """Output of the stage being built in this task (in Dockerfile order, see _StageOutput)."""
        stage = _current_stage.get()
        if self.output is None or stage < 0:
            self.out.text(text)
        else:
            self.output.text(stage, text)

    def _header(self, original: str) -> None:
        stage = _current_stage.get()
        number = self.step[stage]
        self.step[stage] = number + 1
        phases.mark(f"step{number}")
        self._text(f"Step {number}/{self.total} : {original}\n")

    async def _stages(self, resolved: list[ResolvedStage], order: list[int], args: dict[str, str]) -> None:
        """Build the stages in ``order``; each starts once the stages it needs are built, so
        independent stages run in parallel. The first failure cancels the others."""
        self.output = _StageOutput(self.out, order)
        built: dict[int, asyncio.Future[None]] = {i: asyncio.get_running_loop().create_future() for i in order}

        async def one(index: int) -> None:
            _current_stage.set(index)
            for dep in sorted(resolved[index].deps):
                if dep in built:
                    await built[dep]
            self.stage_images[index] = await self._stage(resolved[index], args)
            assert self.output is not None
            self.output.done(index)
            built[index].set_result(None)

        tasks = [asyncio.create_task(one(index)) for index in order]
        try:
            for task in asyncio.as_completed(tasks):
                await task
        except BaseException:
            self.output.flush_all()  # what the stages printed before the failure, in order
            raise
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for future in built.values():
                if not future.done():
                    future.cancel()

    async def _base(self, rs: ResolvedStage) -> Image | None:
        if rs.base_stage is not None:
            image_id = self.stage_images.get(rs.base_stage)
            return None if image_id is None else await blocking.run(self.images.resolve, image_id)
        if rs.base.lower() == "scratch":
            return None
        platform = rs.platform or self.opts.platform
        if not self.opts.pull:
            with contextlib.suppress(NotFound):
                local = await blocking.run(self.images.resolve, rs.base)
                if not platform or _platform_matches(local.config, platform):
                    return local  # else, as dockerd: the image for that platform is pulled
        image_id = await self.pull(rs.base, platform, self.opts.pull)
        return await blocking.run(self.images.resolve, image_id)

    async def _stage(self, rs: ResolvedStage, args: dict[str, str]) -> str | None:
        stage = rs.stage
        self._header(stage.original)
        base = await self._base(rs)
        config = stage_config((base.config.get("config") if base else None) or {})
        triggers = list(config.get("OnBuild") or [])
        config["OnBuild"] = None
        env = dict(e.partition("=")[::2] for e in config.get("Env") or [])
        scope = StageScope(env, args, self.opts.build_args, self.opts.dockerfile.escape)
        state = _State(base.id if base else None, config, scope)
        if triggers:
            self._text(f"# Executing {len(triggers)} build trigger{'s' if len(triggers) > 1 else ''}\n")
            for expression in triggers:  # part of the FROM step: no " ---> <id>" of their own
                await self._dispatch(parse_trigger(expression, stage.line), state, announce=False)
        self._text(f" ---> {short_id(state.image_id) if state.image_id else ''}\n")  # scratch: " ---> "
        for instruction in stage.instructions:
            self._header(instruction.original.strip())
            await self._dispatch(instruction, state)
        return state.image_id

    # -- steps ---------------------------------------------------------------------------------

    async def _dispatch(self, instruction: Instruction, state: _State, announce: bool = True) -> None:
        expanded = state.scope.apply(instruction)
        if isinstance(expanded, Arg):
            self.declared |= {key for key, _ in expanded.pairs}
        if isinstance(expanded, Run):
            await self._run(expanded, state)
        elif isinstance(expanded, Copy):
            await self._copy(expanded, state)
        elif isinstance(expanded, Workdir):
            await self._workdir(expanded, state)
        else:
            step = ConfigStep(state.config, state.cmd_set)
            comment = step.apply(expanded)
            self._text(step.note)
            state.cmd_set = step.cmd_set
            if step.author is not None:
                state.author = step.author
            await self._commit_or_reuse(state, nop_cmd(state.config, comment), None, [], None)
        if announce:
            self._text(f" ---> {short_id(state.image_id) if state.image_id else ''}\n")

    def _probe_config(self, state: _State, cmd: list[str]) -> dict[str, Any]:
        probe = copy.deepcopy(state.config)
        probe["Cmd"] = cmd
        probe["Image"] = state.image_id or ""
        return probe

    async def _cached(self, key: str) -> str | None:
        if self.opts.no_cache:
            return None
        found = await blocking.run(self.cache.lookup, key)
        if found is not None:
            self._text(" ---> Using cache\n")
        return found

    async def _commit_or_reuse(self, state: _State, cmd: list[str], upper_step: RootfsStep | None,
                               build_env: list[str], checksum: str | None) -> None:
        """A step without a container: reuse its cached image or commit one (``upper_step``'s upper dir
        as the layer, none for a config-only step)."""
        key = step_key(state.image_id or "", " ".join(cmd), build_env, checksum)
        found = await self._cached(key)
        if found is not None:
            state.image_id = found
            return
        await self._commit(state, cmd, key, upper_step.upper if upper_step else None, "")

    async def _commit(self, state: _State, cmd: list[str], key: str, upper: Path | None, container_id: str) -> None:
        state.config["Image"] = state.image_id or ""
        step = BuildStep(state.image_id, copy.deepcopy(state.config), self._probe_config(state, cmd), upper,
                         container_id, state.author, self.platform)
        phases.mark("commit")
        image_id, size = await blocking.run(commit_step, self.images, step)
        phases.mark("committed")
        await blocking.run(self.cache.record, key, image_id, state.image_id or "", " ".join(cmd), size)
        phases.mark("recorded")
        state.image_id = image_id

    def _lowers(self, image_id: str | None) -> list[Path]:
        return self.images.rootfs_layers(image_id) if image_id else []

    async def _workdir(self, instruction: Workdir, state: _State) -> None:
        path = workdir_path(state.config.get("WorkingDir") or "", instruction.path)
        state.config["WorkingDir"] = path
        cmd = nop_cmd_string(state.config, "WORKDIR " + path)
        key = step_key(state.image_id or "", " ".join(cmd), [], None)
        found = await self._cached(key)
        if found is not None:
            state.image_id = found
            return
        step = RootfsStep(self.dir, await blocking.run(self._lowers, state.image_id))
        try:
            await blocking.run(step.mkdir, path)
            phases.mark("mkdir")
            await self._commit(state, cmd, key, step.upper, "")
        finally:
            await blocking.run(step.cleanup)

    async def _stage_or_image_layers(self, name: str) -> list[Path]:
        """The layers of the stage (name or index) or image ``name`` (pulled when missing)."""
        df = self.opts.dockerfile
        index = int(name) if name.isdigit() else next(
            (s.index for s in df.stages if s.name and s.name == name.lower()), None)
        if index is not None:
            image_id = self.stage_images.get(index)
        else:
            try:
                image_id = (await blocking.run(self.images.resolve, name)).id
            except NotFound:
                image_id = await self.pull(name, self.opts.platform, False)
        return await blocking.run(self._lowers, image_id)

    async def _copy_source(self, instruction: Copy) -> tuple[str, list[Path] | None]:
        """(context dir, None) or ("", the layers of the stage or image ``--from`` names)."""
        if not instruction.from_:
            return str(self.opts.context), None
        return "", await self._stage_or_image_layers(instruction.from_)

    async def _copy(self, instruction: Copy, state: _State) -> None:
        is_add = isinstance(instruction, Add)
        if is_add and instruction.from_:
            raise InvalidParameter("ADD does not support --from")
        context, source_lowers = await self._copy_source(instruction)
        heredocs = {doc.name: (state.scope.lexer.word(doc.body(), state.scope.variables()) if doc.expand
                               else doc.body()) for doc in instruction.contents}
        workdir = state.config.get("WorkingDir") or "/"
        command = "ADD" if is_add else "COPY"
        chown_text = f"--chown={instruction.chown}" if instruction.chown else ""  # no space after it, as Docker

        def step_of(plan: dict[str, Any]) -> tuple[list[str], str]:
            cmd = nop_cmd_string(state.config, f"{command} {chown_text}{plan['source_hash']} in {instruction.dest} ")
            return cmd, step_key(state.image_id or "", " ".join(cmd), [], str(plan["checksum"]))

        planned: CopyPlan | None = None
        if source_lowers is None and not instruction.chown and not any(is_url(src) for src in instruction.sources):
            # Nothing of the plan needs a mounted rootfs (no --chown to resolve, no --from, no download):
            # planned here, so a cache hit mounts nothing, and a miss writes this very plan
            planned = await blocking.run(_plan_from_context, context, list(instruction.sources), instruction.dest,
                                         workdir, is_add, instruction.chmod, heredocs, self.opts.context_digests)
            phases.mark("hashed")
            cmd, key = step_of({"checksum": planned.checksum, "source_hash": planned.source_hash})
            found = await self._cached(key)
            if found is not None:
                state.image_id = found
                return
        step = RootfsStep(self.dir, await blocking.run(self._lowers, state.image_id))
        try:
            if planned is None:
                plan = await blocking.run(
                    step.plan_copy, context=context, source_lowers=[str(p) for p in source_lowers]
                    if source_lowers is not None else None, sources=list(instruction.sources),
                    dest=instruction.dest, workdir=workdir, is_add=is_add, chown=instruction.chown,
                    chmod=instruction.chmod, heredocs=heredocs,
                    known_digests=self.opts.context_digests if source_lowers is None else None)
                cmd, key = step_of(plan)
                phases.mark("planned")
                found = await self._cached(key)
                if found is not None:
                    await blocking.run(step.skip)
                    state.image_id = found
                    return
            await blocking.run(step.apply, planned)
            phases.mark("applied")
            await self._commit(state, cmd, key, step.upper, "")
        finally:
            await blocking.run(step.cleanup)

    # -- RUN -----------------------------------------------------------------------------------

    async def _run(self, instruction: Run, state: _State) -> None:
        argv = command_argv(instruction.command, state.config) or []
        if instruction.command.files:
            argv = _with_heredocs(instruction, state)
        arg_env = build_arg_env(state.scope.args, state.config.get("Env") or [])
        cmd = run_created_by(argv, arg_env)
        proxies = sorted(f"{k}={v}" for k, v in self.opts.build_args.items()
                         if k in PROXY_ARGS and k not in state.scope.args)
        mounts_text = [await self._mount_key(m) for m in instruction.mounts]
        key = step_key(state.image_id or "", " ".join(cmd), [*proxies, *mounts_text, instruction.network],
                       None)
        found = await self._cached(key)
        if found is not None:
            state.image_id = found
            return
        if state.image_id is None:
            raise DockyardError("failed to run the RUN command: the stage has no filesystem yet (FROM scratch)")
        network = instruction.network if instruction.network != "default" else self.opts.network_mode
        host_config: dict[str, Any] = {"NetworkMode": network or "default", "LogConfig": {"Type": "json-file"}}
        if instruction.security == "insecure":
            raise InvalidParameter("granting entitlement security.insecure is not allowed by build daemon "
                                   "configuration")
        if self.opts.context_digests is not None and any(m.type == "bind" and not m.from_ and not m.readonly
                                                         for m in instruction.mounts):
            self.opts.context_digests.forget()  # the command may write into the context
        exports: list[RootfsStep] = []
        try:
            exported = await self._export_bind_sources(instruction.mounts, exports)
            self._mounts(instruction.mounts, host_config, exported)
            async with contextlib.AsyncExitStack() as held:
                # sharing=locked: one RUN at a time uses that cache (across the daemon's builds)
                for name in sorted({cache_mount_name(m) for m in instruction.mounts
                                    if m.type == "cache" and m.sharing == "locked"}):
                    await held.enter_async_context(_CACHE_LOCKS.setdefault(name, asyncio.Lock()))
                await self._run_container(instruction, state, argv, arg_env, proxies, cmd, key, host_config)
        finally:
            for step in exports:
                await blocking.run(step.cleanup)

    async def _mount_key(self, m: Mount) -> str:
        """What of a RUN mount goes into the step's key: a bind's content (a checksum of the context
        files it shows, or the image of the stage it comes from); a cache mount by name only (its
        content is meant to change under a cached step)."""
        text = f"{m.type}:{m.id or m.target}:{m.target}:{m.source}:{m.readonly}"
        if m.type == "bind" and m.from_:
            lowers = await self._stage_or_image_layers(m.from_)
            return f"{text}:from:{':'.join(p.parent.name for p in lowers)}"
        if m.type == "bind":
            source = _inside(self.opts.context, m.source or "/")
            return f"{text}:content:{await blocking.run(tree_checksum, source)}"
        return text

    async def _export_bind_sources(self, mounts: list[Mount], exports: list[RootfsStep]) -> dict[int, str]:
        """For each ``type=bind,from=`` mount: its source copied out of that stage's (or image's) layers."""
        out: dict[int, str] = {}
        for m in mounts:
            if m.type != "bind" or not m.from_:
                continue
            lowers = await self._stage_or_image_layers(m.from_)
            step = RootfsStep(self.dir, lowers)
            exports.append(step)
            out[id(m)] = await blocking.run(step.export, m.source or "/")
        return out

    async def _run_container(self, instruction: Run, state: _State, argv: list[str], arg_env: list[str],
                             proxies: list[str], cmd: list[str], key: str, host_config: dict[str, Any]) -> None:
        body = {
            "Image": state.image_id, "Cmd": argv, "Entrypoint": [""],
            "Env": [*(state.config.get("Env") or []), *arg_env, *proxies],
            "WorkingDir": state.config.get("WorkingDir") or "", "User": state.config.get("User") or "",
            "Labels": {}, "HostConfig": host_config,
            "AttachStdout": True, "AttachStderr": True,
        }
        container, _warnings = await self.containers.create(None, body)
        phases.mark("created")
        cid = container.id
        self._text(f" ---> Running in {cid[:12]}\n")
        ok = command_failed = False
        try:
            await self.containers.start(cid)
            phases.mark("started")
            await self._follow(cid)
            status = await self.containers.wait(cid)
            phases.mark("exited")
            code = int(status.get("StatusCode") or 0)
            if code != 0:
                command_failed = True
                raise RunFailed(f"The command '{' '.join(argv)}' returned a non-zero code: {code}", code)
            upper = self.images.snapshots.container_dir(cid) / "upper"
            await self._commit(state, cmd, key, upper, cid)
            ok = True
        finally:
            # Kept only as Docker keeps it: the container of a failed command, without forcerm. An
            # interrupted build (cancelled, another stage failed) removes it, running or not.
            asked = (ok and self.opts.remove) or self.opts.force_remove
            if asked or not (ok or command_failed):
                await asyncio.shield(self._remove(cid, announce=asked))
                phases.mark("removed")

    async def _remove(self, cid: str, announce: bool) -> None:
        with contextlib.suppress(DockyardError):
            await self.containers.remove(cid, force=True, volumes=True)
            if announce:
                self._text(f"Removing intermediate container {cid[:12]}\n")

    async def _follow(self, cid: str) -> None:
        _c, chunks = self.containers.logs(cid, LogOptions(follow=True))
        pending = bytearray()
        async for chunk in chunks:
            pending += chunk
            text = frames_to_text(pending)
            if text:
                self._text(text.decode(errors="replace"))

    def _mounts(self, mounts: list[Mount], host_config: dict[str, Any], exported: dict[int, str]) -> None:
        """RUN --mount as the container's binds and tmpfs mounts (see the README for the limits);
        ``exported``: the copies made for ``type=bind,from=`` mounts (by ``id`` of the mount)."""
        binds: list[str] = []
        tmpfs: dict[str, str] = {}
        for m in mounts:
            target = m.target or ""
            if m.type == "cache":
                if not target:
                    raise InvalidParameter("mount target must be specified for cache mounts")
                directory = self.images.root / "build-cache-mounts" / cache_mount_name(m)
                directory.mkdir(parents=True, exist_ok=True)
                if m.uid is not None or m.gid is not None or m.mode is not None:
                    if m.mode is not None:
                        os.chmod(directory, m.mode)
                    os.chown(directory, m.uid if m.uid is not None else -1, m.gid if m.gid is not None else -1)
                binds.append(f"{directory}:{target}" + (":ro" if m.readonly else ""))
            elif m.type == "bind":
                if not target:
                    raise InvalidParameter("mount target must be specified")
                source = exported.get(id(m)) or _inside(self.opts.context, m.source or "/")
                binds.append(f"{source}:{target}" + (":ro" if m.readonly else ""))
            elif m.type == "tmpfs":
                if not target:
                    raise InvalidParameter("mount target must be specified")
                tmpfs[target] = f"size={m.size}" if m.size else ""
            elif m.type == "secret":
                name = m.id or os.path.basename(m.target or m.source)
                if m.required:
                    raise InvalidParameter(f"secret {name} not found: the classic build API has no secrets "
                                           "(use BuildKit's `docker buildx build --secret`)")
                # BuildKit leaves out a secret that is not required and not given
                self._text(f"[Warning] secret {name} not found (the classic build API has no secrets): "
                           "its mount is left out\n")
            else:
                raise InvalidParameter(f"mount type {m.type} is not supported by dockyard's classic builder")
        if binds:
            host_config["Binds"] = binds
        if tmpfs:
            host_config["Tmpfs"] = tmpfs


def _plan_from_context(context: str, sources: list[str], dest: str, workdir: str, is_add: bool, chmod: str,
                       heredocs: dict[str, str], known_digests: KnownDigests | None) -> CopyPlan:
    """A COPY/ADD from the context without ``--chown`` planned without the step's rootfs (the plan
    :meth:`RootfsStep.plan_copy` would make), for the cache lookup and, on a miss, to be applied."""
    return plan_copy(Path(context), sources, dest, workdir=workdir, is_add=is_add, chown=None,
                     chmod=parse_chmod(chmod) if chmod else None, heredocs=heredocs, known_digests=known_digests)


def _platform_matches(config: dict[str, Any], platform: str) -> bool:
    """Whether an image config (os, architecture, variant) is of ``platform`` (``os/arch[/variant]``)."""
    os_name, arch, variant = parse_platform(platform)
    return (str(config.get("os") or "linux") == os_name and str(config.get("architecture") or "") == arch
            and (not variant or str(config.get("variant") or "") == variant))


_CACHE_LOCKS: dict[str, asyncio.Lock] = {}  # cache mount name -> its lock (sharing=locked)


def cache_mount_name(m: Mount) -> str:
    """The directory name of a cache mount under ``<root>/build-cache-mounts``: by ``id``, else target."""
    return hashlib.sha256((m.id or m.target).encode()).hexdigest()[:32]


def tree_checksum(path: str) -> str:
    """sha256 over the names, kinds, modes, owners, link targets and contents below ``path`` (never mtimes)."""
    digest = hashlib.sha256()
    for current, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files + [d for d in dirs if os.path.islink(os.path.join(current, d))]) + \
                [d for d in dirs if not os.path.islink(os.path.join(current, d))]:
            full = os.path.join(current, name)
            st = os.lstat(full)
            digest.update(f"{os.path.relpath(full, path)}\0{st.st_mode:o}\0{st.st_uid}:{st.st_gid}\0".encode())
            if os.path.islink(full):
                digest.update(os.readlink(full).encode())
            elif os.path.isfile(full):
                with open(full, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        digest.update(chunk)
            digest.update(b"\0")
    if os.path.isfile(path):
        with open(path, "rb") as f:
            digest.update(f.read())
    return digest.hexdigest()


def _inside(root: Path, path: str) -> str:
    from dockyard.build.scope import resolve_in_scope

    return resolve_in_scope(str(root), path)


def _with_heredocs(instruction: Run, state: _State) -> list[str]:
    """RUN with heredocs (shell form): a command that is only ``<<EOF`` runs the body as the shell's
    script; otherwise the heredocs follow the command line, for the shell to read as heredocs."""
    docs = instruction.command.files
    if not instruction.command.shell:
        raise InvalidParameter("RUN in exec form does not take heredocs")
    shell = list(state.config.get("Shell") or ["/bin/sh", "-c"])
    line = (instruction.command.args or [""])[0]
    if len(docs) == 1 and parse_heredoc_marker(line.strip()) is not None:
        return [*shell, docs[0].body()]
    text = line + "\n" + "".join(doc.content + ("" if doc.content.endswith("\n") or not doc.content else "\n")
                                  + doc.name + "\n" for doc in docs)
    return [*shell, text]


class BuildDirectory:
    """A private directory for one build (its context and its steps' dirs) under ``<root>/tmp``;
    :meth:`remove` deletes it."""

    def __init__(self, root: Path) -> None:
        base = root / "tmp"
        base.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = Path(tempfile.mkdtemp(prefix="build-", dir=base))

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


async def run_build(builder: Builder) -> None:
    """Run ``builder``, turning a failure into the stream's error message; the stream is closed after."""
    try:
        await builder.build()
    except RunFailed as e:
        builder.out.error(e.message, e.code)
    except DockyardError as e:
        builder.out.error(e.message)
    except asyncio.CancelledError:
        raise
    except Exception as e:  # the stream must end with an error, never in silence
        builder.out.error(f"build failed: {e}")
    finally:
        builder.out.close()
