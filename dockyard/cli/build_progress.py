"""``build --progress=plain|tty``: the classic build stream shown the way BuildKit shows a build.

The daemon answers ``POST /build`` with the classic JSON-message stream (``Step 2/5 : RUN …``,
`` ---> Using cache``, the step's output, `` ---> <id>``, ``Successfully tagged …``). Two views
of it, as BuildKit's progress printers have them:

- *plain* (:class:`PlainProgress`): one *vertex* per step, numbered ``#N`` in the order they start;
  ``#N [2/5] RUN echo hi`` when it starts, its output lines as ``#N 0.123 hi`` (seconds since the
  step started), then ``#N DONE 0.2s``, ``#N CACHED`` or ``#N ERROR: …``, and a blank line; at the end
  the export vertex (``exporting to image``, ``writing image sha256:… done``, ``naming to … done``).
- *tty* (:class:`TtyProgress`): a screen redrawn in place (cursor up, erase line): ``[+] Building
  1.2s (3/5)`` then a line per step, ``=> [2/5] RUN echo hi    0.3s`` (``=> CACHED …`` for a
  cached one), the running step's last output lines below it (``=> => # hi``); the finished
  screen stays; on a failure, the failing step's whole output follows it.

A step's label is ``[k/M]`` from the classic ``Step k/M``, with the stage's name in front once a
``FROM … AS name`` started it (``[builder 2/5]``). Times are measured here, between messages.
"""

from __future__ import annotations

import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TextIO

_TAIL = 6  # output lines a running step shows in the tty view, as BuildKit's
_REDRAW = 0.1  # seconds between two frames of the tty view, unless a step starts or ends


class Step:
    """One vertex: a Dockerfile instruction being run (or the final export)."""

    def __init__(self, number: int, label: str, started: float) -> None:
        self.number = number
        self.label = label
        self.started = started
        self.ended: float | None = None
        self.cached = False
        self.error = ""
        self.output: list[str] = []


class BuildView:
    """Follows the classic stream and keeps the steps; the views below print them."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.begun = clock()
        self.steps: list[Step] = []
        self.total = 0
        self.stage = ""
        self.image_id = ""
        self.tags: list[str] = []
        self._partial = ""

    @property
    def current(self) -> Step | None:
        step = self.steps[-1] if self.steps else None
        return step if step is not None and step.ended is None else None

    def stream(self, text: str) -> None:
        """A ``stream`` message: whole lines are taken, a trailing partial one waits for the rest."""
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for line in lines:
            self._line(line.rstrip("\r"))

    def status(self, text: str) -> None:
        """A ``status`` message (the pull of a FROM image): shown as the current step's output."""
        if self.current is not None:
            self._output(text)

    def fail(self, message: str) -> None:
        step = self.current
        if step is not None:
            step.error = message
            self._end(step)

    def finish(self) -> None:
        """The stream ended well: the export step, as BuildKit's ``exporting to image``."""
        if self._partial:
            self._line(self._partial)
            self._partial = ""
        if self.current is not None:
            self._end(self.current)
        export = Step(len(self.steps) + 1, "exporting to image", self.clock())
        self.steps.append(export)
        self.started(export)
        export.output.append("exporting layers done")
        if self.image_id:
            export.output.append(f"writing image {self.image_id} done")
        export.output.extend(f"naming to {_full_name(tag)} done" for tag in self.tags)
        for line in export.output:
            self.printed(export, line)
        self._end(export)

    def close(self) -> None:
        """The build ended (well or not): a view's last words."""

    # what a view does on each event
    def started(self, step: Step) -> None:
        """A step started."""

    def printed(self, step: Step, line: str) -> None:
        """A step printed a line."""

    def ended(self, step: Step) -> None:
        """A step ended (done, cached or failed)."""

    def _line(self, line: str) -> None:
        if line.startswith("Step ") and " : " in line:
            head, _, instruction = line.partition(" : ")
            numbers = head[5:]
            if "/" in numbers:
                self._begin(numbers, instruction)
                return
        stripped = line.strip()
        if stripped == "---> Using cache":
            if self.current is not None:
                self.current.cached = True
        elif stripped.startswith("---> Running in ") or stripped.startswith("Removing intermediate container "):
            pass
        elif stripped.startswith("---> "):
            if self.current is not None:
                self._end(self.current)
        elif line.startswith("Successfully built "):
            self.image_id = self.image_id or line.removeprefix("Successfully built ").strip()
        elif line.startswith("Successfully tagged "):
            self.tags.append(line.removeprefix("Successfully tagged ").strip())
        elif self.current is not None:
            self._output(line)

    def _begin(self, numbers: str, instruction: str) -> None:
        if self.current is not None:
            self._end(self.current)
        index, _, total = numbers.partition("/")
        self.total = int(total) if total.isdigit() else self.total
        words = instruction.split()
        if words and words[0].upper() == "FROM":
            lowered = [w.lower() for w in words]
            self.stage = words[lowered.index("as") + 1] if "as" in lowered[2:-1] else ""
        where = f"{self.stage} " if self.stage else ""
        step = Step(len(self.steps) + 1, f"[{where}{index}/{total}] {instruction}", self.clock())
        self.steps.append(step)
        self.started(step)

    def _output(self, line: str) -> None:
        step = self.current
        assert step is not None
        step.output.append(line)
        self.printed(step, line)

    def _end(self, step: Step) -> None:
        step.ended = self.clock()
        self.ended(step)


def _full_name(tag: str) -> str:
    """``x:1`` → ``docker.io/library/x:1``, as BuildKit names what it tags."""
    name = tag
    first = name.split("/", 1)[0]
    if "/" not in name or ("." not in first and ":" not in first and first != "localhost"):
        name = ("docker.io/library/" if "/" not in name else "docker.io/") + name
    return name


class PlainProgress(BuildView):
    """BuildKit's plain printer: every event a line, prefixed by its vertex's ``#N``."""

    def __init__(self, out: TextIO, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(clock)
        self.out = out

    def started(self, step: Step) -> None:
        self.out.write(f"#{step.number} {step.label}\n")
        self.out.flush()

    def printed(self, step: Step, line: str) -> None:
        if step.label == "exporting to image":
            self.out.write(f"#{step.number} {line}\n")
        else:
            self.out.write(f"#{step.number} {self.clock() - step.started:.3f} {line}\n")
        self.out.flush()

    def ended(self, step: Step) -> None:
        if step.error:
            end = f"ERROR: {step.error}"
        elif step.cached:
            end = "CACHED"
        else:
            end = f"DONE {(step.ended or step.started) - step.started:.1f}s"
        self.out.write(f"#{step.number} {end}\n\n")
        self.out.flush()


class TtyProgress(BuildView):
    """BuildKit's tty display: a screen of steps redrawn in place on ``out`` (a terminal)."""

    def __init__(self, out: TextIO, clock: Callable[[], float] = time.monotonic, width: int = 80) -> None:
        super().__init__(clock)
        self.out = out
        self.width = max(width, 20)
        self._shown = 0  # lines of the last frame, to move back over
        self._drawn_at = 0.0
        self.done = False

    def started(self, step: Step) -> None:
        self.draw(force=True)

    def printed(self, step: Step, line: str) -> None:
        self.draw()

    def ended(self, step: Step) -> None:
        self.draw(force=True)

    def close(self) -> None:
        """The last frame: the finished screen, then a failing step's whole output."""
        self.done = True
        self.draw(force=True)
        failed = next((s for s in self.steps if s.error), None)
        if failed is not None:
            self.out.write("------\n")
            self.out.write(f" > {failed.label}:\n")
            for line in failed.output:
                self.out.write(f"{line}\n")
            self.out.write("------\n")
        self.out.flush()

    def frame(self) -> list[str]:
        """The screen's lines now."""
        elapsed = self.clock() - self.begun
        ended = sum(1 for s in self.steps if s.ended is not None)
        state = ""
        if self.done:
            state = " ERROR" if any(s.error for s in self.steps) else " FINISHED"
        count = max(self.total + 1, len(self.steps)) if self.total else len(self.steps)
        lines = [f"[+] Building {elapsed:.1f}s ({ended}/{count}){state}"]
        for step in self.steps:
            word = "ERROR " if step.error else "CACHED " if step.cached else ""
            took = ((step.ended if step.ended is not None else self.clock()) - step.started)
            lines.append(self._fit(f" => {word}{step.label}", f"{took:.1f}s"))
            if step.ended is None:
                lines.extend(self._fit(f" => => # {line}", "") for line in step.output[-_TAIL:])
        return lines

    def draw(self, force: bool = False) -> None:
        now = self.clock()
        if not force and now - self._drawn_at < _REDRAW:
            return
        self._drawn_at = now
        lines = self.frame()
        parts = [f"\x1b[{self._shown}A"] if self._shown else []
        parts.extend(f"\x1b[2K{line}\n" for line in lines)
        extra = self._shown - len(lines)
        if extra > 0:  # a shorter frame: blank the lines the last one had below it, and come back
            parts.extend("\x1b[2K\n" for _ in range(extra))
            parts.append(f"\x1b[{extra}A")
        self.out.write("".join(parts))
        self.out.flush()
        self._shown = len(lines)

    def _fit(self, text: str, right: str) -> str:
        """``text`` with ``right`` at the line's right end, cut to the terminal's width."""
        room = self.width - len(right) - 1
        if len(text) > room:
            text = text[:max(room - 3, 0)] + "..."
        return f"{text:<{room}} {right}".rstrip() if right else text[:self.width]
