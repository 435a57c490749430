"""The CLI's own .dockerignore matcher gives the daemon side's answers (dockyard/build/dockerignore.py)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dockyard.build import dockerignore as daemon_side
from dockyard.cli import ignore_patterns as cli_side
from dockyard.errors import InvalidParameter
from tests.unit.test_dockerignore import MATCHES

FILE_TEXTS = [
    "\ufeff# comment\n\n  *.log  \n/abs\n./dot/../rel\n! keep.log\n  # indented is a pattern\n//twice\n",
    "a\r\nb\u2028c\n", "!\n", "*\n!\n", "/\n", "!/x\n", "..\n../a\n", "a/**/\n",
]


def outcome(module_matcher: type, patterns: list[str], path: str) -> bool | str:
    try:
        matcher = module_matcher(patterns)
    except (InvalidParameter, cli_side.IgnorePatternError) as error:
        return str(error)
    if isinstance(matcher, cli_side.IgnoreMatcher):
        return matcher.excluded(path)
    return bool(matcher.matches(path))


@pytest.mark.parametrize(("patterns", "path", "excluded"), MATCHES)
def test_the_daemons_cases(patterns: list[str], path: str, excluded: bool) -> None:
    assert cli_side.IgnoreMatcher(cli_side.parse_ignore_file("\n".join(patterns))).excluded(path) is excluded


@pytest.mark.parametrize("text", FILE_TEXTS)
def test_reading_files_alike(text: str) -> None:
    assert cli_side.parse_ignore_file(text) == daemon_side.read_ignore_file(text)


def test_clean_alike() -> None:
    for path in ["", "a/./b/", "../x", "/../x", "a/../..", "//a", "./", "/", "a//b/../c/."]:
        assert cli_side.clean(path) == daemon_side.go_clean(path)


def test_errors_alike() -> None:
    for patterns in (["!"], ["[z-a]"], ["x\\"]):
        assert outcome(cli_side.IgnoreMatcher, patterns, "x") == outcome(daemon_side.PatternMatcher, patterns, "x")
    assert outcome(cli_side.IgnoreMatcher, ["!"], "x") == 'illegal exclusion pattern: "!"'


@settings(max_examples=400)
@given(st.lists(st.text(alphabet="*?[]!\\/.ab- ", max_size=8), max_size=4), st.text(alphabet="ab/.*", max_size=10))
def test_same_answers_on_any_input(patterns: list[str], path: str) -> None:
    assert outcome(cli_side.IgnoreMatcher, patterns, path) == outcome(daemon_side.PatternMatcher, patterns, path)
    text = "\n".join(patterns)
    assert cli_side.parse_ignore_file(text) == daemon_side.read_ignore_file(text)
