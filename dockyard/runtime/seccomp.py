"""seccomp filters from Docker's JSON profile format, compiled and loaded with libseccomp.

Terms: a *profile* is Docker's JSON document (``defaultAction``, ``defaultErrnoRet``,
``architectures`` or ``archMap``, ``syscalls[]`` with ``names``/``name``, ``action``, ``errnoRet``,
``args`` and ``includes``/``excludes`` on ``caps``, ``arches`` and ``minKernel``). A rule *applies*
when every ``includes`` condition holds and no ``excludes`` condition does, judged against the
container's capability set, the machine's architecture and the running kernel. ``args`` on one
argument index alone are alternatives (one libseccomp rule each), otherwise they must all hold.

:data:`DEFAULT_PROFILE` is dockyard's default profile (``seccomp_default.json``), equivalent to
Docker's: an allow-list with EPERM for anything else, which keeps out keyctl, add_key,
request_key, bpf, (u)mount, unshare/setns and clone with namespace flags, kexec, module loading,
reboot, swapon, acct, pivot_root… unless a capability that would allow them was added.

:func:`load` runs in the forked container init right before ``execve``; libseccomp (Debian's
``libseccomp2``) is opened through ctypes only then.
"""

from __future__ import annotations

import ctypes
import functools
import json
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dockyard.errors import InvalidParameter

DEFAULT_PROFILE = Path(__file__).with_name("seccomp_default.json")

UNCONFINED = "unconfined"

_ACTIONS = {
    "SCMP_ACT_KILL": 0x00000000, "SCMP_ACT_KILL_THREAD": 0x00000000, "SCMP_ACT_KILL_PROCESS": 0x80000000,
    "SCMP_ACT_TRAP": 0x00030000, "SCMP_ACT_ERRNO": 0x00050000, "SCMP_ACT_TRACE": 0x7FF00000,
    "SCMP_ACT_LOG": 0x7FFC0000, "SCMP_ACT_ALLOW": 0x7FFF0000,
}
_OPS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4, "SCMP_CMP_GE": 5,
        "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}
_GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "i686": "386", "armv7l": "arm", "ppc64le": "ppc64le",
            "s390x": "s390x", "riscv64": "riscv64"}
_SCMP_FLTATR_CTL_NNP = 3
EPERM = 1


@dataclass(frozen=True)
class Rule:
    """One libseccomp rule: ``action`` (encoded, errno included) on ``syscall`` when every
    ``(index, op, value, value_two)`` comparison holds."""

    syscall: str
    action: int
    args: tuple[tuple[int, int, int, int], ...] = ()


@dataclass(frozen=True)
class Filter:
    """A compiled-to-rules profile: the default action, the extra architectures, the rules."""

    default_action: int
    arches: tuple[str, ...]
    rules: tuple[Rule, ...]


def read_default() -> str:
    """The text of the default profile."""
    return DEFAULT_PROFILE.read_text()


def _action(name: Any, errno_ret: Any, default_errno: int) -> int:
    if name not in _ACTIONS:
        raise InvalidParameter(f"Decoding seccomp profile failed: unsupported action {name!r}")
    code = _ACTIONS[name]
    if name == "SCMP_ACT_ERRNO":
        code |= (int(errno_ret) if errno_ret is not None else default_errno) & 0xFFFF
    elif name == "SCMP_ACT_TRACE":
        code |= (int(errno_ret) if errno_ret is not None else default_errno) & 0xFFFF
    return code


def _kernel_at_least(minimum: str, release: str) -> bool:
    def numbers(text: str) -> tuple[int, ...]:
        out = []
        for part in text.split("-")[0].split(".")[:2]:
            digits = "".join(ch for ch in part if ch.isdigit())
            out.append(int(digits or 0))
        return tuple(out)
    return numbers(release) >= numbers(minimum)


def _holds(condition: dict[str, Any] | None, caps: set[str], arch: str, kernel: str, exclude: bool) -> bool:
    """Whether an includes (all listed must hold) / excludes (any listed rules it out) block holds."""
    if not condition:
        return not exclude
    checks = []
    if condition.get("caps"):
        wanted = condition["caps"]
        checks.append(any(c in caps for c in wanted) if exclude else all(c in caps for c in wanted))
    if condition.get("arches"):
        checks.append(arch in condition["arches"])
    if condition.get("minKernel"):
        checks.append(_kernel_at_least(condition["minKernel"], kernel))
    if not checks:
        return not exclude
    return any(checks) if exclude else all(checks)


def parse(text: str) -> dict[str, Any]:
    """Decode and shape-check a profile; raises :class:`InvalidParameter` with Docker's prefix."""
    try:
        profile = json.loads(text)
    except ValueError as err:
        raise InvalidParameter(f"Decoding seccomp profile failed: {err}") from None
    if not isinstance(profile, dict):
        raise InvalidParameter("Decoding seccomp profile failed: the profile must be a JSON object")
    if profile.get("architectures") and profile.get("archMap"):
        raise InvalidParameter("Decoding seccomp profile failed: 'architectures' and 'archMap' "
                               "were specified in the seccomp profile, use either 'architectures' "
                               "or 'archMap'")
    if not isinstance(profile.get("syscalls") or [], list):
        raise InvalidParameter("Decoding seccomp profile failed: syscalls must be a list")
    for entry in profile.get("syscalls") or []:
        if not isinstance(entry, dict):
            raise InvalidParameter("Decoding seccomp profile failed: each syscall entry must be an object")
        if entry.get("name") and entry.get("names"):
            raise InvalidParameter("Decoding seccomp profile failed: use either 'name' or 'names'")
        _action(entry.get("action"), entry.get("errnoRet"), EPERM)
        for arg in entry.get("args") or []:
            if arg.get("op") not in _OPS:
                raise InvalidParameter(f"Decoding seccomp profile failed: unsupported op {arg.get('op')!r}")
    _action(profile.get("defaultAction"), profile.get("defaultErrnoRet"), EPERM)
    return profile


def compile_profile(text: str, caps: list[str], machine: str | None = None,
                    kernel: str | None = None) -> Filter:
    """The rules of ``text`` that apply to a container with ``caps`` on this machine.

    Cached: most containers share the default profile and the default capabilities."""
    return _compile_cached(text, tuple(caps), machine, kernel)


@functools.lru_cache(maxsize=64)
def _compile_cached(text: str, caps: tuple[str, ...], machine: str | None, kernel: str | None) -> Filter:
    profile = parse(text)
    machine = machine or platform.machine()
    kernel = kernel or os.uname().release
    arch = _GO_ARCH.get(machine, machine)
    capset = set(caps)
    default_errno = int(profile.get("defaultErrnoRet") or EPERM)
    default = _action(profile["defaultAction"], None, default_errno)
    arches: list[str] = list(profile.get("architectures") or [])
    native = f"SCMP_ARCH_{machine.upper()}"
    for entry in profile.get("archMap") or []:
        if entry.get("architecture") == native:
            arches = [native, *(entry.get("subArchitectures") or [])]
    rules: list[Rule] = []
    for entry in profile.get("syscalls") or []:
        if not _holds(entry.get("includes"), capset, arch, kernel, exclude=False):
            continue
        if _holds(entry.get("excludes"), capset, arch, kernel, exclude=True):
            continue
        action = _action(entry["action"], entry.get("errnoRet"), default_errno)
        if action == default:
            continue  # libseccomp refuses a rule that repeats the default action
        names = entry.get("names") or ([entry["name"]] if entry.get("name") else [])
        args = [(int(a["index"]), _OPS[a["op"]], int(a.get("value", 0)), int(a.get("valueTwo", 0)))
                for a in entry.get("args") or []]
        same_index = len(args) > 1 and len({a[0] for a in args}) == 1
        groups = [(a,) for a in args] if same_index else [tuple(args)]
        for name in names:
            for group in groups:
                rules.append(Rule(name, action, group))
    return Filter(default, tuple(arches), tuple(rules))


# ---- libseccomp (inside the forked container init) ----------------------------------------------

class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


_LIBRARY: ctypes.CDLL | None = None


def library() -> ctypes.CDLL:
    """libseccomp, opened once per process (before the fork: the container cannot see it)."""
    global _LIBRARY
    if _LIBRARY is None:
        _LIBRARY = _open_libseccomp()
    return _LIBRARY


def _open_libseccomp() -> ctypes.CDLL:
    try:
        lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    except OSError as err:
        raise OSError(f"seccomp: libseccomp.so.2 is not installed (Debian package libseccomp2): {err}") from None
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
    lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                           ctypes.POINTER(_ArgCmp)]
    lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    return lib


def _fail(what: str, rc: int) -> OSError:
    return OSError(-rc, f"seccomp: {what}: {os.strerror(-rc)}")


def _build(lib: ctypes.CDLL, compiled: Filter, set_no_new_privs: bool) -> int:
    """A libseccomp context holding ``compiled``; the caller releases it."""
    ctx = lib.seccomp_init(compiled.default_action)
    if not ctx:
        raise OSError("seccomp: seccomp_init failed")
    try:
        rc = lib.seccomp_attr_set(ctx, _SCMP_FLTATR_CTL_NNP, 1 if set_no_new_privs else 0)
        if rc < 0:
            raise _fail("setting no_new_privs", rc)
        for arch in compiled.arches:
            token = lib.seccomp_arch_resolve_name(arch.removeprefix("SCMP_ARCH_").lower().encode())
            if token == 0:
                continue  # an architecture this libseccomp does not know
            rc = lib.seccomp_arch_add(ctx, token)
            if rc < 0 and -rc != 17:  # EEXIST: the native arch is always there
                raise _fail(f"adding arch {arch}", rc)
        for rule in compiled.rules:
            number = lib.seccomp_syscall_resolve_name(rule.syscall.encode())
            if number == -1:  # __NR_SCMP_ERROR: no such syscall here; Docker skips it too
                continue
            conditions = (_ArgCmp * max(1, len(rule.args)))()
            for i, (index, op, value, value_two) in enumerate(rule.args):
                conditions[i] = _ArgCmp(index, op, value, value_two)
            rc = lib.seccomp_rule_add_array(ctx, rule.action, number, len(rule.args), conditions)
            if rc < 0:
                raise _fail(f"adding a rule for {rule.syscall}", rc)
    except BaseException:
        lib.seccomp_release(ctx)
        raise
    return int(ctx)


# Filters compiled to BPF in the daemon, before the fork: the container init then installs the
# program with one prctl instead of building it with libseccomp (about 12 ms per start).
_BPF: dict[Filter, bytes] = {}


def export_bpf(compiled: Filter) -> bytes:
    """The BPF program of ``compiled`` (cached), as ``struct sock_filter`` entries."""
    program = _BPF.get(compiled)
    if program is not None:
        return program
    lib = library()
    ctx = _build(lib, compiled, set_no_new_privs=False)
    try:
        fd = os.memfd_create("seccomp-bpf", os.MFD_CLOEXEC)
        try:
            rc = lib.seccomp_export_bpf(ctx, fd)
            if rc < 0:
                raise _fail("exporting the filter", rc)
            os.lseek(fd, 0, os.SEEK_SET)
            chunks = []
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
        finally:
            os.close(fd)
    finally:
        lib.seccomp_release(ctx)
    program = b"".join(chunks)
    if not program or len(program) % 8:
        raise OSError("seccomp: libseccomp exported an empty or malformed program")
    _BPF[compiled] = program
    return program


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2
_PR_SET_NO_NEW_PRIVS = 38


def _install_bpf(program: bytes, set_no_new_privs: bool) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if set_no_new_privs and libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"seccomp: setting no_new_privs: {os.strerror(err)}")
    buf = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // 8, ctypes.cast(buf, ctypes.c_void_p))
    if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"seccomp: loading the filter: {os.strerror(err)}")


@dataclass(frozen=True)
class Program:
    """A compiled profile's BPF program (``struct sock_filter`` entries), exported in the daemon
    before the fork: what the init installs, a few KB to hand to the spawner where the
    :class:`Filter` it came from is hundreds of rules to pickle and hash."""

    bpf: bytes


def install(program: Program, set_no_new_privs: bool = False) -> None:
    """Install ``program`` on the calling process (see :func:`load` for ``set_no_new_privs``)."""
    _install_bpf(program.bpf, set_no_new_privs)


def load(compiled: Filter, set_no_new_privs: bool = False) -> None:
    """Install ``compiled`` on the calling process. Without ``set_no_new_privs`` the caller needs
    CAP_SYS_ADMIN (as runc, the filter is then loaded before capabilities are dropped). Uses the
    program :func:`export_bpf` made before the fork when there is one."""
    program = _BPF.get(compiled)
    if program is not None:
        _install_bpf(program, set_no_new_privs)
        return
    lib = library()
    ctx = _build(lib, compiled, set_no_new_privs)
    try:
        rc = lib.seccomp_load(ctx)
        if rc < 0:
            raise _fail("loading the filter", rc)
    finally:
        lib.seccomp_release(ctx)
