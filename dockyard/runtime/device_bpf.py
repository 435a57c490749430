"""Device rules as a cgroup v2 device program (``BPF_PROG_TYPE_CGROUP_DEVICE``).

cgroup v2 has no devices controller: the kernel asks the eBPF programs attached to the cgroup (and
its ancestors) whether a process may ``mknod`` or ``open`` a device node. This module turns the rule
writes of :func:`dockyard.runtime.devices.cgroup_rules` into such a program, as runc's and crun's
device filters do. It is pure: loading and attaching is :mod:`dockyard.runtime.bpf`.

Terms:
- *write*: one v1 rule write, ``("devices.allow" | "devices.deny", "<type> <major>:<minor> <access>")``
  (the rule format of :mod:`dockyard.runtime.devices`).
- *policy*: what v1's devices controller holds after the writes, in order: a *default* (allow or deny
  everything) and *exceptions* to it. A write of type ``a`` with both numbers ``*`` resets the policy
  (default = the write's verdict, no exceptions), as on v1; an ``a`` rule with a number matches both
  types. A write with the other verdict than the default adds an exception (merging access bits into an
  exception for the same device); a write with the default's verdict removes those access bits from
  the exception for exactly the same device, as the v1 kernel does.
- *request*: the kernel's question — device type (``c``/``b``), major, minor, and the access
  wanted (a non-empty subset of ``rwm``; ``open(O_RDWR)`` asks ``rw`` at once).
- Default deny: a request is allowed iff one exception has its type, major, minor (``*`` matches any)
  and *all* the access bits asked. Default allow: it is denied iff one such exception shares *any*
  access bit with it (v1's ``match_exception`` / ``match_exception_partial``).
- *program*: eBPF instructions (8 bytes each, little-endian) over the context
  ``struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }`` where
  ``access_type = access << 16 | type``; it returns 1 (allow) or 0 (deny).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

# bpf_cgroup_dev_ctx encodings (include/uapi/linux/bpf.h)
DEV_BLOCK = 1
DEV_CHAR = 2
ACC_MKNOD = 1
ACC_READ = 2
ACC_WRITE = 4
ACCESS_BITS = {"m": ACC_MKNOD, "r": ACC_READ, "w": ACC_WRITE}
TYPE_CODES = {"b": DEV_BLOCK, "c": DEV_CHAR}
ALL_ACCESS = ACC_MKNOD | ACC_READ | ACC_WRITE

# The eBPF opcodes the program uses (include/uapi/linux/bpf_common.h, bpf.h).
LDX_MEM_W = 0x61    # dst = *(u32 *)(src + off)
ALU32_AND_K = 0x54  # dst = (u32)(dst & imm)
ALU32_RSH_K = 0x74  # dst = (u32)(dst >> imm)
ALU32_MOV_K = 0xB4  # dst = (u32)imm
ALU32_MOV_X = 0xBC  # dst = (u32)src
JMP_JEQ_K = 0x15    # if dst == imm: pc += off
JMP_JNE_K = 0x55    # if dst != imm: pc += off
JMP_JNE_X = 0x5D    # if dst != src: pc += off
JMP_EXIT = 0x95     # return r0
JUMPS = (JMP_JEQ_K, JMP_JNE_K, JMP_JNE_X)

# Registers the program keeps the request in (r1 is the context pointer, then scratch).
R0, R1, R_TYPE, R_ACCESS, R_MAJOR, R_MINOR = 0, 1, 2, 3, 4, 5


@dataclass(frozen=True)
class Rule:
    """One device rule: ``kind`` ``a``/``b``/``c``; ``major``/``minor`` None for ``*``; ``access``
    the BPF access bits."""

    kind: str
    major: int | None
    minor: int | None
    access: int

    @classmethod
    def parse(cls, text: str) -> Rule:
        """``"c 1:3 rwm"``, ``"b *:* m"``, ``"a"`` (= ``a *:* rwm``); raises ValueError."""
        parts = text.split()
        if parts == ["a"]:
            return cls("a", None, None, ALL_ACCESS)
        if len(parts) != 3 or parts[0] not in ("a", "b", "c") or parts[1].count(":") != 1:
            raise ValueError(f"invalid device rule {text!r}")
        major, minor = (_number(n, text) for n in parts[1].split(":"))
        access = 0
        for letter in parts[2]:
            if letter not in ACCESS_BITS:
                raise ValueError(f"invalid device rule {text!r}: access {parts[2]!r}")
            access |= ACCESS_BITS[letter]
        return cls(parts[0], major, minor, access)

    @property
    def everything(self) -> bool:
        """A rule of type ``a`` for every number: on v1 it resets the policy whatever its access."""
        return self.kind == "a" and self.major is None and self.minor is None

    def matches(self, kind: str, major: int, minor: int) -> bool:
        return (self.kind in ("a", kind) and self.major in (None, major)
                and self.minor in (None, minor))

    def same_device(self, other: Rule) -> bool:
        return (self.kind, self.major, self.minor) == (other.kind, other.major, other.minor)


def _number(text: str, rule: str) -> int | None:
    if text == "*":
        return None
    if not text.isdigit() or int(text) >= 1 << 31:
        raise ValueError(f"invalid device rule {rule!r}: number {text!r}")
    return int(text)


@dataclass(frozen=True)
class Policy:
    """A default verdict and the exceptions to it (see the module's terms)."""

    default_allow: bool
    exceptions: tuple[Rule, ...] = ()

    @classmethod
    def from_writes(cls, writes: Iterable[tuple[str, str]]) -> Policy:
        """Replay v1 rule writes from a fresh cgroup (which allows everything)."""
        default_allow = True
        exceptions: list[Rule] = []
        for name, text in writes:
            if name not in ("devices.allow", "devices.deny"):
                raise ValueError(f"not a device rule file: {name!r}")
            allow = name == "devices.allow"
            rule = Rule.parse(text)
            if rule.everything:
                default_allow, exceptions = allow, []
            elif allow != default_allow:
                _add(exceptions, rule)
            else:
                _remove(exceptions, rule)
        return cls(default_allow, tuple(exceptions))

    def allows(self, kind: str, major: int, minor: int, access: int) -> bool:
        """The verdict on a request (``access`` in BPF bits), as v1's devices controller decides."""
        for ex in self.exceptions:
            if not ex.matches(kind, major, minor):
                continue
            if self.default_allow and access & ex.access:
                return False
            if not self.default_allow and not access & ~ex.access:
                return True
        return self.default_allow


def _add(exceptions: list[Rule], rule: Rule) -> None:
    for i, ex in enumerate(exceptions):
        if ex.same_device(rule):
            exceptions[i] = Rule(ex.kind, ex.major, ex.minor, ex.access | rule.access)
            return
    exceptions.append(rule)


def _remove(exceptions: list[Rule], rule: Rule) -> None:
    for i, ex in enumerate(exceptions):
        if ex.same_device(rule):
            left = ex.access & ~rule.access
            if left:
                exceptions[i] = Rule(ex.kind, ex.major, ex.minor, left)
            else:
                del exceptions[i]
            return


def insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """One eBPF instruction: opcode, dst (low nibble) and src registers, s16 offset, s32 immediate."""
    return struct.pack("<BBhi", code, dst | src << 4, off, imm)


PROLOGUE = b"".join((
    insn(LDX_MEM_W, R_TYPE, R1, 0),
    insn(ALU32_AND_K, R_TYPE, imm=0xFFFF),
    insn(LDX_MEM_W, R_ACCESS, R1, 0),
    insn(ALU32_RSH_K, R_ACCESS, imm=16),
    insn(LDX_MEM_W, R_MAJOR, R1, 4),
    insn(LDX_MEM_W, R_MINOR, R1, 8),
))


def _verdict(allow: bool) -> bytes:
    return insn(ALU32_MOV_K, R0, imm=int(allow)) + insn(JMP_EXIT)


def _exception_block(ex: Rule, default_allow: bool) -> bytes:
    """Checks that jump past this block when the request does not match ``ex``, then its verdict."""
    steps: list[tuple[int, int, int, int]] = []  # (code, dst, src, imm); jumps get their offset below
    if ex.kind != "a":
        steps.append((JMP_JNE_K, R_TYPE, 0, TYPE_CODES[ex.kind]))
    if ex.access != ALL_ACCESS:  # with all bits, every request passes both access tests
        steps += [(ALU32_MOV_X, R1, R_ACCESS, 0), (ALU32_AND_K, R1, 0, ex.access)]
        # Default deny: every bit asked must be in the exception (r1 == access); default allow:
        # one shared bit is enough (r1 != 0).
        steps.append((JMP_JEQ_K, R1, 0, 0) if default_allow else (JMP_JNE_X, R1, R_ACCESS, 0))
    if ex.major is not None:
        steps.append((JMP_JNE_K, R_MAJOR, 0, ex.major))
    if ex.minor is not None:
        steps.append((JMP_JNE_K, R_MINOR, 0, ex.minor))
    steps += [(ALU32_MOV_K, R0, 0, int(not default_allow)), (JMP_EXIT, 0, 0, 0)]
    # A jump at i goes to i + 1 + off: past the block's last instruction.
    return b"".join(insn(code, dst, src, len(steps) - i - 1 if code in JUMPS else 0, imm)
                    for i, (code, dst, src, imm) in enumerate(steps))


def program(policy: Policy) -> bytes:
    """The device program enforcing ``policy``: prologue, one block per exception, the default."""
    if not policy.exceptions:
        return _verdict(policy.default_allow)
    blocks = b"".join(_exception_block(ex, policy.default_allow) for ex in policy.exceptions)
    return PROLOGUE + blocks + _verdict(policy.default_allow)


def program_for(writes: Iterable[tuple[str, str]]) -> bytes:
    """The device program for v1 rule writes (``devices.cgroup_rules``' output)."""
    return program(Policy.from_writes(writes))
