"""Engine API for registries: ``POST /images/create?fromImage=`` (pull) and ``POST /images/{name}/push``,
with Docker's JSON progress, and ``POST /auth`` (login).

A pull first resolves its manifest and config (:meth:`Puller.resolve`) before any byte of the
answer goes out, so a missing image or refused credentials is an HTTP error (``404 pull access
denied …``), as with dockerd; then the answer streams one JSON message per line while the layers
download, and an error from then on is a last ``{"errorDetail": …, "error": …}`` line.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from dockyard import filters as docker_filters
from dockyard.api.byte_pipes import ResponsePipe
from dockyard.api.http import JSONResponse, Request, Response, StreamResponse
from dockyard.containers.events import EventBus
from dockyard.distribution.auth import TokenCache, credentials_of, decode_registry_auth
from dockyard.distribution.endpoints import RegistrySettings
from dockyard.distribution.login import login
from dockyard.distribution.pull import ProgressReporter, Puller, Resolved
from dockyard.distribution.push import Pusher
from dockyard.distribution.search import search
from dockyard.errors import DockyardError, InvalidParameter
from dockyard.images.reference import Reference, parse_normalized
from dockyard.images.service import ImageService


def pull_reference(from_image: str, tag: str) -> Reference:
    """``fromImage`` + ``tag`` (a tag or a digest) as dockerd combines them."""
    ref = parse_normalized(from_image)
    if tag:
        if ref.is_canonical or (ref.tag is not None and ref.tag != tag):
            raise InvalidParameter(f"invalid reference: {from_image} with tag {tag}")
        if ":" in tag:
            return parse_normalized(f"{ref.trimmed()}@{tag}")
        return ref.with_tag(tag)
    return ref.tag_name_only()


def _progress_stream(reporter: ProgressReporter, work: Callable[[], None]) -> Response:
    """Run ``work`` in a thread, streaming ``reporter``'s messages; an error is the last line."""
    pipe = ResponsePipe()

    def send(message: dict[str, Any]) -> None:
        pipe.write((json.dumps(message) + "\n").encode())
        pipe.flush()

    def run(out: ResponsePipe) -> None:
        reporter.progress = send
        try:
            work()
        except DockyardError as e:
            send({"errorDetail": {"message": e.message}, "error": e.message})

    return StreamResponse(chunks=pipe.chunks(run))


class RegistryRoutes:
    """The registry routes of one daemon: its registry settings and its token cache."""

    def __init__(self, images: ImageService, registry: RegistrySettings, events: EventBus) -> None:
        self.images = images
        self.registry = registry
        self.events = events
        self.tokens = TokenCache()

    async def create(self, request: Request) -> Response:
        """Pull ``fromImage`` at ``tag``; with neither a tag nor a digest, every tag of the repository."""
        from_image, tag = request.arg("fromImage"), request.arg("tag")
        ref = pull_reference(from_image, tag)
        all_tags = not tag and parse_normalized(from_image).is_name_only
        credentials = decode_registry_auth(request.headers.get("x-registry-auth", ""))
        platform = request.arg("platform")
        puller = Puller(self.images, self.registry, self.tokens)
        if all_tags:
            tags = await asyncio.to_thread(puller.tags, ref, credentials)
            first = None
        else:
            tags = [ref.tag or ""]
            first = await asyncio.to_thread(puller.resolve, ref, credentials, platform)
        loop = asyncio.get_running_loop()

        def work() -> None:
            for name in tags:
                wanted = ref.with_tag(name) if all_tags else ref
                resolved = first or puller.resolve(wanted, credentials, platform)
                image_id = puller.pull(resolved, None if wanted.is_canonical else wanted)
                loop.call_soon_threadsafe(self._published, resolved, image_id)

        return _progress_stream(puller, work)

    async def distribution(self, request: Request) -> Response:
        """``GET /distribution/{name}/json``: what the registry has under that reference."""
        ref = parse_normalized(request.params["name"]).tag_name_only()
        credentials = decode_registry_auth(request.headers.get("x-registry-auth", ""))
        puller = Puller(self.images, self.registry, self.tokens)
        return JSONResponse(await asyncio.to_thread(puller.distribution_info, ref, credentials))

    async def push(self, request: Request) -> Response:
        """``POST /images/{name}/push?tag=``: every local tag of the repository when no tag is given."""
        credentials = decode_registry_auth(request.headers.get("x-registry-auth", ""))
        pusher = Pusher(self.images, self.registry, self.tokens)
        refs = pusher.local_tags(request.params["name"], request.arg("tag"))
        loop = asyncio.get_running_loop()

        def work() -> None:
            for ref in refs:
                pusher.push(ref, credentials)
                loop.call_soon_threadsafe(self.events.publish, "image", "push", ref.familiar(),
                                          {"name": ref.familiar()})

        return _progress_stream(pusher, work)

    def _published(self, resolved: Resolved, image_id: str) -> None:
        self.events.publish("image", "pull", resolved.reference.familiar(), {"name": resolved.reference.familiar()})

    async def auth(self, request: Request) -> Response:
        """``POST /auth``: check the body's credentials against their registry (``docker login``)."""
        body = await request.json(required=True)
        if not isinstance(body, dict):
            raise InvalidParameter("invalid auth configuration: not a JSON object")
        credentials = credentials_of(body)
        await asyncio.to_thread(login, self.registry, self.tokens, credentials, str(body.get("serveraddress") or ""))
        return JSONResponse({"Status": "Login Succeeded", "IdentityToken": ""})

    async def search(self, request: Request) -> Response:
        """``GET /images/search?term=&limit=&filters=``: the search API of the index the term names."""
        raw_limit = request.arg("limit")
        try:
            limit = int(raw_limit) if raw_limit else 0
        except ValueError:
            raise InvalidParameter(f"invalid value for limit: {raw_limit!r}") from None
        filters = docker_filters.normalize(request.json_arg("filters"))
        credentials = decode_registry_auth(request.headers.get("x-registry-auth", ""))
        results = await asyncio.to_thread(search, self.registry, self.tokens, credentials, request.arg("term"),
                                          limit, filters)
        return JSONResponse(results)
