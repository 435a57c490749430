"""``POST /build``: the classic builder over the Engine API (what ``DOCKER_BUILDKIT=0 docker build``
and docker-py's ``images.build`` send).

The body is the build context, a tar (plain or compressed). It is unpacked and the Dockerfile
parsed before the answer starts, so a context without a Dockerfile or a malformed Dockerfile is an
HTTP 400 with Docker's message (``dockerfile parse error on line 3: unknown instruction: FOO``),
as dockerd answers when nothing has been streamed yet. The build then streams its JSON messages
(:mod:`dockyard.build.stream`); a failed step ends the stream with an ``errorDetail``.

Query (Docker's): ``t`` (repeated), ``q``, ``dockerfile``, ``buildargs``, ``labels``, ``target``,
``platform``, ``networkmode``, ``rm`` (default true), ``forcerm``, ``nocache``, ``pull``,
``cachefrom`` (accepted, unused: local cache only), ``remote`` (refused), ``version`` (``2``,
BuildKit's session protocol, refused). ``X-Registry-Config`` holds the credentials for pulls
(base64url JSON: registry → AuthConfig).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from pathlib import Path
from typing import Any

from dockyard import blocking
from dockyard.api.build_cache import cache_of
from dockyard.api.byte_pipes import BodyPipe
from dockyard.api.distribution import pull_reference
from dockyard.api.http import Request, Response, StreamResponse
from dockyard.api.router import Router
from dockyard.build import phases
from dockyard.build.builder import BuildDirectory, Builder, BuildOptions, run_build
from dockyard.build.context import unpack_context
from dockyard.build.instructions import parse_dockerfile
from dockyard.build.known_digests import KnownDigests
from dockyard.build.shell_words import go_quote
from dockyard.build.stream import BuildStream
from dockyard.containers.service import ContainerService
from dockyard.distribution.auth import Credentials, TokenCache, credentials_of
from dockyard.distribution.endpoints import RegistrySettings
from dockyard.distribution.pull import Puller
from dockyard.errors import DockyardError, InvalidParameter
from dockyard.images.reference import Reference, parse_normalized
from dockyard.images.service import ImageService

BUILDKIT_REFUSED = ("buildkit not supported by daemon: dockyard has the classic builder only; "
                    "build with DOCKER_BUILDKIT=0 docker build")
DOCKER_HUB_AUTH = "https://index.docker.io/v1/"

# Builds whose stream has ended but whose directory is still being removed (asyncio holds tasks weakly).
_finishing: set[asyncio.Task[None]] = set()


def _string_map(request: Request, name: str, keep_null: bool = True) -> dict[str, str]:
    """A JSON object query parameter as strings; a null value is "" (or left out: ``keep_null`` False,
    as a build arg given without a value that the client could not fill in)."""
    value: Any = request.json_arg(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidParameter(f"invalid {name}: expected a JSON object")
    return {str(k): "" if v is None else str(v) for k, v in value.items() if v is not None or keep_null}


def _tags(values: list[str]) -> list[Reference]:
    """The ``t`` values as references (the default tag added), refused in Docker's words."""
    refs = []
    for value in values:
        if not value:
            continue
        try:
            ref = parse_normalized(value)
        except InvalidParameter as e:
            raise InvalidParameter(f"invalid tag {go_quote(value)}: {e.message}") from None
        if ref.is_canonical:
            raise InvalidParameter(f"invalid tag {go_quote(value)}: a build cannot be tagged with a digest")
        refs.append(ref.tag_name_only())
    return refs


def registry_credentials(header: str, domain: str) -> Credentials:
    """The credentials ``X-Registry-Config`` (registry → AuthConfig) holds for ``domain``."""
    if not header.strip():
        return Credentials()
    try:
        data = json.loads(base64.urlsafe_b64decode(header.strip() + "=" * (-len(header.strip()) % 4)) or b"{}")
    except (ValueError, binascii.Error):
        raise InvalidParameter("invalid X-Registry-Config header: not base64url-encoded JSON") from None
    if not isinstance(data, dict):
        return Credentials()
    wanted = {domain, f"https://{domain}", f"http://{domain}"}
    if domain == "docker.io":
        wanted |= {DOCKER_HUB_AUTH, "index.docker.io", "registry-1.docker.io"}
    for key, value in data.items():
        if isinstance(value, dict) and (key in wanted or key.rstrip("/") in wanted):
            return credentials_of(value)
    return Credentials()


def register(router: Router, root: Path, images: ImageService, containers: ContainerService,
             registry: RegistrySettings) -> None:
    tokens = TokenCache()

    @router.route("POST", "/build")
    async def build(request: Request) -> Response:
        phases.start()
        if request.arg("version") == "2":
            raise InvalidParameter(BUILDKIT_REFUSED)
        if request.arg("remote"):
            raise InvalidParameter(f"remote build contexts are not supported by dockyard (remote={request.arg('remote')}): "
                                   "send the context as the request body")
        tags = _tags(list(request.query.get("t", [])))
        dockerfile_name = request.arg("dockerfile") or "Dockerfile"
        build_args = _string_map(request, "buildargs", keep_null=False)
        labels = _string_map(request, "labels")
        stream = BuildStream(quiet=request.flag("q"))
        registry_config = request.headers.get("x-registry-config", "")
        directory = await blocking.run(BuildDirectory, root)
        build_dir = directory.path
        try:
            context = build_dir / "context"
            body = BodyPipe()
            feeding = asyncio.create_task(body.feed(request.iter_body()))
            digests = KnownDigests()
            try:
                text = await blocking.run_stream(unpack_context, body, context, dockerfile_name,  # type: ignore[arg-type]
                                                 digests)
                phases.mark("unpacked")
            except DockyardError as e:
                # dockerd answers a context without its Dockerfile with a 500; it is the request that
                # is wrong, so here it is a 400 with the same words
                if type(e) is DockyardError and e.message.startswith("Cannot locate specified Dockerfile"):
                    raise InvalidParameter(e.message) from None
                raise
            finally:
                body.abandon()
                await feeding
                phases.mark("body-read")
            dockerfile = parse_dockerfile(text.decode(errors="replace"), dockerfile_name)
            options = BuildOptions(
                dockerfile=dockerfile, context=context, tags=tags, build_args=build_args, labels=labels,
                target=request.arg("target"), platform=request.arg("platform"),
                network_mode=request.arg("networkmode") or "default", remove=request.flag("rm", True),
                force_remove=request.flag("forcerm"), no_cache=request.flag("nocache"), pull=request.flag("pull"),
                context_digests=digests)
        except BaseException:
            await blocking.run(directory.remove)
            raise

        async def pull(name: str, platform: str, always: bool) -> str:
            ref = pull_reference(name, "")
            if ref.tag is None and not ref.is_canonical:
                ref = ref.tag_name_only()
            credentials = registry_credentials(registry_config, ref.domain)
            puller = Puller(images, registry, tokens, progress=stream.raw)
            resolved = await asyncio.to_thread(puller.resolve, ref, credentials, platform)
            loop = asyncio.get_running_loop()

            def work() -> str:
                return puller.pull(resolved, None if ref.is_canonical else ref)

            image_id = await asyncio.to_thread(work)
            loop.call_soon(containers.events.publish, "image", "pull", ref.familiar(), {"name": ref.familiar()})
            return image_id

        builder = Builder(images, containers, cache_of(images, containers), pull, options, stream, build_dir)
        try:
            builder.prepare()
        except BaseException:
            await blocking.run(directory.remove)
            raise

        async def run() -> None:
            try:
                await run_build(builder)
            finally:
                phases.mark("built")
                await blocking.run(directory.remove)
                phases.mark("removed")
                phases.finish()

        task = asyncio.create_task(run())
        _finishing.add(task)
        task.add_done_callback(_finishing.discard)

        async def chunks() -> Any:
            ended = False
            try:
                async for chunk in stream.chunks():
                    yield chunk
                ended = True
            finally:
                # The stream ends once the build has; its directory is then still being removed,
                # which the response does not wait for (the task is held in _finishing until done).
                if not ended and not task.done():  # the client went away: the build stops
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)

        return StreamResponse(chunks=chunks())
