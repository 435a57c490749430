"""The stage graph of a parsed Dockerfile, and variable substitution as Docker applies it.

Terms:

- *global args* (meta args): the ``ARG`` lines before the first ``FROM``. Only ``FROM`` (its base
  name and ``--platform``) sees them directly; a stage sees one only after re-declaring it with
  ``ARG name`` (no default: it inherits the global value).
- *build args*: the ``--build-arg`` values; they override an ``ARG``'s default, only where the ARG
  is declared. The *predefined args* (the proxy variables) need no declaration: they reach ``RUN``'s
  environment but are never stored in the image. The automatic platform args (``TARGETPLATFORM`` ...)
  are global; a stage re-declares them to use them.
- *dependencies*: a stage depends on the stage it is built ``FROM`` and the ones it copies from
  (``COPY --from``) or mounts (``RUN --mount=from=``); ``--target`` builds one stage and only the stages it
  depends on (:func:`stages_for_target`).
- *expansion*: which instructions substitute variables, as BuildKit's ``dockerfile2llb``: ``ENV``,
  ``LABEL``, ``ARG`` (defaults), ``COPY``/``ADD`` (sources, destination, ``--chown``, ``--chmod``),
  ``WORKDIR``, ``USER``, ``VOLUME``, ``STOPSIGNAL``, ``EXPOSE`` (split into words), and the values of
  ``RUN --mount``. ``RUN``/``CMD``/``ENTRYPOINT``/``SHELL``/``HEALTHCHECK`` are left to the shell; exec
  forms are never expanded. ``ENV`` wins over ``ARG`` of the same name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

from dockyard.build.dockerfile import DockerfileError
from dockyard.build.instructions import (
    Arg,
    Copy,
    Dockerfile,
    Env,
    Expose,
    Instruction,
    Label,
    Mount,
    Run,
    Stage,
    StopSignal,
    User,
    Volume,
    Workdir,
)
from dockyard.build.shell_words import ShellLexer, ShellWordError, go_quote

PROXY_ARGS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
              "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy")


def platform_args(target: str = "linux/amd64", build: str = "linux/amd64") -> dict[str, str]:
    """The automatic platform args for ``os/arch[/variant]`` target and build platforms."""
    out: dict[str, str] = {}
    for prefix, platform in (("TARGET", target), ("BUILD", build)):
        os_name, _, rest = platform.partition("/")
        arch, _, variant = rest.partition("/")
        out |= {f"{prefix}PLATFORM": platform, f"{prefix}OS": os_name, f"{prefix}ARCH": arch,
                f"{prefix}VARIANT": variant}
    return out


@dataclass
class ResolvedStage:
    """A stage with its base expanded: ``base_stage`` is the index of the stage it is built on, or
    None when ``base`` is an image (``scratch`` included); ``deps`` are the stages it needs."""

    stage: Stage
    base: str
    platform: str
    base_stage: int | None
    deps: set[int] = field(default_factory=set)
    image_sources: set[str] = field(default_factory=set)  # COPY --from / mount from= images


def global_args(dockerfile: Dockerfile, build_args: Mapping[str, str],
                automatic: Mapping[str, str] | None = None) -> dict[str, str]:
    """The values of the global args: a build arg wins over the default, which may use the args
    declared above it. Automatic platform args are included."""
    scope: dict[str, str] = dict(automatic if automatic is not None else platform_args())
    lexer = ShellLexer(dockerfile.escape)
    for arg in dockerfile.meta_args:
        for key, default in arg.pairs:
            if key in build_args:
                scope[key] = build_args[key]
            elif default is not None:
                scope[key] = _word(lexer, default, scope, arg)
    return scope


def _word(lexer: ShellLexer, text: str, env: Mapping[str, str], where: Instruction | Stage) -> str:
    try:
        return lexer.word(text, env)
    except ShellWordError as err:
        raise DockerfileError(err.message, line=where.line, instruction=_keyword(where)) from None


def _keyword(where: Instruction | Stage) -> str:
    return "FROM" if isinstance(where, Stage) else where.keyword


def _stage_by_name(stages: list[Stage], name: str, before: int) -> int | None:
    for stage in stages[:before]:
        if stage.name and stage.name == name.lower():
            return stage.index
    return None


def resolve_stages(dockerfile: Dockerfile, args: Mapping[str, str]) -> list[ResolvedStage]:
    """Each stage's base and platform expanded with the global args, and its dependencies."""
    if not dockerfile.stages:
        raise DockerfileError("dockerfile contains no stages to build")
    lexer = ShellLexer(dockerfile.escape)
    resolved: list[ResolvedStage] = []
    for stage in dockerfile.stages:
        base = _word(lexer, stage.base, args, stage)
        if not base:
            raise DockerfileError(f"base name ({stage.base}) should not be blank", line=stage.line, instruction="FROM")
        platform = ""
        if stage.platform:
            platform = _word(lexer, stage.platform, args, stage)
            if not platform:
                raise DockerfileError(f"empty platform value from expression {stage.platform}", line=stage.line,
                                      instruction="FROM")
        base_stage = _stage_by_name(dockerfile.stages, base, stage.index)
        item = ResolvedStage(stage, base, platform, base_stage)
        if base_stage is not None:
            item.deps.add(base_stage)
        for instruction in stage.instructions:
            for source in _sources_of(instruction):
                _add_source(dockerfile, item, source, instruction)
        resolved.append(item)
    return resolved


def _sources_of(instruction: Instruction) -> list[str]:
    if isinstance(instruction, Copy) and instruction.from_:
        return [instruction.from_]
    if isinstance(instruction, Run):
        return [mount.from_ for mount in instruction.mounts if mount.from_]
    return []


def _add_source(dockerfile: Dockerfile, item: ResolvedStage, source: str, instruction: Instruction) -> None:
    if "$" in source[:-1]:
        what = "--from" if isinstance(instruction, Copy) else "'from'"
        detail = ("variable expansion is not supported for --from, define a new stage with FROM using ARG "
                  "from global scope as a workaround") if isinstance(instruction, Copy) else \
            f"{what} doesn't support variable expansion, define alias stage instead"
        raise DockerfileError(detail, line=instruction.line, instruction=instruction.keyword)
    if source.isdigit():
        index = int(source)
        if index >= len(dockerfile.stages):
            raise DockerfileError(f"invalid stage index {index}", line=instruction.line, instruction=instruction.keyword)
    else:
        found = next((s.index for s in dockerfile.stages if s.name and s.name == source.lower()), None)
        if found is None:
            item.image_sources.add(source)
            return
        index = found
    if index >= item.stage.index:
        raise DockerfileError(f"cannot copy from stage {go_quote(source)}, it needs to be defined before current "
                              f"stage {go_quote(item.stage.name or str(item.stage.index))}",
                              line=instruction.line, instruction=instruction.keyword)
    item.deps.add(index)


def target_index(dockerfile: Dockerfile, target: str | None) -> int:
    """The stage ``--target`` names (case-insensitive), or the last stage."""
    if not target:
        return len(dockerfile.stages) - 1
    for stage in dockerfile.stages:
        if stage.name and stage.name == target.lower():
            return stage.index
    raise DockerfileError(f"target stage {go_quote(target)} could not be found")


def stages_for_target(resolved: list[ResolvedStage], target: int) -> list[int]:
    """The stages a build of ``target`` runs, in Dockerfile order: the target and what it needs."""
    needed: set[int] = set()
    todo = [target]
    while todo:
        index = todo.pop()
        if index in needed:
            continue
        needed.add(index)
        todo.extend(resolved[index].deps)
    return sorted(needed)


class StageScope:
    """The variables at one point of a stage: its base image's ENV, the ARGs declared so far (with
    build-arg or default values) and the ENVs set so far. :meth:`apply` expands one instruction
    and then records what it declares."""

    def __init__(self, image_env: Mapping[str, str], global_values: Mapping[str, str],
                 build_args: Mapping[str, str], escape: str = "\\") -> None:
        self.env: dict[str, str] = dict(image_env)
        self.args: dict[str, str] = {}
        self.global_values = global_values
        self.build_args = build_args
        self.lexer = ShellLexer(escape)

    def variables(self) -> dict[str, str]:
        """What ``$NAME`` sees now: declared ARGs, overridden by ENV."""
        return self.args | self.env

    def _word(self, text: str, instruction: Instruction) -> str:
        return _word(self.lexer, text, self.variables(), instruction)

    def apply(self, instruction: Instruction) -> Instruction:
        """``instruction`` with its variables expanded as Docker does, recorded into the scope."""
        word = self._word
        replace = dataclasses.replace
        out: Instruction = instruction
        if isinstance(instruction, Env):
            pairs = [(word(k, instruction), word(v, instruction)) for k, v in instruction.pairs]
            out = replace(instruction, pairs=pairs)
            self.env.update(pairs)
        elif isinstance(instruction, Label):
            out = replace(instruction, pairs=[(word(k, instruction), word(v, instruction))
                                              for k, v in instruction.pairs])
        elif isinstance(instruction, Arg):
            pairs_out: list[tuple[str, str | None]] = []
            for key, default in instruction.pairs:
                value = default if default is None else word(default, instruction)
                pairs_out.append((key, value))
                if key in self.build_args:
                    self.args[key] = self.build_args[key]
                elif value is not None:
                    self.args[key] = value
                elif key in self.global_values:
                    self.args[key] = self.global_values[key]
            out = replace(instruction, pairs=pairs_out)
        elif isinstance(instruction, Copy):
            out = replace(instruction, sources=[word(s, instruction) for s in instruction.sources],
                          dest=word(instruction.dest, instruction), chown=word(instruction.chown, instruction),
                          chmod=word(instruction.chmod, instruction))
        elif isinstance(instruction, Workdir):
            out = replace(instruction, path=word(instruction.path, instruction))
        elif isinstance(instruction, User):
            out = replace(instruction, user=word(instruction.user, instruction))
        elif isinstance(instruction, StopSignal):
            out = replace(instruction, signal=word(instruction.signal, instruction))
        elif isinstance(instruction, Volume):
            paths = [word(p, instruction) for p in instruction.paths]
            if any(not p for p in paths):
                raise DockerfileError("VOLUME specified can not be an empty string", line=instruction.line,
                                      instruction=instruction.keyword)
            out = replace(instruction, paths=paths)
        elif isinstance(instruction, Expose):
            ports: list[str] = []
            for port in instruction.ports:
                try:
                    ports += self.lexer.split(port, self.variables())
                except ShellWordError as err:
                    raise DockerfileError(err.message, line=instruction.line, instruction="EXPOSE") from None
            out = replace(instruction, ports=ports)
        elif isinstance(instruction, Run) and instruction.mounts:
            out = replace(instruction, mounts=[self._mount(m, instruction) for m in instruction.mounts])
        return out

    def _mount(self, mount: Mount, instruction: Instruction) -> Mount:
        return dataclasses.replace(mount, source=self._word(mount.source, instruction),
                                   target=self._word(mount.target, instruction),
                                   id=self._word(mount.id, instruction))
