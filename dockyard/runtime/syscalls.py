"""Thin ctypes wrappers over the Linux syscalls the runtime needs and Python's ``os`` lacks.

Each wrapper calls libc (or ``syscall(2)`` where libc has no wrapper) with ``use_errno=True`` and
raises :class:`OSError` carrying the errno and a message naming the call and its arguments. They
take no locks and allocate little, so they may be used in a freshly forked child.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)

# clone(2) / unshare(2) / setns(2) namespace flags
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# mount(2) flags
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_SYNCHRONOUS = 0x10
MS_REMOUNT = 0x20
MS_MANDLOCK = 0x40
MS_DIRSYNC = 0x80
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_SILENT = 0x8000
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24

# umount2(2) flags
MNT_FORCE = 0x1
MNT_DETACH = 0x2
MNT_EXPIRE = 0x4
UMOUNT_NOFOLLOW = 0x8

# openat2(2) resolve flags
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08

# prctl(2) options
PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38

# syscall numbers for calls without a libc wrapper (x86_64, aarch64)
_SYSCALLS = {
    "x86_64": {"pivot_root": 155, "bpf": 321, "pidfd_send_signal": 424, "pidfd_open": 434, "openat2": 437},
    "aarch64": {"pivot_root": 41, "bpf": 280, "pidfd_send_signal": 424, "pidfd_open": 434, "openat2": 437},
}


def _nr(name: str) -> int:
    try:
        return _SYSCALLS[platform.machine()][name]
    except KeyError:
        raise OSError(f"{name}: unsupported architecture {platform.machine()}") from None


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def _b(value: str | os.PathLike[str] | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


def unshare(flags: int) -> None:
    """Move the calling process into new namespaces (``CLONE_NEW*`` flags)."""
    _check(_libc.unshare(ctypes.c_int(flags)), f"unshare(0x{flags:x})")


def setns(fd: int, nstype: int = 0) -> None:
    """Join the namespace that ``fd`` (an ``/proc/PID/ns/*`` file or a pidfd) refers to."""
    _check(_libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)), f"setns({fd}, 0x{nstype:x})")


def mount(source: str | os.PathLike[str] | None, target: str | os.PathLike[str],
          fstype: str | None = None, flags: int = 0, data: str | None = None) -> None:
    """mount(2). ``data`` is the filesystem's option string (e.g. ``"mode=755"``)."""
    _check(
        _libc.mount(_b(source), _b(target), _b(fstype), ctypes.c_ulong(flags), _b(data)),
        f"mount({source!s} on {target!s}, type {fstype}, flags 0x{flags:x}, {data!r})",
    )


def umount2(target: str | os.PathLike[str], flags: int = 0) -> None:
    """umount2(2); ``MNT_DETACH`` for a lazy unmount."""
    _check(_libc.umount2(_b(target), ctypes.c_int(flags)), f"umount2({target!s}, 0x{flags:x})")


def pivot_root(new_root: str | os.PathLike[str], put_old: str | os.PathLike[str]) -> None:
    """pivot_root(2): make ``new_root`` the root mount, moving the old one to ``put_old``."""
    _check(
        _libc.syscall(ctypes.c_long(_nr("pivot_root")), _b(new_root), _b(put_old)),
        f"pivot_root({new_root!s}, {put_old!s})",
    )


def sethostname(name: str) -> None:
    """Set the hostname of the calling process's UTS namespace."""
    raw = name.encode()
    _check(_libc.sethostname(raw, ctypes.c_size_t(len(raw))), f"sethostname({name!r})")


def pidfd_open(pid: int, flags: int = 0) -> int:
    """A pidfd for ``pid``: a handle that cannot be confused with a later process of the same pid."""
    return _check(
        _libc.syscall(ctypes.c_long(_nr("pidfd_open")), ctypes.c_int(pid), ctypes.c_uint(flags)),
        f"pidfd_open({pid})",
    )


def pidfd_send_signal(pidfd: int, sig: int) -> None:
    """Send ``sig`` to the process behind ``pidfd``."""
    _check(
        _libc.syscall(ctypes.c_long(_nr("pidfd_send_signal")), ctypes.c_int(pidfd), ctypes.c_int(sig),
                      None, ctypes.c_uint(0)),
        f"pidfd_send_signal({pidfd}, {sig})",
    )


def bpf(cmd: int, attr: ctypes.Structure, what: str) -> int:
    """bpf(2) command ``cmd`` on ``attr`` (its part of ``union bpf_attr``; the kernel reads and may
    write it). Returns the call's result (a new fd for loads); ``what`` names the call in errors."""
    return _check(
        _libc.syscall(ctypes.c_long(_nr("bpf")), ctypes.c_int(cmd), ctypes.byref(attr),
                      ctypes.c_uint(ctypes.sizeof(attr))),
        what,
    )


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def openat2(dirfd: int, path: str, flags: int, resolve: int) -> int:
    """openat2(2): open ``path`` relative to ``dirfd`` under the ``RESOLVE_*`` restrictions
    (``RESOLVE_BENEATH``: fail with EXDEV rather than leave ``dirfd``'s tree)."""
    how = _OpenHow(flags=flags, mode=0, resolve=resolve)
    return _check(
        _libc.syscall(ctypes.c_long(_nr("openat2")), ctypes.c_int(dirfd), _b(path), ctypes.byref(how),
                      ctypes.c_size_t(ctypes.sizeof(how))),
        f"openat2({path!r})",
    )


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    """prctl(2) with integer arguments."""
    return _check(
        _libc.prctl(ctypes.c_int(option), ctypes.c_ulong(arg2), ctypes.c_ulong(arg3),
                    ctypes.c_ulong(arg4), ctypes.c_ulong(arg5)),
        f"prctl({option})",
    )


def reset_signals() -> None:
    """Reset every catchable signal to its default action (signals ignored by the daemon, like
    Python's SIGPIPE, would otherwise stay ignored across ``execve``). Safe in a forked child."""
    sig_dfl = ctypes.c_void_p(0)
    _libc.signal.restype = ctypes.c_void_p
    _libc.signal.argtypes = [ctypes.c_int, ctypes.c_void_p]
    for sig in range(1, 65):
        if sig in (9, 19, 32, 33):  # SIGKILL, SIGSTOP, and glibc's internal signals
            continue
        _libc.signal(sig, sig_dfl)
