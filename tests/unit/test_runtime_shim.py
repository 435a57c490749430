"""The C shim run without namespaces: a forked child writes to pipes, a fork of the test execs the
shim as that child's parent. Checks the json-file log, partial lines, rotation, attach frames and
the exit record. Needs gcc (to build the shim), not root."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from dockyard.runtime.shim import STDERR, STDOUT, AttachClient, read_exit_record, shim_binary

TRICKY = (b'quote " backslash \\ tab \t cr \r nul \x00 esc \x1b del \x7f bell \x07 '
          b'utf8 \xc3\xa9 \xe2\x82\xac bad \xff slash / lt < end\n')


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class ShimRun:
    """A shim started against a plain child process (no namespaces)."""

    def __init__(self, tmp: Path, child: Callable[[], int], *args: str, stdin: bool = False) -> None:
        self.dir = tmp / "state"
        self.dir.mkdir()
        self.log = tmp / "ctr-json.log"
        shim = str(shim_binary())
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        in_r, in_w = os.pipe()
        ready_r, ready_w = os.pipe()
        go_r, go_w = os.pipe()
        self.go_w = go_w
        self.helper = os.fork()
        if self.helper == 0:  # becomes the shim
            code = 1
            try:
                child_pid = os.fork()
                if child_pid == 0:
                    try:
                        for fd in (out_r, err_r, in_w, ready_r, ready_w, go_w):
                            os.close(fd)
                        os.dup2(in_r, 0)
                        os.dup2(out_w, 1)
                        os.dup2(err_w, 2)
                        os.read(go_r, 1)
                        code = child()
                    finally:
                        os._exit(code)
                for fd in (out_w, err_w, in_r, go_r, go_w, ready_r):
                    os.close(fd)
                targets = {3: out_r, 4: err_r, 5: in_w, 6: ready_w}
                for t, fd in targets.items():  # via 103..106, so no dup2 clobbers a source
                    os.dup2(fd, 100 + t, inheritable=False)
                for t in targets:
                    os.dup2(100 + t, t, inheritable=True)
                argv = [shim, "--id", "test", "--dir", str(self.dir), "--pid", str(child_pid),
                        "--log-path", str(self.log), *args]
                if stdin:
                    argv.append("--stdin")
                os.execv(shim, argv)
            finally:
                os._exit(code)
        for fd in (out_r, out_w, err_r, err_w, in_r, in_w, ready_w, go_r):
            os.close(fd)
        assert os.read(ready_r, 1) == b"R", "the shim did not report ready"
        os.close(ready_r)

    def go(self) -> None:
        os.write(self.go_w, b"G")
        os.close(self.go_w)

    def wait(self, timeout: float = 20.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.helper, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
            time.sleep(0.01)
        os.kill(self.helper, signal.SIGKILL)
        os.waitpid(self.helper, 0)
        raise AssertionError("the shim did not exit")

    def records(self, path: Path | None = None) -> list[dict[str, str]]:
        lines = (path or self.log).read_bytes().splitlines()
        return [json.loads(line.decode("utf-8", "surrogateescape")) for line in lines]


@pytest.fixture
def run(tmp_path: Path):
    started: list[ShimRun] = []

    def start(child: Callable[[], int], *args: str, stdin: bool = False) -> ShimRun:
        r = ShimRun(tmp_path, child, *args, stdin=stdin)
        started.append(r)
        return r

    yield start
    for r in started:  # never leave a shim behind, even when a test failed
        try:
            os.close(r.go_w)
        except OSError:
            pass
        try:
            if os.waitpid(r.helper, os.WNOHANG)[0] == 0:
                os.kill(r.helper, signal.SIGKILL)
                os.waitpid(r.helper, 0)
        except ChildProcessError:
            pass


def test_json_escaping_and_exit_record(run) -> None:
    def child() -> int:
        _write_all(1, TRICKY + b"second line\n")
        _write_all(2, b"to stderr\n")
        _write_all(1, b"no newline at the end")
        return 3

    r = run(child)
    r.go()
    assert r.wait() == 0
    recs = r.records()
    raw = r.log.read_bytes()
    assert b'\\"' in raw and b"\\\\" in raw and b"\\t" in raw and b"\\r" in raw and b"\\u0000" in raw
    assert b"\\u001b" in raw and b"\\u007f" in raw and b"\xc3\xa9" in raw and b"\xff" in raw
    out = [rec["log"].encode("utf-8", "surrogateescape") for rec in recs if rec["stream"] == "stdout"]
    assert out == [TRICKY, b"second line\n", b"no newline at the end"]
    assert [rec["log"] for rec in recs if rec["stream"] == "stderr"] == ["to stderr\n"]
    for rec in recs:
        assert rec["time"].endswith("Z") and len(rec["time"]) == len("2026-11-25T16:20:01.123456789Z")
    exit_record = read_exit_record(r.dir)
    assert exit_record is not None and (exit_record.exit_code, exit_record.signal) == (3, 0)
    assert not (r.dir / "attach.sock").exists()


def test_long_partial_line_is_split_at_16k(run) -> None:
    def child() -> int:
        _write_all(1, b"x" * (16384 + 10) + b"\n")
        return 0

    r = run(child)
    r.go()
    assert r.wait() == 0
    assert [len(rec["log"]) for rec in r.records()] == [16384, 11]


def test_rotation_keeps_max_file_files(run, tmp_path: Path) -> None:
    def child() -> int:
        for i in range(200):
            _write_all(1, b"line %04d " % i + b"y" * 40 + b"\n")
        return 0

    r = run(child, "--log-max-size", "1000", "--log-max-file", "3")
    r.go()
    assert r.wait() == 0
    names = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("ctr-json.log"))
    assert names == ["ctr-json.log", "ctr-json.log.1", "ctr-json.log.2"]
    for name in names:
        assert 0 < (tmp_path / name).stat().st_size <= 1000
    newest = r.records()
    older = r.records(tmp_path / "ctr-json.log.1")
    assert newest[-1]["log"].startswith("line 0199")
    assert int(older[-1]["log"][5:9]) + 1 == int(newest[0]["log"][5:9])


def test_attach_frames_stdin_and_signal_exit(run) -> None:
    def child() -> int:
        data = b""
        while chunk := os.read(0, 4096):
            data += chunk
        _write_all(1, b"got:" + data)
        _write_all(2, b"bye\n")
        os.kill(os.getpid(), signal.SIGKILL)
        return 0

    r = run(child, stdin=True)
    with AttachClient(r.dir) as client:
        client.send_stdin(b"hello ")
        client.send_stdin(b"world\n")
        client.close_stdin()
        r.go()
        got = client.read_until_closed()
    assert got[STDOUT] == b"got:hello world\n"
    assert got[STDERR] == b"bye\n"
    assert r.wait() == 0
    exit_record = read_exit_record(r.dir)
    assert exit_record is not None and (exit_record.exit_code, exit_record.signal) == (137, 9)


def test_slow_client_is_dropped_and_the_log_is_complete(run) -> None:
    line = b"z" * 1023 + b"\n"

    def child() -> int:
        for _ in range(8 * 1024):  # 8 MiB, more than a client may fall behind
            _write_all(1, line)
        return 0

    r = run(child)
    with AttachClient(r.dir) as client:
        r.go()
        assert r.wait() == 0  # the shim finished although this client never read
        received = 0
        try:
            for _, payload in client.iter_frames():
                received += len(payload)
        except ConnectionResetError:
            pass
    assert received < 8 * 1024 * len(line)
    assert len(r.log.read_bytes().splitlines()) == 8 * 1024
