"""The vllm role's filter ``appliance_vllm_args``: the ``vllm serve`` arguments of a
vllm_models entry (tool and reasoning parsers, chat template, context length,
structured-output backend), with its model family's defaults, checked against the
appliance's one table of vLLM options, appliance/upstream/vllm_options.py.

That file is loaded from this repository by path (it needs only the standard library), so
the controller runs the same checks as `appliance model add` without the appliance being
installed there.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from ansible.errors import AnsibleFilterError

TABLE = Path(__file__).resolve().parents[4] / "appliance" / "upstream" / "vllm_options.py"
MODULE = "_appliance_vllm_options"


def _table() -> ModuleType:
    if MODULE in sys.modules:
        return sys.modules[MODULE]
    spec = importlib.util.spec_from_file_location(MODULE, TABLE)
    if spec is None or spec.loader is None or not TABLE.is_file():
        raise AnsibleFilterError(f"the appliance's table of vLLM options is missing: {TABLE}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[MODULE] = module
    try:
        spec.loader.exec_module(module)
    except Exception:
        del sys.modules[MODULE]
        raise
    return module


def appliance_vllm_args(entry: Any, version: Any) -> list[str]:
    """``vllm serve`` arguments of ``entry`` for vLLM ``version``; fails naming the field."""
    table = _table()
    if not isinstance(entry, dict):
        raise AnsibleFilterError(f"a vllm_models entry is a mapping, not {entry!r}")
    try:
        return list(table.entry_args(entry, str(version)))
    except table.VllmOptionError as exc:
        raise AnsibleFilterError(
            f"vllm_models entry {entry.get('name')!r}: {exc.message}"
        ) from None


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"appliance_vllm_args": appliance_vllm_args}
