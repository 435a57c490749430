"""Docker's full ``HostConfig`` field set for ``GET /containers/{id}/json``.

Clients (Docker's CLI templates, docker-py, compose) read fields the engine does not act on, such
as ``PortBindings`` or ``ShmSize``; Docker always sends them. :func:`fill_host_config` adds every
field the record does not hold, with the value dockerd shows for a container created without it
(docker-py sends few fields: dockerd then shows ``null`` for the lists it did not get, not ``[]``).
The record itself is never changed: the answer gets a new dict.
"""

from __future__ import annotations

import copy
from typing import Any

from dockyard.containers.record import Container

HOST_CONFIG_DEFAULTS: dict[str, Any] = {
    "Binds": None, "ContainerIDFile": "", "PortBindings": None, "VolumeDriver": "", "VolumesFrom": None,
    "ConsoleSize": [0, 0], "Annotations": None, "CapAdd": None, "CapDrop": None, "CgroupnsMode": "host",
    "Dns": None, "DnsOptions": None, "DnsSearch": None, "ExtraHosts": None, "GroupAdd": None, "IpcMode": "private",
    "Cgroup": "", "Links": None, "OomScoreAdj": 0, "PidMode": "", "Privileged": False, "PublishAllPorts": False,
    "ReadonlyRootfs": False, "SecurityOpt": None, "UTSMode": "", "UsernsMode": "", "ShmSize": 67108864,
    "Runtime": "runc", "Isolation": "", "CpuShares": 0, "Memory": 0, "NanoCpus": 0, "CgroupParent": "",
    "BlkioWeight": 0, "BlkioWeightDevice": None, "BlkioDeviceReadBps": None, "BlkioDeviceWriteBps": None,
    "BlkioDeviceReadIOps": None, "BlkioDeviceWriteIOps": None, "CpuPeriod": 0, "CpuQuota": 0,
    "CpuRealtimePeriod": 0, "CpuRealtimeRuntime": 0, "CpusetCpus": "", "CpusetMems": "", "Devices": None,
    "DeviceCgroupRules": None, "DeviceRequests": None, "MemoryReservation": 0, "MemorySwap": 0,
    "MemorySwappiness": None, "OomKillDisable": False, "PidsLimit": None, "Ulimits": None, "CpuCount": 0,
    "CpuPercent": 0, "IOMaximumIOps": 0, "IOMaximumBandwidth": 0, "AutoRemove": False,
    "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
}


def fill_host_config(c: Container, answer: dict[str, Any]) -> None:
    """An inspect hook: Docker's missing ``HostConfig`` fields, with Docker's defaults."""
    host_config = answer.get("HostConfig")
    if not isinstance(host_config, dict):
        return
    filled = {key: copy.deepcopy(value) for key, value in HOST_CONFIG_DEFAULTS.items() if key not in host_config}
    answer["HostConfig"] = {**host_config, **filled}
