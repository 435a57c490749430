"""JSON in and out without importing the ``json`` package.

``json`` pulls in ``re`` and ``enum`` (several milliseconds at start-up). The C accelerator
``_json`` that ``json`` itself uses is built in and imports nothing, so decoding goes through its
scanner and encoding is a short recursive function. Output follows Go's ``encoding/json``, as
Docker's CLI prints it: ``<``, ``>`` and ``&`` escaped as ``\\u003c`` and friends, non-ASCII text
kept as UTF-8, and (with ``indent``) Go's ``MarshalIndent`` layout.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

try:
    import _json
except ImportError:  # pragma: no cover - every CPython has it
    _json = None  # type: ignore[assignment]


def _parse_constant(name: str) -> float:
    return {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}[name]


class _ScanContext:
    """The attributes ``_json.make_scanner`` reads from its context (what ``json.JSONDecoder`` has)."""

    strict = False
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_parse_constant)
    memo: dict[str, str] = {}


_scan = _json.make_scanner(_ScanContext()) if _json is not None else None  # type: ignore[arg-type]
_WHITESPACE = " \t\n\r"


def loads(text: str | bytes) -> Any:
    """Decode one JSON document; raise ``ValueError`` on malformed input or trailing data."""
    if isinstance(text, bytes | bytearray):
        text = bytes(text).decode("utf-8")
    if _scan is None:  # pragma: no cover
        import json

        return json.loads(text)
    start = 0
    while start < len(text) and text[start] in _WHITESPACE:
        start += 1
    try:
        value, end = _scan(text, start)
    except (StopIteration, SystemError):
        # The scanner reports syntax errors through json.decoder, which may not be imported yet:
        # let the full package produce its proper JSONDecodeError (a ValueError).
        import json

        return json.loads(text)
    while end < len(text) and text[end] in _WHITESPACE:
        end += 1
    if end != len(text):
        raise ValueError(f"extra data after JSON at offset {end}")
    return value


def _quote(text: str) -> str:
    if _json is not None:
        quoted = _json.encode_basestring(text)
    else:  # pragma: no cover
        import json

        quoted = json.dumps(text, ensure_ascii=False)
    return (quoted.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _number(value: int | float) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return repr(value)


def dumps(value: Any, indent: str = "", prefix: str = "") -> str:
    """Encode ``value`` like Go's ``json.Marshal`` (``indent`` empty) or ``json.MarshalIndent``."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, int | float):
        return _number(value)
    inner = prefix + indent
    if isinstance(value, dict):
        if not value:
            return "{}"
        sep = ": " if indent else ":"
        items = [f"{_quote(str(k))}{sep}{dumps(v, indent, inner)}" for k, v in value.items()]
        if not indent:
            return "{" + ",".join(items) + "}"
        return "{\n" + ",\n".join(inner + item for item in items) + "\n" + prefix + "}"
    if isinstance(value, list | tuple):
        if not value:
            return "[]"
        parts = [dumps(v, indent, inner) for v in value]
        if not indent:
            return "[" + ",".join(parts) + "]"
        return "[\n" + ",\n".join(inner + part for part in parts) + "\n" + prefix + "]"
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")
