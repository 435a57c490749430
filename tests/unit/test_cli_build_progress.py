"""``build --progress=plain|tty``: the classic stream shown as BuildKit shows a build (cli/build_progress.py)."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from dockyard.cli import main as cli_main
from dockyard.cli.build_progress import BuildView, PlainProgress, TtyProgress
from dockyard.cli.verbs import build as build_verb
from tests.unit.test_cli_build import daemon, project  # noqa: F401 - fixtures
from tests.unit.test_cli_client import FakeServer

IMAGE_ID = "sha256:" + "ab" * 32


class Clock:
    """A clock the test moves: each reading is the last one plus ``step``."""

    def __init__(self, step: float = 0.0) -> None:
        self.now = 100.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def feed(view: BuildView, clock: Clock, events: list[tuple[float, str]]) -> None:
    """Stream text events, each ``seconds`` after the one before."""
    for seconds, text in events:
        clock.now += seconds
        view.stream(text)


UNCACHED = [
    (0.0, "Step 1/4 : FROM busybox AS builder\n"), (0.0, " ---> abdca0934bf0\n"),
    (0.01, "Step 2/4 : RUN echo hi && echo there\n"), (0.0, " ---> Running in b2ebcf621077\n"),
    (0.1, "hi\nthe"), (0.05, "re\n"), (0.2, "Removing intermediate container b2ebcf621077\n"),
    (0.0, " ---> 2ead75e6c3dc\n"),
    (0.0, "Step 3/4 : FROM busybox\n"), (0.0, " ---> abdca0934bf0\n"),
    (0.0, "Step 4/4 : COPY --from=builder /a /a\n"), (0.0, " ---> Using cache\n"), (0.0, " ---> 421262de0520\n"),
    (0.0, f"Successfully built {IMAGE_ID[7:19]}\n"), (0.0, "Successfully tagged app:1\n"),
    (0.0, "Successfully tagged reg.example:5000/team/app:2\n"),
]


def test_plain_is_buildkits_plain_printer() -> None:
    out, clock = io.StringIO(), Clock()
    view = PlainProgress(out, clock)
    view.image_id = IMAGE_ID
    feed(view, clock, UNCACHED)
    view.finish()
    assert out.getvalue() == (
        "#1 [builder 1/4] FROM busybox AS builder\n#1 DONE 0.0s\n\n"
        "#2 [builder 2/4] RUN echo hi && echo there\n#2 0.100 hi\n#2 0.150 there\n#2 DONE 0.3s\n\n"
        "#3 [3/4] FROM busybox\n#3 DONE 0.0s\n\n"
        "#4 [4/4] COPY --from=builder /a /a\n#4 CACHED\n\n"
        "#5 exporting to image\n#5 exporting layers done\n"
        f"#5 writing image {IMAGE_ID} done\n"
        "#5 naming to docker.io/library/app:1 done\n#5 naming to reg.example:5000/team/app:2 done\n"
        "#5 DONE 0.0s\n\n")


def test_plain_shows_a_failing_step_and_a_pull_as_output() -> None:
    out, clock = io.StringIO(), Clock()
    view = PlainProgress(out, clock)
    view.stream("Step 1/2 : FROM busybox\n")
    clock.now += 0.5
    view.status("latest: Pulling from library/busybox")
    view.stream(" ---> abdca0934bf0\nStep 2/2 : RUN echo out && exit 3\n ---> Running in 0123\n")
    clock.now += 0.25
    view.stream("out\n")
    view.fail("The command '/bin/sh -c echo out && exit 3' returned a non-zero code: 3")
    assert out.getvalue() == (
        "#1 [1/2] FROM busybox\n#1 0.500 latest: Pulling from library/busybox\n#1 DONE 0.5s\n\n"
        "#2 [2/2] RUN echo out && exit 3\n#2 0.250 out\n"
        "#2 ERROR: The command '/bin/sh -c echo out && exit 3' returned a non-zero code: 3\n\n")


class Screen:
    """Just enough of a terminal to replay the tty view: cursor up (``ESC[nA``), erase line
    (``ESC[2K``), newlines; no other sequence may appear."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.row = 0

    def play(self, data: str) -> None:
        for token in re.split(r"(\x1b\[\d*[AK]|\n)", data):
            if not token:
                continue
            if token == "\n":
                self.row += 1
            elif token.startswith("\x1b["):
                if token.endswith("A"):
                    self.row -= int(token[2:-1])
                    assert self.row >= 0, "moved above the display"
                else:
                    assert token == "\x1b[2K"
                    self._at(self.row)
                    self.lines[self.row] = ""
            else:
                assert "\x1b" not in token, f"unexpected escape in {token!r}"
                self._at(self.row)
                self.lines[self.row] += token

    def _at(self, row: int) -> None:
        while len(self.lines) <= row:
            self.lines.append("")

    @property
    def text(self) -> list[str]:
        return self.lines[:self.row]


def test_tty_redraws_one_screen_and_leaves_the_finished_one() -> None:
    out, clock = io.StringIO(), Clock()
    view = TtyProgress(out, clock, width=60)
    view.image_id = IMAGE_ID
    screen = Screen()
    for seconds, text in UNCACHED[:5]:  # up to the running RUN's first output
        clock.now += seconds
        view.stream(text)
    view.draw(force=True)
    screen.play(out.getvalue())
    assert screen.text == ["[+] Building 0.1s (1/5)",
                           " => [builder 1/4] FROM busybox AS builder               0.0s",
                           " => [builder 2/4] RUN echo hi && echo there             0.1s",
                           " => => # hi"]
    out.seek(0), out.truncate()
    for seconds, text in UNCACHED[5:]:
        clock.now += seconds
        view.stream(text)
    view.finish()
    view.close()
    screen.play(out.getvalue())
    assert screen.text == ["[+] Building 0.4s (5/5) FINISHED",
                           " => [builder 1/4] FROM busybox AS builder               0.0s",
                           " => [builder 2/4] RUN echo hi && echo there             0.3s",
                           " => [3/4] FROM busybox                                  0.0s",
                           " => CACHED [4/4] COPY --from=builder /a /a              0.0s",
                           " => exporting to image                                  0.0s"]
    assert all(len(line) <= 60 for line in screen.lines)


def test_tty_shows_the_failing_steps_output_and_cuts_long_lines() -> None:
    out, clock = io.StringIO(), Clock()
    view = TtyProgress(out, clock, width=40)
    view.stream("Step 1/2 : FROM busybox\n ---> abdca0934bf0\n")
    view.stream("Step 2/2 : RUN echo one && echo two && echo three && exit 3\n ---> Running in 0123\n")
    view.stream("".join(f"line {i}\n" for i in range(8)))
    clock.now += 1.0
    view.draw(force=True)
    screen = Screen()
    screen.play(out.getvalue())
    assert screen.text[-6:] == [f" => => # line {i}" for i in range(2, 8)]  # the last six lines only
    assert screen.text[2] == " => [2/2] RUN echo one && echo t... 1.0s"
    view.fail("The command returned a non-zero code: 3")
    view.close()
    screen = Screen()
    screen.play(out.getvalue())
    assert screen.text[0] == "[+] Building 1.0s (2/3) ERROR"
    assert screen.text[2] == " => ERROR [2/2] RUN echo one && ... 1.0s"
    assert screen.text[3:] == ["------", " > [2/2] RUN echo one && echo two && echo three && exit 3:",
                               *[f"line {i}" for i in range(8)], "------"]


def test_tty_redraws_at_most_every_tenth_of_a_second() -> None:
    out, clock = io.StringIO(), Clock()
    view = TtyProgress(out, clock)
    view.stream("Step 1/1 : RUN yes | head -n 50\n")
    frames = out.getvalue().count("[+] Building")
    for _ in range(50):
        clock.now += 0.01
        view.stream("y\n")
    assert out.getvalue().count("[+] Building") - frames == 5


# -- the verb, against a fake daemon ----------------------------------------------------------------

STEPS = [{"stream": "Step 1/2 : FROM busybox\n"}, {"stream": " ---> abdca0934bf0\n"},
         {"stream": "Step 2/2 : RUN echo hi\n"}, {"stream": " ---> Running in 0123\n"}, {"stream": "hi\n"},
         {"stream": " ---> 2ead75e6c3dc\n"}, {"aux": {"ID": IMAGE_ID}},
         {"stream": "Successfully built 2ead75e6c3dc\n"}, {"stream": "Successfully tagged app:1\n"}]


def test_progress_plain_writes_steps_to_stderr_and_nothing_to_stdout(
        daemon: Callable[..., FakeServer], project: Path, tmp_path: Path,  # noqa: F811
        capsys: pytest.CaptureFixture[str]) -> None:
    daemon(STEPS)
    iid = tmp_path / "iid"
    assert cli_main.main(["build", "--progress=plain", "--iidfile", str(iid), "-t", "app:1", str(project)]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert re.fullmatch(r"#1 \[1/2\] FROM busybox\n#1 DONE \d\.\ds\n\n"
                        r"#2 \[2/2\] RUN echo hi\n#2 \d\.\d{3} hi\n#2 DONE \d\.\ds\n\n"
                        r"#3 exporting to image\n#3 exporting layers done\n"
                        rf"#3 writing image {IMAGE_ID} done\n#3 naming to docker.io/library/app:1 done\n"
                        r"#3 DONE \d\.\ds\n\n", captured.err), captured.err
    assert iid.read_text() == IMAGE_ID


def test_a_failure_in_plain_mode_keeps_the_steps_exit_code(daemon: Callable[..., FakeServer],  # noqa: F811
                                                           project: Path,  # noqa: F811
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    message = "The command '/bin/sh -c exit 3' returned a non-zero code: 3"
    daemon([{"stream": "Step 1/2 : FROM busybox\n"}, {"stream": "Step 2/2 : RUN exit 3\n"},
            {"errorDetail": {"code": 3, "message": message}, "error": message}])
    assert cli_main.main(["build", "--progress=plain", str(project)]) == 3
    captured = capsys.readouterr()
    assert f"#2 [2/2] RUN exit 3\n#2 ERROR: {message}\n" in captured.err
    assert captured.err.endswith(message + "\n") and captured.out == ""


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True

    def fileno(self) -> int:
        return 99  # only handed to the patched os.get_terminal_size


def test_which_view_each_mode_gives(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build_verb.os, "get_terminal_size", lambda fd: type("S", (), {"columns": 100})())
    pipe, terminal = io.StringIO(), FakeTerminal()
    assert build_verb.step_view("auto", pipe) is None  # classic output for scripts
    assert isinstance(build_verb.step_view("plain", pipe), PlainProgress)
    assert type(build_verb.step_view("tty", pipe)) is PlainProgress  # no terminal: plain, as BuildKit
    assert build_verb.step_view("rawjson", pipe) is None
    for mode in ("auto", "tty"):
        view = build_verb.step_view(mode, terminal)
        assert isinstance(view, TtyProgress) and view.width == 100
    assert type(build_verb.step_view("plain", terminal)) is PlainProgress
    monkeypatch.setattr(build_verb.os, "get_terminal_size", lambda fd: type("S", (), {"columns": 0})())
    view = build_verb.step_view("tty", terminal)  # a pty that does not know its size
    assert isinstance(view, TtyProgress) and view.width == 80
