"""The per-container serializer (``containers/serializer.py``), the blocking pool
(``dockyard/blocking.py``) and the loop-native byte channel (``api/byte_pipes.py``)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from dockyard import blocking
from dockyard.api.byte_pipes import Abandoned, BodyPipe, Channel, ResponsePipe
from dockyard.containers.serializer import Serializer
from dockyard.errors import NotFound


def test_operations_on_one_container_run_one_at_a_time_in_arrival_order() -> None:
    async def main() -> list[str]:
        s = Serializer(lambda cid: True)
        trace: list[str] = []

        async def op(name: str) -> None:
            async with s.operation("c1", name):
                trace.append(f"{name} in ({s.phase('c1')})")
                await asyncio.sleep(0.01)
                trace.append(f"{name} out")

        await asyncio.gather(op("start"), op("remove"), op("rename"))
        assert s.phase("c1") == "idle" and s.busy() == {}
        return trace

    assert asyncio.run(main()) == ["start in (starting)", "start out", "remove in (removing)", "remove out",
                                   "rename in (renaming)", "rename out"]


def test_operations_on_different_containers_overlap() -> None:
    async def main() -> None:
        s = Serializer(lambda cid: True)
        inside = asyncio.Event()
        release = asyncio.Event()

        async def hold() -> None:
            async with s.operation("c1", "start"):
                inside.set()
                await release.wait()

        holder = asyncio.create_task(hold())
        await inside.wait()
        async with s.operation("c2", "stop"):  # does not wait for c1's start
            assert s.busy() == {"c1": "starting", "c2": "stopping"}
        release.set()
        await holder

    asyncio.run(main())


def test_an_operation_queued_behind_a_remove_finds_the_container_gone() -> None:
    async def main() -> None:
        present = {"c1"}
        s = Serializer(lambda cid: cid in present)

        async def remove() -> None:
            async with s.operation("c1", "remove"):
                await asyncio.sleep(0.01)
                present.discard("c1")

        async def start() -> None:
            async with s.operation("c1", "start"):
                raise AssertionError("started a removed container")

        removing = asyncio.create_task(remove())
        await asyncio.sleep(0)
        with pytest.raises(NotFound):
            await start()
        await removing
        assert s.phase("c1") == "removed"

    asyncio.run(main())


def test_create_runs_before_the_container_exists() -> None:
    async def main() -> None:
        s = Serializer(lambda cid: False)
        async with s.operation("new", "create", new=True):
            assert s.phase("new") == "creating"

    asyncio.run(main())


def test_the_pool_runs_work_off_the_loop_thread() -> None:
    async def main() -> None:
        loop_thread = threading.get_ident()
        assert await blocking.run(threading.get_ident) != loop_thread
        assert await blocking.run_stream(threading.get_ident) != loop_thread
        with pytest.raises(ZeroDivisionError):
            await blocking.run(lambda: 1 // 0)

    asyncio.run(main())


def test_record_writes_run_off_the_loop_in_the_order_queued(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from dockyard.containers.record import Container
    from dockyard.formats import timestamps

    c = Container(id="b" * 64, name="y", created=timestamps.now(), image="busybox", image_id="sha256:1",
                  path="true", args=[], config={}, host_config={}, state_dir=str(tmp_path))
    writers: list[str] = []
    original = Container.save

    def save(self: Container, snapshot: str | None = None) -> None:
        writers.append(threading.current_thread().name)
        original(self, snapshot)

    async def main() -> None:
        Container.save = save  # type: ignore[method-assign]
        try:
            for status in ("running", "paused", "running", "exited"):
                c.state.status = status
                c.save_soon()  # each a snapshot taken now; the loop does not wait
            c.state.status = "removing"  # changed after the last write was queued: not written
            await blocking.drain_records()
        finally:
            Container.save = original  # type: ignore[method-assign]

    asyncio.run(main())
    assert Container.load(tmp_path).state.status == "exited"
    assert len(writers) == 4 and all(name.startswith("dockyard-records") for name in writers)


def test_a_record_whose_directory_is_gone_is_not_written_back(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from dockyard.containers.record import Container
    from dockyard.formats import timestamps

    gone = tmp_path / "gone"
    c = Container(id="c" * 64, name="z", created=timestamps.now(), image="busybox", image_id="sha256:1",
                  path="true", args=[], config={}, host_config={}, state_dir=str(gone))

    async def main() -> None:
        c.save_soon()  # logged at debug, never raised into the loop, never re-creates the directory
        await blocking.drain_records()

    asyncio.run(main())
    assert not gone.exists()


def test_channel_from_a_thread_applies_back_pressure_and_keeps_order() -> None:
    async def main() -> None:
        channel = Channel(depth=2)
        put = []

        def produce() -> None:
            for i in range(50):
                channel.put_blocking(i)
                put.append(i)

        producer = threading.Thread(target=produce)
        producer.start()
        await asyncio.sleep(0.05)
        assert len(put) <= 2  # the thread waits for the loop to take items
        got = [await channel.get() for _ in range(50)]
        producer.join()
        assert got == list(range(50))

    asyncio.run(main())


def test_abandoning_a_channel_frees_a_blocked_thread() -> None:
    async def main() -> None:
        channel = Channel(depth=1)
        outcome: list[str] = []

        def produce() -> None:
            try:
                while True:
                    channel.put_blocking(b"x")
            except Abandoned:
                outcome.append("abandoned")

        producer = threading.Thread(target=produce)
        producer.start()
        await asyncio.sleep(0.02)
        channel.abandon()
        await asyncio.to_thread(producer.join)
        assert outcome == ["abandoned"]

    asyncio.run(main())


def test_body_pipe_and_response_pipe_carry_bytes_between_loop_and_thread() -> None:
    async def main() -> None:
        body = BodyPipe()

        async def chunks():  # type: ignore[no-untyped-def]
            for i in range(100):
                yield b"%d," % i

        feeding = asyncio.create_task(body.feed(chunks()))
        read = await blocking.run_stream(body.read)
        await feeding
        assert read == b"".join(b"%d," % i for i in range(100))

        pipe = ResponsePipe()
        pipe._FLUSH = 8

        def work(out: ResponsePipe) -> None:
            for i in range(100):
                out.write(b"%d;" % i)

        assert b"".join([c async for c in pipe.chunks(work)]) == b"".join(b"%d;" % i for i in range(100))

    asyncio.run(main())
