"""``logs -f`` (``containers/logs.stream_logs``) against a json-file log that grows while it is read.

A writer process appends one record per ``write`` as fast as it can (as the shim does when a
container prints fast); followers start at different points of its output. Every follower must
see every line exactly once, in order: the backlog and the follow are one read of the file.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from dockyard.containers.logs import LogOptions, stream_logs

WRITER = """
import json, os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)
for i in range(int(sys.argv[2])):
    record = {"log": f"{i}\\n", "stream": "stdout", "time": "2026-01-01T00:00:00.000000000Z"}
    os.write(fd, (json.dumps(record) + "\\n").encode())
    if i % 5 == 4:
        time.sleep(0.00005)  # bursts: followers catch up with the writer and meet the end of the file
"""


async def follow(path: Path, writer: subprocess.Popen[bytes]) -> list[str]:
    opts = LogOptions(follow=True)
    chunks = [chunk async for chunk in stream_logs(path, opts, tty=True, running=lambda: writer.poll() is None,
                                                  poll=0.001)]
    return b"".join(chunks).decode().splitlines()


def test_follow_started_while_the_log_grows_loses_and_repeats_nothing(tmp_path: Path) -> None:
    lines = 60000
    path = tmp_path / "c-json.log"
    path.touch()
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(lines)])
    try:
        async def main() -> list[list[str]]:
            followers = []
            for n in range(16):  # each joins at a later point
                while path.stat().st_size < n * (256 << 10) and writer.poll() is None:
                    await asyncio.sleep(0.0005)
                followers.append(asyncio.create_task(follow(path, writer)))
            return await asyncio.gather(*followers)

        results = asyncio.run(main())
    finally:
        writer.kill()
        writer.wait()
    assert writer.returncode == 0
    expected = [str(i) for i in range(lines)]
    for got in results:
        missing = sorted(set(range(lines)) - {int(x) for x in got})
        assert not missing, f"{len(missing)} lines lost, the first: {missing[:10]}"
        assert got == expected


def test_follow_of_a_finished_log_ends_with_its_last_line(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    path.write_text("".join(f'{{"log":"{i}\\n","stream":"stdout","time":"2026-01-01T00:00:00Z"}}\n' for i in range(5)))

    async def main() -> list[bytes]:  # returns: the container is not running
        return [c async for c in stream_logs(path, LogOptions(follow=True, tail=2), tty=True, running=lambda: False)]

    assert b"".join(asyncio.run(main())) == b"3\n4\n"


def test_a_follower_ends_when_the_run_exits_not_at_its_next_poll(tmp_path: Path) -> None:
    """With an ``exited`` future the follower stops waiting for its next read as soon as the run ends
    (here the poll is an hour: only the future can end the wait), and still reads what was written
    before the exit."""
    path = tmp_path / "c-json.log"
    path.write_text('{"log":"a\\n","stream":"stdout","time":"2026-01-01T00:00:00Z"}\n')
    state = {"running": True}

    async def main() -> bytes:
        exited: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        chunks: list[bytes] = []

        async def read() -> None:
            async for chunk in stream_logs(path, LogOptions(follow=True), tty=True, running=lambda: state["running"],
                                           poll=3600, exited=exited):
                chunks.append(chunk)

        reader = asyncio.create_task(read())
        while not chunks:
            await asyncio.sleep(0.01)
        with path.open("a") as f:
            f.write('{"log":"b\\n","stream":"stdout","time":"2026-01-01T00:00:01Z"}\n')
        state["running"] = False
        exited.set_result(0)
        await reader
        return b"".join(chunks)

    assert asyncio.run(main()) == b"a\nb\n"
