"""The build stream's pure parts: frames of RUN output, stage output kept in order, the
credentials of X-Registry-Config."""

from __future__ import annotations

import asyncio
import base64
import json

from dockyard.api.build import registry_credentials
from dockyard.build.builder import _StageOutput
from dockyard.build.stream import BuildStream, frames_to_text


def frame(stream: int, data: bytes) -> bytes:
    return bytes([stream, 0, 0, 0]) + len(data).to_bytes(4, "big") + data


def test_frames_to_text_keeps_an_incomplete_frame() -> None:
    whole = frame(1, b"out\n") + frame(2, b"err\n")
    buffer = bytearray(whole + frame(1, b"partial")[:6])
    assert frames_to_text(buffer) == b"out\nerr\n"
    assert len(buffer) == 6
    buffer += frame(1, b"partial")[6:]
    assert frames_to_text(buffer) == b"partial"
    assert buffer == bytearray()


async def _messages(work: object) -> list[dict[str, object]]:
    stream = BuildStream()
    work(stream)  # type: ignore[operator]
    stream.close()
    return [json.loads(line) async for chunk in stream.chunks() for line in chunk.splitlines()]


def test_stage_output_in_dockerfile_order() -> None:
    def work(stream: BuildStream) -> None:
        out = _StageOutput(stream, [0, 1, 2])
        out.text(2, "c1 ")
        out.text(1, "b1 ")
        out.text(0, "a1 ")
        out.done(2)
        out.text(1, "b2 ")
        out.done(0)
        out.text(1, "b3 ")
        out.done(1)

    messages = asyncio.run(_messages(work))
    assert "".join(str(m["stream"]) for m in messages) == "a1 b1 b2 b3 c1 "


def test_a_failure_flushes_what_stages_printed() -> None:
    def work(stream: BuildStream) -> None:
        out = _StageOutput(stream, [0, 1])
        out.text(1, "second ")
        out.text(0, "first ")
        out.flush_all()
        stream.error("boom", 2)

    messages = asyncio.run(_messages(work))
    assert messages == [{"stream": "first "}, {"stream": "second "},
                        {"errorDetail": {"code": 2, "message": "boom"}, "error": "boom"}]


def test_quiet_keeps_only_the_id_and_errors() -> None:
    async def run() -> list[dict[str, object]]:
        stream = BuildStream(quiet=True)
        stream.text("Step 1/1 : FROM x\n")
        stream.aux("sha256:ab")
        stream.always("sha256:ab\n")
        stream.close()
        return [json.loads(line) async for chunk in stream.chunks() for line in chunk.splitlines()]

    assert asyncio.run(run()) == [{"aux": {"ID": "sha256:ab"}}, {"stream": "sha256:ab\n"}]


def test_messages_queued_together_go_out_as_one_chunk_of_lines() -> None:
    async def run() -> list[bytes]:
        stream = BuildStream()
        stream.text("Step 1/2 : FROM x\n")
        stream.text(" ---> abc\n")
        chunks = stream.chunks()
        first = await chunks.__anext__()
        stream.text("Step 2/2 : ENV a=b\n")
        stream.close()
        return [first] + [chunk async for chunk in chunks]

    assert asyncio.run(run()) == [b'{"stream": "Step 1/2 : FROM x\\n"}\n{"stream": " ---> abc\\n"}\n',
                                  b'{"stream": "Step 2/2 : ENV a=b\\n"}\n']


def test_registry_config_credentials_by_registry() -> None:
    config = {"https://index.docker.io/v1/": {"username": "hub", "password": "p1"},
              "127.0.0.1:5000": {"auth": base64.b64encode(b"local:p2").decode()}}
    header = base64.urlsafe_b64encode(json.dumps(config).encode()).decode().rstrip("=")
    assert registry_credentials(header, "docker.io").username == "hub"
    local = registry_credentials(header, "127.0.0.1:5000")
    assert (local.username, local.password) == ("local", "p2")
    assert registry_credentials(header, "other.example").anonymous
    assert registry_credentials("", "docker.io").anonymous
