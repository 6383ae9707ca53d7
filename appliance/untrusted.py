"""Parsing untrusted JSON and YAML within bounds: nesting depth and valid Unicode.

Python's parsers recurse once per level of nesting, so ``[`` x 100,000 raises RecursionError
(a 500), and a few hundred levels that do parse still break the code that walks the value
afterwards (pydantic, the JSON encoder, the audit). Input nested deeper than a limit is
refused with :class:`TooDeep`, a 400.

JSON may also escape a lone surrogate (``"\\ud800"``): Python accepts it, but the string is
not valid Unicode, so it fails later, at the upstream or the database.
:func:`lone_surrogate` finds the first one, to be refused naming its field.

The checks cost little on ordinary input: the values are walked only when the raw text
holds enough brackets to be that deep, or a surrogate escape.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from appliance.errors import InvalidRequest

# Deep enough for any real request (a JSON schema with a dozen nested objects is ~40 levels).
MAX_DEPTH = 64

# \uD800-\uDFFF escaped, or encoded in UTF-8 bytes (ED A0 80 - ED BF BF, which json.loads
# takes from bytes with "surrogatepass"): only then can the value hold a surrogate.
_SURROGATE_TEXT = re.compile(r"\\u[dD][89a-fA-F]|[\ud800-\udfff]")
_SURROGATE_BYTES = re.compile(rb"\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]")
_LONE = re.compile(r"[\ud800-\udfff]")


class Refused(InvalidRequest):
    """Input refused for its form, before its meaning is looked at (400)."""


class TooDeep(Refused):
    """Input nested deeper than the limit."""

    code = "nesting_too_deep"


class LoneSurrogate(Refused):
    """A string holding a lone surrogate: not valid Unicode."""

    code = "invalid_unicode"


def too_deep(what: str, limit: int) -> TooDeep:
    return TooDeep(f"{what} is nested deeper than {limit} levels.")


def loads_json(raw: bytes | str, *, what: str, max_depth: int = MAX_DEPTH) -> Any:
    """``json.loads(raw)``; TooDeep (naming ``what``) past ``max_depth`` levels.

    Anything else wrong with the text raises what json.loads raises (a ValueError).
    """
    try:
        value = json.loads(raw)
    except RecursionError:
        raise too_deep(what, max_depth) from None
    if _brackets(raw) > max_depth and json_depth(value, max_depth) > max_depth:
        raise too_deep(what, max_depth)
    return value


def _brackets(raw: bytes | str) -> int:
    """How many containers the text opens at most (its depth cannot be more)."""
    if isinstance(raw, bytes):
        return raw.count(b"[") + raw.count(b"{")
    return raw.count("[") + raw.count("{")


def json_depth(value: Any, limit: int) -> int:
    """The nesting depth of a parsed JSON value (a scalar is 0), counted up to ``limit + 1``."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        depth += 1
        if depth > deepest:
            deepest = depth
            if deepest > limit:
                return deepest
        stack.extend((child, depth) for child in children if isinstance(child, dict | list))
    return deepest


def may_hold_surrogate(raw: bytes | str) -> bool:
    """Whether the JSON text can decode to a string with a surrogate in it."""
    if isinstance(raw, bytes):
        if json.detect_encoding(raw) != "utf-8":  # UTF-16 or -32: the patterns do not apply
            return True
        return _SURROGATE_BYTES.search(raw) is not None
    return _SURROGATE_TEXT.search(raw) is not None


def lone_surrogate(value: Any) -> tuple[str, str] | None:
    """The first string (a value or a key) holding a surrogate, as (dotted path, the surrogate
    escaped: ``\\ud800``); None if there is none. A path part is a key or a list index."""
    stack: list[tuple[Any, tuple[str, ...]]] = [(value, ())]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            found = _LONE.search(item)
            if found:
                return ".".join(path), escape(found.group())
        elif isinstance(item, dict):
            children = []
            for key, child in item.items():
                found = _LONE.search(key)
                if found:
                    return ".".join((*path, escape(key))), escape(found.group())
                children.append((child, (*path, key)))
            stack.extend(reversed(children))  # first field first
        elif isinstance(item, list):
            stack.extend((child, (*path, str(i))) for i, child in reversed(list(enumerate(item))))
    return None


def refuse_lone_surrogate(
    value: Any, raw: bytes | str, describe: str = "Invalid value for"
) -> None:
    """LoneSurrogate naming the field (``param``) of the first lone surrogate in ``value``.

    ``raw`` is the text ``value`` was parsed from: without a surrogate escape (or bytes) in
    it, the value is not walked.
    """
    if not may_hold_surrogate(raw):
        return
    found = lone_surrogate(value)
    if found is not None:
        field, surrogate = found
        raise LoneSurrogate(
            f"{describe} '{field}': the string holds a lone surrogate ({surrogate}), "
            "which is not valid Unicode.",
            param=field,
        )


def escape(text: str) -> str:
    """``text`` printable whatever it holds: surrogates (and other non-ASCII) as escapes."""
    return text.encode("ascii", "backslashreplace").decode("ascii")


def yaml_depth_error(text: str, limit: int = MAX_DEPTH) -> int | None:
    """The line (1-based) where the YAML text gets deeper than ``limit`` levels, else None.

    Read from the parser's events, which are produced without recursion (composing the node
    tree recurses once per level); a document that is not valid YAML gets None here and its
    error from the composer.
    """
    depth = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > limit:
                    mark = event.start_mark
                    return int(mark.line) + 1 if mark is not None else 1
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.YAMLError:
        return None
    return None
