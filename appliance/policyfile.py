"""Reading a policy YAML file so that every error can name its line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from appliance import untrusted
from appliance.errors import PolicyError


class PolicyTooDeep(PolicyError):
    """The policy's YAML is nested deeper than any policy needs: refused unread."""


def compose(path: Path, what: str) -> yaml.Node:
    """The file's YAML node tree (nodes know their lines), or PolicyError.

    Nesting deeper than ``untrusted.MAX_DEPTH`` is refused before the tree is built (the
    composer recurses once per level: very deep input would raise RecursionError).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError(f"{path}: {what} not found") from None
    deep = untrusted.yaml_depth_error(text)
    if deep is not None:
        raise PolicyTooDeep(f"{path}:{deep}: nested deeper than {untrusted.MAX_DEPTH} levels")
    try:
        root = yaml.compose(text)
    except RecursionError:  # a safety net: the check above keeps the composer shallow
        raise PolicyTooDeep(f"{path}: nested deeper than {untrusted.MAX_DEPTH} levels") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise PolicyError(f"{path}:{mark.line + 1 if mark else '?'}: not valid YAML") from None
    if root is None:
        raise PolicyError(f"{path}:1: {what} is empty")
    return root


def line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def value(node: yaml.Node) -> Any:
    """A node as the Python value safe_load would give."""
    return yaml.safe_load(yaml.serialize(node))


def line_of(root: yaml.Node, loc: tuple[Any, ...] | list[Any]) -> int:
    """The line of the deepest node along ``loc`` (keys of mappings, indexes of sequences,
    as pydantic's error locations give them) that the file has."""
    node, found = root, line(root)
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if str(k.value) == str(part)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            match = node.value[part] if 0 <= part < len(node.value) else None
        else:
            match = None
        if match is None:
            break
        node, found = match, line(match)
    return found
