"""``.dockerignore`` with Docker's pattern rules (moby/patternmatcher and its ignorefile reader)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockyard.build.dockerignore import PatternMatcher, go_clean, ignore_file_for, read_ignore_file
from dockyard.errors import InvalidParameter


def test_reading_cleans_and_skips_comments() -> None:
    text = "\ufeff# comment\n\n  *.log  \n/abs\n./dot/../rel\n! keep.log\n  # indented is a pattern\n//twice\n"
    assert read_ignore_file(text) == ["*.log", "abs", "rel", "!keep.log", "# indented is a pattern", "twice"]


def test_reading_splits_at_newline_only() -> None:
    assert read_ignore_file("a\r\nb\u2028c\n") == ["a", "b\u2028c"]


def test_go_clean() -> None:
    cases = {"": ".", "a/./b/": "a/b", "../x": "../x", "/../x": "/x", "a/../..": "..", "//a": "/a", "./": "."}
    assert {k: go_clean(k) for k in cases} == cases


MATCHES = [
    # (patterns, path, excluded)
    (["*.go"], "a.go", True),
    (["*.go"], "dir/a.go", False),  # * never crosses a slash
    (["**/*.go"], "dir/sub/a.go", True),
    (["**/*.go"], "a.go", True),  # ** is zero or more directories
    (["dir/**/x"], "dir/x", True),
    (["dir/**/x"], "dir/a/b/x", True),
    (["dir/**"], "dir/a/b", True),
    (["dir"], "dir/deep/file", True),  # a directory excludes what is under it
    (["dir/*"], "dir/deep/file", True),  # ... also when matched through a parent
    (["dir"], "dirx", False),
    (["d?r"], "dir", True),
    (["d?r"], "d/r", False),
    (["[a-c]x"], "bx", True),
    (["[a-c]x"], "dx", False),
    (["a.b"], "axb", False),  # regex characters are literal
    (["a+(b)"], "a+(b)", True),
    (["\\*"], "*", True),
    (["\\*"], "x", False),
    (["**.log"], "x.log", True),  # **name with no other wildcard is a suffix test
    (["**.log"], "a/b/x.log", True),
    (["**"], "anything/at/all", True),
    (["*", "!keep"], "keep", False),  # an exception re-includes
    (["*", "!keep", "keep"], "keep", True),  # the last match wins
    (["*.md", "!README.md"], "README.md", False),
    (["*.md", "!README.md"], "NOTES.md", True),
    (["docs", "!docs/keep.md"], "docs/keep.md", False),
    (["docs", "!docs/keep.md"], "docs/other.md", True),
    (["!x"], "x", False),  # an exception alone excludes nothing
    (["./a/../b"], "b", True),
    (["/abs"], "abs", True),
    ([" spaced "], "spaced", True),
    ([], "x", False),
    (["a"], "a\n", False),  # the whole path must match
]


@pytest.mark.parametrize(("patterns", "path", "excluded"), MATCHES)
def test_matches(patterns: list[str], path: str, excluded: bool) -> None:
    assert PatternMatcher(read_ignore_file("\n".join(patterns))).matches(path) is excluded


def test_exclusions_flag() -> None:
    assert PatternMatcher(["a", "!b"]).has_exclusions
    assert not PatternMatcher(["a"]).has_exclusions


def test_bad_patterns() -> None:
    with pytest.raises(InvalidParameter, match='illegal exclusion pattern: "!"'):
        PatternMatcher(["!"])
    with pytest.raises(InvalidParameter, match="syntax error in pattern"):
        PatternMatcher(["[z-a]"])
    with pytest.raises(InvalidParameter, match="syntax error in pattern"):
        PatternMatcher(["x\\"])


def test_dockerfile_specific_ignore_file_wins(tmp_path: Path) -> None:
    dockerfile = tmp_path / "sub" / "app.Dockerfile"
    dockerfile.parent.mkdir()
    dockerfile.write_text("FROM scratch\n")
    assert ignore_file_for(tmp_path, dockerfile) is None
    (tmp_path / ".dockerignore").write_text("*\n")
    assert ignore_file_for(tmp_path, dockerfile) == tmp_path / ".dockerignore"
    specific = tmp_path / "sub" / "app.Dockerfile.dockerignore"
    specific.write_text("x\n")
    assert ignore_file_for(tmp_path, dockerfile) == specific
    assert ignore_file_for(tmp_path, None) == tmp_path / ".dockerignore"


@given(st.lists(st.text(alphabet="*?[]!\\/.ab-^ ")), st.text(alphabet="ab/.*"))
def test_never_crashes(patterns: list[str], path: str) -> None:
    try:
        matcher = PatternMatcher(patterns)
    except InvalidParameter:
        return
    assert matcher.matches(path) in (True, False)
