"""Docker's defaults as the reference: the same probes in a real dockerd container and in ours.

Uses the private dockerd of ``test_cli_against_dockerd.py`` (its ``dockerd`` fixture) and the
shared dockyard ``daemon``; each script prints facts a breakout depends on, and both engines
must print the same. ``--privileged`` is not compared: dockerd cannot start a privileged container
on this machine (runc asks for CAP_SYS_RESOURCE, which the machine withholds), while dockyard
grants every capability it holds itself (``test_breakout.py`` checks what privileged lifts).
"""

from __future__ import annotations

import re

import pytest

from tests.integration.daemon_harness import Daemon
from tests.integration.test_cli_against_dockerd import Dockerd, dockerd  # noqa: F401 - the fixture

pytestmark = [pytest.mark.root, pytest.mark.docker_cli]

FACTS = (
    "grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp):' /proc/self/status; "
    "unshare -U true 2>/dev/null && echo unshare-user-ok || echo unshare-user-denied; "
    "mkdir -p /mnt && (mount -t tmpfs t /mnt 2>/dev/null && echo mount-ok || echo mount-denied); "
    "(hostname other 2>/dev/null && echo hostname-ok || echo hostname-denied); "
    "(echo x > /proc/sys/kernel/domainname) 2>/dev/null && echo procsys-rw || echo procsys-ro; "
    "cat /proc/keys /proc/timer_list 2>/dev/null | wc -c; ls -A /sys/firmware | wc -l"
)


def _facts(text: str) -> list[str]:
    return [re.sub(r"\s+", " ", line.strip()) for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize("flags", [(), ("--user", "1000"), ("--cap-drop", "ALL", "--cap-add", "CHOWN"),
                                   ("--security-opt", "no-new-privileges"), ("--cap-add", "SYS_ADMIN"),
                                   ("--security-opt", "seccomp=unconfined")],
                         ids=["default", "user", "cap-drop-all", "no-new-privileges", "sys-admin", "unconfined"])
def test_same_confinement_as_docker(dockerd: Dockerd, daemon: Daemon, flags: tuple[str, ...]) -> None:  # noqa: F811
    reference = dockerd.docker("run", "--rm", "--network", "none", *flags, "busybox", "sh", "-c", FACTS)
    assert reference.returncode == 0, reference.stderr
    ours = daemon.cli("run", "--rm", "--network", "none", *flags, "busybox", "sh", "-c", FACTS, timeout=60)
    assert ours.returncode == 0, ours.stderr
    assert _facts(ours.stdout) == _facts(reference.stdout)
