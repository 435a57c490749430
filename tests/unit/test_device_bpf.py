"""The cgroup v2 device program (``runtime/device_bpf.py``), without root.

``run`` below is an interpreter for the eBPF instruction classes a device program may use, written
from the kernel's instruction-set document, not from the generator: it decodes the bytes, so a wrong
opcode, register nibble or jump offset makes these tests fail. The kernel's verifier and real device
accesses are the root tests in ``tests/integration/test_device_cgroup_v2.py``.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dockyard.runtime.device_bpf import Policy, Rule, program, program_for
from dockyard.runtime.devices import DEFAULT_RULES, DeviceNode, cgroup_rules

M, R, W = 1, 2, 4  # BPF_DEVCG_ACC_MKNOD, _READ, _WRITE
TYPES = {"b": 1, "c": 2}  # BPF_DEVCG_DEV_BLOCK, _CHAR
MASK32 = 0xFFFFFFFF


def run(code: bytes, kind: str, major: int, minor: int, access: int) -> int:
    """Execute a device program on one request; returns r0. Raises AssertionError on anything a
    device program must not do (unknown opcode, a read outside the context, a jump out of bounds,
    reading an unset register)."""
    assert len(code) % 8 == 0 and code
    insns = [struct.unpack("<BBhi", code[i:i + 8]) for i in range(0, len(code), 8)]
    ctx = struct.pack("<III", access << 16 | TYPES[kind], major, minor)
    regs: dict[int, int] = {1: -1}  # r1 = the context pointer (a marker)
    pc = 0
    for _ in range(10_000):
        assert 0 <= pc < len(insns), f"pc {pc} out of the program"
        op, dst_src, off, imm = insns[pc]
        dst, src = dst_src & 0xF, dst_src >> 4
        pc += 1
        cls = op & 0x07
        if op == 0x61:  # LDX | MEM | W
            assert regs.get(src) == -1 and off in (0, 4, 8), "a read that is not a ctx field"
            regs[dst] = struct.unpack_from("<I", ctx, off)[0]
        elif cls == 0x04:  # ALU (32-bit)
            value = imm & MASK32 if not op & 0x08 else regs[src]
            assert op & 0x08 or src == 0
            kind_op = op & 0xF0
            if kind_op == 0xB0:
                regs[dst] = value & MASK32
            elif kind_op == 0x50:
                regs[dst] = regs[dst] & value & MASK32
            elif kind_op == 0x70:
                regs[dst] = (regs[dst] & MASK32) >> value
            else:
                raise AssertionError(f"ALU op 0x{op:02x}")
        elif cls == 0x05:  # JMP (64-bit compares)
            kind_op = op & 0xF0
            if kind_op == 0x90:
                assert op == 0x95
                return regs[0]
            other = regs[src] if op & 0x08 else imm
            if kind_op == 0x10:
                taken = regs[dst] == other
            elif kind_op == 0x50:
                taken = regs[dst] != other
            else:
                raise AssertionError(f"JMP op 0x{op:02x}")
            if taken:
                pc += off
        else:
            raise AssertionError(f"opcode 0x{op:02x}")
    raise AssertionError("the program does not end")


def access_bits(letters: str) -> int:
    return sum({"m": M, "r": R, "w": W}[c] for c in letters)


DEFAULT = program_for(cgroup_rules([], privileged=False))


@pytest.mark.parametrize(("kind", "major", "minor", "access", "allowed"), [
    ("c", 1, 3, "rw", True),       # /dev/null
    ("c", 1, 3, "m", True),
    ("c", 1, 5, "r", True), ("c", 1, 7, "w", True), ("c", 1, 8, "r", True), ("c", 1, 9, "rw", True),
    ("c", 5, 0, "rw", True), ("c", 5, 1, "rw", True), ("c", 5, 2, "rw", True),
    ("c", 136, 0, "rw", True), ("c", 136, 4095, "rw", True),  # /dev/pts/*
    ("c", 10, 200, "rw", True),    # /dev/net/tun
    ("b", 8, 0, "m", True),        # mknod of any node is allowed (as in Docker) ...
    ("b", 8, 0, "r", False),       # ... opening a disk is not
    ("b", 8, 0, "rw", False), ("b", 8, 1, "w", False), ("b", 7, 0, "r", False), ("b", 1, 3, "r", False),
    ("c", 1, 1, "r", False),       # /dev/mem
    ("c", 1, 2, "r", False), ("c", 1, 4, "r", False), ("c", 1, 11, "w", False),  # kmem, port, kmsg
    ("c", 10, 229, "rw", False),   # /dev/fuse
    ("c", 4, 0, "rw", False), ("c", 5, 3, "r", False), ("c", 137, 0, "r", False),
    ("c", 3, 1, "r", False), ("c", 136, 0, "rwm", True),
])
def test_docker_default_rules(kind: str, major: int, minor: int, access: str, allowed: bool) -> None:
    assert run(DEFAULT, kind, major, minor, access_bits(access)) == int(allowed)


def test_privileged_allows_everything_in_two_instructions() -> None:
    code = program_for(cgroup_rules([], privileged=True))
    assert len(code) == 16
    for kind, major, minor in (("b", 8, 0), ("c", 1, 1), ("c", 1, 3)):
        assert run(code, kind, major, minor, M | R | W) == 1


def test_device_flag_allows_its_node_with_its_access() -> None:
    fuse = DeviceNode(path="/dev/fuse", kind="c", major=10, minor=229, mode=0o666, uid=0, gid=0, access="rw")
    disk = DeviceNode(path="/dev/xvda", kind="b", major=202, minor=0, mode=0o660, uid=0, gid=6, access="r")
    code = program_for(cgroup_rules([fuse, disk], privileged=False))
    assert run(code, "c", 10, 229, R | W) == 1
    assert run(code, "c", 10, 230, R) == 0
    assert run(code, "b", 202, 0, R) == 1
    assert run(code, "b", 202, 0, R | W) == 0  # every bit asked must be granted
    assert run(code, "b", 202, 0, W) == 0
    assert run(code, "c", 202, 0, R) == 0      # same numbers, other type


def test_policy_replays_v1_writes() -> None:
    writes = [("devices.deny", "a *:* rwm"), ("devices.allow", "c 1:3 r"), ("devices.allow", "c 1:3 w"),
              ("devices.allow", "b 8:* rwm"), ("devices.deny", "b 8:* w"), ("devices.deny", "c 1:5 r")]
    policy = Policy.from_writes(writes)
    assert not policy.default_allow
    # the two c 1:3 writes merge, the deny of b 8:* w takes w away, the deny of c 1:5 finds nothing
    assert policy.exceptions == (Rule("c", 1, 3, R | W), Rule("b", 8, None, R | M))
    assert Policy.from_writes([*writes, ("devices.allow", "a")]) == Policy(default_allow=True)
    assert Policy.from_writes([]) == Policy(default_allow=True)  # a new v1 cgroup allows everything


def test_default_allow_with_deny_exceptions() -> None:
    """Deny exceptions: any shared access bit denies (v1's match_exception_partial)."""
    code = program_for([("devices.allow", "a *:* rwm"), ("devices.deny", "b *:* rw"),
                        ("devices.deny", "c 1:1 r")])
    assert run(code, "b", 8, 0, R) == 0
    assert run(code, "b", 8, 0, R | M) == 0
    assert run(code, "b", 8, 0, M) == 1
    assert run(code, "c", 1, 1, R | W) == 0
    assert run(code, "c", 1, 1, W) == 1
    assert run(code, "c", 1, 3, R | W) == 1


def test_an_a_rule_with_numbers_matches_both_types() -> None:
    code = program_for([("devices.deny", "a *:* rwm"), ("devices.allow", "a 7:* rw")])
    assert run(code, "b", 7, 3, R) == 1 and run(code, "c", 7, 128, W) == 1
    assert run(code, "b", 8, 0, R) == 0 and run(code, "b", 7, 3, M) == 0


@pytest.mark.parametrize("text", ["", "c 1:3", "x 1:3 r", "c 1-3 r", "c a:3 r", "c 1:3 rx", "c 1:3:4 r",
                                  "c 1:99999999999 r", "c -1:3 r"])
def test_rule_parse_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        Rule.parse(text)


def test_rule_parse() -> None:
    assert Rule.parse("c 136:* rwm") == Rule("c", 136, None, M | R | W)
    assert Rule.parse("b *:* m") == Rule("b", None, None, M)
    assert Rule.parse("a") == Rule("a", None, None, M | R | W)
    with pytest.raises(ValueError):
        Policy.from_writes([("devices.list", "a")])


RULES = st.builds(
    lambda kind, major, minor, access: f"{kind} {major}:{minor} {access}",
    st.sampled_from("abc"), st.sampled_from(["*", "1", "8", "136"]), st.sampled_from(["*", "0", "3", "5"]),
    st.sets(st.sampled_from("rwm"), min_size=1).map(lambda s: "".join(sorted(s))))
WRITES = st.lists(st.tuples(st.sampled_from(["devices.allow", "devices.deny"]), RULES), max_size=12)
REQUESTS = st.lists(st.tuples(st.sampled_from("bc"), st.sampled_from([1, 8, 136, 2]),
                              st.sampled_from([0, 3, 5, 7]), st.integers(1, 7)), min_size=1, max_size=20)


@settings(max_examples=300, deadline=None)
@given(WRITES, REQUESTS)
def test_program_decides_as_the_policy(writes: list[tuple[str, str]],
                                       requests: list[tuple[str, int, int, int]]) -> None:
    policy = Policy.from_writes(writes)
    code = program(policy)
    for kind, major, minor, access in requests:
        assert run(code, kind, major, minor, access) == int(policy.allows(kind, major, minor, access))


def test_default_rules_are_docker_s() -> None:
    """The allow list Docker (runc's defaults) gives a container, as the program sees it."""
    policy = Policy.from_writes(cgroup_rules([], privileged=False))
    assert not policy.default_allow
    assert len(policy.exceptions) == len(DEFAULT_RULES)
