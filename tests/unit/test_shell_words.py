"""Docker's shell-word lexer: quoting, escapes, every substitution form, and robustness."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockyard.build.shell_words import ShellLexer, ShellWordError

ENV = {"A": "a", "SP": "x  y", "EMPTY": "", "F": "archive.tar.gz", "P": "/usr/local/bin"}
LEX = ShellLexer()

WORDS = [
    ("plain", "plain"),
    ("$A", "a"), ("${A}", "a"), ("$A$A", "aa"), ("${A}b", "ab"), ("$Ab", ""), ("$", "$"), ("a$", "a$"),
    ("$UNSET", ""), ("${UNSET}", ""),
    ("${UNSET:-dflt}", "dflt"), ("${EMPTY:-dflt}", "dflt"), ("${EMPTY-dflt}", ""), ("${UNSET-dflt}", "dflt"),
    ("${A:-dflt}", "a"), ("${A:+alt}", "alt"), ("${EMPTY:+alt}", ""), ("${EMPTY+alt}", "alt"),
    ("${UNSET+alt}", ""), ("${UNSET:-$A}", "a"), ("${UNSET:-${A:+nested}}", "nested"),
    ("${A:?}", "a"),
    ("${F#*.}", "tar.gz"), ("${F##*.}", "gz"), ("${F%.*}", "archive.tar"), ("${F%%.*}", "archive"),
    ("${P#/usr}", "/local/bin"), ("${F%.gz}", "archive.tar"), ("${F#nomatch}", "archive.tar.gz"),
    ("${F/a/A}", "Archive.tar.gz"), ("${F//a/A}", "Archive.tAr.gz"), ("${F/?r/__}", "__chive.tar.gz"),
    ("'$A'", "$A"), ('"$A"', "a"), ('"\\$A"', "$A"), ("\\$A", "$A"), ('"a\\b"', "a\\b"), ('"a\\"b"', 'a"b'),
    ("a\\ b", "a b"), ("'a\\b'", "a\\b"), ('"${A}-x"', "a-x"), ("$1", ""), ("${1}", ""),
    ("it's", None),  # unclosed quote: error
]


@pytest.mark.parametrize(("text", "expected"), WORDS)
def test_word(text: str, expected: str | None) -> None:
    if expected is None:
        with pytest.raises(ShellWordError):
            LEX.word(text, ENV)
    else:
        assert LEX.word(text, ENV) == expected


def test_split_on_unquoted_whitespace_including_expanded() -> None:
    assert LEX.split("a $SP 'q  r' \"$SP\" b\\ c", ENV) == ["a", "x", "y", "q  r", "x  y", "b c"]
    assert LEX.split("  ", ENV) == []


def test_backtick_escape() -> None:
    lex = ShellLexer("`")
    assert lex.word("c:\\dir` x", ENV) == "c:\\dir x"
    assert lex.word('"`$A"', ENV) == "$A"


ERRORS = [
    ("${A", "failed to process \"${A\": syntax error: missing '}'"),
    ("${}", "failed to process \"${}\": syntax error: bad substitution"),
    ("${:-x}", "failed to process \"${:-x}\": syntax error: bad substitution"),
    ("${A:#x}", "failed to process \"${A:#x}\": unsupported modifier (:#) in substitution"),
    ("${A!}", "failed to process \"${A!}\": unsupported modifier (!) in substitution"),
    ("${UNSET?}", "failed to process \"${UNSET?}\": UNSET: is not allowed to be unset"),
    ("${EMPTY:?must be set}", "failed to process \"${EMPTY:?must be set}\": EMPTY: must be set"),
    ("'open", "failed to process \"'open\": unexpected end of statement while looking for matching single-quote"),
    ('"open', "failed to process \"\\\"open\": unexpected end of statement while looking for matching double-quote"),
    ("${A:-x", "failed to process \"${A:-x\": syntax error: missing '}'"),
    ("${A/x", "failed to process \"${A/x\": syntax error: missing '/' in ${}"),
]


@pytest.mark.parametrize(("text", "message"), ERRORS)
def test_errors(text: str, message: str) -> None:
    with pytest.raises(ShellWordError) as err:
        LEX.word(text, ENV)
    assert err.value.message == message


def test_skip_unset_keeps_references() -> None:
    lex = ShellLexer(skip_unset=True)
    assert lex.word("$X ${Y} ${Z:-d} $A", ENV) == "$X ${Y} ${Z:-d} a"


def _quote(text: str) -> str:
    """``text`` as one single-quoted shell word (``'`` written as ``'"'"'``)."""
    return "'" + text.replace("'", "'\"'\"'") + "'"


@given(st.text())
def test_single_quoting_round_trips(text: str) -> None:
    assert LEX.word(_quote(text), ENV) == text


@given(st.text(alphabet=st.characters(blacklist_characters="\\\"$")))
def test_double_quoting_round_trips(text: str) -> None:
    assert LEX.word('"' + text + '"', ENV) == text


@given(st.text())
def test_escaping_every_character_round_trips(text: str) -> None:
    assert LEX.word("".join("\\" + ch for ch in text), {}) == text


@given(st.text(), st.dictionaries(st.text(min_size=1, max_size=3), st.text(max_size=5)))
def test_never_crashes(text: str, env: dict[str, str]) -> None:
    for lexer in (LEX, ShellLexer("`"), ShellLexer(raw_quotes=True, raw_escapes=True, skip_unset=True)):
        try:
            lexer.word(text, env)
            lexer.split(text, env)
        except ShellWordError:
            pass


@given(st.text(alphabet="ab$:-+?#%/{}'\"\\ *"))
def test_never_crashes_on_substitution_syntax(text: str) -> None:
    try:
        LEX.word(text, ENV)
    except ShellWordError:
        pass
