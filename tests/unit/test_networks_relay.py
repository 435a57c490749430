"""The loopback relay (dockyard/networks/relay.py): which forwards it serves, and a TCP round trip
from ``[::1]:<host port>`` to a "container" address — here a server of the test's on ``[::1]`` too
(no namespace is touched)."""

from __future__ import annotations

import socket
import threading

import pytest

from dockyard.networks.firewall import PortForward
from dockyard.networks.relay import LoopbackRelay, listen_address, relayed


def _free_port6() -> int:
    with socket.socket(socket.AF_INET6) as s:
        s.bind(("::1", 0))
        return int(s.getsockname()[1])


def test_what_the_relay_serves() -> None:
    assert relayed(PortForward("::", 8080, "fd12::2", 80, "tcp"))
    assert relayed(PortForward("::1", 8080, "fd12::2", 80, "tcp"))
    assert not relayed(PortForward("fd00::2", 8080, "fd12::2", 80, "tcp"))  # the DNAT serves it
    assert relayed(PortForward("::", 8080, "fd12::2", 80, "udp"))
    assert not relayed(PortForward("0.0.0.0", 8080, "172.18.0.2", 80, "tcp"))  # 127.0.0.1: route_localnet
    proxied = PortForward("::", 8080, "172.18.0.2", 80, "tcp")  # dockerd's userland proxy's 6-to-4
    assert relayed(proxied) and listen_address(proxied) == "::"
    assert listen_address(PortForward("fd00::2", 8080, "172.18.0.2", 80, "tcp")) == "fd00::2"
    assert listen_address(PortForward("::", 8080, "fd12::2", 80, "tcp")) == "::1"


def test_a_round_trip_and_the_listeners_go_with_drop() -> None:
    try:
        socket.socket(socket.AF_INET6).close()
    except OSError:
        pytest.skip("no IPv6")
    server = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    server.bind(("::1", 0))
    server.listen()
    target_port = server.getsockname()[1]

    def echo_once() -> None:
        conn, _ = server.accept()
        with conn:
            data = b""
            while chunk := conn.recv(1024):
                data += chunk
            conn.sendall(data.upper())

    threading.Thread(target=echo_once, daemon=True).start()
    relay = LoopbackRelay()
    host_port = _free_port6()
    try:
        relay.serve("c1", [PortForward("::", host_port, "::1", target_port, "tcp"),
                           PortForward("::", host_port, "::1", target_port, "udp")])
        assert relay.ports() == {"c1": [host_port, host_port]}  # TCP and UDP
        with socket.create_connection(("::1", host_port), timeout=5) as client:
            client.sendall(b"hello relay")
            client.shutdown(socket.SHUT_WR)
            got = b""
            while chunk := client.recv(1024):
                got += chunk
        assert got == b"HELLO RELAY"
        relay.drop("c1")
        assert relay.ports() == {}
        with pytest.raises(OSError):
            socket.create_connection(("::1", host_port), timeout=2).close()
    finally:
        relay.close()
        server.close()


def test_a_port_held_by_someone_else_is_skipped() -> None:
    holder = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    holder.bind(("::1", 0))
    holder.listen()
    relay = LoopbackRelay()
    try:
        relay.serve("c2", [PortForward("::1", holder.getsockname()[1], "::1", 9, "tcp")])
        assert relay.ports() == {"c2": []}
    finally:
        relay.close()
        holder.close()


def test_udp_sessions_carry_datagrams_both_ways() -> None:
    server = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    server.bind(("::1", 0))
    server.settimeout(5)

    def echo() -> None:
        for _ in range(2):
            data, addr = server.recvfrom(2048)
            server.sendto(data.upper(), addr)

    threading.Thread(target=echo, daemon=True).start()
    relay = LoopbackRelay()
    host_port = _free_port6()
    try:
        relay.serve("u1", [PortForward("::1", host_port, "::1", server.getsockname()[1], "udp")])
        assert relay.ports() == {"u1": [host_port]}
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as client:
            client.settimeout(5)
            client.connect(("::1", host_port))
            client.send(b"one")
            assert client.recv(2048) == b"ONE"
            client.send(b"two")  # the same session
            assert client.recv(2048) == b"TWO"
        relay.drop("u1")
        assert relay.ports() == {}
    finally:
        relay.close()
        server.close()
