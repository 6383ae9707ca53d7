"""Reading a policy YAML file so that every error can name its line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from appliance.errors import PolicyError


def compose(path: Path, what: str) -> yaml.Node:
    """The file's YAML node tree (nodes know their lines), or PolicyError."""
    try:
        root = yaml.compose(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PolicyError(f"{path}: {what} not found") from None
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
