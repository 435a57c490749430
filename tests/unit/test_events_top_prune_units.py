"""The event bus and its filters, ``ps`` parsing for top, prune times, detach keys, ``container`` verbs."""

from __future__ import annotations

import asyncio

import pytest

from dockyard.cli.commands import VERBS
from dockyard.cli.detach_keys import parse_detach_keys
from dockyard.cli.failure import CliFailure
from dockyard.cli.verbs.container import target
from dockyard.cli.verbs.events import default_line
from dockyard.containers.events import EventBus, normalize_filters
from dockyard.containers.management import parse_ps
from dockyard.errors import DockyardError, InvalidParameter


def test_bus_replays_history_and_delivers_new_events_in_order() -> None:
    async def scenario() -> None:
        bus = EventBus()
        bus.publish("container", "create", "a" * 64, {"name": "one", "image": "busybox"})
        history, queue = bus.subscribe()
        bus.publish("container", "start", "a" * 64, {"name": "one", "image": "busybox"})
        assert [e.action for e in history] == ["create"]
        got = await asyncio.wait_for(queue.get(), 1)
        assert got.action == "start" and got.time_nano > history[0].time_nano
        bus.unsubscribe(queue)
        bus.publish("container", "die", "a" * 64)
        assert queue.empty()

    asyncio.run(scenario())


def test_event_shape_is_dockers() -> None:
    bus = EventBus()
    event = bus.publish("container", "die", "f" * 64, {"name": "web", "image": "busybox", "exitCode": "3"})
    doc = event.to_docker()
    assert doc["status"] == "die" and doc["id"] == "f" * 64 and doc["from"] == "busybox"
    assert doc["Type"] == "container" and doc["Action"] == "die" and doc["scope"] == "local"
    assert doc["Actor"] == {"ID": "f" * 64, "Attributes": {"name": "web", "image": "busybox", "exitCode": "3"}}
    assert doc["time"] == doc["timeNano"] // 10**9
    line = default_line(doc)
    assert line.endswith(f" container die {'f' * 64} (exitCode=3, image=busybox, name=web)")


def test_event_filters() -> None:
    bus = EventBus()
    ev = bus.publish("container", "exec_create: sh -c true", "abc123" + "0" * 58,
                     {"name": "web", "image": "busybox", "tier": "front"})
    assert ev.matches(normalize_filters({"event": ["exec_create"]}))
    assert ev.matches(normalize_filters({"container": ["web"]}))
    assert ev.matches(normalize_filters({"container": {"abc123": True}}))
    assert not ev.matches(normalize_filters({"container": ["other"]}))
    assert ev.matches(normalize_filters({"image": ["busybox"]}))
    assert ev.matches(normalize_filters({"label": ["tier=front"]}))
    assert not ev.matches(normalize_filters({"label": ["tier=back"]}))
    assert not ev.matches(normalize_filters({"type": ["image"]}))
    with pytest.raises(InvalidParameter):
        normalize_filters({"bogus": ["x"]})


def test_parse_ps_keeps_the_containers_rows_and_joins_the_command() -> None:
    output = ("UID PID PPID C STIME TTY TIME CMD\n"
              "root 10 1 0 10:00 ? 00:00:00 sleep 300\n"
              "root 11 10 0 10:00 ? 00:00:00 sh -c echo hi there\n"
              "root 12 1 0 10:00 ? 00:00:00 /usr/sbin/host-thing\n")
    top = parse_ps(output, {10, 11})
    assert top["Titles"] == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert top["Processes"] == [["root", "10", "1", "0", "10:00", "?", "00:00:00", "sleep 300"],
                                ["root", "11", "10", "0", "10:00", "?", "00:00:00", "sh -c echo hi there"]]
    with pytest.raises(DockyardError, match="Couldn't find PID field in ps output"):
        parse_ps("USER COMMAND\nroot init\n", {1})


def test_detach_keys() -> None:
    assert parse_detach_keys("ctrl-p,ctrl-q") == b"\x10\x11"
    assert parse_detach_keys("ctrl-@,a,ctrl-_") == b"\x00a\x1f"
    with pytest.raises(CliFailure, match=r"Invalid detach keys \(ctrl-pp\) provided"):
        parse_detach_keys("ctrl-pp")
    with pytest.raises(CliFailure, match=r"Invalid detach keys \(é\) provided"):  # two bytes: no key
        parse_detach_keys("é")


def test_container_management_verbs_map_to_top_level_verbs() -> None:
    assert target("container ls") == "ps" and target("container remove") == "rm"
    assert target("container exec") == "exec" and target("container prune") == "prune"
    for name, verb in VERBS.items():
        if name.startswith("container ") and name != "container prune":
            top = VERBS[target(name)]
            assert (verb.min_args, verb.max_args) == (top.min_args, top.max_args)
    for name in ("exec", "create", "start", "restart", "rename", "attach", "top", "port", "events"):
        assert name in VERBS
