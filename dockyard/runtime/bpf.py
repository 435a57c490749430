"""The bpf(2) commands a cgroup v2 device program needs: load, attach to a cgroup, query, detach.

Terms:
- *program fd*: what ``BPF_PROG_LOAD`` returns; the kernel's verifier has accepted the instructions.
- *attach*: ``BPF_PROG_ATTACH`` of a program to a cgroup directory's fd for ``BPF_CGROUP_DEVICE``.
  The cgroup then holds its own reference: the program stays attached after every fd is closed (and
  after the daemon exits) until it is detached or the cgroup is removed.
- ``BPF_F_ALLOW_MULTI``: the flag runc attaches with; the kernel runs every program attached to
  the cgroup and its ancestors and allows an access only if each of them allows it.
"""

from __future__ import annotations

import ctypes
import errno
import os
from pathlib import Path

from dockyard.runtime.syscalls import bpf

# bpf(2) commands, program type, attach type and flags (include/uapi/linux/bpf.h)
BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_GET_FD_BY_ID = 13
BPF_PROG_QUERY = 16
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2
LICENSE = b"Apache"  # as runc: a device program calls no GPL-only helper
LOG_SIZE = 1 << 16


class _ProgLoad(ctypes.Structure):
    _fields_ = [("prog_type", ctypes.c_uint32), ("insn_cnt", ctypes.c_uint32), ("insns", ctypes.c_uint64),
                ("license", ctypes.c_uint64), ("log_level", ctypes.c_uint32), ("log_size", ctypes.c_uint32),
                ("log_buf", ctypes.c_uint64), ("kern_version", ctypes.c_uint32), ("prog_flags", ctypes.c_uint32),
                ("prog_name", ctypes.c_char * 16)]


class _Attach(ctypes.Structure):
    _fields_ = [("target_fd", ctypes.c_uint32), ("attach_bpf_fd", ctypes.c_uint32),
                ("attach_type", ctypes.c_uint32), ("attach_flags", ctypes.c_uint32),
                ("replace_bpf_fd", ctypes.c_uint32)]


class _Query(ctypes.Structure):
    _fields_ = [("target_fd", ctypes.c_uint32), ("attach_type", ctypes.c_uint32),
                ("query_flags", ctypes.c_uint32), ("attach_flags", ctypes.c_uint32),
                ("prog_ids", ctypes.c_uint64), ("prog_cnt", ctypes.c_uint32)]


class _GetFdById(ctypes.Structure):
    _fields_ = [("prog_id", ctypes.c_uint32), ("next_id", ctypes.c_uint32), ("open_flags", ctypes.c_uint32)]


def load_device_program(program: bytes, name: str = "dockyard_dev") -> int:
    """Load device-program instructions; returns the program fd (the caller closes it). When the
    verifier refuses them, the OSError carries its log."""
    code = ctypes.create_string_buffer(program, len(program))
    license = ctypes.create_string_buffer(LICENSE)
    attr = _ProgLoad(prog_type=BPF_PROG_TYPE_CGROUP_DEVICE, insn_cnt=len(program) // 8,
                     insns=ctypes.addressof(code), license=ctypes.addressof(license),
                     prog_name=name.encode()[:15])
    try:
        return bpf(BPF_PROG_LOAD, attr, "bpf(BPF_PROG_LOAD) of a device program")
    except OSError as err:
        if err.errno != errno.EACCES and err.errno != errno.EINVAL:
            raise
        # Load again with the verifier's log, to say why.
        log = ctypes.create_string_buffer(LOG_SIZE)
        attr.log_level, attr.log_size, attr.log_buf = 1, LOG_SIZE, ctypes.addressof(log)
        try:
            fd = bpf(BPF_PROG_LOAD, attr, "bpf(BPF_PROG_LOAD) of a device program")
        except OSError as again:
            text = log.value.decode(errors="replace").strip()
            raise OSError(again.errno, f"{again.strerror}; verifier log:\n{text}") from None
        return fd


def attached_programs(cgroup_dir: int) -> list[int]:
    """The IDs of the device programs attached to the cgroup directory fd ``cgroup_dir`` itself."""
    room = 64
    while True:
        ids = (ctypes.c_uint32 * room)()
        attr = _Query(target_fd=cgroup_dir, attach_type=BPF_CGROUP_DEVICE, prog_ids=ctypes.addressof(ids),
                      prog_cnt=room)
        try:
            bpf(BPF_PROG_QUERY, attr, "bpf(BPF_PROG_QUERY) of a cgroup's device programs")
        except OSError as err:
            if err.errno != errno.ENOSPC:
                raise
            room = attr.prog_cnt  # the kernel said how many there are
            continue
        return list(ids[:attr.prog_cnt])


def _program_fd(prog_id: int) -> int:
    return bpf(BPF_PROG_GET_FD_BY_ID, _GetFdById(prog_id=prog_id), f"bpf(BPF_PROG_GET_FD_BY_ID, {prog_id})")


def attach(cgroup_dir: int, prog_fd: int, flags: int) -> None:
    """Attach device program ``prog_fd`` to the cgroup directory fd ``cgroup_dir`` with ``flags``
    (``BPF_F_ALLOW_MULTI``; 0 = exclusive: no descendant may then attach one)."""
    attr = _Attach(target_fd=cgroup_dir, attach_bpf_fd=prog_fd, attach_type=BPF_CGROUP_DEVICE, attach_flags=flags)
    bpf(BPF_PROG_ATTACH, attr, "bpf(BPF_PROG_ATTACH) of a device program to a cgroup")


def detach_device_program(cgroup_dir: int, prog_id: int) -> None:
    """Detach program ``prog_id`` from the cgroup directory fd ``cgroup_dir``."""
    fd = _program_fd(prog_id)
    try:
        attr = _Attach(target_fd=cgroup_dir, attach_bpf_fd=fd, attach_type=BPF_CGROUP_DEVICE)
        bpf(BPF_PROG_DETACH, attr, f"bpf(BPF_PROG_DETACH) of device program {prog_id}")
    finally:
        os.close(fd)


def attach_device_program(directory: Path, program: bytes) -> None:
    """Load ``program`` and make it the device program of cgroup ``directory``, replacing those
    attached there before: the new one is attached first, then the old ones detached, so the
    cgroup is never without one (while both are attached, an access needs both to allow it)."""
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        old = attached_programs(dir_fd)
        prog_fd = load_device_program(program)
        try:
            attach(dir_fd, prog_fd, BPF_F_ALLOW_MULTI)
        finally:
            os.close(prog_fd)
        for prog_id in old:
            try:
                detach_device_program(dir_fd, prog_id)
            except FileNotFoundError:
                continue  # detached by someone else meanwhile
    finally:
        os.close(dir_fd)
